"""A partial run (``--only``) rewrites the sections of the results file whose scenarios all ran, and keeps
the others' text."""

from __future__ import annotations

from collections.abc import Iterable

PARTIAL_NOTE = "A partial run"


def split_sections(text: str) -> tuple[str, dict[str, str]]:
    """A markdown file cut at its ``## `` headings: (what precedes the first, {heading: what follows it})."""
    preamble: list[str] = []
    sections: dict[str, list[str]] = {}
    current = preamble
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        else:
            current.append(line)
    return "".join(preamble), {heading: "".join(body) for heading, body in sections.items()}


def merge_partial(old: str, new: str, fresh: Iterable[str], note: str) -> str:
    """``new``'s sections in ``new``'s order: those headed ``fresh`` (or missing from ``old``) from ``new``,
    the others as ``old`` has them; ``old``'s preamble, with ``note`` in place of an earlier note of a
    partial run of the same scenarios (the note's text up to " on ")."""
    old_preamble, old_sections = split_sections(old)
    _, new_sections = split_sections(new)
    fresh = set(fresh)
    same = note.split(" on ", 1)[0] + " on "
    kept = [line for line in old_preamble.rstrip("\n").split("\n\n") if not line.startswith(same)]
    parts = ["\n\n".join([*kept, note]) + "\n\n"]
    for heading, body in new_sections.items():
        use_old = heading not in fresh and heading in old_sections
        parts.append(f"## {heading}\n" + (old_sections[heading] if use_old else body))
    return "".join(parts)
