"""Faults that must lose nothing: the server killed (-9) or stopped (SIGTERM)
under load and restarted on the same database, a crash that swallows an
acknowledgement, and a history store that cannot write (disk full, database
locked by another writer).

The load tests run ``server.py`` as a child process and drive it with
:class:`chat.client.ChatClient` at about 2,000 messages a second, then compare
what every client yielded and every acknowledgement with the SQLite file itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from chat.backends.sqlite import SQLiteHistory
from chat.client import ChatClient
from chat.server.app import ChatApplication
from tests.support import RECV_TIMEOUT_S, ServerProcess

# -- load: kill -9 and SIGTERM in the middle of it ---------------------------------------

ROOMS = ("north", "south")
SENDERS = ("s0", "s1", "s2", "s3")
READERS = ("r0", "r1")
# The schedule: 20 says every 10 ms, 2,000 a second in all, for 2 s.
TICK_S = 0.01
SAYS_PER_TICK = 20
TICKS = 200
TOTAL_SAYS = SAYS_PER_TICK * TICKS
# The fault strikes once this many says are acknowledged (about 0.6 s into the
# load here), or half of them are issued on a machine too busy to keep up: inside
# the load either way, with thousands of says still to come.
FAULT_AFTER_ACKS = 1200
FAULT_AFTER_ISSUED = TOTAL_SAYS // 2
# Bounds every phase; nothing waits this long unless the test is failing.
PHASE_TIMEOUT_S = 30.0
# No client pacing (the server runs with --rate 0), fast reconnects (a restart
# takes well under a second), no pings, and no event dropped for a slow reader.
CLIENT_OPTIONS: dict[str, Any] = {
    "rate": 0,
    "backoff_base": 0.05,
    "backoff_cap": 0.5,
    "ping_interval": 0,
    "max_queue": None,
}

Row = tuple[int, str, str]  # seq, text, name


def read_history(db: str) -> dict[str, list[Row]]:
    """The rooms' messages as the database file holds them, in seq order."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT room, seq, text, name FROM messages ORDER BY room, seq").fetchall()
    history: dict[str, list[Row]] = defaultdict(list)
    for room, seq, text, name in rows:
        history[room].append((seq, text, name))
    return history


@dataclass(eq=False)
class Member:
    """A ChatClient and everything its iterator yielded."""

    client: ChatClient
    seen: dict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))
    welcomes: int = 0
    reader: asyncio.Task[None] | None = None


@dataclass(eq=False)
class Load:
    """Every say issued, and what the server acknowledged."""

    changed: asyncio.Event = field(default_factory=asyncio.Event)
    strike: asyncio.Event = field(default_factory=asyncio.Event)  # time for the fault
    says: dict[str, asyncio.Task[dict[str, Any]]] = field(default_factory=dict)  # text -> say()
    acked: dict[str, dict[str, Any]] = field(default_factory=dict)  # text -> the acknowledged message

    def issue(self, client: ChatClient, room: str, text: str) -> None:
        task = asyncio.ensure_future(client.say(room, text))
        self.says[text] = task

        def done(task: asyncio.Task[dict[str, Any]]) -> None:
            if not task.cancelled() and task.exception() is None:
                self.acked[text] = task.result()
                self.changed.set()

        task.add_done_callback(done)


async def until(condition: Callable[[], bool], changed: asyncio.Event, timeout: float = PHASE_TIMEOUT_S) -> None:
    """Return once ``condition()`` holds, re-checking it whenever ``changed`` is set."""

    async def watch() -> None:
        while not condition():
            changed.clear()
            await changed.wait()

    await asyncio.wait_for(watch(), timeout)


async def read_events(member: Member, changed: asyncio.Event) -> None:
    async for event in member.client:
        if event["type"] == "message":
            member.seen[event["room"]].append((event["seq"], event["text"], event["name"]))
            changed.set()
        elif event["type"] == "welcome":
            member.welcomes += 1


