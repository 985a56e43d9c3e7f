"""What a joining member is sent: the room's last seq, its history, its members.

:func:`read_room` asks the store and the broker, and waits until every message
up to that last seq has reached this process, so a message committed meanwhile
lands in the room's buffer, never between the history and going live.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from chat.backends.base import Broker, HistoryStore
from chat.core.model import Message
from chat.core.present import parse

# A resuming client gets at most this many missed messages in ``joined``; it
# fetches the rest with ``history``/``after``. Bounds one frame's size.
RESUME_MAX = 1000
# ... and at most about this much text, so the frame stays far below a client's
# usual message size limit (tornado's is 10 MiB) even with long messages.
RESUME_MAX_CHARS = 1_000_000


@dataclass(frozen=True, slots=True)
class RoomView:
    """A room as a joining member first sees it."""

    last_seq: int
    history: list[Message]
    members: list[str]
    truncated: bool  # a resume missed more than fits: the client fetches the rest
    accounts: list[str] = field(default_factory=list)  # the members who are accounts (the rest are guests)


async def read_room(
    store: HistoryStore, broker: Broker, room: str, since: int | None, history_on_join: int
) -> RoomView:
    """The room for a member joining it (``since``: resuming after that seq).

    The caller has subscribed to the room first. Raises StoreUnavailable."""
    # last_seq, the history and the member list are all asked for
    # before the first is awaited: over Redis they share one pipeline,
    # one round trip instead of three (and no Task each, as gather()
    # would cost). last_seq is asked first and reads are answered in
    # the order asked, so the history is never older than last_seq.
    limit = history_on_join if since is None else RESUME_MAX + 1
    reads: list[Awaitable[Any]] = [store.room_view(room, since, limit), broker.members(room)]
    try:
        last_seq, history = await reads[0]
        members: list[str] = await reads[1]
    except BaseException:
        for read in reads:
            _drop(read)
        raise
    truncated = False
    if since is not None:
        keep = _fits(history, RESUME_MAX, RESUME_MAX_CHARS)
        truncated = len(history) > keep
        del history[keep:]
    if history and not truncated:
        last_seq = max(last_seq, history[-1].seq)
    # Messages up to last_seq may still be on their way from another
    # process; they must land in the buffer, not after go_live.
    await broker.caught_up(room, last_seq)
    names = [parse(m) for m in members]
    return RoomView(
        last_seq,
        history,
        sorted((n for n, _ in names), key=str.casefold),
        truncated,
        sorted((n for n, account in names if account), key=str.casefold),
    )


def _drop(read: Awaitable[Any]) -> None:
    """Let go of a read nobody awaits any more: no "never awaited" or "never retrieved" noise."""
    if isinstance(read, Coroutine):
        read.close()
    elif isinstance(read, asyncio.Future):
        read.add_done_callback(lambda done: done.cancelled() or done.exception())


def _fits(messages: list[Message], most: int, max_chars: int) -> int:
    """How many of ``messages`` (from the first) fit in ``most`` and ``max_chars``; at least one."""
    total = 0
    for i, m in enumerate(messages[:most]):
        total += len(m.text)
        if total > max_chars and i > 0:
            return i
    return min(len(messages), most)
