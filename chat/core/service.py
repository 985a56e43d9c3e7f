"""The chat service: applies the chat rules to connections, the store and rooms.

It never imports tornado. An adapter gives it a :class:`chat.core.outbox.Transport`
per socket and calls :meth:`ChatService.open`, :meth:`ChatService.handle_text`
and :meth:`ChatService.disconnect`. The service answers through each peer's
:class:`chat.core.outbox.Outbox`, which queues and returns at once, so one slow
member can never hold back a room.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Any

from chat.backends.base import Broker, Directory, Duplicate, HistoryStore, StoreUnavailable
from chat.core import outbound as out
from chat.core import present
from chat.core import protocol as p
from chat.core.access import RoomAccess
from chat.core.catchup import RESUME_MAX, RESUME_MAX_CHARS, read_room
from chat.core.changes import Changes
from chat.core.control import Controls
from chat.core.digest import Change, PresenceDigest, Timer
from chat.core.errors import CloseReason, Refused
from chat.core.fanout import fan_out, room_frames
from chat.core.frames import CONTROL, EPHEMERAL, OutFrame
from chat.core.idempotency import WINDOW_S
from chat.core.identity import RELOAD_S, Identities
from chat.core.limits import Limits
from chat.core.meters import NullMeters, ServiceMeters
from chat.core.model import Account, EventKind, Message, RoomSummary, SearchHit
from chat.core.outage import StoreOutage
from chat.core.outbox import Flusher, Outbox, Transport
from chat.core.peer import Peer
from chat.core.policy import Action, Actor, Decision
from chat.core.protocol import CloseCode, ErrorCode, encode
from chat.core.ratelimit import FrameLimiter, Verdict
from chat.core.rooms import RoomRegistry
from chat.core.says import SayLedger
from chat.core.sessions import SessionSigner

# Limits, Peer, Refused, fan_out and RESUME_MAX* are re-exported: tests and adapters import them from here.
__all__ = ["RESUME_MAX", "RESUME_MAX_CHARS", "STALL_CHECK_S", "ChatService", "Limits", "Peer", "Refused", "fan_out"]

log = logging.getLogger(__name__)

# How often to look for members that stopped reading (see outbox.STALL_S).
STALL_CHECK_S = 5.0


class ChatService:
    def __init__(
        self,
        store: HistoryStore,
        signer: SessionSigner,
        limits: Limits | None = None,
        *,
        broker: Broker,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        metrics: ServiceMeters | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        directory: Directory | None = None,
        guests: bool = True,
    ) -> None:
        """``store`` and ``broker`` come as a pair from
        :func:`chat.backends.factory.open_backends`: the broker must deliver
        the store's commits. ``clock`` and ``sleep`` go together: a frame over
        the rate waits ``sleep(s)`` for ``clock`` to move on by ``s``. Tests
        pass a fake pair. ``directory``: the accounts and rooms, by default the
        store's own (:meth:`HistoryStore.directory`). ``guests``: whether sockets
        without an account may chat (``--guests``)."""
        self.store = store
        self.broker: Broker = broker
        self.signer = signer
        self.limits = limits if limits is not None else Limits()
        self.clock = clock
        self.wall = wall
        self.sleep = sleep
        self.identities = Identities(signer, broker, clock)
        self.names = self.identities.names
        self.rooms: RoomRegistry[Peer] = RoomRegistry()
        self.peers: set[Peer] = set()
        self._says: SayLedger[Peer] = SayLedger()
        broker.listen(self._committed, self._event, self._logged_out)
        self.directory: Directory = directory if directory is not None else store.directory()
        self.guests = guests
        self.access = RoomAccess(self.directory, broker, wall)
        self.controls = Controls(
            self.peers, self.rooms, self._leave, self.disconnect, self.identities.account_names.add
        )
        self.changes = Changes(self, wall)
        broker.listen_control(self.controls.apply)
        self._idle = asyncio.Event()
        self._idle.set()
        self.flusher = Flusher()
        self.metrics: ServiceMeters = metrics if metrics is not None else NullMeters()
        self._watch: asyncio.Task[None] | None = None
        self._closing = False
        self._outage = StoreOutage(clock)
        self.presence = PresenceDigest(clock, self._at, self._send_presence)

    async def start(self) -> None:
        """Connect the broker; rebuild the idempotency window from history, so retries after a restart stay safe."""
        await self.broker.start()
        self._says.restore(await self.store.recent_refs(int((self.wall() - WINDOW_S) * 1000)))
        await self._reload_account_names()
        self._watch = asyncio.ensure_future(self._watch_stalls())

    async def _watch_stalls(self) -> None:
        # A timer, not a wait for an event: a stalled peer sends no event.
        ticks = 0
        while True:
            await asyncio.sleep(STALL_CHECK_S)
            self.close_stalled()
            self.identities.sweep()
            ticks += 1
            if ticks * STALL_CHECK_S >= RELOAD_S:
                ticks = 0
                await self._reload_account_names()

    async def _reload_account_names(self) -> None:
        """Read the account names again; a name this process had not heard of closes the guests using it."""
        try:
            new = await self.identities.account_names.load(self.directory)
        except StoreUnavailable:
            return  # until it loads, a guest's connect asks the directory
        for name in new:
            self.controls.apply({"t": "name", "name": name})

    def close_stalled(self) -> None:
        """Close members whose socket has not drained for outbox.STALL_S (1013: try again later)."""
        now = self.clock()
        for peer in [peer for peer in self.peers if peer.outbox.stalled(now)]:
            log.info("closing %s: not reading for %.0f s", peer.name, peer.outbox.stalled_for(now))
            self.metrics.slow_closes.inc()
            peer.conn.close(CloseCode.TRY_AGAIN_LATER, CloseReason.SLOW_CONSUMER)
            self.disconnect(peer)

    # -- identity -------------------------------------------------------

    def resolve_session(self, token: str | None) -> tuple[str, str]:
        """``(session_id, token)`` for a presented token, or a new session if it is absent or forged."""
        return self.identities.resolve_session(token)

    async def login(self, raw_name: str, token: str | None) -> tuple[str, str, str]:
        """Reserve a name for a browser login: ``(name, session_id, token)``. Raises :class:`Refused`."""
        if not self.guests:
            raise Refused(ErrorCode.UNAUTHORIZED, "guests are not allowed here: sign in or sign up")
        return await self.identities.login(raw_name, token, self.directory)

    def logout(self, name: str, session_id: str) -> None:
        """End the session everywhere: close its sockets, in every process, and free the name at once."""
        self._logged_out(session_id)
        self.identities.logout(name, session_id)

    def _logged_out(self, session_id: str) -> None:
        for peer in [peer for peer in self.peers if peer.session == session_id]:
            peer.conn.close(CloseCode.NORMAL, CloseReason.LOGGED_OUT)
            self.disconnect(peer)

    # -- connection lifecycle ----------------------------------------------

    async def open(
        self,
        conn: Transport,
        raw_name: str | None,
        token: str | None,
        *,
        account: Account | None = None,
        session_key: str = "",
    ) -> Peer | None:
        """Admit a new socket: an ``account`` the adapter authenticated (its
        ``session_key`` names the page session or token, see docs/security.md),
        or a guest picking ``raw_name``. Closes it with 1008
        ``bad_name``/``name_taken``/``unauthorized`` (1013 when the broker or
        the store cannot tell whether the name is free)."""
        if account is not None:
            try:
                rooms = await self.directory.account_rooms(account.id)
                states = await self.store.read_state(account.id, account.name, [r.info.room for r in rooms])
                rooms = [replace(r, state=states.get(r.info.room)) for r in rooms]
            except StoreUnavailable:
                conn.close(CloseCode.TRY_AGAIN_LATER, ErrorCode.UNAVAILABLE)
                return None
            peer = self._admitted(conn, account.name, session_key)
            peer.account, peer.admin = account.id, account.admin
            peer.send(out.Welcome(account.name, "", account=True, admin=account.admin, rooms=tuple(rooms)))
            return peer
        if not self.guests:
            conn.close(CloseCode.POLICY_VIOLATION, ErrorCode.UNAUTHORIZED)
            return None
        try:
            name, session_id, token = await self.identities.admit(raw_name, token, self.directory)
        except Refused as exc:
            unavailable = exc.reason is ErrorCode.UNAVAILABLE
            conn.close(CloseCode.TRY_AGAIN_LATER if unavailable else CloseCode.POLICY_VIOLATION, exc.reason)
            return None
        peer = self._admitted(conn, name, session_id)
        peer.send(out.Welcome(name, token))
        return peer

    def _admitted(self, conn: Transport, name: str, session: str) -> Peer:
        outbox = Outbox(conn, self.flusher, self.limits.max_backlog_bytes, self.clock, self.metrics.gaps.inc)
        limiter = FrameLimiter(self.limits.rate, self.limits.burst, self.limits.flood_window)
        peer = Peer(conn, outbox, name, session, limiter)
        self.peers.add(peer)
        self.metrics.connections.set(len(self.peers))
        self._idle.clear()
        return peer

    def disconnect(self, peer: Peer) -> None:
        """The socket closed: leave its rooms and release its name."""
        if not peer.open:
            return
        peer.open = False
        peer.outbox.close()
        self.peers.discard(peer)
        self.metrics.connections.set(len(self.peers))
        if not self.peers:
            self._idle.set()
        for room in list(peer.rooms):
            self._leave(peer, room)
        if peer.account is None:
            self.identities.release(peer.name, peer.session)

    def handle_binary(self, peer: Peer) -> None:
        peer.conn.close(CloseCode.UNSUPPORTED_DATA, CloseReason.BINARY)

    def handle_text(self, peer: Peer, text: str) -> Awaitable[None] | None:
        """One client frame: rate-limit, parse, act, answer.

        Returns None when the frame is handled (a ``say`` is handled once it is
        queued for storing: its broadcast follows the commit), or an awaitable
        the adapter must await before it reads the connection's next frame.
        Keeping ``say`` synchronous lets the adapter read a burst of frames in
        one go, so they are committed and fanned out as one batch.

        A frame over the rate is never dropped: the awaitable waits until the
        connection's bucket has a token, then handles it. Meanwhile the adapter
        reads nothing more from that socket, so the connection's frames keep
        their order and TCP slows the sender down.
        """
        verdict = peer.limiter.check(self.clock())
        if verdict is Verdict.CLOSE:
            peer.conn.close(CloseCode.POLICY_VIOLATION, CloseReason.FLOOD)
            return None
        if verdict is Verdict.WAIT:
            return self._later(peer, text, peer.limiter.wait)
        return self._handle(peer, text)

    async def _later(self, peer: Peer, text: str, wait: float) -> None:
        """A frame over the rate: handled once the bucket has its token, before
        the adapter reads the next one. The wait is computed from the bucket,
        so there is one timer per frame over the rate, and no polling."""
        await self.sleep(wait)
        if not peer.open:
            return  # closed meanwhile: the client resends what was not acknowledged
        pending = self._handle(peer, text)
        if pending is not None:
            await pending

    def _handle(self, peer: Peer, text: str) -> Awaitable[None] | None:
        """Parse and act on one frame the rate limit let through."""
        try:
            frame = p.parse_client_frame(text, max_message_chars=self.limits.max_message_chars)
        except p.ProtocolError as exc:
            peer.send(out.Error(exc.code, exc.message, exc.ref))
            return None
        match frame:
            case p.Say():
                return self._say(peer, frame)
            case p.Join():
                return self._guard(peer, frame.ref, self._join(peer, frame))
            case p.History():
                if frame.room not in peer.rooms:
                    return self._not_in(peer, frame.room, frame.ref)
                return self._guard(peer, frame.ref, self._history(peer, frame))
            case p.Leave():
                if frame.room in peer.rooms:
                    self._leave(peer, frame.room)
                # Leaving twice is harmless, so a retried leave succeeds.
                peer.send(out.Left(frame.room, frame.ref))
            case p.Typing():
                if frame.room not in peer.rooms:
                    return self._not_in(peer, frame.room, frame.ref)
                typing = out.Typing(frame.room, peer.name)
                self.broker.announce(frame.room, peer.name, typing.to_wire())
            case p.Rooms():
                return self._guard(peer, frame.ref, self._rooms(peer, frame))
            case p.Ping():
                peer.send(out.Pong(frame.ref))
            case p.Create():
                return self._guard(peer, frame.ref, self.access.create(peer, frame))
            case p.Dm():
                return self._guard(peer, frame.ref, self.access.dm(peer, frame))
            case p.Moderate():
                return self._guard(peer, frame.ref, self.access.moderate(peer, frame, self._present))
            case p.Members():
                return self._guard(peer, frame.ref, self.access.members(peer, frame))
            case p.Edit() | p.Delete() | p.React():
                if frame.ref is not None and self._says.seen(peer.session, frame.ref, self.wall()):
                    return self._guard(peer, frame.ref, self._repeat(peer, frame.ref))
                if frame.room not in peer.rooms:
                    return self._not_in(peer, frame.room, frame.ref)
                return self._guard(peer, frame.ref, self.changes.change(peer, frame))
            case p.MarkRead():
                return self._guard(peer, frame.ref, self.changes.mark_read(peer, frame))
            case p.Search():
                return self._guard(peer, frame.ref, self.changes.search(peer, frame))
        return None

    def _not_in(self, peer: Peer, room: str, ref: str | None) -> Awaitable[None]:
        """A frame for a room ``peer`` has not joined (see RoomAccess.not_in)."""
        return self._guard(peer, ref, self.access.not_in(peer, room, ref))

    def _present(self, room: str, name: str) -> bool:
        """Whether a guest called ``name`` is in ``room`` on this process (a moderator may remove it)."""
        r = self.rooms.room(room)
        return r is not None and any(m.account is None and m.name == name for m in r.live)

    async def _guard(self, peer: Peer, ref: str | None, work: Awaitable[None]) -> None:
        """Run ``work``; a store failure is answered with ``unavailable``."""
        try:
            await work
        except StoreUnavailable as exc:
            self._unavailable(peer, ref, exc)

    def _unavailable(self, peer: Peer, ref: str | None, exc: BaseException) -> None:
        peer.send(out.Error(ErrorCode.UNAVAILABLE, "history is unavailable; try again", ref))
        if self._closing:
            return  # says racing a shutdown: their clients resend them after reconnecting
        self._outage.refused(exc)

    async def _rooms(self, peer: Peer, frame: p.Rooms) -> None:
        peer.send(out.Rooms(await self.room_summaries(peer.actor), frame.ref))

    async def _history(self, peer: Peer, frame: p.History) -> None:
        if frame.after is not None:
            msgs = await self.store.after(frame.room, frame.after, frame.limit)
        else:
            msgs = await self.store.before(frame.room, frame.before, frame.limit)
        peer.send(out.History(frame.room, msgs, frame.ref))

    # -- rooms ------------------------------------------------------------

    async def _join(self, peer: Peer, frame: p.Join) -> None:
        room = frame.room
        rejoin = room in peer.rooms
        if not rejoin and len(peer.rooms) >= self.limits.max_rooms_per_connection:
            peer.send(
                out.Error(
                    ErrorCode.TOO_MANY_ROOMS,
                    f"a connection may be in at most {self.limits.max_rooms_per_connection} rooms",
                    frame.ref,
                )
            )
            return
        decision, info, standing, new_member = await self.access.admit(peer, room)
        if decision.code is not None:
            peer.send(out.Error(decision.code, decision.message, frame.ref))
            return
        if new_member and peer.account is not None:
            # A public room's past is not news to someone who just came in: they start
            # with it read (an invitee's private room and DMs keep theirs unread).
            await self.store.set_read(peer.account, room, await self.store.last_seq(room))
        people = await self.access.people(info) if info is not None else ()
        state = None
        if peer.account is not None:
            state = (await self.store.read_state(peer.account, peer.name, [room])).get(room)
        if not peer.open:
            return  # closed while access was checked
        rejoin = room in peer.rooms  # a removal meanwhile took it out: joined afresh
        first = False
        if not rejoin:
            first = self.rooms.join(room, peer, peer.name)
            self.metrics.rooms.set(len(self.rooms))
            peer.rooms.add(room)
        # The member is in the room (syncing) and the room is subscribed before
        # history is read, so a message stored meanwhile is buffered, never lost.
        try:
            await self.broker.subscribe(room)
            if first:
                await self.broker.enter(room, present.entry(peer.name, peer.account is not None))
            view = await read_room(self.store, self.broker, room, frame.since, self.limits.history_on_join)
        except BaseException:
            if not rejoin and peer.open and room in peer.rooms:  # never leave a member syncing forever
                self._leave(peer, room)
            raise
        if not peer.open or room not in peer.rooms:
            return  # closed or left while history was read
        buffered = self.rooms.go_live(room, peer) if not rejoin else []
        self.presence.counted(room, len(view.members))
        joined = out.Joined(
            room,
            view.members,
            view.last_seq,
            view.history,
            view.truncated,
            frame.ref,
            info,
            standing,
            people,
            tuple(view.accounts),
            state,
        )
        peer.send(joined)
        for m in buffered:
            if m.seq > view.last_seq:
                peer.outbox.push(OutFrame.message(encode(out.MessageFrame(m)), room, m.seq))

    def _leave(self, peer: Peer, room: str) -> None:
        peer.rooms.discard(room)
        if self.rooms.leave(room, peer, peer.name):
            self.metrics.rooms.set(len(self.rooms))
            self.broker.exit(room, present.entry(peer.name, peer.account is not None))
            if room not in self.rooms:
                self.broker.unsubscribe(room)
                self.presence.forget(room)

    def _event(self, room: str, name: str, frame: dict[str, Any]) -> None:
        """Presence or typing from the broker: to the room's members but ``name``'s connections."""
        if frame["type"] == "typing":
            self.presence.flush(room)  # presence held back goes first: never reordered
            self._to_others(room, name, frame, EPHEMERAL)
            return
        # A presence entry marks accounts (chat.core.present): the frame says so, with the bare name.
        name, account = present.parse(name)
        self.presence.change(room, Change(name, frame["event"] == "join", account))

    def _send_presence(self, room: str, changes: list[Change]) -> None:
        """Changes from the digest (chat.core.digest): one frame, built once, to every live member."""
        r = self.rooms.room(room)
        if r is None or not r.live:
            return
        if len(changes) == 1:
            self._to_others(room, changes[0].name, _presence(room, changes), CONTROL)
            return
        # One frame for all, even for the members named in it: a member's own change
        # there can only be its join (a name leaves with its last connection), which
        # tells it nothing wrong. A frame per named member would cost O(n²) after a
        # storm into a large room, where every member is named.
        shared = OutFrame.of(encode(_presence(room, changes)), CONTROL)
        for member in r.live:
            member.outbox.push(shared)

    def _at(self, when: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, when - self.clock()), callback)

    def _to_others(self, room: str, name: str, frame: dict[str, Any], kind: int = CONTROL) -> None:
        """Send to every live member of ``room`` but the connections of ``name``."""
        r = self.rooms.room(room)
        if r is None:
            return
        shared = OutFrame.of(encode(frame), kind)
        for member in r.live:
            if member.name != name:
                member.outbox.push(shared)

    # -- messages -----------------------------------------------------------

    def _say(self, peer: Peer, frame: p.Say) -> Awaitable[None] | None:
        # A retry is answered before the membership check: the original
        # was stored, even if the sender has left the room since.
        if frame.ref is not None and self._says.seen(peer.session, frame.ref, self.wall()):
            return self._guard(peer, frame.ref, self._repeat(peer, frame.ref))
        if frame.room not in peer.rooms:
            return self._not_in(peer, frame.room, frame.ref)
        if "@" in frame.text and peer.account is not None:
            # It may name members: finding them is a read, so this say waits for it
            # (the adapter reads the connection's next frame after: order is kept).
            return self._guard(peer, frame.ref, self._say_mentioning(peer, frame))
        self.append(peer, frame.room, frame.text, frame.ref)
        return None

    async def _say_mentioning(self, peer: Peer, frame: p.Say) -> None:
        mentions = await self.changes.mentions(frame.room, frame.text)
        if peer.open and frame.room in peer.rooms:
            self.append(peer, frame.room, frame.text, frame.ref, mentions=mentions)

    def append(
        self,
        peer: Peer,
        room: str,
        text: str,
        ref: str | None,
        *,
        kind: EventKind = EventKind.MESSAGE,
        target: int | None = None,
        emoji: str | None = None,
        mentions: tuple[str, ...] = (),
    ) -> None:
        """Store an event of ``peer``'s in ``room``: broadcast once committed, the
        sender's copy (with ``ref``) its acknowledgement; a retried ref answered
        with the original (see :meth:`_repeat`)."""
        now = int(self.wall() * 1000)
        event: dict[str, Any] = {}
        if kind is not EventKind.MESSAGE:
            event.update(kind=kind, target=target, emoji=emoji)
        if mentions:
            event["mentions"] = mentions
        # A plain message passes only what every store has always taken.
        future = self.store.append(room, peer.name, text, now, peer.session, ref, guest=peer.account is None, **event)
        if ref is not None:
            self._says.storing(peer.session, ref, future, peer)
        future.add_done_callback(functools.partial(self._failed, peer, ref, time.perf_counter()))

    def _committed(self, messages: list[Message]) -> None:
        """The store committed these (in seq order): acknowledge and broadcast them now."""
        self._outage.recovered()
        # Consecutive messages of one room fan out together: one write per member.
        batch: list[tuple[Message, Peer | None]] = []
        for message in messages:
            sender = self._says.committed(message)
            if batch and batch[0][0].room != message.room:
                self._publish_batch(batch)
                batch = []
            batch.append((message, sender))
        if batch:
            self._publish_batch(batch)

    def _publish_batch(self, batch: list[tuple[Message, Peer | None]]) -> None:
        if len(batch) == 1:
            self.publish(*batch[0])  # the one-message entry point (tests wrap it to lose an ack)
        else:
            self._publish(batch)

    def _failed(self, peer: Peer, ref: str | None, started: float, future: asyncio.Future[Message]) -> None:
        """A say's commit finished: on failure, answer ``unavailable`` (success was broadcast already)."""
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            self.metrics.history_write.observe(time.perf_counter() - started)
            return
        if ref is not None:
            self._says.failed(peer.session, ref)
        if isinstance(exc, Duplicate):
            # A retry the store recognised (its original came through another
            # process): answer with the original, as if it were new.
            original = exc.message
            self._says.duplicate(ref or "", original)
            if peer.open:
                peer.send(out.MessageFrame(original, with_ref=True))
            return
        self._unavailable(peer, ref, exc)

    async def _repeat(self, peer: Peer, ref: str) -> None:
        """Answer a say whose ref this session already sent with the original message."""
        pending = self._says.pending(peer.session, ref)
        if pending is not None:
            # The same ref is being stored right now (a retry raced its original).
            try:
                original: Message | None = await asyncio.shield(pending)
            except Duplicate as exc:
                original = exc.message
        else:
            sent = self._says.sent(peer.session, ref, self.wall())
            original = await self.store.get(sent.room, sent.seq) if sent is not None else None
        if original is None:
            raise StoreUnavailable(f"message for ref {ref!r} not found")
        peer.send(out.MessageFrame(original, with_ref=True))

    def publish(self, message: Message, sender: Peer | None = None) -> None:
        """Deliver a stored message to the room: encoded and framed once, written or queued for every member."""
        self._publish([(message, sender)])

    def _publish(self, batch: list[tuple[Message, Peer | None]]) -> None:
        """Deliver stored messages of one room, in seq order, each with the peer that sent it (if here)."""
        started = time.perf_counter()
        room = batch[0][0].room
        self.presence.flush(room)  # presence held back goes first: never reordered with the room's events
        r = self.rooms.room(room)
        own: dict[Peer, list[OutFrame]] = {}
        if r is not None:
            if r.syncing:  # members reading history get these after it
                for message, _ in batch:
                    self.rooms.buffer(room, message)
            # A sender in the room gets its own copy, carrying its ref: its acknowledgement.
            frames, own = room_frames(batch, r.live)
            if r.live:
                fan_out(r.live, frames, own, self.flusher.claim_direct(room))
            self.metrics.deliveries.inc(len(r.live) * len(batch))
        for message, sender in batch:
            if sender is not None and message.ref is not None and sender not in own and sender.open:
                # The sender left the room while the message was stored: still acknowledge it.
                sender.send(out.MessageFrame(message, with_ref=True))
        self.metrics.messages.inc(len(batch))
        each = (time.perf_counter() - started) / len(batch)
        for _ in batch:
            self.metrics.fanout.observe(each)

    # -- views for HTTP -------------------------------------------------------

    async def search(
        self, actor: Actor, query: str, room: str | None, before: int | None, limit: int
    ) -> list[SearchHit] | Decision:
        """Messages matching ``query`` in ``room``, or in every room ``actor`` may read;
        a Decision (``not_found``) for a room it may not see. Raises StoreUnavailable."""
        if room is not None:
            decision, _, _ = await self.access.check(actor, Action.SEE, room)
            if decision.code is not None:
                return decision
            rooms = [room]
        else:
            rooms = await self.access.readable(actor)
        return await self.store.search(query, rooms, before, limit) if rooms else []

    async def room_summaries(self, actor: Actor) -> list[RoomSummary]:
        """The rooms ``actor`` may see: every public room, and its own. Raises StoreUnavailable."""
        return await self.access.summaries(actor, self.store)

    # -- access control across processes (chat.core.control) -----------------

    def end_sessions(self, keys: list[str]) -> None:
        """These sessions ended (signed out, password changed, token revoked): close their sockets everywhere."""
        if keys:
            self.broker.control({"t": "end", "sessions": keys})

    def account_disabled(self, account_id: int) -> None:
        """An admin disabled the account: close its sockets everywhere."""
        self.broker.control({"t": "disable", "account": account_id})

    def account_created(self, name: str) -> None:
        """``name`` is an account's now: guests using it are closed everywhere."""
        self.broker.control({"t": "name", "name": name})

    def health(self) -> dict[str, Any]:
        """``degraded`` while the store or the broker fails: sockets stay open, says get ``unavailable``."""
        degraded = self._outage.degraded() or not self.broker.healthy or not self.store.reachable
        return {
            "status": "degraded" if degraded else "ok",
            "connections": len(self.peers),
            "rooms": len(self.rooms),
        }

    async def wait_idle(self) -> None:
        """Return once no connection is open."""
        await self._idle.wait()

    async def shutdown(self, peers: Iterable[Peer] | None = None) -> None:
        """Close every socket with 1001 (clients reconnect) and close the store."""
        self._closing = True
        await self.store.drain()  # acknowledge and broadcast what was being stored
        self.flusher.flush()  # what is queued goes out before the close frame
        for peer in list(peers if peers is not None else self.peers):
            peer.conn.close(CloseCode.GOING_AWAY, CloseReason.SHUTTING_DOWN)
        await self.stop()

    async def stop(self) -> None:
        """Stop the background watch and the presence timers, and close the store."""
        self.presence.close()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        await self.store.close()
        await self.broker.close()


def _presence(room: str, changes: list[Change]) -> dict[str, Any]:
    """One change as the classic ``presence`` frame; several as one frame with ``changes`` (docs/protocol.md)."""
    if len(changes) == 1:
        return {"type": "presence", "room": room, **changes[0].to_wire()}
    return {"type": "presence", "room": room, "changes": [c.to_wire() for c in changes]}