async def drive(senders: list[Member], load: Load) -> None:
    """Issue every say on a fixed schedule, without waiting for acknowledgements."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for tick in range(TICKS):
        # A rate, not a wait: at least one pass through the loop per tick, so
        # the clients read while we send even if the machine falls behind.
        await asyncio.sleep(max(0.0, start + tick * TICK_S - loop.time()))
        for k in range(SAYS_PER_TICK):
            i = tick * SAYS_PER_TICK + k
            sender = senders[i % len(senders)]
            room = ROOMS[(i // len(senders)) % len(ROOMS)]
            load.issue(sender.client, room, f"{sender.client.name} #{i} in {room}")
        # Right after a tick's says are issued, so some are surely in flight.
        if len(load.acked) >= FAULT_AFTER_ACKS or len(load.says) >= FAULT_AFTER_ISSUED:
            load.strike.set()


@dataclass
class AtFault:
    """What the clients knew when the server went down, and what the file held."""

    acked: dict[str, dict[str, Any]]  # acknowledged before the server exited
    pending: int  # says issued but not acknowledged when the signal was sent
    received: set[tuple[str, int, str]]  # room, seq, text: what any member had received
    durable: dict[str, list[Row]]  # the file once the server was gone
    issued: int  # says issued when the signal was sent

    def check(self) -> None:
        """The fault struck under load, and lost nothing anyone had been told."""
        # Says were acknowledged, others in flight, and more were still to come.
        assert self.acked
        assert self.received
        assert self.pending > 0
        assert self.issued < TOTAL_SAYS
        # What a sender was told is stored, and what any member received, is
        # in the file under the same seq.
        durable = {(room, seq, text) for room, rows in self.durable.items() for seq, text, _ in rows}
        lost = sorted(
            (m["room"], m["seq"], text) for text, m in self.acked.items() if (m["room"], m["seq"], text) not in durable
        )
        assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {lost[:3]}"
        unstored = sorted(self.received - durable)
        assert not unstored, f"{len(unstored)} received messages lost, e.g. {unstored[:3]}"


async def chat_through_a_restart(tmp_path, sig: signal.Signals) -> int:
    """Chat under load, stop the server with ``sig`` in the middle, restart it
    on the same database and port, and let the clients resume by themselves.

    Checks that nothing acknowledged or received was lost at the fault, that
    every say is stored exactly once under the seq its acknowledgement gave,
    that seq runs 1..N in each room, and that every client yielded exactly each
    room's history. Returns the exit code of the server that was stopped.
    """
    db = str(tmp_path / "chat.sqlite3")
    # --cookie-secret: the session tokens (and so the idempotent retries) stay valid across the restart.
    args = ("--db", db, "--cookie-secret", "s", "--rate", "0", "--ping-interval", "0")
    first = await ServerProcess(*args).start()
    servers = [first]
    members: list[Member] = []
    load = Load()
    crash: asyncio.Future[tuple[AtFault, int]] | None = None
    try:
        for name in SENDERS + READERS:
            member = Member(ChatClient(first.url, name, **CLIENT_OPTIONS))
            await member.client.connect()
            members.append(member)
            for room in ROOMS:
                joined = await member.client.join(room)
                assert joined["last_seq"] == 0
            member.reader = asyncio.ensure_future(read_events(member, load.changed))
        senders = members[: len(SENDERS)]

        async def fault() -> tuple[AtFault, int]:
            await asyncio.wait_for(load.strike.wait(), PHASE_TIMEOUT_S)
            issued, pending = len(load.says), len(load.says) - len(load.acked)
            code = await first.stop(sig)
            # The process is gone: whatever reached the clients came from it.
            at_fault = AtFault(
                acked=dict(load.acked),
                pending=pending,
                received={(room, seq, text) for m in members for room, rows in m.seen.items() for seq, text, _ in rows},
                durable=read_history(db),
                issued=issued,
            )
            at_fault.check()
            servers.append(await ServerProcess(*args, port=first.port).start())
            return at_fault, code

        crash = asyncio.ensure_future(fault())
        await asyncio.wait_for(drive(senders, load), PHASE_TIMEOUT_S)
        at_fault, exit_code = await asyncio.wait_for(crash, PHASE_TIMEOUT_S)
        # Every say is acknowledged in the end, those pending at the fault included:
        # the clients resent them with their refs.
        done, _ = await asyncio.wait(load.says.values(), timeout=PHASE_TIMEOUT_S)
        assert len(done) == TOTAL_SAYS, f"{TOTAL_SAYS - len(done)} says never acknowledged"
        for task in done:
            task.result()
        last = {room: max(m["seq"] for m in load.acked.values() if m["room"] == room) for room in ROOMS}
        # Every client catches up to the last acknowledged message of each room by itself.
        await until(
            lambda: all(m.seen[r] and m.seen[r][-1][0] >= last[r] for m in members for r in ROOMS), load.changed
        )
        for member in members:
            await member.client.close()
            assert member.reader is not None
            await asyncio.wait_for(member.reader, RECV_TIMEOUT_S)
            assert member.welcomes == 2, f"{member.client.name} connected {member.welcomes} times"
        assert await servers[-1].stop(signal.SIGTERM) == 0
    finally:
        if crash is not None and not crash.done():
            crash.cancel()
        for member in members:
            await member.client.close()
        readers = [m.reader for m in members if m.reader is not None]
        await asyncio.gather(*readers, *load.says.values(), return_exceptions=True)
        for server in servers:
            if server.proc is not None and server.proc.returncode is None:
                await server.stop(signal.SIGKILL)

    history = read_history(db)
    # The restarted server went on from the history at the fault: none of its seqs given to another message.
    for room, rows in at_fault.durable.items():
        assert history[room][: len(rows)] == rows, room
    check_history(history, load, members)
    # No crash, no error logged: says that raced a SIGTERM were refused quietly,
    # and their senders resent them after reconnecting, as checked above.
    for server in servers:
        errors = [line for line in server.log if "Traceback" in line or " ERROR " in line]
        assert not errors, errors
    return exit_code


def check_history(history: dict[str, list[Row]], load: Load, members: list[Member]) -> None:
    """After a load: what the store holds is exactly what was said and what every client saw."""
    # seq counts from 1 by exactly 1 in every room: no gap, no reuse.
    for room in ROOMS:
        assert [seq for seq, _, _ in history[room]] == list(range(1, len(history[room]) + 1)), room
    # Every say is stored exactly once, under the seq its acknowledgement gave.
    stored = [(room, text) for room in ROOMS for _, text, _ in history[room]]
    assert len(stored) == len(set(stored)) == TOTAL_SAYS
    by_text = {text: (room, seq) for room in ROOMS for seq, text, _ in history[room]}
    for text, message in load.acked.items():
        assert by_text[text] == (message["room"], message["seq"]), text
    # Every client yielded each room's history exactly, once, in order.
    for member in members:
        for room in ROOMS:
            assert member.seen[room] == history[room], f"{member.client.name} in {room}"


def connections_lost(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "chat.client" and r.getMessage().startswith("connection lost")
    ]


@pytest.mark.gen_test(timeout=90)
async def test_kill_9_under_load_loses_nothing_and_clients_resume_by_themselves(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="chat.client")
    assert await chat_through_a_restart(tmp_path, signal.SIGKILL) == -signal.SIGKILL
    # A crash: the sockets dropped without a close frame.
    lost = connections_lost(caplog)
    assert len(lost) == len(SENDERS + READERS), lost
    assert not [line for line in lost if "1001" in line], lost


@pytest.mark.gen_test(timeout=90)
async def test_sigterm_under_load_exits_0_loses_nothing_and_clients_reconnect(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="chat.client")
    assert await chat_through_a_restart(tmp_path, signal.SIGTERM) == 0
    # Graceful: every client was told "going away" (1001) and came back by itself.
    lost = connections_lost(caplog)
    assert lost == ["connection lost (1001 server shutting down); reconnecting"] * len(SENDERS + READERS), lost


class Relay:
    """A TCP relay in front of the server that can swallow what the server
    sends, like a network that loses the packets of a crashing host."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.swallow = False
        self.swallowed = asyncio.Event()  # set once bytes from the server were swallowed
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._links: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()  # the server is down: the client sees a refused handshake and retries
            return
        self._writers.append(up_writer)
        self._links.append(asyncio.ensure_future(self._pipe(reader, up_writer, from_server=False)))
        await self._pipe(up_reader, writer, from_server=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, from_server: bool) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if from_server and self.swallow:
                    self.swallowed.set()
                    continue
                writer.write(data)
                await writer.drain()
        writer.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._links, return_exceptions=True)
        for writer in self._writers:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await self._server.wait_closed()


@pytest.mark.gen_test(timeout=60)
async def test_a_say_stored_but_not_acknowledged_before_kill_9_is_stored_once(tmp_path):
    # The load tests hit this case only by chance: the server crashes after
    # committing a say, before its acknowledgement reaches the sender.
    db = str(tmp_path / "chat.sqlite3")
    args = ("--db", db, "--cookie-secret", "s", "--ping-interval", "0")
    first = await ServerProcess(*args).start()
    servers = [first]
    relay = await Relay(first.port).start()
    try:
        async with ChatClient(relay.url, "alice", **CLIENT_OPTIONS) as alice:
            await alice.join("lobby")
            assert (await alice.say("lobby", "before"))["seq"] == 1
            relay.swallow = True
            saying = asyncio.ensure_future(alice.say("lobby", "ack lost"))
            # The server acknowledged it (alice is alone: nothing else is sent to her),
            # so it is committed; the acknowledgement never arrives.
            await asyncio.wait_for(relay.swallowed.wait(), RECV_TIMEOUT_S)
            assert read_history(db)["lobby"] == [(1, "before", "alice"), (2, "ack lost", "alice")]
            assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
            relay.swallow = False
            servers.append(await ServerProcess(*args, port=first.port).start())
            # The client resends the say with its ref; the restarted server answers with the original.
            message = await asyncio.wait_for(saying, PHASE_TIMEOUT_S)
            assert (message["seq"], message["text"]) == (2, "ack lost")
            assert (await alice.say("lobby", "after"))["seq"] == 3
        assert await servers[-1].stop(signal.SIGTERM) == 0
    finally:
        await relay.close()
        for server in servers:
            if server.proc is not None and server.proc.returncode is None:
                await server.stop(signal.SIGKILL)
    assert [text for _, text, _ in read_history(db)["lobby"]] == ["before", "ack lost", "after"]


