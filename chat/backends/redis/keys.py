"""Every Redis key and pub/sub channel name of the chat, built here and only here.

The store, the broker and the tests build names with these functions; the Lua
scripts (:mod:`chat.backends.redis.scripts`) get them as ``KEYS``, never by
joining a literal prefix inside Lua. Redis requires that of a script (and Redis
Cluster enforces it): the keys a script touches are named by its caller.

The one exception is a script that finds its keys inside Redis: reaping a dead
process reads the ``room<TAB>name`` entries of its ``here`` set, so only then
are the rooms known. Such a script gets the prefix (:data:`WHO`,
:data:`ROOM_CHANNEL`) from here as an argument and joins the room to it.

Every name starts with :data:`P`; pick another DB number for another chat.
docs/scaling.md lists the layout (its "Keys" table is checked against
:data:`LAYOUT` by tests/backends/test_keys.py).
"""

from __future__ import annotations

from chat.core.validation import name_key

P = "chat:"

# Prefixes, for what is per room, per process or per name.
ROOM_CHANNEL = P + "room:"
ALIVE = P + "alive:"
HERE = P + "here:"
WHO = P + "who:"
NAME = P + "name:"

# Whole keys and channels.
CTL = P + "ctl"
PROCS = P + "procs"
ACTIVE = P + "active"


def room_channel(room: str) -> str:
    """The room's pub/sub channel: messages, presence, typing."""
    return ROOM_CHANNEL + room


def channel_room(channel: str) -> str:
    """The room a :func:`room_channel` is for."""
    return channel[len(ROOM_CHANNEL) :]


def alive(proc: str) -> str:
    """A process's heartbeat (expires)."""
    return ALIVE + proc


def here(proc: str) -> str:
    """Set of ``room<TAB>name`` present through a process."""
    return HERE + proc


def who(room: str) -> str:
    """Hash: name -> number of processes where it is present in the room."""
    return WHO + room


def name(display: str) -> str:
    """The session holding a name, whatever its case (expires)."""
    return NAME + name_key(display)


# The layout as docs/scaling.md shows it: what each name is for, in the same order.
LAYOUT: tuple[tuple[str, str], ...] = (
    (room_channel("{room}"), "pub/sub channel: messages, presence, typing"),
    (CTL, "pub/sub channel: logouts and access-control events (Broker.control)"),
    (PROCS, "set of live server processes"),
    (alive("{proc}"), "a process's heartbeat (expires)"),
    (here("{proc}"), "set of `room<TAB>name` present through a process"),
    (who("{room}"), "hash: name to the number of processes where it is present"),
    (ACTIVE, "set of rooms with anyone present"),
    (NAME + "{key}", "the session holding a name (expires)"),
)


# The history of servers before the SQL store (issue 11), read only by
# chat.backends.redis.export to copy it into the SQL store.
RETIRED_SEQ = P + "seq:"
RETIRED_LOG = P + "log:"
RETIRED_ROOMS = P + "rooms"


def retired_seq(room: str) -> str:
    """The room's last seq (INCR), as servers with Redis history kept it."""
    return RETIRED_SEQ + room


def retired_log(room: str) -> str:
    """The room's history, a stream with IDs ``<seq>-0``, as servers with Redis history kept it."""
    return RETIRED_LOG + room
