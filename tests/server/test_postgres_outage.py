"""The server on PostgreSQL through an outage: says get ``unavailable``, sockets stay open,
``/healthz`` says ``degraded``, and the same server recovers when the database is back."""

from __future__ import annotations

import asyncio
import json

import pytest

from chat.server.options import Settings


@pytest.fixture
def settings(postgres_dsn: str) -> Settings:
    return Settings(db=postgres_dsn, cookie_secret="test-secret", ping_interval=0)


async def health(http_client, base_url: str) -> str:
    response = await http_client.fetch(base_url + "/healthz", raise_error=False)
    return str(json.loads(response.body)["status"])


@pytest.mark.gen_test(timeout=60)
async def test_a_postgresql_outage_refuses_says_keeps_sockets_and_recovers_without_a_restart(
    postgres, http_client, base_url, connect
):
    sock = await connect("alice")
    await sock.send(type="join", room="ops")
    await sock.recv_until("joined")
    await sock.send(type="say", room="ops", text="before", ref="r1")
    assert (await sock.recv_until("message"))["seq"] == 1

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, postgres.stop)
    try:
        await sock.send(type="say", room="ops", text="during", ref="r2")
        refused = await sock.recv_until("error")
        assert (refused["code"], refused["ref"]) == ("unavailable", "r2")
        assert await health(http_client, base_url) == "degraded"
        await sock.send(type="ping")
        assert (await sock.recv_until("pong"))["type"] == "pong"  # the socket is still served
    finally:
        await loop.run_in_executor(None, postgres.start)

    # The client's retry, with the same ref, is stored once, after the first message.
    await sock.send(type="say", room="ops", text="during", ref="r2")
    stored = await sock.recv_until("message")
    assert (stored["seq"], stored["text"]) == (2, "during")
    assert await health(http_client, base_url) == "ok"