# -- a history store that cannot write ---------------------------------------------------

# Longer than what fits in a b-tree cell (about 1 KB with 4 KiB pages): the row
# needs new overflow pages, so it cannot squeeze into free space of a "full" file.
BIG = 3000


class DiskFull:
    """The database file cannot grow, as on a full disk: SQLITE_FULL."""

    cause = "database or disk is full"

    def __init__(self, store: SQLiteHistory) -> None:
        self.db = store._db
        self.normal = self.db.execute("PRAGMA max_page_count").fetchone()[0]

    def fail(self) -> None:
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        self.db.execute(f"PRAGMA max_page_count = {pages}")

    def recover(self) -> None:
        self.db.execute(f"PRAGMA max_page_count = {self.normal}")


class Locked:
    """Another process holds the database's write lock: SQLITE_BUSY."""

    cause = "database is locked"

    def __init__(self, store: SQLiteHistory) -> None:
        # Without a busy timeout the store fails at once instead of blocking the loop 5 s.
        store._db.execute("PRAGMA busy_timeout = 0")
        self.path = store._path
        self.other: sqlite3.Connection | None = None

    def fail(self) -> None:
        self.other = sqlite3.connect(self.path, isolation_level=None)
        self.other.execute("BEGIN IMMEDIATE")

    def recover(self) -> None:
        assert self.other is not None
        self.other.execute("ROLLBACK")
        self.other.close()
        self.other = None


FAULTS = pytest.mark.parametrize("fault_kind", [DiskFull, Locked], ids=["disk-full", "locked"])


def store_fault(app: ChatApplication, fault_kind: type[DiskFull | Locked]) -> DiskFull | Locked:
    return fault_kind(cast(SQLiteHistory, app.chat.store))


async def stored(app: ChatApplication, room: str = "lobby") -> list[tuple[int, str]]:
    return [(m.seq, m.text) for m in await app.chat.store.after(room, 0, 1000)]


@FAULTS
@pytest.mark.gen_test
async def test_say_gets_unavailable_when_the_store_cannot_write_and_works_again_after(app, connect, caplog, fault_kind):
    fault = store_fault(app, fault_kind)
    bob = await connect("bob")
    await bob.send(type="join", room="lobby")
    await bob.recv_until("joined")
    alice = await connect("alice")
    await alice.send(type="join", room="lobby")
    await alice.recv_until("joined")
    await alice.send(type="say", room="lobby", text="before", ref="a1")
    assert (await alice.recv())["seq"] == 1
    assert (await bob.recv_until("message"))["text"] == "before"

    fault.fail()
    failing = [f"f{i}" for i in range(3)]
    for ref in failing:  # a burst: a failing batch may hold several of them
        await alice.send(type="say", room="lobby", text=ref + "x" * BIG, ref=ref)
    # Each say is answered unavailable, with its ref, and nothing else reaches
    # alice meanwhile: no acknowledgement, no broadcast of her own message.
    errors = [await alice.recv() for _ in failing]
    assert [(e["type"], e["code"], e["ref"]) for e in errors] == [("error", "unavailable", ref) for ref in failing]
    assert await app.chat.store.last_seq("lobby") == 1
    assert any(
        r.name == "chat.core.service" and r.levelno == logging.ERROR and fault.cause in r.getMessage()
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]

    fault.recover()
    await alice.send(type="say", room="lobby", text="after" + "x" * BIG, ref="a2")
    ack = await alice.recv()
    assert (ack["type"], ack["seq"], ack["ref"]) == ("message", 2, "a2")
    # Bob's next message is that one: nothing of the failed says was broadcast,
    # and their seqs were handed out again (no gap).
    got = await bob.recv_until("message")
    assert (got["seq"], got["text"]) == (2, "after" + "x" * BIG)
    assert await stored(app) == [(1, "before"), (2, "after" + "x" * BIG)]


async def next_message(client: ChatClient) -> dict[str, Any]:
    while True:
        event = await asyncio.wait_for(anext(client), RECV_TIMEOUT_S)
        if event["type"] == "message":
            return event


class WatchedClient(ChatClient):
    """A client that reports each error answer to its requests as it arrives."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.errors: list[dict[str, Any]] = []
        self.refused = asyncio.Event()

    def _on_request_error(self, req, frame):  # type: ignore[no-untyped-def]
        self.errors.append(frame)
        self.refused.set()
        super()._on_request_error(req, frame)


@FAULTS
@pytest.mark.gen_test
async def test_a_client_retries_unavailable_and_stores_once_when_the_store_recovers(
    app, http_server, http_port, fault_kind
):
    fault = store_fault(app, fault_kind)
    url = f"ws://127.0.0.1:{http_port}/ws"
    async with WatchedClient(url, "alice") as alice, ChatClient(url, "bob") as bob:
        await alice.join("lobby")
        await bob.join("lobby")
        assert (await alice.say("lobby", "before"))["seq"] == 1

        fault.fail()
        saying = asyncio.ensure_future(alice.say("lobby", "x" * BIG))
        await asyncio.wait_for(alice.refused.wait(), RECV_TIMEOUT_S)
        assert [e["code"] for e in alice.errors] == ["unavailable"]
        assert not saying.done()  # retried later, not raised
        fault.recover()  # before the retry, which waits at least 0.25 s

        message = await asyncio.wait_for(saying, RECV_TIMEOUT_S)
        assert (message["seq"], message["text"]) == (2, "x" * BIG)
        assert len(alice.errors) == 1
        assert await stored(app) == [(1, "before"), (2, "x" * BIG)]
        # Bob got each message once, in order, with no gap.
        await bob.say("lobby", "third")
        got = [await next_message(bob) for _ in range(3)]
        assert [(m["seq"], m["text"]) for m in got] == [(1, "before"), (2, "x" * BIG), (3, "third")]
