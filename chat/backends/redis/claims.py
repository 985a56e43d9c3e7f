"""Name claims on Redis: a name is held by one session across every process.

:class:`Claims` is the part of :class:`chat.backends.redis.broker.RedisBroker`
that holds names. A claim holds ``name:{key}`` (the name whatever its case)
for the session for RESERVATION_S; while any connection of the session uses
the name here, :meth:`Claims.refresh` holds it again every third of that, so
it lapses within the reservation once none does. Logging out frees the name
and tells every process, over the ``ctl`` channel, to close the session's
sockets.
"""

from __future__ import annotations

from typing import Any

from chat.backends.redis import keys, scripts
from chat.backends.redis.pipeline import Batch, ScriptCall, ignore, run_scripts
from chat.core.names import RESERVATION_S

# Names refreshed per script call: a process holding 16,000 names refreshes
# them in 32 calls rather than 16,000, which would hold its event loop for
# half a second while it builds and parses them.
REFRESH_NAMES_PER_CALL = 500


class Claims:
    """The names this process's connections hold, and their holds in Redis."""

    def __init__(self, client: Any, batch: Batch) -> None:
        self._r = client
        self._batch = batch  # claims share the broker's pipelines: one per loop tick
        self._names: dict[tuple[str, str], int] = {}  # (name, session) -> local connections
        self._refreshed = 0.0
        self._claim = client.register_script(scripts.CLAIM)
        self._refresh = client.register_script(scripts.REFRESH)
        self._drop = client.register_script(scripts.DROP)

    async def claim(self, name: str, session: str) -> bool:
        # Repeating a claim only refreshes it.
        ok = bool(await self._batch.script(self._claim, [keys.name(name)], [session, int(RESERVATION_S)]))
        if ok:
            key = (name, session)
            self._names[key] = self._names.get(key, 0) + 1
        return ok

    def release(self, name: str, session: str) -> None:
        key = (name, session)
        left = self._names.get(key, 0) - 1
        if left > 0:
            self._names[key] = left
        else:
            # No longer refreshed: the hold expires after the reservation.
            self._names.pop(key, None)

    def logout(self, name: str, session: str) -> None:
        self._names.pop((name, session), None)
        dropped = self._batch.script(self._drop, [keys.name(name), keys.CTL], [session])
        dropped.add_done_callback(ignore)

    async def refresh(self, now: float) -> None:
        """Hold again every name a connection here uses, once RESERVATION_S / 3 has passed since the last time."""
        if self._names and now - self._refreshed >= RESERVATION_S / 3:
            # A hold lasts RESERVATION_S; refreshed at a third of that, it
            # outlives two missed refreshes and still lapses within the
            # reservation once no connection uses the name.
            self._refreshed = now
            held = list(self._names)
            calls: list[ScriptCall] = []
            for start in range(0, len(held), REFRESH_NAMES_PER_CALL):
                chunk = held[start : start + REFRESH_NAMES_PER_CALL]
                names = [keys.name(n) for n, _ in chunk]
                calls.append((self._refresh, names, [int(RESERVATION_S), *(session for _, session in chunk)]))
            await run_scripts(self._r, calls)
