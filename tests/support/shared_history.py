"""One history shared by several "processes" of a test, each with its own store view.

The Redis broker's tests need what PostgreSQL gives many processes: one
history, seqs assigned at commit, and a commit listener per process that hears
only that process's commits. :class:`SharedLog` is the database and
:class:`LogStore` one process's connection to it: group commit per loop tick,
like the SQL stores, in memory, so the broker's tests run without PostgreSQL
(the cluster tests run the real thing).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from chat.backends.base import Pending, StoreUnavailable, append_future, settle
from chat.backends.events_sql import search_words
from chat.core.model import REACTIONS, EventKind, Message, ReadState, SearchHit
from chat.core.validation import name_key
from tests.support.fake_directory import FakeDirectory

log = logging.getLogger(__name__)


class SharedLog:
    def __init__(self) -> None:
        # The accounts and rooms of the one database every process shares.
        self.directory = FakeDirectory()
        self.rooms: dict[str, list[Message]] = {}
        self.refs: dict[tuple[str, str], Message] = {}
        # (room, target) -> [(emoji, name)] in the order they were added.
        self.reactions: dict[tuple[str, int], list[tuple[str, str]]] = {}
        self.markers: dict[tuple[int, str], int] = {}
        self.down = False  # set to make every store view fail, as a database outage does


class LogStore:
    """One process's view of a :class:`SharedLog`: a HistoryStore with ``listen``."""

    def __init__(self, log: SharedLog) -> None:
        self._log = log
        self._batch: list[tuple[Message, asyncio.Future[Message]]] = []
        self._on_commit: Callable[[list[Message]], None] | None = None
        self._closed = False

    def directory(self) -> FakeDirectory:
        return self._log.directory

    def listen(self, on_commit: Callable[[list[Message]], None] | None) -> None:
        self._on_commit = on_commit

    def append(
        self,
        room: str,
        name: str,
        text: str,
        ts: int,
        session: str,
        ref: str | None,
        *,
        guest: bool = False,
        kind: EventKind = EventKind.MESSAGE,
        target: int | None = None,
        emoji: str | None = None,
        mentions: tuple[str, ...] = (),
    ) -> asyncio.Future[Message]:
        future = append_future(self._closed)
        if self._closed:
            return future
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._commit)
        event = Message(
            room, 0, name, text, ts, session, ref, guest, kind=kind, target=target, emoji=emoji, mentions=mentions
        )
        self._batch.append((event, future))
        return future

    def _commit(self) -> None:
        batch, self._batch = self._batch, []
        if self._log.down:
            for _, future in batch:
                future.set_exception(StoreUnavailable("the database is down"))
            return
        stored: list[Pending] = []
        duplicates: list[Pending] = []
        for m, future in batch:
            original = self._log.refs.get((m.session, m.ref)) if m.ref is not None else None
            if original is not None:
                duplicates.append((original, future))
                continue
            messages = self._log.rooms.setdefault(m.room, [])
            message = self._apply(messages, replace(m, seq=len(messages) + 1))
            messages.append(message)
            if m.ref is not None:
                self._log.refs[(m.session, m.ref)] = message
            stored.append((message, future))
        settle(self._on_commit, stored, duplicates, log)

    def _apply(self, messages: list[Message], m: Message) -> Message:
        """The side effects of event ``m`` on the room's ``messages``, which keep
        MESSAGE rows as they are now (reactions live in ``SharedLog.reactions``)."""
        if m.kind is EventKind.MESSAGE:
            return m
        index = (m.target or 0) - 1
        target = messages[index] if 0 <= index < len(messages) else None
        live = target is not None and target.kind is EventKind.MESSAGE and not target.deleted
        event = replace(m, text=m.text if live and m.kind is EventKind.EDIT else "", mentions=())
        if not live or target is None:
            return replace(event, on=False) if m.kind is EventKind.REACTION else event
        key = (m.room, target.seq)
        if m.kind is EventKind.EDIT:
            messages[index] = replace(target, text=m.text, edited=m.ts)
        elif m.kind is EventKind.DELETE:
            messages[index] = replace(target, text="", deleted=True, mentions=())
            self._log.reactions.pop(key, None)
            for i, other in enumerate(messages):  # the edits' text goes too
                if other.kind is EventKind.EDIT and other.target == target.seq:
                    messages[i] = replace(other, text="")
        else:
            reacted = self._log.reactions.setdefault(key, [])
            on = (m.emoji or "", m.name) not in reacted
            if on:
                reacted.append((m.emoji or "", m.name))
            else:
                reacted.remove((m.emoji or "", m.name))
            event = replace(event, on=on)
        return event

    def _now(self, m: Message) -> Message:
        """``m`` as read: a message with its reactions, grouped in REACTIONS order."""
        reacted = self._log.reactions.get((m.room, m.seq)) if m.kind is EventKind.MESSAGE else None
        if not reacted:
            return m
        names: dict[str, list[str]] = {}
        for emoji, name in reacted:
            names.setdefault(emoji, []).append(name)
        return replace(m, reactions=tuple((e, tuple(names[e])) for e in REACTIONS if e in names))

    def _read(self, room: str) -> list[Message]:
        if self._log.down:
            raise StoreUnavailable("the database is down")
        return [self._now(m) for m in self._log.rooms.get(room, [])]

    def _messages(self, room: str, below: int | None = None) -> list[Message]:
        return [m for m in self._read(room) if m.kind is EventKind.MESSAGE and (below is None or m.seq < below)]

    @property
    def reachable(self) -> bool:
        return True  # an outage here shows as failing calls (``down``), as a pool that once connected

    async def drain(self) -> None:
        if self._batch:
            await asyncio.gather(*(f for _, f in self._batch), return_exceptions=True)

    async def before(self, room: str, seq: int | None, limit: int) -> list[Message]:
        messages = self._messages(room, seq)
        return messages[max(0, len(messages) - limit) :]

    async def after(self, room: str, seq: int, limit: int) -> list[Message]:
        return self._read(room)[seq : seq + limit]

    async def get(self, room: str, seq: int) -> Message | None:
        messages = self._read(room)
        return messages[seq - 1] if 1 <= seq <= len(messages) else None

    async def last_seq(self, room: str) -> int:
        return len(self._read(room))

    async def room_view(self, room: str, since: int | None, limit: int) -> tuple[int, list[Message]]:
        messages = self._read(room)
        if since is None:
            return len(messages), await self.before(room, None, limit)
        return len(messages), messages[since : since + limit]

    async def search(self, query: str, rooms: list[str], before: int | None, limit: int) -> list[SearchHit]:
        # Words match whole words, regardless of case: what the SQL engines do, without their stemming.
        words = {w.casefold() for w in search_words(query)}
        if not words:
            return []
        hits = []
        for room in rooms:
            for m in self._messages(room):
                found = {w.casefold() for w in search_words(m.text)}
                if words <= found and not m.deleted and (before is None or m.ts < before):
                    snippet = " ".join(f"[{w}]" if w.casefold() in words else w for w in m.text.split(" "))
                    hits.append(SearchHit(room, m.seq, m.name, m.ts, snippet, m.guest))
        hits.sort(key=lambda h: (h.ts, h.seq), reverse=True)
        return hits[:limit]

    async def set_read(self, account: int, room: str, seq: int) -> int:
        key = (account, room)
        marker = max(self._log.markers.get(key, 0), min(seq, len(self._read(room))))
        self._log.markers[key] = marker
        return marker

    async def read_state(self, account: int, name: str, rooms: list[str]) -> dict[str, ReadState]:
        states = {}
        for room in rooms:
            read = self._log.markers.get((account, room), 0)
            new = [m for m in self._messages(room) if m.seq > read and not m.deleted and (m.guest or m.name != name)]
            mentioned = [m for m in new if name_key(name) in {name_key(n) for n in m.mentions}]
            states[room] = ReadState(read, len(new), len(mentioned))
        return states

    async def rooms(self) -> dict[str, int]:
        return {room: len(messages) for room, messages in self._log.rooms.items()}

    async def recent_refs(self, since_ts: int) -> list[Message]:
        return [m for m in self._log.refs.values() if m.ts >= since_ts]

    async def close(self) -> None:
        self._closed = True
        while self._batch:
            await self.drain()
