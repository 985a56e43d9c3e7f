"""Committed messages out to the other processes: Redis pub/sub, fire and forget.

:class:`Publisher` is the part of :class:`chat.backends.redis.broker.RedisBroker`
that tells the other processes what this one committed. The SQL store is the
history; pub/sub only saves the others a read. So a publish is never awaited
by anyone and never retried blindly:

- One pipeline per committed batch (one ``PUBLISH`` per room in it), one round
  trip. One pipeline is in flight at a time and what commits meanwhile goes in
  the next one, so a room's messages reach Redis in seq order.
- While Redis is known to be down nothing is sent. For each room the newest
  message left unsent is remembered (one per room, whatever the outage's
  length) and published once Redis is back: a process whose subscription
  survived the outage sees the seq jump and fills the range from the store.
  A process whose subscription dropped fills every room when it resubscribes.

The wire format of a room channel's messages is :func:`encode` / :func:`decode`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from chat.backends.redis import keys
from chat.backends.redis.health import Health
from chat.backends.redis.pipeline import RAISES
from chat.core.model import EventKind, Message

log = logging.getLogger(__name__)

# Messages sent in one pipeline at most: bounds one round trip's work when a
# slow Redis let the queue grow. What is left goes in the next pipeline.
PUBLISH_MAX = 5000


def encode(messages: list[Message]) -> str:
    """One room's events, in seq order, as one pub/sub payload (kind ``m``).

    Each is ``[seq, name, text, ts, session, ref]``, plus a 7th item holding what
    differs from a plain message (``guest``, ``kind``, ``target``, ``emoji``, ``on``,
    ``edited``, ``deleted``, ``reactions``, ``mentions``): a plain message costs no
    more bytes than before, and a server of the release before reads it too."""
    return "m" + json.dumps([_row(m) for m in messages], ensure_ascii=False)


def _row(m: Message) -> list[Any]:
    row: list[Any] = [m.seq, m.name, m.text, m.ts, m.session, m.ref]
    extra: dict[str, Any] = {}
    if m.guest:
        extra["guest"] = True
    if m.kind is not EventKind.MESSAGE:
        extra.update(kind=str(m.kind), target=m.target)
        if m.emoji is not None:
            extra.update(emoji=m.emoji, on=m.on)
    if m.edited is not None:
        extra["edited"] = m.edited
    if m.deleted:
        extra["deleted"] = True
    if m.reactions:
        extra["reactions"] = [[emoji, list(names)] for emoji, names in m.reactions]
    if m.mentions:
        extra["mentions"] = list(m.mentions)
    if extra:
        row.append(extra)
    return row


def decode(room: str, body: str) -> list[Message]:
    """The events of an ``m`` payload (without its kind). Raises ValueError, TypeError or KeyError if malformed."""
    rows = json.loads(body)
    if not isinstance(rows, list):
        raise TypeError("not a list of messages")
    out = []
    for row in rows:
        seq, name, text, ts, session, ref = row[:6]
        extra = row[6] if len(row) > 6 else {}
        if not isinstance(ref, (str, type(None))) or not isinstance(text, str) or not isinstance(name, str):
            raise TypeError("malformed message")
        if not isinstance(extra, dict):
            raise TypeError("malformed message")
        target = extra.get("target")
        out.append(
            Message(
                room,
                int(seq),
                name,
                text,
                int(ts),
                str(session),
                ref,
                guest=extra.get("guest") is True,
                kind=EventKind(extra.get("kind", EventKind.MESSAGE)),
                target=int(target) if target is not None else None,
                emoji=extra.get("emoji"),
                on=extra.get("on"),
                edited=extra.get("edited"),
                deleted=extra.get("deleted") is True,
                reactions=tuple((str(e), tuple(names)) for e, names in extra.get("reactions", ())),
                mentions=tuple(extra.get("mentions", ())),
            )
        )
    return out


def by_room(messages: list[Message]) -> dict[str, list[Message]]:
    """``messages`` grouped per room, each group in the order given (seq order)."""
    rooms: dict[str, list[Message]] = {}
    for m in messages:
        rooms.setdefault(m.room, []).append(m)
    return rooms


class Publisher:
    """The committed batches on their way to Redis, and the newest unsent message per room."""

    def __init__(self, client: Any, health: Health) -> None:
        self._r = client
        self._health = health
        self._queue: list[Message] = []
        self._inflight: asyncio.Task[None] | None = None
        self._unsent: dict[str, Message] = {}  # room -> newest message not published (Redis was down)
        self._closed = False

    def publish(self, messages: list[Message]) -> None:
        """Send a committed batch to the other processes, later; never raises, never waits."""
        if self._closed or not messages:
            return
        if self._health.down_since is not None:
            self._keep(messages)
            return
        self._queue.extend(messages)
        self._schedule()

    def back(self) -> None:
        """Redis is back: publish the newest message of each room that was left unsent."""
        if self._unsent and not self._closed:
            unsent, self._unsent = list(self._unsent.values()), {}
            self._queue[:0] = unsent
            self._schedule()

    def _keep(self, messages: list[Message]) -> None:
        for m in messages:
            kept = self._unsent.get(m.room)
            if kept is None or kept.seq < m.seq:
                self._unsent[m.room] = m

    def _schedule(self) -> None:
        if self._inflight is None and self._queue:
            batch, self._queue = self._queue[:PUBLISH_MAX], self._queue[PUBLISH_MAX:]
            self._inflight = asyncio.ensure_future(self._send(batch))
            self._inflight.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._inflight = None
        if not task.cancelled() and task.exception() is not None:
            log.error("publishing failed", exc_info=task.exception())
        self._schedule()

    async def _send(self, batch: list[Message]) -> None:
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                for room, messages in by_room(batch).items():
                    pipe.publish(keys.room_channel(room), encode(messages))
                await pipe.execute()
        except RAISES as exc:
            # Not sent, or not known to be: the other processes fill from the
            # store when they resubscribe, or when the kept message goes out.
            self._keep(batch)
            self._health.lost(exc)
        except Exception:  # a bug must not stop publishing: log it, keep the batch for later
            log.exception("publishing %d messages failed", len(batch))
            self._keep(batch)

    async def close(self) -> None:
        """Send what is queued (bounded by the socket timeout), then refuse more."""
        self._closed = True
        while self._inflight is not None:
            await asyncio.wait([self._inflight])
