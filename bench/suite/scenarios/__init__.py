"""The scenarios, one module per family, and the order a suite runs them in.

Every run starts its server fresh and never runs beside another (they would share the 2 cores).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..harness import Harness
from ..params import Suite
from ..servers import ServerKind
from .fanout import burst, loads
from .joinstorm import joinstorm_scenario
from .scaling import redis_scenario
from .search import search_scenario
from .slow import slow
from .sockets import hold, idle


def run_suite(harness: Harness, suite: Suite, servers: Sequence[ServerKind], only: Sequence[str]) -> None:
    """Run the scenarios named in ``only`` against ``servers``, in the suite's order."""
    if "burst" in only:
        burst(harness, suite, servers)
    if "loads" in only:
        loads(harness, suite, servers)
    idle_runs = idle(harness, suite, servers) if "idle" in only else {}
    if "hold" in only:
        hold(harness, suite, servers, idle_runs)
    if "slow" in only:
        slow(harness, suite, servers)
    # Redis and worker processes are ours alone.
    ours = "ours" in [k.key for k in servers]
    if "redis" in only and ours:
        redis_scenario(harness, suite)
    if "joinstorm" in only and ours:
        joinstorm_scenario(harness, suite.joinstorm)
    # The store's own latency: no server, so it does not depend on --servers.
    if "search" in only:
        search_scenario(harness, suite.search)
