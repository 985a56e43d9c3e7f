"""Several server.py processes on one PostgreSQL and one Redis serve one chat:
the guarantees of one process hold across them. Every server here is a real
child process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from tornado.httpclient import AsyncHTTPClient

from chat.client import ChatClient
from chat.server import proctree
from tests.cluster import test_faults as faults
from tests.support import RECV_TIMEOUT_S, REPO, RedisServer, ServerProcess, Socket


def cluster_args(redis_url: str, db: str, *extra: str) -> list[str]:
    # One cookie secret for all: a session token signed by one process is valid on every other.
    return ["--redis", redis_url, "--db", db, "--cookie-secret", "shared",
            "--rate", "0", "--ping-interval", "0", *extra]  # fmt: skip


async def stored_history(dsn: str, rooms: tuple[str, ...]) -> dict[str, list[faults.Row]]:
    """The rooms' messages as PostgreSQL holds them, in seq order: ``(seq, text, name)``."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT room, seq, text, name FROM messages WHERE room = ANY($1) ORDER BY room, seq", list(rooms)
        )
    finally:
        await conn.close()
    history: dict[str, list[faults.Row]] = {room: [] for room in rooms}
    for row in rows:
        history[row["room"]].append((row["seq"], row["text"], row["name"]))
    return history


@pytest.fixture
def servers(redis_url, postgres_dsn, io_loop) -> Iterator[Callable[..., Any]]:  # type: ignore[no-untyped-def]
    """``await servers(*extra_args)``: one more server.py on the test's PostgreSQL and Redis; all stopped after."""
    started: list[ServerProcess] = []
    sockets: list[Socket] = []

    async def start(*extra: str) -> ServerProcess:
        server = await ServerProcess(*cluster_args(redis_url, postgres_dsn, *extra)).start()
        started.append(server)
        return server

    start.sockets = sockets  # type: ignore[attr-defined]
    yield start  # type: ignore[misc]

    async def stop_all() -> None:
        for sock in sockets:
            sock.close()
        for server in started:
            await server.stop(signal.SIGKILL)

    io_loop.run_sync(stop_all)


async def member(opened: list[Socket], server: ServerProcess, name: str, room: str = "lobby", **query: str) -> Socket:
    """A socket as ``name`` on ``server``, joined to ``room`` (kept on ``opened``, to close);
    its welcome and joined frames are on it."""
    params = "&".join(f"{k}={v}" for k, v in {"name": name, **query}.items())
    sock = await Socket.connect(f"{server.url}?{params}")
    opened.append(sock)
    sock.welcome = await sock.recv_until("welcome")
    await sock.send(type="join", room=room, **({"since": int(query.pop("since"))} if "since" in query else {}))
    sock.joined = await sock.recv_until("joined")  # type: ignore[attr-defined]
    return sock


async def messages(sock: Socket, n: int) -> list[dict[str, Any]]:
    return [await sock.recv_until("message") for _ in range(n)]


async def health(server: ServerProcess) -> dict[str, Any]:
    response = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{server.port}/healthz")
    value: dict[str, Any] = json.loads(response.body)
    return value


@pytest.mark.gen_test(timeout=60)
async def test_clients_on_two_processes_chat_with_one_seq_order_and_presence(servers):
    a, b = await servers(), await servers()
    alice = await member(servers.sockets, a, "alice")
    bob = await member(servers.sockets, b, "bob")
    assert bob.joined["members"] == ["alice", "bob"]  # type: ignore[attr-defined]
    assert (await alice.recv_until("presence"))["name"] == "bob"  # crossed from b to a
    for i in range(10):
        await (alice if i % 2 else bob).send(type="say", room="lobby", text=f"m{i}")
    for sock in (alice, bob):
        got = await messages(sock, 10)
        assert [m["seq"] for m in got] == list(range(1, 11))  # one order, no gap, no repeat
        assert sorted(m["text"] for m in got) == sorted(f"m{i}" for i in range(10))
    await bob.send(type="typing", room="lobby")
    assert (await alice.recv_until("typing"))["name"] == "bob"
    response = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{a.port}/api/rooms")
    # Rows gained title, visibility and kind with accounts (issue 12).
    lobby = {"room": "lobby", "title": "lobby", "visibility": "public", "kind": "room", "members": 2, "last_seq": 10}
    assert json.loads(response.body)["rooms"] == [lobby]


