"""Service-level objectives: ``--slo "p99<100ms,loss=0"``. Pure: parse, then evaluate against a run's figures.

Latency objectives (``p50``, ``p90``, ``p99``, ``p99.9``, ``max``) take ``<``
or ``<=`` and a duration in ``us``, ``ms`` or ``s``. Count objectives
(``loss``, ``dup``, ``ooo``, ``errors``) take ``=`` or ``<=`` and a count, or a
percentage of the expected deliveries (``loss<=0.1%``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

LATENCY_KEYS = ("p50", "p90", "p99", "p99.9", "max")
COUNT_KEYS = ("loss", "dup", "ooo", "errors")
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_TERM = re.compile(r"^\s*([a-z0-9.]+)\s*(<=|<|=)\s*([0-9]*\.?[0-9]+)\s*(us|ms|s|%)?\s*$")


class SloError(ValueError):
    """An objective that cannot be parsed; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Objective:
    key: str  # one of LATENCY_KEYS or COUNT_KEYS
    op: str  # "<", "<=" or "="
    limit: float  # milliseconds for latency keys, a count (or a percentage) otherwise
    percent: bool
    text: str  # as written, for the report

    def met_by(self, value: float) -> bool:
        if self.op == "<":
            return value < self.limit
        if self.op == "<=":
            return value <= self.limit
        return value == self.limit


@dataclass(frozen=True, slots=True)
class Figures:
    """What a run measured, in the units objectives use."""

    latency_ms: Mapping[str, float]  # LATENCY_KEYS -> ms; empty when nothing was delivered
    lost: int
    duplicated: int
    out_of_order: int
    errors: int
    expected: int


def parse_slo(spec: str) -> list[Objective]:
    """``"p99<100ms,loss=0"`` -> objectives; raises :class:`SloError`."""
    objectives: list[Objective] = []
    for term in spec.split(","):
        if not term.strip():
            continue
        match = _TERM.match(term.lower())
        if match is None:
            raise SloError(f"cannot read objective {term.strip()!r}: expected e.g. 'p99<100ms' or 'loss=0'")
        key, op, number, unit = match.groups()
        value = float(number)
        if key in LATENCY_KEYS:
            if op == "=":
                raise SloError(f"{term.strip()!r}: a latency objective takes '<' or '<='")
            if unit not in _UNIT_MS:
                raise SloError(f"{term.strip()!r}: give the latency a unit: us, ms or s")
            objectives.append(Objective(key, op, value * _UNIT_MS[unit], False, term.strip()))
        elif key in COUNT_KEYS:
            if op == "<":
                raise SloError(f"{term.strip()!r}: a count objective takes '=' or '<='")
            if unit not in (None, "%"):
                raise SloError(f"{term.strip()!r}: a count takes no unit, or '%' of the expected deliveries")
            if unit == "%" and key == "errors":
                raise SloError(f"{term.strip()!r}: errors are counted, not a percentage")
            objectives.append(Objective(key, op, value, unit == "%", term.strip()))
        else:
            known = ", ".join((*LATENCY_KEYS, *COUNT_KEYS))
            raise SloError(f"{term.strip()!r}: unknown key {key!r}; known keys: {known}")
    if not objectives:
        raise SloError("the SLO names no objective")
    return objectives


def evaluate(objectives: list[Objective], figures: Figures) -> list[str]:
    """The objectives missed, each explained in one line; empty when all are met."""
    failures: list[str] = []
    counts = {
        "loss": figures.lost,
        "dup": figures.duplicated,
        "ooo": figures.out_of_order,
        "errors": figures.errors,
    }
    for o in objectives:
        if o.key in LATENCY_KEYS:
            measured = figures.latency_ms.get(o.key)
            if measured is None:
                failures.append(f"{o.text}: no delivery was measured")
            elif not o.met_by(measured):
                failures.append(f"{o.text}: measured {o.key} = {measured:.3f} ms")
        else:
            count = counts[o.key]
            if o.percent:
                share = 100.0 * count / figures.expected if figures.expected else 0.0
                if not o.met_by(share):
                    failures.append(f"{o.text}: measured {share:.4f}% ({count} of {figures.expected})")
            elif not o.met_by(count):
                failures.append(f"{o.text}: measured {o.key} = {count}")
    return failures
