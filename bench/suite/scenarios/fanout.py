"""Fan-out: a burst into one big room, and fixed offered loads into it; every server, interleaved."""

from __future__ import annotations

from collections.abc import Sequence

from ..harness import Harness
from ..params import Suite
from ..servers import ServerKind


def burst(harness: Harness, suite: Suite, servers: Sequence[ServerKind]) -> None:
    print(f"burst: 1 room of {suite.room_members:,}, {suite.burst_senders} senders, {suite.burst_rate:g} msgs/s")
    for _ in range(suite.repeat):
        for kind in servers:
            harness.run(kind, suite.burst())


def loads(harness: Harness, suite: Suite, servers: Sequence[ServerKind]) -> None:
    print(f"fixed offered loads into 1 room of {suite.room_members:,}")
    for _ in range(suite.repeat):
        for per_s in suite.loads_per_s:
            for kind in servers:
                harness.run(kind, suite.offered(per_s))
