"""One load-test member: a socket that joins a room, reads, and maybe sends.

Reading is the load generator's hot path: :meth:`Member._on_live` runs for
every frame, straight from the socket's ``data_received``, with one
``json.loads``, the id and times taken from the text with one ``str.split``,
one histogram record and one O(1) ledger update per delivery.

A message's text (:mod:`chat.loadtest.wire`) is ``"<run> <id> <intended_ns> <sent_ns> <padding>"``. The run
tag is random per run, so that another run's messages in the same room (a run
beside this one, or history from an earlier one) are never counted as ours.
The id is the message's global number, ``intended_ns`` the time the schedule meant it to be
sent (latency is measured from it, so a sender that falls behind does not hide
the delay: no coordinated omission), and ``sent_ns`` the time it was written,
which decides who was a member when it was sent. Both are ``time.time_ns()``,
shared by every load process on the machine.

Reactions (``--reactions-per-message``): a reaction takes the room's next seq
like a message, so every member is owed it and the ledger counts it by seq
with the messages: loss, duplicates and order are checked over every event of
the room. See :mod:`chat.loadtest.reactions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import json.scanner
import time
from collections import deque
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from chat.client.cursor import RoomCursor
from chat.client.errors import ChatError
from chat.core.limits import HISTORY_PAGE_MAX
from chat.loadtest import stats
from chat.loadtest.accounting import Ledger, Membership
from chat.loadtest.connection import Connection
from chat.loadtest.counters import Counters
from chat.loadtest.reactions import Reactions
from chat.loadtest.schedule import MemberPlan
from chat.loadtest.wire import (
    CONNECT_ERRORS,
    ClosedByServer,
    ResumeOutcome,
    Target,
    close_label,
    describe,
    message_text,
    parse_text,
)

__all__ = ["ClosedByServer", "Member", "ResumeOutcome", "Target", "message_text", "parse_text"]

# A connect (TCP, handshake, welcome, joined) that takes longer than this has
# failed: far above any healthy figure, short enough not to stall a run.
CONNECT_TIMEOUT_S = 15.0
# A history page the server does not answer within this is given up (its
# messages then count as lost).
FILL_TIMEOUT_S = 15.0
# A whole gap (or a truncated resume) not fetched within this is given up.
FILL_DEADLINE_S = 60.0
# Gaps are fetched in pages of the largest size the server's ``history`` request returns.
HISTORY_PAGE = HISTORY_PAGE_MAX
# A resuming ``joined`` carries up to ~1 MB of history; leave room for long texts.
MAX_FRAME_BYTES = 16 * 1024 * 1024
# Our own close at the end of a run: the server answers at once or not at all.
CLOSE_TIMEOUT_S = 2.0


# The C scanner under json.loads, called directly: json.loads(bytes) first
# sniffs the encoding and matches whitespace twice, which costs more than the
# parse of a small frame. Stateless, so one serves every member.
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # typeshed names the wrong type


class Member:
    """A client socket of the load test. Its :class:`Membership` records what it received."""

    def __init__(
        self,
        plan: MemberPlan,
        target: Target,
        ledger: Ledger,
        counters: Counters,
        message_bytes: int,
        run: str,
        reactions_per_message: float = 0.0,
    ) -> None:
        self.plan = plan
        self.run = run
        self.name = plan.name
        self.room = plan.room
        self.target = target
        self.ledger = ledger
        self.counters = counters
        self.message_bytes = message_bytes
        self.conn: Connection | None = None
        self.session: str | None = None
        self.membership: Membership | None = None
        # Says sent and not yet seen back, oldest first: an error frame without
        # a ref answers the oldest (the server handles one socket's frames in order).
        self.unacked: deque[tuple[str, int]] = deque()
        # Frames that arrive while connecting and joining, read in order by _next_frame.
        self._inbox: asyncio.Queue[bytes | ClosedByServer] = asyncio.Queue()
        self._live: Connection | None = None  # the connection whose frames take the fast path
        self._refs = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[list[dict[str, Any]]]] = {}
        self._fills: deque[tuple[int, int]] = deque()
        self._filler: asyncio.Task[None] | None = None
        self.stalled = False  # --stalled: this member stopped reading on purpose
        # The newest message of this run seen in the room: what a sender reacts to.
        self.newest_message = 0
        self.reactions = Reactions(self.room, reactions_per_message, ledger, counters)

    # -- connecting ---------------------------------------------------------------

    async def start(self) -> bool:
        """Connect, read welcome, join the room; False (and counted) when that fails."""
        counters = self.counters
        counters.attempted += 1
        started = time.perf_counter()
        # Failures are counted by stage: "connect" up to welcome, "join" after it
        # (a join storm tells sockets refused at open from joins refused later).
        stage = "connect"
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                conn = await self._connect()
                connect_ms = (time.perf_counter() - started) * 1000.0
                stage = "join"
                joined = await self._join(conn, since=None)
        except CONNECT_ERRORS as exc:
            counters.failed += 1
            counters.error(f"{stage}: {describe(exc)}")
            if isinstance(exc, ClosedByServer):
                counters.close_codes[str(exc.code)] += 1
            return False
        last_seq = joined.get("last_seq")
        self.membership = self.ledger.join(
            self.name, self.room, time.time_ns(), last_seq if isinstance(last_seq, int) else None
        )
        counters.connected += 1
        counters.open += 1
        counters.connect_ms.append(connect_ms)
        counters.members_by_room[self.room] += 1
        self._go_live(conn)
        return True

    async def _connect(self) -> Connection:
        """Open the socket and read ``welcome``; keeps the session token for a resume."""
        query = {"name": self.name}
        if self.session is not None:
            query["session"] = self.session
        separator = "&" if "?" in self.target.url else "?"
        self._inbox = asyncio.Queue()
        source = self.plan.source_ip
        conn = await Connection.open(
            self.target.url + separator + urlencode(query),
            self._inbox.put_nowait,
            self._on_close,
            max_size=MAX_FRAME_BYTES,
            ssl_context=self.target.ssl_context,
            local_addr=(source, 0) if source is not None else None,
        )
        self.conn = conn
        try:
            welcome = await self._next_frame()
            if welcome.get("type") != "welcome":
                raise ValueError(f"first frame is {welcome.get('type')!r}, not welcome")
        except BaseException:
            conn.abort()
            raise
        session = welcome.get("session")
        if isinstance(session, str):
            self.session = session
        return conn

    async def _join(self, conn: Connection, since: int | None) -> dict[str, Any]:
        """Send ``join`` and read frames up to ``joined`` (presence and the like are skipped)."""
        request: dict[str, Any] = {"type": "join", "room": self.room}
        if since is not None:
            request["since"] = since
        try:
            conn.send_text(json.dumps(request))
            while True:
                frame = await self._next_frame()
                kind = frame.get("type")
                if kind == "joined" and frame.get("room") == self.room:
                    return frame
                if kind == "error":
                    raise ChatError(str(frame.get("code")), str(frame.get("message", "")))
        except BaseException:
            conn.abort()
            raise

    async def _next_frame(self) -> dict[str, Any]:
        item = await self._inbox.get()
        if isinstance(item, ClosedByServer):
            raise item
        frame = json.loads(item)
        if not isinstance(frame, dict):
            raise ValueError("a frame that is not a JSON object")
        return frame

    def _go_live(self, conn: Connection) -> None:
        """From now on frames take the fast path; those queued behind ``joined`` go first."""
        self._live = conn
        conn.on_text = self._on_live
        while not self._inbox.empty():
            item = self._inbox.get_nowait()
            if not isinstance(item, ClosedByServer):
                self._on_live(item)

    def _on_close(self, conn: Connection, code: int, reason: str) -> None:
        if conn is not self._live:  # still connecting: wake _next_frame
            self._inbox.put_nowait(ClosedByServer(code, reason))
            return
        self.counters.open -= 1
        if conn.deliberate:
            return  # our own close at the end, or a storm drop
        self.counters.close_codes[str(code)] += 1
        self.counters.error(close_label(code, reason))
        if self.membership is not None:
            Ledger.leave(self.membership, time.time_ns())

    # -- reading: the hot path ---------------------------------------------------------

    def _on_live(self, data: bytes) -> None:
        now = time.time_ns()
        counters = self.counters
        try:
            frame = _scan(data.decode(), 0)[0]
            if frame["type"] != "message":
                self._control(frame)
                return
            seq = frame["seq"]
            run, mid, intended, sent, _ = frame["text"].split(" ", 4)
            if run != self.run:
                raise ValueError("another run's message")
            intended_ns = int(intended)
            sent_ns = int(sent)
        except (ValueError, KeyError, TypeError, AttributeError, StopIteration):
            # Not JSON, or not this run's message: someone else is in the room.
            counters.foreign += 1
            return
        if not self.stalled:  # a stalled reader's lateness is its own, not the server's
            counters.interval.record((now - intended_ns) // 1000)
        counters.deliveries += 1
        self.membership.deliver(seq, sent_ns)  # type: ignore[union-attr]  # live implies a membership
        self.newest_message = seq
        if self.unacked and frame["name"] == self.name:
            self._acknowledged(mid)

    def _control(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "reaction":
            self._reaction(frame, late=False)
        elif kind == "gap":
            self._gap(frame)
        elif kind == "history":
            waiter = self._waiting.pop(str(frame.get("ref")), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(list(frame.get("messages") or []))
        elif kind == "error":
            self._error(frame)

    def _error(self, frame: dict[str, Any]) -> None:
        code = str(frame.get("code"))
        waiter = self._waiting.pop(str(frame.get("ref")), None) if "ref" in frame else None
        if self.reactions.refused(frame.get("ref"), code):
            return
        if waiter is not None:
            if not waiter.done():
                waiter.set_exception(ChatError(code, str(frame.get("message", ""))))
        elif self.unacked:
            # Our says carry no ref (a ref makes the server keep an idempotency
            # entry: cost a load test should not add); the oldest one was refused.
            _, sent_ns = self.unacked.popleft()
            self.ledger.failed(self.room, sent_ns)
            self.counters.sent_by_room[self.room] -= 1
            self.counters.send_errors += 1
            self.counters.error(f"say: {code}")
        else:
            self.counters.error(f"error: {code}")

    def _acknowledged(self, mid: str) -> None:
        unacked = self.unacked
        while unacked:
            if unacked.popleft()[0] == mid:
                return

    def _reaction(self, frame: dict[str, Any], *, late: bool) -> None:
        """A ``reaction`` event, live or fetched ``late``: a delivery owed like a message's."""
        membership = self.membership
        made_ns = self.reactions.delivered(frame, self.name)
        if made_ns is None or membership is None:
            self.counters.foreign += 1
            return
        self.counters.deliveries += 1
        if late:
            membership.fill(frame["seq"], made_ns)
        else:
            membership.deliver(frame["seq"], made_ns)

    # -- gaps: the server skipped messages for a slow reader; fetch them ---------------

    def pause_reading(self) -> None:
        """Stop reading the socket (a stalled client): the server's writes back up.

        A stalled member's deliveries still count for loss and order, but not
        for latency: the figures stay those of the members that kept reading.
        """
        self.stalled = True
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.resume_reading()

    def _gap(self, frame: dict[str, Any]) -> None:
        first, last = frame.get("from_seq"), frame.get("to_seq")
        if not isinstance(first, int) or not isinstance(last, int) or self.membership is None:
            self.counters.error("bad gap frame")
            return
        self.counters.gaps += 1
        self.membership.gap(first, last)
        self._fills.append((first, last))
        if self._filler is None or self._filler.done():
            self._filler = asyncio.create_task(self._fill_queued())

    async def _fill_queued(self) -> None:
        while self._fills:
            first, last = self._fills.popleft()
            await self.fill(first, last)

    async def fill(self, first: int, last: int) -> bool:
        """Fetch ``first..last`` with ``history``/``after``, page by page; False when it could not."""
        try:
            async with asyncio.timeout(FILL_DEADLINE_S):
                return await self._fill_pages(first, last)
        except TimeoutError:
            self.counters.error("history: fill took too long")
            return False

    async def _fill_pages(self, first: int, last: int) -> bool:
        # The client's cursor walks first..last: each page starts after what it
        # has, and a seq the store never had is skipped rather than asked for again.
        cursor: RoomCursor[dict[str, Any]] = RoomCursor(last=first - 1)
        cursor.expect(last)
        while (after := cursor.fill_after) is not None:
            conn = self.conn
            ref = f"h{next(self._refs)}"
            waiter: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
            request = {"type": "history", "room": self.room, "after": after, "limit": HISTORY_PAGE, "ref": ref}
            if conn is None or not conn.send_text(json.dumps(request)):
                self.counters.error("history: socket closed")
                return False
            self._waiting[ref] = waiter
            try:
                page = await asyncio.wait_for(waiter, FILL_TIMEOUT_S)
            except (TimeoutError, ChatError) as exc:
                self.counters.error(f"history: {describe(exc)}")
                return False
            finally:
                self._waiting.pop(ref, None)
            if not page:
                return False  # the store has nothing more: the rest stays lost
            owed = [(seq, m) for m in page if isinstance(seq := m.get("seq"), int) and seq <= last]
            self._take(cursor.page(after, owed).released, last)
        return True

    def _take(self, messages: Iterable[dict[str, Any]], last: int) -> None:
        """Messages fetched late (history, a resuming joined), up to seq ``last``."""
        membership = self.membership
        assert membership is not None
        now = time.time_ns()
        for m in messages:
            seq = m.get("seq")
            if not isinstance(seq, int) or seq > last:
                continue
            if m.get("type") == "reaction":
                self._reaction(m, late=True)
                continue
            parsed = parse_text(str(m.get("text", "")), self.run)
            if parsed is None:
                self.counters.foreign += 1
                continue
            _, intended_ns, sent_ns = parsed
            if not self.stalled:
                self.counters.interval.record((now - intended_ns) // 1000)
            self.counters.deliveries += 1
            membership.fill(seq, sent_ns)

    # -- sending ---------------------------------------------------------------------

    async def send_on_schedule(self, schedule: Iterable[tuple[int, int]], deadline_ns: int) -> int:
        """Send ``(id, intended_ns)`` messages at their times (late ones at once) until ``deadline_ns``.

        Returns how many were skipped: the schedule left after the deadline, when
        this sender could not keep up. Every loop of a load test ends in time.
        """
        counters, room = self.counters, self.room
        prefix = '{"type":"say","room":"' + room + '","text":"'
        skipped = 0
        for mid, intended_ns in schedule:
            conn = self.conn
            now = time.time_ns()
            if conn is None or now > deadline_ns:
                skipped += 1
                continue
            if intended_ns > now:
                await asyncio.sleep((intended_ns - now) / 1e9)
            else:
                await asyncio.sleep(0)  # behind schedule: catch up, but let the readers run
            sent_ns = time.time_ns()
            # The text is digits, spaces and 'x': safe to put in JSON as is.
            frame = prefix + message_text(self.run, mid, intended_ns, sent_ns, self.message_bytes) + '"}'
            if not conn.send_text(frame):
                counters.error("say: socket closed")
                skipped += 1
                continue
            self.unacked.append((str(mid), sent_ns))
            self.ledger.sent(room, sent_ns)
            lag_us = (sent_ns - intended_ns) // 1000
            counters.send_lag.record_value(min(max(lag_us, stats.LOWEST_US), stats.HIGHEST_US))
            counters.sent += 1
            counters.sent_by_room[room] += 1
            self.reactions.after_say(conn, self.newest_message)
        return skipped

    # -- storm: drop the socket abruptly, then resume ------------------------------------

    async def drop_and_resume(self) -> ResumeOutcome:
        """Abort the TCP connection (no close handshake), reconnect with the session and rejoin with ``since``."""
        conn, membership = self.conn, self.membership
        if conn is None or membership is None or not conn.open_now:
            return ResumeOutcome(False, None)
        dropped_ns = time.time_ns()
        conn.abort()
        await conn.wait_closed()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                conn = await self._connect()
                joined = await self._join(conn, since=membership.last_seq)
        except CONNECT_ERRORS as exc:
            self.counters.error(f"resume: {describe(exc)}")
            Ledger.leave(membership, dropped_ns)
            self.conn = None
            return ResumeOutcome(False, None)
        self.counters.open += 1
        last_seq = joined.get("last_seq")
        top = last_seq if isinstance(last_seq, int) else None
        self._take(joined.get("history") or [], top if top is not None else 1 << 62)
        truncated = bool(joined.get("truncated")) and top is not None
        first = membership.last_seq + 1
        if truncated:
            # joined held only the oldest of what we missed; the rest up to
            # last_seq comes as history pages while live messages flow.
            membership.missing(first, top)  # type: ignore[arg-type]  # top is an int when truncated
        self._go_live(conn)
        if truncated and not await self.fill(first, top):  # type: ignore[arg-type]
            return ResumeOutcome(True, None)
        return ResumeOutcome(True, (time.perf_counter() - started) * 1000.0)

    # -- the end ----------------------------------------------------------------------

    async def close(self) -> None:
        if self._filler is not None and not self._filler.done():
            self._filler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._filler
        if self.conn is not None:
            await self.conn.close(CLOSE_TIMEOUT_S)
