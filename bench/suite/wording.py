"""Sentences from figures: every comparison in the prose is computed, both ways."""

from __future__ import annotations

from .params import TARGET_SOCKETS

# Two figures within this share of each other are worded as level: runs of the same build on this
# shared 2-core machine differ by 10-25 % (docs/scaling.md), so a smaller gap says nothing.
LEVEL_WITHIN = 0.10


def compared(a: float, b: float) -> str:
    """``a`` against ``b``: "more", "less", or "about as much" when within LEVEL_WITHIN of ``b``."""
    if abs(a - b) <= LEVEL_WITHIN * abs(b):
        return "about as much"
    return "more" if a > b else "less"


def cpu_than_server(word: str) -> str:
    return f"{word} CPU per delivery " + ("as" if word == "about as much" else "than") + " the server"


def generator_vs_server(figures: dict[str, tuple[float | None, float | None]]) -> str:
    """How the load generator's CPU per delivery compares with the server's, per configuration.

    ``figures``: configuration label -> (generator µs/delivery, server µs/delivery), either None
    when not measured. A clause to follow "the load generator ...".
    """
    known = {label: (g, s) for label, (g, s) in figures.items() if g is not None and s is not None}
    if not known:
        return "has no CPU per delivery to compare with the server's (no rate every configuration kept up with)"
    detail = "; ".join(f"{label}: {g:.1f} µs against {s:.1f} µs" for label, (g, s) in known.items())
    words = {label: compared(g, s) for label, (g, s) in known.items()}
    if len(set(words.values())) == 1:
        where = "in every configuration" if len(known) > 1 else "in the one configuration measured"
        return f"spends {cpu_than_server(next(iter(words.values())))} {where} (generator against server: {detail})"
    by_word: dict[str, list[str]] = {}
    for label, word in words.items():
        by_word.setdefault(word, []).append(label)
    parts = [f"{cpu_than_server(word)} with {', '.join(labels)}" for word, labels in by_word.items()]
    return "spends " + "; ".join(parts) + f" (generator against server: {detail})"


def workers_vs_one(
    one: float | None, two: float | None, one_topped: bool, two_topped: bool, top: int | None, nproc: int
) -> str:
    """What two workers' highest zero-loss rate says against one process's, both with Redis.

    ``*_topped``: that configuration kept up with every step of the ladder, so its limit was not found.
    """
    if one is None or two is None:
        missing = "one process" if one is None else "two workers"
        return f"With no zero-loss step for {missing}, the two cannot be compared."
    if one_topped and two_topped:
        return (
            f"Both kept up with every offered rate, up to {top or 0:,}/s: the ladder did not reach either's limit,"
            " so it cannot tell whether the second worker adds capacity."
        )
    word = compared(two, one)
    figures = f"{two:,.0f} against {one:,.0f} deliveries/s"
    if word == "more":
        times = f"{two / one:.2f}x" if one else "more than"
        return f"Two workers sustained {times} one process's highest zero-loss rate ({figures})."
    shared = f"on {nproc} cores shared with the load generator and Redis"
    if word == "less":
        return f"Two workers sustained less than one process ({figures}): {shared}, the split cost more than it added."
    return (
        f"Two workers sustained about as much as one process ({figures}): {shared}, a second worker added no"
        " capacity; their figures show what the split costs."
    )


def hold_cap(hard: int, target: int = TARGET_SOCKETS) -> str:
    """What the per-process open-file limit allows, against the target."""
    if hard < target:
        return (
            f" **This machine caps every process at {hard:,} open files (the hard RLIMIT_NOFILE, which an"
            f" unprivileged process cannot raise), so no server process can hold the issue's {target:,} sockets on"
            " it**: the table shows how close each server gets to that cap."
        )
    return (
        f" This machine allows {hard:,} open files per process, enough for the issue's {target:,} sockets: the"
        " table shows how many each server held."
    )
