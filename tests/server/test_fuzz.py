"""Hostile input over real sockets (issue 4): the server stays up, the attacker
gets the documented answer or a documented close, and a member of the same
room sees nothing of it.

One server and two members per test: mallory attacks, alice sits in ``lobby``.
After every attack mallory proves with pings that everything the frame caused
has arrived, then alice says a marker, and must get her marker next with
nothing before it but what the attack legitimately caused (a good ``say``,
``typing`` or ``join`` in lobby). Both must match :class:`AttackModel`, the
oracle tests/core/test_fuzz_service.py also uses against the service alone.

Hypothesis drives the sockets from a sync inner function: pytest-tornado's
fixtures are function-scoped, and one server for all the examples of a test is
the point (it must survive them all), so the examples share it deliberately.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
import tornado.iostream
import tornado.websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.server.app import ChatApplication
from chat.server.options import Settings
from tests.core.test_fuzz_service import AttackModel, has_surrogate, name_verdict, pick, service_frames
from tests.core.test_fuzz_service import names as service_names
from tests.support import Closed, FakeClock, Socket

# Tornado aborts the TCP connection on invalid UTF-8 in a text frame, without a
# close frame, so the client sees 1006 (RFC 6455 section 8.1 allows this, and
# docs/protocol.md says so).
INVALID_UTF8_ABORTS = True

MAX_FRAME_BYTES = 65536
MAX_CHARS = 4000
TIMEOUT_S = 5.0
# About 50 ms an example today, most of it Nagle's algorithm meeting delayed
# ACKs (the server does not set TCP_NODELAY); about 5 ms once it does.
SOCKET_FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@pytest.fixture(name="settings")
def fuzz_settings(tmp_path) -> Settings:
    # No rate limit: hundreds of frames a second are the point here (frames
    # over the rate are fuzzed in tests/core/test_fuzz_service.py).
    return Settings(
        db=str(tmp_path / "chat.sqlite3"),
        cookie_secret="test-secret",
        ping_interval=0,
        rate=0,
        max_frame_bytes=MAX_FRAME_BYTES,
        max_message_chars=MAX_CHARS,
    )


# -- attacks ------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    payload: str | bytes
    binary: bool = False

    def closes_with(self) -> set[int | None] | None:
        """The close code the attack must get, as a set of one (None in it: dropped without a close
        frame), or None if it is a text frame to answer."""
        data = self.payload.encode() if isinstance(self.payload, str) else self.payload
        if len(data) > MAX_FRAME_BYTES:
            return {1009}
        if self.binary:
            return {1003}
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return {None} if INVALID_UTF8_ABORTS else {1007}
        return None

    @property
    def text(self) -> str:
        return self.payload if isinstance(self.payload, str) else self.payload.decode("utf-8")


INVALID_UTF8 = (
    b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80",
    b'{"type":"ping","ref":"\xff"}', b'{"type":"say","room":"lobby","text":"\xed\xa0\x80"}',
)  # fmt: skip


def _sized(n: int) -> str:
    """A say of exactly ``n`` bytes: around --max-frame-bytes."""
    head, tail = '{"type":"say","room":"lobby","text":"', '"}'
    return head + "x" * (n - len(head) - len(tail)) + tail


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


attacks = pick(
    service_frames(MAX_CHARS).map(Attack),
    service_frames(MAX_CHARS).map(Attack),
    service_frames(MAX_CHARS).map(Attack),
    st.binary(max_size=64).map(lambda b: Attack(b, binary=True)),
    st.one_of(st.sampled_from(INVALID_UTF8), st.binary(min_size=1, max_size=64).filter(_not_utf8)).map(Attack),
    st.binary(max_size=64).map(Attack),  # random bytes in a text frame, valid UTF-8 or not
    st.one_of(
        st.integers(MAX_FRAME_BYTES - 8, MAX_FRAME_BYTES + 8).map(_sized),
        st.integers(MAX_FRAME_BYTES + 1, 3 * MAX_FRAME_BYTES).map(_sized),
        st.integers(MAX_FRAME_BYTES + 1, 2 * MAX_FRAME_BYTES).map(lambda n: "[" * n),
    ).map(Attack),
)


# -- the arena ------------------------------------------------------------------------


class Arena:
    def __init__(self, app: ChatApplication, url: Callable[..., str]) -> None:
        self.app = app
        self.url = url
        self.model = AttackModel(max_chars=MAX_CHARS, history_on_join=50)
        self.alice: Socket | None = None
        self.mallory: Socket | None = None
        self.tokens: dict[str, str] = {}
        self.n = 0
        self._pending_marker: dict[str, Any] = {}

    async def _open(self, name: str) -> Socket:
        query = {"session": self.tokens[name]} if name in self.tokens else {}
        sock = await Socket.connect(self.url(name, **query))
        welcome = await sock.recv(TIMEOUT_S)
        assert (welcome["type"], welcome["name"]) == ("welcome", name), welcome
        self.tokens[name] = welcome["session"]
        return sock

    def _ref(self, what: str) -> str:
        self.n += 1
        return f"\u2603{what}-{self.n}"  # no fuzzed frame carries this ref

    async def _until(self, sock: Socket, want: dict[str, Any]) -> list[dict[str, Any]]:
        """The frames before ``want`` (which is read too)."""
        before = []
        while (frame := await sock.recv(TIMEOUT_S)) != want:
            before.append(frame)
        return before

    async def _settled(self, sock: Socket) -> list[dict[str, Any]]:
        """Everything the last frame caused for ``sock``: a ping's pong follows the
        direct replies, a second ping (after the store committed) follows a say's
        acknowledgement, which is sent only once the message is stored."""
        ref = self._ref("probe")
        await sock.send(type="ping", ref=ref)
        frames = await self._until(sock, {"type": "pong", "ref": ref})
        await self.app.chat.store.drain()
        ref = self._ref("probe")
        await sock.send(type="ping", ref=ref)
        return frames + await self._until(sock, {"type": "pong", "ref": ref})

    async def _marker(self) -> list[dict[str, Any]]:
        """alice says a marker in lobby: what she got before it."""
        assert self.alice is not None
        ref = self._ref("marker")
        await self.alice.send(type="say", room="lobby", text=ref, ref=ref)
        before: list[dict[str, Any]] = []
        while (frame := await self.alice.recv(TIMEOUT_S)).get("ref") != ref:
            before.append(frame)
        self._pending_marker = frame
        return before

    async def _marker_reached_mallory(self) -> None:
        """mallory, if in lobby, gets the marker next: nothing else came before it."""
        marker = self._pending_marker
        if self.mallory is not None and "lobby" in self.model.rooms:
            public = {k: v for k, v in marker.items() if k != "ref"}
            assert await self.mallory.recv(TIMEOUT_S) == public, "mallory got something before the marker"
        self.model.record(marker)

    async def rebuild(self) -> None:
        """Fresh sockets for both, the model read back from the store (also after a failed example)."""
        for sock in (self.alice, self.mallory):
            if sock is not None:
                sock.close()
        self.alice = self.mallory = None
        await self.app.chat.wait_idle()  # the server has seen both go
        self.model.log, self.model.acks, self.model.rooms = {}, {}, set()
        self.alice = await self._open("alice")
        self.mallory = await self._open("mallory")
        mallory_session = self.app.chat.resolve_session(self.tokens["mallory"])[0]
        for room, last in (await self.app.chat.store.rooms()).items():
            stored = await self.app.chat.store.after(room, 0, last)
            self.model.log[room] = [m.to_public() for m in stored]
            for m in stored:
                if m.session == mallory_session and m.ref is not None:
                    self.model.acks[m.ref] = m.to_wire(with_ref=True)
        await self.alice.send(type="join", room="lobby")
        await self.alice.recv_until("joined", TIMEOUT_S)
        await self.round(json.dumps({"type": "join", "room": "lobby"}))

    async def round(self, text: str) -> None:
        """mallory sends one text frame; check what both got against the model."""
        assert self.mallory is not None
        await self.mallory.send_raw(text)
        mine = await self._settled(self.mallory)
        theirs = await self._marker()
        self.model.expect(text, mine, theirs)
        await self._marker_reached_mallory()

    async def ready(self) -> None:
        """mallory connected and in lobby, in not too many rooms."""
        if self.mallory is None:
            self.mallory = await self._open("mallory")
            self.model.rooms = set()
        for room in sorted(self.model.rooms - {"lobby"}) if len(self.model.rooms) > 90 else []:
            await self.round(json.dumps({"type": "leave", "room": room}))
        if "lobby" not in self.model.rooms:
            await self.round(json.dumps({"type": "join", "room": "lobby"}))

    async def attack(self, attack: Attack) -> None:
        try:
            await self.ready()
            codes = attack.closes_with()
            if codes is None:
                await self.round(attack.text)
            else:
                await self._closing(attack, codes)
        except BaseException:
            await self.rebuild()  # so that the next example (or the shrinker) starts clean
            raise

    async def _closing(self, attack: Attack, codes: set[int | None]) -> None:
        assert self.mallory is not None
        assert self.alice is not None
        # The server may close before it has read the whole frame.
        with contextlib.suppress(tornado.websocket.WebSocketClosedError, tornado.iostream.StreamClosedError):
            await self.mallory.conn.write_message(attack.payload, binary=attack.binary)
        frames = []
        try:
            while True:
                frames.append(await self.mallory.recv(TIMEOUT_S))
        except Closed as closed:
            code = closed.code
        self.mallory.close()
        self.mallory = None
        assert frames == [], f"frames before the close: {frames}"
        assert code in codes, f"closed with {code}, wants one of {codes}"
        # The server dropped mallory: alice sees her leave, then nothing else.
        leave = {"type": "presence", "room": "lobby", "event": "leave", "name": "mallory"}
        assert await self.alice.recv(TIMEOUT_S) == leave
        self.model.rooms = set()
        assert await self._marker() == []
        await self._marker_reached_mallory()

    async def close(self) -> None:
        for sock in (self.alice, self.mallory):
            if sock is not None:
                sock.close()


def test_hostile_frames_get_the_documented_answer_and_nobody_else_sees_them(io_loop, app, http_server, ws_url):
    arena = Arena(app, ws_url)
    io_loop.run_sync(arena.rebuild)
    try:

        @SOCKET_FUZZ
        @given(attacks)
        def attack_once(attack: Attack) -> None:
            io_loop.run_sync(lambda: arena.attack(attack), timeout=60)

        attack_once()
        # Still up, and still chatting: the last marker went round.
        assert app.chat.health()["status"] == "ok"
        assert len(arena.model.log["lobby"]) >= 2
    finally:
        io_loop.run_sync(arena.close)


# -- names at the handshake -----------------------------------------------------------


names = service_names().filter(lambda n: not has_surrogate(n))  # a URL carries UTF-8 only


async def _admit(app: ChatApplication, clock: FakeClock, url: str, raw: str) -> None:
    sock = await Socket.connect(url)
    try:
        first: dict[str, Any] | None = await sock.recv(TIMEOUT_S)
        closed = None
    except Closed as exc:
        first, closed = None, (exc.code, exc.reason)
    sock.close()
    await app.chat.wait_idle()
    clock.advance(61)  # the name's reservation for its session lapses
    verdict = name_verdict(raw)  # the server sees the name exactly as sent, control characters included
    if first is not None:
        assert verdict != "bad_name", f"{raw!r} was admitted as {first}"
        assert (first["type"], first["name"]) == ("welcome", verdict), first
    else:
        assert closed == (1008, "bad_name"), closed
        assert verdict == "bad_name", f"{raw!r} was refused, but is a fine name"


def test_a_name_is_admitted_or_refused_with_bad_name(io_loop, app, http_server, http_port, clock):
    @settings(SOCKET_FUZZ, max_examples=60)
    @given(names)
    def admit(raw: str) -> None:
        url = f"ws://127.0.0.1:{http_port}/ws?{urlencode({'name': raw})}"
        io_loop.run_sync(lambda: _admit(app, clock, url, raw), timeout=30)

    admit()


# -- known bugs ----------------------------------------------------------------------


async def _pair(connect: Callable[..., Any]) -> tuple[Socket, Socket]:
    alice, mallory = await connect("alice"), await connect("mallory")
    for sock in (alice, mallory):
        await sock.send(type="join", room="lobby")
        await sock.recv_until("joined")
    await alice.recv_until("presence")
    return alice, mallory


@pytest.mark.gen_test
async def test_invalid_utf8_in_a_text_frame_drops_only_that_connection(connect):
    # Tornado aborts the connection without a close frame (RFC 6455 section
    # 8.1 allows it; docs/protocol.md says so): the client sees no close code.
    alice, mallory = await _pair(connect)
    await mallory.conn.write_message(b'{"type":"ping","ref":"\xff"}', binary=False)
    code, _ = await mallory.closed()
    assert code is None
    await alice.send(type="ping", ref="still")
    assert (await alice.recv_until("pong"))["ref"] == "still"


@pytest.mark.gen_test
async def test_a_lone_surrogate_ref_does_not_drop_the_connection(connect):
    _alice, mallory = await _pair(connect)
    await mallory.send_raw('{"type":"ping","ref":"\\ud800"}')
    await mallory.send(type="ping", ref="after")
    assert (await mallory.recv_until("pong"))["ref"] == "after"


@pytest.mark.gen_test
async def test_a_say_with_a_lone_surrogate_ref_does_not_stop_everyone_else_talking(connect):
    alice, mallory = await _pair(connect)
    await mallory.send_raw('{"type":"say","room":"lobby","text":"x","ref":"\\ud800"}')
    await mallory.send(type="ping", ref="p")
    await mallory.recv_until("pong")
    await alice.send(type="say", room="lobby", text="still here?", ref="a1")
    while (frame := await alice.recv())["type"] in ("message", "presence") and frame.get("ref") != "a1":
        pass
    assert frame["type"] == "message", frame


@pytest.mark.gen_test
async def test_a_seq_past_64_bits_does_not_drop_the_connection(connect):
    _alice, mallory = await _pair(connect)
    await mallory.send(type="join", room="other", since=2**63, ref="j")
    reply = await mallory.recv()
    assert (reply["type"], reply["code"], reply["ref"]) == ("error", "bad_request", "j")


@pytest.mark.gen_test
@pytest.mark.parametrize(("query", "want"), [("name=%FF", "bad_name"), ("name=bob&session=%FF", "welcome")])
async def test_a_query_argument_that_is_not_utf8_is_answered(connect, ws_url, query, want):
    sock = await connect(url=ws_url(None) + query, welcome=False)
    if want == "welcome":
        assert (await sock.recv())["type"] == "welcome"
    else:
        assert await sock.closed() == (1008, want)