@pytest.mark.gen_test(timeout=60)
async def test_a_name_is_taken_across_processes(servers):
    a, b = await servers(), await servers()
    await member(servers.sockets, a, "alice")
    thief = await Socket.connect(f"{b.url}?name=ALICE")
    servers.sockets.append(thief)
    assert await thief.closed() == (1008, "name_taken")


@pytest.mark.gen_test(timeout=60)
async def test_presence_counts_a_name_once_across_processes(servers):
    a, b = await servers(), await servers()
    carol = await member(servers.sockets, a, "carol")
    bob1 = await member(servers.sockets, a, "bob")
    assert (await carol.recv_until("presence"))["event"] == "join"
    bob2 = await member(servers.sockets, b, "bob", session=bob1.welcome["session"])  # bob's second tab, elsewhere
    assert bob2.joined["members"] == ["bob", "carol"]  # type: ignore[attr-defined]
    bob1.close()  # bob is still there through b: nobody hears he left
    await carol.send(type="ping", ref="p")
    assert (await carol.recv()) == {"type": "pong", "ref": "p"}
    bob2.close()
    left = await carol.recv_until("presence")
    assert (left["event"], left["name"]) == ("leave", "bob")


@pytest.mark.gen_test(timeout=60)
async def test_a_socket_dropped_on_one_process_resumes_on_another_missing_nothing(servers):
    a, b = await servers(), await servers()
    alice = await member(servers.sockets, a, "alice")
    bob = await member(servers.sockets, b, "bob")
    for i in range(3):
        await bob.send(type="say", room="lobby", text=f"m{i}")
    seen = await messages(alice, 3)
    alice.close()  # alice's network drops
    for i in range(3, 8):
        await bob.send(type="say", room="lobby", text=f"m{i}")
    await messages(bob, 8)
    again = await member(servers.sockets, b, "alice", session=alice.welcome["session"], since=str(seen[-1]["seq"]))
    joined = again.joined  # type: ignore[attr-defined]
    assert [m["text"] for m in joined["history"]] == [f"m{i}" for i in range(3, 8)]
    assert joined["last_seq"] == 8
    await bob.send(type="say", room="lobby", text="live")
    assert (await again.recv_until("message"))["seq"] == 9


@pytest.mark.gen_test(timeout=60)
async def test_a_retry_through_another_process_returns_the_original(servers):
    a, b = await servers(), await servers()
    alice = await member(servers.sockets, a, "alice")
    bob = await member(servers.sockets, b, "bob")
    await alice.send(type="say", room="lobby", text="once", ref="r1")
    first = await alice.recv_until("message")
    alice.close()  # as if the acknowledgement had been lost with the connection
    again = await member(servers.sockets, b, "alice", session=alice.welcome["session"])
    await again.send(type="say", room="lobby", text="once", ref="r1")
    retried = await again.recv_until("message")
    assert (retried["seq"], retried["ref"]) == (first["seq"], "r1")
    await again.send(type="say", room="lobby", text="next", ref="r2")
    assert (await again.recv_until("message"))["seq"] == first["seq"] + 1
    assert [m["text"] for m in await messages(bob, 2)] == ["once", "next"]  # the retry was not stored again


@pytest.mark.gen_test(timeout=60)
async def test_the_members_of_a_killed_process_leave(servers):
    a, b = await servers("--presence-ttl", "1"), await servers("--presence-ttl", "1")
    await member(servers.sockets, a, "alice")
    bob = await member(servers.sockets, b, "bob")
    assert a.proc is not None
    a.proc.kill()  # no goodbye: only the missing heartbeat tells
    started = time.monotonic()
    left = await bob.recv_until("presence")
    assert (left["event"], left["name"]) == ("leave", "alice")
    assert time.monotonic() - started < 30
    response = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{b.port}/api/rooms")
    assert json.loads(response.body)["rooms"][0]["members"] == 1


