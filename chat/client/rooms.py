"""The rooms a :class:`chat.client.ChatClient` is in: a cursor per room, and the fetches that fill its holes.

Every room event (a ``message``, ``edit``, ``delete`` or ``reaction``: each
takes the room's next seq) goes through its room's
:class:`chat.client.cursor.RoomCursor` and comes out once, in seq order. When
the cursor lacks events (a seq jump, a ``gap`` frame, a resume past what
``joined`` carried) one task per room fetches them with ``history``/``after``,
which returns every kind, and hands the pages back to the cursor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

from chat.client.cursor import RoomCursor, Verdict
from chat.client.errors import ChatClosed, ChatError, ChatRefused, Disconnected
from chat.client.pending import Request, room_key
from chat.core.limits import HISTORY_PAGE_MAX

# Named for the package, not this module: it is what users configure.
log = logging.getLogger("chat.client")

Frame = dict[str, Any]

# The frames of a room's event log: each carries the room's next seq.
ROOM_EVENTS = frozenset({"message", "edit", "delete", "reaction"})

# Gaps are fetched in pages of the largest size the server's ``history`` request returns.
HISTORY_PAGE = HISTORY_PAGE_MAX


@dataclass(eq=False)
class _Room:
    """One joined room: where the client stands in it, and the fetch of what it lacks."""

    cursor: RoomCursor[Frame]
    filler: asyncio.Task[None] | None = None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _seq(message: Frame) -> int:
    seq = message["seq"]
    if not _is_int(seq):
        raise ValueError(f"bad seq {seq!r}")
    return seq


class JoinedRooms:
    """Room state of one client. ``emit`` yields a frame to the consumer,
    ``fetch`` sends a request tied to this connection and returns its answer,
    ``can_fetch`` says whether a connection is up, ``new_ref`` names a request."""

    def __init__(
        self,
        emit: Callable[[Frame], None],
        fetch: Callable[[Frame], Awaitable[Frame]],
        can_fetch: Callable[[], bool],
        new_ref: Callable[[], str],
    ) -> None:
        self._emit = emit
        self._fetch = fetch
        self._can_fetch = can_fetch
        self._new_ref = new_ref
        self._rooms: dict[str, _Room] = {}

    def joined(self, reply: Frame, since: int | None) -> None:
        """The answer to our ``join``: the room's messages flow from here (or from ``since``)."""
        room = reply["room"]
        if room in self._rooms:
            return  # joined twice: our position in the room stands
        last_seq = int(reply["last_seq"])
        state = _Room(RoomCursor(last=last_seq if since is None else min(since, last_seq)))
        self._rooms[room] = state
        if since is not None:
            self._absorb(room, state, reply)

    def left(self, room: str) -> None:
        """We leave ``room``: its messages stop at once."""
        state = self._rooms.pop(room_key(room), None)
        if state is not None:
            self._stop_filler(state)

    def rejoins(self) -> list[Request]:
        """A ``join`` with ``since`` per room, for a new connection."""
        return [self._rejoin_request(room, state) for room, state in self._rooms.items()]

    def message(self, frame: Frame) -> None:
        room = frame["room"]
        state = self._rooms.get(room)
        if state is None:
            return  # not (or no longer) in that room; a say's ack was settled already
        self._accept(room, state, frame)

    def gap(self, frame: Frame) -> None:
        state = self._rooms.get(frame["room"])
        to_seq = frame.get("to_seq")
        if state is not None and _is_int(to_seq):
            state.cursor.expect(to_seq)
            self._start_fill(frame["room"], state)

    def stop_fills(self) -> None:
        """The connection is gone: its fetches end (the rejoins fetch again)."""
        for state in self._rooms.values():
            self._stop_filler(state)

    def _rejoin_request(self, room: str, state: _Room) -> Request:
        frame: Frame = {"type": "join", "room": room, "since": state.cursor.last, "ref": self._new_ref()}

        def rejoined(reply: Frame) -> None:
            if self._rooms.get(room) is not state:
                return  # left meanwhile
            self._emit({k: v for k, v in reply.items() if k not in ("history", "ref")})
            self._absorb(room, state, reply)

        def refused(error: Frame) -> None:
            # The server won't have us back in this room (e.g. a lower room limit
            # after a restart): tell the consumer and stop tracking the room.
            if self._rooms.get(room) is state:
                del self._rooms[room]
            self._emit({k: v for k, v in error.items() if k != "ref"} | {"room": room})

        return Request(frame, resend=False, on_reply=rejoined, on_error=refused)

    def _absorb(self, room: str, state: _Room, reply: Frame) -> None:
        """Deliver a since-join's history, then fetch whatever it did not hold."""
        for message in reply.get("history", []):
            self._accept(room, state, message)
        last_seq = reply.get("last_seq")
        if _is_int(last_seq):
            state.cursor.expect(last_seq)
            self._start_fill(room, state)

    def _accept(self, room: str, state: _Room, message: Frame) -> None:
        """Yield ``message`` in seq order, once; hold it if messages before it are missing."""
        accepted = state.cursor.accept(_seq(message), message)
        for frame in accepted.released:
            self._emit(frame)
        if accepted.verdict is Verdict.HELD:
            self._start_fill(room, state)

    def _start_fill(self, room: str, state: _Room) -> None:
        """Fetch the messages the room's cursor lacks (one fetch per room at a time)."""
        if state.filler is None and state.cursor.fill_after is not None and self._can_fetch():
            state.filler = asyncio.create_task(self._fill(room, state))

    async def _fill(self, room: str, state: _Room) -> None:
        try:
            while (after := state.cursor.fill_after) is not None and self._rooms.get(room) is state:
                reply = await self._fetch({"type": "history", "room": room, "after": after, "limit": HISTORY_PAGE})
                page = [(_seq(message), message) for message in reply.get("messages", [])]
                filled = state.cursor.page(after, page)
                for message in filled.released:
                    self._emit(message)
                for first, last in filled.skipped:
                    # The server has nothing to fill the hole with: rather than
                    # stall the room forever, the cursor moved on to what it has.
                    log.warning("%s: messages %d to %d are not in history; skipping them", room, first, last)
        except (Disconnected, ChatClosed, ChatRefused):
            return  # the next connection rejoins with since= and fetches again
        except ChatError as exc:
            log.warning("cannot fetch the missing messages of %s: %s", room, exc)
        finally:
            if state.filler is asyncio.current_task():
                state.filler = None

    @staticmethod
    def _stop_filler(state: _Room) -> None:
        if state.filler is not None:
            state.filler.cancel()
            state.filler = None
