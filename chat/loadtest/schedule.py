"""Who does what, when: the pure plan of a run, shared by every load-generating process.

Client ``i`` (0-based, global) belongs to process ``i % procs``, is in room
``lt-{i % rooms}`` and connects ``i / ramp`` seconds after the start. The first
``senders`` clients send; message ``n`` (0-based, global, also its id) is sent by
sender ``n % senders`` at ``n / rate`` seconds after sending starts. Every
process derives the same plan from the same options, so nothing but the start
times has to be exchanged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class MemberPlan:
    index: int  # global client index
    name: str
    room: str
    sender: int | None  # the sender index, for the first `senders` clients
    source_ip: str | None
    connect_offset_ns: int  # after the run's start


def room_name(index: int) -> str:
    return f"lt-{index}"


def members_of(
    proc: int,
    procs: int,
    clients: int,
    rooms: int,
    senders: int,
    ramp: float,
    prefix: str,
    source_ips: tuple[str, ...] = (),
) -> list[MemberPlan]:
    """The clients process ``proc`` of ``procs`` opens, in connect order."""
    plans = []
    for i in range(proc, clients, procs):
        plans.append(
            MemberPlan(
                index=i,
                name=f"{prefix}-{proc}-{i}",
                room=room_name(i % rooms),
                sender=i if i < senders else None,
                source_ip=source_ips[i % len(source_ips)] if source_ips else None,
                connect_offset_ns=int(i * NS_PER_S / ramp) if ramp > 0 else 0,
            )
        )
    return plans


def send_times(sender: int, senders: int, total: int, rate: float, go_ns: int) -> Iterator[tuple[int, int]]:
    """``(message id, intended send time)`` for one sender, in order."""
    period_ns = NS_PER_S / rate
    for n in range(sender, total, senders):
        yield n, go_ns + int(n * period_ns)


def storm_victims(candidates: list[str], fraction: float) -> list[str]:
    """``fraction`` of ``candidates``, spread evenly over the list (so over rooms and processes too)."""
    chosen = []
    for position, name in enumerate(candidates):
        if int((position + 1) * fraction) > int(position * fraction):
            chosen.append(name)
    return chosen


def parse_source_ips(spec: str) -> list[str]:
    """``"127.0.0.2-127.0.0.9,127.0.1.1"`` -> the addresses, in order."""
    addresses: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        first_text, _, last_text = part.partition("-")
        first = ipaddress.IPv4Address(first_text.strip())
        last = ipaddress.IPv4Address(last_text.strip()) if last_text else first
        if last < first:
            raise ValueError(f"{part!r} counts down")
        if int(last) - int(first) > 65535:
            raise ValueError(f"{part!r} is too large a range")
        for value in range(int(first), int(last) + 1):
            addresses.append(str(ipaddress.IPv4Address(value)))
    return addresses
