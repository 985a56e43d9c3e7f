"""Key names come from chat.backends.redis.keys alone: the layout docs/scaling.md
shows, and Lua scripts that are handed their keys rather than spelling them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chat.backends.redis import keys
from chat.backends.redis.presence import reap_call
from chat.backends.redis.scripts import ALL as SCRIPTS

# Every name keys.py defines, and each without its "chat:": no script may spell either.
NAMES = [value for name, value in vars(keys).items() if name.isupper() and isinstance(value, str)]
PREFIXES = [keys.P, *(value[len(keys.P) :] for value in NAMES if value != keys.P)]


def lua_strings(script: str) -> list[str]:
    """The string literals of a Lua script, comments left out."""
    code = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
    return [a or b for a, b in re.findall(r"'([^']*)'|\"([^\"]*)\"", code)]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_no_script_spells_a_key_or_a_prefix(name: str) -> None:
    script = SCRIPTS[name]
    assert keys.P not in script
    literals = lua_strings(script)
    assert literals  # the parser found the script's strings ('EXISTS', 'p', ...)
    for literal in literals:
        assert not any(literal.startswith(prefix) for prefix in PREFIXES), (name, literal)


def test_the_only_keys_a_script_derives_come_through_argv() -> None:
    # Reaping learns its rooms inside Redis: their hash and channel prefixes are arguments.
    derived = {name for name, script in SCRIPTS.items() if re.search(r"ARGV\[\d+\] \.\. room", script)}
    assert derived == {"reap"}
    _, args = reap_call("host:1:abc")
    assert args == ["host:1:abc", keys.WHO, keys.ROOM_CHANNEL]


def test_per_room_process_and_name_keys() -> None:
    assert (keys.retired_seq("lobby"), keys.retired_log("lobby")) == ("chat:seq:lobby", "chat:log:lobby")
    assert keys.who("lobby") == "chat:who:lobby"
    assert keys.room_channel("lobby") == "chat:room:lobby"
    assert keys.channel_room(keys.room_channel("a:b c")) == "a:b c"
    assert (keys.alive("h:1:ab"), keys.here("h:1:ab")) == ("chat:alive:h:1:ab", "chat:here:h:1:ab")
    assert keys.name("Bob") == keys.name("BOB") == "chat:name:bob"  # one hold whatever the case


def test_the_key_table_in_docs_scaling_md_is_the_layout() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "scaling.md").read_text()
    table = doc.split("## Keys", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    documented = [tuple(cell.strip() for cell in row.strip("|").split("|", 1)) for row in rows]
    assert documented == [(f"`{key}`", what) for key, what in keys.LAYOUT]
