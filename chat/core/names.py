"""Who holds which name. Pure: the caller passes the time in.

A session holds its name while any of its connections is open and for
:data:`RESERVATION_S` after the last one closes, so a reconnecting client gets
its name back and nobody can take it in between.
"""

from __future__ import annotations

from dataclasses import dataclass

from chat.core.validation import name_key

# Long enough to ride out a network change or a laptop lid; short enough that
# a name is not locked for long by someone who left.
RESERVATION_S = 60.0


@dataclass(slots=True)
class _Hold:
    session: str
    name: str
    connections: int
    released_at: float | None  # when the last connection closed


class NameRegistry:
    def __init__(self, reservation_s: float = RESERVATION_S) -> None:
        self._holds: dict[str, _Hold] = {}
        self._reservation_s = reservation_s

    def _live_hold(self, key: str, now: float) -> _Hold | None:
        hold = self._holds.get(key)
        if hold is None:
            return None
        expired = hold.released_at is not None and now - hold.released_at >= self._reservation_s
        if hold.connections == 0 and expired:
            del self._holds[key]
            return None
        return hold

    def available(self, name: str, session: str, now: float) -> bool:
        hold = self._live_hold(name_key(name), now)
        return hold is None or hold.session == session

    def reserve(self, name: str, session: str, now: float) -> bool:
        """Hold ``name`` for ``session`` without a connection (a login). False if taken."""
        key = name_key(name)
        hold = self._live_hold(key, now)
        if hold is None:
            self._holds[key] = _Hold(session, name, 0, now)
            return True
        if hold.session != session:
            return False
        if hold.connections == 0:
            hold.released_at = now
        return True

    def acquire(self, name: str, session: str, now: float) -> bool:
        """A connection of ``session`` starts using ``name``. False if another session holds it."""
        key = name_key(name)
        hold = self._live_hold(key, now)
        if hold is None:
            self._holds[key] = _Hold(session, name, 1, None)
            return True
        if hold.session != session:
            return False
        hold.connections += 1
        hold.released_at = None
        return True

    def release(self, name: str, session: str, now: float) -> None:
        """A connection that :meth:`acquire` admitted has closed."""
        hold = self._holds.get(name_key(name))
        if hold is None or hold.session != session or hold.connections == 0:
            return
        hold.connections -= 1
        if hold.connections == 0:
            hold.released_at = now

    def drop(self, name: str, session: str) -> None:
        """Give the name up at once (logout)."""
        key = name_key(name)
        hold = self._holds.get(key)
        if hold is not None and hold.session == session and hold.connections == 0:
            del self._holds[key]

    def sweep(self, now: float) -> None:
        """Forget expired reservations; call it now and then to bound memory."""
        for key in list(self._holds):
            self._live_hold(key, now)