@pytest.mark.gen_test(timeout=60)
async def test_the_members_of_a_process_shut_down_gracefully_leave_at_once(servers):
    a, b = await servers(), await servers()  # the default 15 s presence TTL
    alice = await member(servers.sockets, a, "alice")
    bob = await member(servers.sockets, b, "bob")
    await alice.recv_until("presence")
    started = time.monotonic()
    assert await a.stop() == 0
    assert (await alice.closed())[0] == 1001  # alice's client would now reconnect elsewhere
    left = await bob.recv_until("presence")
    assert (left["event"], left["name"]) == ("leave", "alice")
    assert time.monotonic() - started < 15  # not by the heartbeat running out


@pytest.mark.gen_test(timeout=90)
async def test_a_redis_outage_stores_and_acknowledges_says_and_the_other_process_fills_the_gap_after(
    tmp_path, postgres_dsn
):
    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis").start()
    a = await ServerProcess(*cluster_args(redis.url, postgres_dsn)).start()
    b = await ServerProcess(*cluster_args(redis.url, postgres_dsn)).start()
    sockets: list[Socket] = []
    try:
        alice = await member(sockets, a, "alice")
        bob = await member(sockets, a, "bob")  # on the sender's process
        carol = await member(sockets, b, "carol")  # on the other one
        await alice.send(type="say", room="lobby", text="before", ref="a1")
        assert (await alice.recv_until("message"))["seq"] == 1
        assert (await carol.recv_until("message"))["text"] == "before"
        assert (await bob.recv_until("message"))["text"] == "before"

        redis.stop()
        await a.logged("redis unreachable")
        for i in range(5):  # stored and acknowledged all the same
            await alice.send(type="say", room="lobby", text=f"during {i}", ref=f"x{i}")
        acks = [await alice.recv_until("message") for _ in range(5)]
        assert [(m["seq"], m["ref"]) for m in acks] == [(i + 2, f"x{i}") for i in range(5)]
        got = [await bob.recv_until("message") for _ in range(5)]  # at once, on the sender's process
        assert [m["text"] for m in got] == [f"during {i}" for i in range(5)]
        status = await health(a)
        assert (status["status"], status["connections"]) == ("degraded", 2)  # the sockets stay open
        await carol.send(type="ping", ref="p")
        assert (await carol.recv_until("pong"))["ref"] == "p"

        redis.start()  # same port
        await b.logged("redis is back")
        filled = [await carol.recv_until("message") for _ in range(5)]  # from the database, in order
        assert [(m["seq"], m["text"]) for m in filled] == [(i + 2, f"during {i}") for i in range(5)]
        await alice.send(type="say", room="lobby", text="after")
        assert (await carol.recv_until("message"))["seq"] == 7
        await a.logged("redis is back")
        assert (await health(a))["status"] == "ok"
    finally:
        for sock in sockets:
            sock.close()
        try:
            await a.stop()
            await b.stop()
        finally:
            redis.stop()
    for server in (a, b):
        outage_lines = [line for line in server.log if "redis unreachable" in line]
        assert len(outage_lines) == 1, server.log  # once per outage, not once per message


def log_pid(line: str) -> int:
    """The pid in a worker's log line: ``... chat.server[1234]: ...``."""
    return int(re.search(r"\[(\d+)\]: ", line).group(1))  # type: ignore[union-attr]


