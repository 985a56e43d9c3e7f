"""Sockets: memory per idle socket, then the most idle sockets a server process holds."""

from __future__ import annotations

import resource
from collections.abc import Sequence

from ..harness import Harness
from ..params import FD_HEADROOM, Suite
from ..proc import open_fds
from ..runs import Run
from ..servers import RunningServer, ServerKind


def idle(harness: Harness, suite: Suite, servers: Sequence[ServerKind]) -> dict[str, Run]:
    """The idle run of every server that holds sockets (not the floor); server key -> its run."""
    print(f"idle memory: {suite.idle_sockets:,} sockets")
    return {
        kind.key: harness.run(kind, suite.idle(suite.idle_sockets, suite.idle_key))
        for kind in servers
        if not kind.fanout_only
    }


def hold(harness: Harness, suite: Suite, servers: Sequence[ServerKind], idle_runs: dict[str, Run]) -> None:
    """The hold ladder of every server that holds sockets, but not of one whose idle run (its first rung) failed."""
    print("most sockets held: idle sockets, more at each step, up to the server's fd limit")
    for kind in [k for k in servers if not k.fanout_only]:
        if kind.key in idle_runs and not idle_runs[kind.key].fully_connected:
            continue  # the idle run was the first rung, and it failed
        hold_ladder(harness, suite, kind)


def hold_ladder(harness: Harness, suite: Suite, kind: ServerKind) -> None:
    """Idle sockets at each of suite.hold_counts, then as many as the server's fd limit allows.

    Stops at the first count not fully connected (the idle-memory run is the rung before).
    """
    for count in suite.hold_counts:
        if not harness.run(kind, suite.idle(count, f"hold-{count}")).fully_connected:
            return
    if not suite.hold_max:
        return
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

    def at_limit(server: RunningServer) -> list[str]:
        # As many sockets as the server has descriptors left, counted once it has started.
        return suite.idle(hard - open_fds(server.proc.pid) - FD_HEADROOM, "hold-max").options

    harness.run(kind, suite.idle(hard, "hold-max"), at_limit)
