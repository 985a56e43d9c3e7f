"""Process limits a load generator needs."""

from __future__ import annotations

import resource


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard limit (each socket is a file); the new limit.

    The hard limit itself cannot be raised without privileges: past it, use
    more load processes (``--procs``).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft
