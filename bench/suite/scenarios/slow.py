"""The slow consumer: ours alone (the baselines buffer without bound), a flooded room without and with
one member that stops reading."""

from __future__ import annotations

from collections.abc import Sequence

from ..harness import Harness
from ..params import Suite
from ..servers import SERVERS, ServerKind


def slow(harness: Harness, suite: Suite, servers: Sequence[ServerKind]) -> None:
    print(f"slow consumer: 1 room of {suite.slow_members}, {suite.slow_rate:g} msgs/s of {suite.slow_message_bytes} B")
    if "ours" in [k.key for k in servers]:
        for stalled in (0, 1):
            harness.run(SERVERS["ours"], suite.slow(stalled))