async def members_on_both_workers(server: ServerProcess, sockets: list[Socket]) -> tuple[set[int], dict[str, int]]:
    """The two workers' pids, and members joined to the lobby (appended to ``sockets``) until
    both workers have some: ``{name: worker pid}``. The kernel picks each connection's worker."""
    first = await server.logged("chat server on")
    second = await server.logged("chat server on", server.log.index(first) + 1)
    workers = {log_pid(first), log_pid(second)}
    assert len(workers) == 2
    where: dict[str, int] = {}
    for i in range(40):  # by address hash: 40 all on one worker has odds of 2**-39
        name = f"user{i}"
        await member(sockets, server, name)
        where[name] = log_pid(await server.logged(f"GET /ws?name={name} "))
        if set(where.values()) == workers:
            break
    assert set(where.values()) == workers, where
    return workers, where


@pytest.mark.gen_test(timeout=90)
async def test_workers_share_the_port_and_a_killed_workers_members_leave(redis_url, postgres_dsn):
    # At --log-level debug the access log names each upgrade (101), with the worker's pid.
    server = await ServerProcess(
        *cluster_args(redis_url, postgres_dsn, "--workers", "2", "--presence-ttl", "1", "--log-level", "debug")
    ).start()
    sockets: list[Socket] = []
    try:
        workers, where = await members_on_both_workers(server, sockets)
        await sockets[0].send(type="say", room="lobby", text="hello all")
        for sock in sockets:
            assert (await sock.recv_until("message"))["text"] == "hello all"

        victim = where["user0"]
        gone = sorted(name for name, pid in where.items() if pid == victim)
        survivors = [sock for sock, pid in zip(sockets, where.values(), strict=True) if pid != victim]
        mark = len(server.log)
        os.kill(victim, signal.SIGKILL)
        for sock in survivors:  # the dead worker's members leave, through the heartbeat running out
            left = sorted([(await sock.recv_until("presence"))["name"] for _ in gone])
            assert left == gone
        await server.logged(f"(pid {victim}) exited", mark)
        replacement = log_pid(await server.logged("chat server on", mark))
        assert replacement not in workers
        late = await member(sockets, server, "latecomer")  # whichever worker takes it
        assert late.joined["members"] == sorted(set(where) - set(gone) | {"latecomer"})  # type: ignore[attr-defined]
        await late.send(type="say", room="lobby", text="still here")
        for sock in [*survivors, late]:
            assert (await sock.recv_until("message"))["text"] == "still here"
    finally:
        for sock in sockets:
            sock.close()
        assert await server.stop() == 0  # SIGTERM reaches the workers, which shut down gracefully
    assert sum(line.rstrip().endswith(": stopped") for line in server.log) == 2  # both workers, gracefully


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--workers", "2"], "--workers needs --redis"),
        (["--workers", "2", "--redis", "redis://127.0.0.1:1/0"], "--workers needs a PostgreSQL --db"),
        (["--redis", "redis://127.0.0.1:1/0", "--db", "x.sqlite3"], "--redis needs a PostgreSQL --db"),
        (["--history-max", "500"], "--history-max is retired"),
    ],
    ids=["workers without redis", "workers on sqlite", "redis on sqlite", "history-max"],
)
def test_a_deployment_that_cannot_work_is_refused_with_the_reason(args, says):
    done = subprocess.run([sys.executable, "server.py", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert says in done.stderr


@pytest.mark.gen_test(timeout=120)
async def test_writers_to_one_room_on_two_processes_get_one_gap_free_duplicate_free_order(servers, postgres_dsn):
    a, b = await servers(), await servers()
    writers = [await member(servers.sockets, server, f"w{i}") for i, server in enumerate((a, b, a, b))]
    per_writer = 150
    for k in range(per_writer):  # all at once, no waiting for acknowledgements
        for i, sock in enumerate(writers):
            await sock.send(type="say", room="lobby", text=f"w{i} #{k}", ref=f"{k}")
    total = per_writer * len(writers)
    seen = {i: [] for i in range(len(writers))}  # type: dict[int, list[tuple[int, str]]]
    for i, sock in enumerate(writers):
        while len(seen[i]) < total:
            m = await sock.recv_until("message")
            seen[i].append((m["seq"], m["text"]))
    [history] = (await stored_history(postgres_dsn, ("lobby",))).values()
    assert [seq for seq, _, _ in history] == list(range(1, total + 1))  # no gap, no seq twice
    assert len({text for _, text, _ in history}) == total  # every say once
    for i in seen:  # every member, on either process, saw exactly that order
        assert seen[i] == [(seq, text) for seq, text, _ in history], i


@pytest.mark.gen_test(timeout=120)
async def test_kill_9_of_one_process_under_load_loses_and_repeats_nothing_anywhere(redis_url, postgres_dsn):
    """tests/cluster/test_faults.py's kill -9 under load (2,000 says/s), across two
    processes on one PostgreSQL and one Redis: clients of the killed one
    reconnect to its replacement and resume, while the other process's clients
    chat on throughout."""
    args = cluster_args(redis_url, postgres_dsn)
    a, b = await ServerProcess(*args).start(), await ServerProcess(*args).start()
    servers = [a, b]
    on_a = {"s0", "s1", "r0"}
    members: list[faults.Member] = []
    load = faults.Load()
    try:
        for name in faults.SENDERS + faults.READERS:
            url = (a if name in on_a else b).url
            member = faults.Member(ChatClient(url, name, **faults.CLIENT_OPTIONS))
            await member.client.connect()
            members.append(member)
            for room in faults.ROOMS:
                await member.client.join(room)
            member.reader = asyncio.ensure_future(faults.read_events(member, load.changed))
        senders = members[: len(faults.SENDERS)]

        async def kill_a() -> None:
            await asyncio.wait_for(load.strike.wait(), faults.PHASE_TIMEOUT_S)
            await a.stop(signal.SIGKILL)
            servers.append(await ServerProcess(*args, port=a.port).start())

        crash = asyncio.ensure_future(kill_a())
        await asyncio.wait_for(faults.drive(senders, load), faults.PHASE_TIMEOUT_S)
        await asyncio.wait_for(crash, faults.PHASE_TIMEOUT_S)
        done, _ = await asyncio.wait(load.says.values(), timeout=faults.PHASE_TIMEOUT_S)
        assert len(done) == faults.TOTAL_SAYS, f"{faults.TOTAL_SAYS - len(done)} says never acknowledged"
        last = {room: max(m["seq"] for m in load.acked.values() if m["room"] == room) for room in faults.ROOMS}
        await faults.until(
            lambda: all(m.seen[r] and m.seen[r][-1][0] >= last[r] for m in members for r in faults.ROOMS),
            load.changed,
        )
        for member in members:
            await member.client.close()
            await asyncio.wait_for(member.reader, RECV_TIMEOUT_S)  # type: ignore[arg-type]
            assert member.welcomes == (2 if member.client.name in on_a else 1), member.client.name
    finally:
        for member in members:
            await member.client.close()
        await asyncio.gather(*(m.reader for m in members if m.reader), *load.says.values(), return_exceptions=True)
        for server in servers:
            await server.stop(signal.SIGKILL)

    history = await stored_history(postgres_dsn, faults.ROOMS)
    faults.check_history(history, load, members)  # every client, on either process, included


async def scrape(server: ServerProcess) -> dict[str, float]:
    """One ``GET /metrics``, answered by whichever worker takes it: every sample by name."""
    response = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{server.port}/metrics")
    return {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in response.body.decode().splitlines()
        if line and not line.startswith("#")
    }


async def scrape_every_worker(server: ServerProcess, workers: set[int]) -> dict[int, dict[str, float]]:
    """A /metrics page from each of ``workers`` (the access log says which one answered)."""
    pages: dict[int, dict[str, float]] = {}
    for _ in range(60):  # the kernel picks the worker: a bounded number of tries
        mark = len(server.log)
        page = await scrape(server)
        pages[log_pid(await server.logged("GET /metrics ", mark))] = page
        if set(pages) >= workers:
            break
    assert set(pages) >= workers, sorted(pages)
    return {pid: pages[pid] for pid in workers}


@pytest.mark.gen_test(timeout=90)
async def test_metrics_under_workers_count_the_whole_server(redis_url, postgres_dsn, tmp_path):
    private = tmp_path / "tmp"
    private.mkdir()
    server = await ServerProcess(
        *cluster_args(redis_url, postgres_dsn, "--workers", "2", "--log-level", "debug"), env={"TMPDIR": str(private)}
    ).start()
    sockets: list[Socket] = []
    try:
        [directory] = private.glob("chat-metrics-*")  # the supervisor's, fresh
        assert directory.stat().st_mode & 0o077 == 0  # nobody else reads it
        workers, where = await members_on_both_workers(server, sockets)
        await sockets[0].send(type="say", room="lobby", text="hello all")
        for sock in sockets:
            await sock.recv_until("message")
        assert server.proc is not None
        tree = proctree.tree_usage(server.proc.pid)
        assert tree.processes == 3  # the supervisor and its two workers

        for pid, page in (await scrape_every_worker(server, workers)).items():
            assert page["chat_connections"] == len(sockets), pid  # each worker's own count is smaller
            assert page["chat_rooms"] == 2, pid  # the lobby, once on each worker
            assert page["chat_messages_total"] == 2, pid  # broadcast by each worker to its members
            assert page["chat_history_write_seconds_count"] == 1, pid  # stored once, by the sender's worker
            assert page["chat_deliveries_total"] == len(sockets), pid  # fanned out by both workers
            assert page["chat_processes"] == 3, pid
            # The memory of all three processes, not one worker's.
            assert page["process_resident_memory_bytes"] > tree.rss_bytes * 2 / 3, pid
            assert page["process_cpu_seconds_total"] >= tree.cpu_seconds, pid

        victim = where["user0"]
        gone = sum(pid == victim for pid in where.values())
        mark = len(server.log)
        os.kill(victim, signal.SIGKILL)
        await server.logged(f"(pid {victim}) exited", mark)  # reaped, and marked dead
        replacement = log_pid(await server.logged("chat server on", mark))
        for pid, page in (await scrape_every_worker(server, workers - {victim} | {replacement})).items():
            assert page["chat_connections"] == len(sockets) - gone, pid  # the dead worker's left the gauge
            assert page["chat_rooms"] == 1, pid
            assert page["chat_messages_total"] == 2, pid  # a dead worker's counts stay in the totals
            assert page["chat_processes"] == 3, pid
    finally:
        for sock in sockets:
            sock.close()
        assert await server.stop() == 0
    assert list(private.iterdir()) == []  # removed at exit


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one process", "two workers"])
@pytest.mark.gen_test(timeout=60)
async def test_a_storm_of_connections_waits_in_the_kernel_while_no_process_accepts(redis_url, postgres_dsn, workers):
    server = await ServerProcess(*cluster_args(redis_url, postgres_dsn, *workers)).start()
    assert server.proc is not None
    clients = [socket.socket() for _ in range(1000)]
    # Every process stops, as when all are busy: nothing is accepted.
    os.killpg(server.proc.pid, signal.SIGSTOP)
    try:
        for client in clients:
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", server.port))
        # Each handshake the kernel queues completes at once on loopback; one it
        # drops would only be retried after a second, and dropped again.
        poll = select.poll()  # select() cannot take descriptors past 1023
        pending = {client.fileno(): client for client in clients}
        for fd in pending:
            poll.register(fd, select.POLLOUT)
        deadline = time.monotonic() + 3
        while pending and time.monotonic() < deadline:
            for fd, _ in poll.poll(100):
                poll.unregister(fd)
                del pending[fd]
        assert not pending, f"{len(pending)} of 1000 handshakes were dropped"
        assert all(c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 for c in clients)
    finally:
        os.killpg(server.proc.pid, signal.SIGCONT)
        for client in clients:
            client.close()
        assert await server.stop() == 0
