"""What both SQL stores share about the event log (schema version 4): reading
rows back as :class:`Message`, folding reactions into messages, and turning a
user's search words into a query the engine cannot misread."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from chat.core.model import REACTIONS, EventKind, Message

# Every column of ``messages``, in the order :func:`message` reads them.
# ``"on"`` is quoted: ON is a keyword on both engines.
COLUMNS = 'room, seq, name, text, ts, session, ref, guest, kind, target, emoji, "on", edited, deleted, mentions'

# A word as both engines' tokenizers see one (letters and digits); anything
# else in a query (quotes, operators, parentheses, NEAR, *) is only a separator,
# so no user syntax ever reaches FTS5 MATCH or a tsquery.
_WORD = re.compile(r"\w+")
MAX_WORDS = 16  # a longer query is cut: a search is a few words, not a document


def message(row: tuple[object, ...] | list[object], mentions: Iterable[str] = ()) -> Message:
    """A row of ``COLUMNS`` (``mentions`` already decoded by the engine's store)."""
    room, seq, name, text, ts, session, ref, guest, kind, target, emoji, on, edited, deleted = row[:14]
    return Message(
        str(room),
        int(seq),  # type: ignore[call-overload]
        str(name),
        str(text),
        int(ts),  # type: ignore[call-overload]
        str(session),
        None if ref is None else str(ref),
        bool(guest),
        kind=EventKind(str(kind)),
        target=None if target is None else int(target),  # type: ignore[call-overload]
        emoji=None if emoji is None else str(emoji),
        on=None if on is None else bool(on),
        edited=None if edited is None else int(edited),  # type: ignore[call-overload]
        deleted=bool(deleted),
        mentions=tuple(mentions),
    )


def with_reactions(messages: list[Message], found: Iterable[tuple[int, str, str]]) -> list[Message]:
    """``messages`` with the reactions in ``found`` ((target, emoji, name), in the
    order they were added) folded into the MESSAGE rows they target: names grouped
    per emoji, the emoji in REACTIONS order."""
    by_target: dict[int, dict[str, list[str]]] = {}
    for target, emoji, name in found:
        by_target.setdefault(target, {}).setdefault(emoji, []).append(name)
    if not by_target:
        return messages
    order = {emoji: i for i, emoji in enumerate(REACTIONS)}
    out = []
    for m in messages:
        names = by_target.get(m.seq) if m.kind is EventKind.MESSAGE else None
        if names:
            emojis = sorted(names, key=lambda e: (order.get(e, len(order)), e))
            m = replace(m, reactions=tuple((e, tuple(names[e])) for e in emojis))
        out.append(m)
    return out


def search_words(query: str) -> list[str]:
    """The words of a user's query (at most :data:`MAX_WORDS`); none: nothing to search."""
    return _WORD.findall(query)[:MAX_WORDS]


def fts5_query(words: list[str]) -> str:
    """Every word as an FTS5 string (all must match): quoted, so it is never syntax."""
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)
