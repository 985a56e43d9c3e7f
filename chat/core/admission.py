"""How many sockets the server holds, in total and per client address. Pure."""

from __future__ import annotations

from collections import Counter


class Admission:
    """Counts open sockets; refuses one past ``max_total`` or ``max_per_ip``.

    The per-address cap stops one client from exhausting the server's file
    descriptors (loopback counts too: behind a reverse proxy every client
    comes from the proxy's address, so raise the cap there). 0 disables a cap.
    """

    def __init__(self, max_total: int, max_per_ip: int) -> None:
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self._per_ip: Counter[str] = Counter()
        self._total = 0

    @property
    def total(self) -> int:
        return self._total

    def admit(self, ip: str) -> str | None:
        """Count a new socket from ``ip``; or the reason it is refused (nothing is counted)."""
        if self.max_total and self._total >= self.max_total:
            return "the server is full"
        if self.max_per_ip and self._per_ip[ip] >= self.max_per_ip:
            return "too many connections from your address"
        self._per_ip[ip] += 1
        self._total += 1
        return None

    def release(self, ip: str) -> None:
        """A socket that :meth:`admit` counted has closed."""
        if self._per_ip[ip] <= 1:
            del self._per_ip[ip]
        else:
            self._per_ip[ip] -= 1
        self._total -= 1
