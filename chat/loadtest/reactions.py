"""Reactions in a load test: room events that are not messages, accounted like messages.

With ``--reactions-per-message R`` every sender, after each say, toggles R
reactions on average (R may be a fraction: 0.5 is one reaction every other
say) on the newest message of this run it has seen in its room, cycling
through the emoji. A reaction takes the room's next seq like a message and
goes to every member, so every member is owed it: the ledger counts it as a
send, at the time it was written, and each member's delivery by seq in the
same :class:`chat.loadtest.accounting.Membership` as the messages. Loss,
duplicates and order are then checked over every event of the room, as a
resuming or gap-filling client must get them (``history`` with ``after`` and
a ``join`` with ``since`` return every kind).

A reaction's frame carries nothing of ours (no text), so it is told from
another run's by its author's name (``<prefix>-<proc>-<i>``: two runs cannot
share a prefix at once, the server holds names) and a member learns when it
was made from the server's ``ts``. All members join before sending starts, so
that time only decides anything for a member that left during the run.
Reactions are guests' (load-test members are guests) in public rooms, which
the server allows; they add no latency figures (they carry no send time).
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from chat.core.model import REACTIONS
from chat.loadtest.accounting import Ledger
from chat.loadtest.connection import Connection
from chat.loadtest.counters import Counters

NS_PER_MS = 1_000_000


def run_prefix(name: str) -> str:
    """``lt`` of ``lt-0-12``: the part of a member's name every member of the run shares."""
    return name.rsplit("-", 2)[0] + "-"


class Reactions:
    """One sender's reactions: what it owes, what waits for the server's answer."""

    def __init__(self, room: str, per_message: float, ledger: Ledger, counters: Counters) -> None:
        self.room = room
        self.per_message = per_message
        self.ledger = ledger
        self.counters = counters
        self._credit = 0.0
        self._emoji = itertools.cycle(REACTIONS)
        self._refs = itertools.count(1)
        # Sent and not yet answered: ref -> when it was written (a refusal takes it back from the ledger).
        self._pending: dict[str, int] = {}

    def after_say(self, conn: Connection, target: int) -> None:
        """A say went out: send the reactions owed by now to message ``target`` (0: none seen yet)."""
        if self.per_message <= 0 or target <= 0:
            return
        self._credit += self.per_message
        while self._credit >= 1:
            self._credit -= 1
            ref = f"r{next(self._refs)}"
            frame = {"type": "react", "room": self.room, "seq": target, "emoji": next(self._emoji), "ref": ref}
            sent_ns = time.time_ns()
            if not conn.send_text(json.dumps(frame)):
                self.counters.error("react: socket closed")
                return
            self._pending[ref] = sent_ns
            self.ledger.sent(self.room, sent_ns)
            self.counters.reactions_sent += 1
            self.counters.sent_by_room[self.room] += 1

    def delivered(self, frame: dict[str, Any], me: str) -> int | None:
        """A ``reaction`` frame reached member ``me``: when it was made (ns), or None
        when it is not this run's (or malformed)."""
        seq, ts, name = frame.get("seq"), frame.get("ts"), frame.get("name")
        if not isinstance(seq, int) or not isinstance(ts, int) or not isinstance(name, str):
            return None
        if not name.startswith(run_prefix(me)):
            return None
        ref = frame.get("ref")
        if isinstance(ref, str):
            self._pending.pop(ref, None)  # our own, answered
        self.counters.reaction_deliveries += 1
        return ts * NS_PER_MS

    def refused(self, ref: object, code: str) -> bool:
        """An ``error`` answering ``ref``: True when it refused one of our reactions
        (nobody is owed it then)."""
        sent_ns = self._pending.pop(ref, None) if isinstance(ref, str) else None
        if sent_ns is None:
            return False
        self.ledger.failed(self.room, sent_ns)
        self.counters.sent_by_room[self.room] -= 1
        self.counters.reaction_errors += 1
        self.counters.error(f"react: {code}")
        return True

    @property
    def unanswered(self) -> int:
        return len(self._pending)
