"""The search scenario's history: a year of chat in many rooms, drawn from a seed, and the queries run on it.

Words are made up (syllables, so the tokenizers of both engines see ordinary lowercase words) and drawn
by rank from a Zipf law, as words of natural language are: the most common word is in most messages,
a word of rank 10,000 in a few dozen of a million. Every message of the rooms the user reads is counted
by word here, so each query's hits are known before the store is asked, and its answers are checked.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Iterator

import numpy as np

from .params import SearchBench

SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"] + ["ch" + v for v in "aeiou"]
# (room, seq, name, text, ts, session, ref, guest): a row of schema version 3's ``messages``.
Row = tuple[str, int, str, str, int, str, str | None, bool]
# The first message's time: 2025-12-01 00:00 UTC, a year before the suite's runs.
T0_MS = 1_764_547_200_000
DAY_MS = 86_400_000
CHUNK = 50_000
SENDERS = 5000


def vocabulary(size: int, seed: int) -> list[str]:
    """``size`` distinct made-up words of 1-4 syllables; index 0 is rank 1."""
    rng = random.Random(seed)
    words: dict[str, None] = {}
    while len(words) < size:
        words["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4)))] = None
    return list(words)


def zipf_weights(n: int, exponent: float) -> np.ndarray:
    weights: np.ndarray = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    normalized: np.ndarray = weights / weights.sum()
    return normalized


def message_share(params: SearchBench, rank: int) -> float:
    """The share of messages that hold the word of ``rank`` (1 is the commonest), by the law they are drawn by."""
    p = float(zipf_weights(params.vocabulary, params.zipf)[rank - 1])
    lengths = range(params.words_min, params.words_max + 1)
    return sum(1 - (1 - p) ** n for n in lengths) / len(lengths)


def room_name(i: int) -> str:
    return f"room-{i:04d}"


@dataclasses.dataclass
class Corpus:
    """The history the scenario stores, its rows made in chunks from ``params.seed`` (the same every time)."""

    params: SearchBench
    words: list[str] = dataclasses.field(init=False)
    readable: list[str] = dataclasses.field(init=False)
    # Per word, the messages of the readable rooms that contain it (once per message).
    counts: Counter[str] = dataclasses.field(init=False, default_factory=Counter)
    readable_messages: int = 0
    last_ts: int = 0

    def __post_init__(self) -> None:
        p = self.params
        self.words = vocabulary(p.vocabulary, p.seed)
        rng = random.Random(p.seed + 1)
        # Rooms are ranked by how busy they are; the user reads a sample of them, busy and quiet alike.
        self.readable = sorted(room_name(i) for i in rng.sample(range(p.rooms), min(p.readable, p.rooms)))

    def rows(self) -> Iterator[list[Row]]:
        """Every message in time order, ``CHUNK`` at a time; counts the readable rooms' words as it goes."""
        p = self.params
        rng = np.random.default_rng(p.seed)
        word_p = zipf_weights(p.vocabulary, p.zipf)
        room_p = zipf_weights(p.rooms, p.room_zipf)
        step_ms = p.span_days * DAY_MS / p.messages
        seqs = [0] * p.rooms
        readable = {int(r.split("-")[1]) for r in self.readable}
        self.counts.clear()
        self.readable_messages = 0
        done = 0
        while done < p.messages:
            n = min(CHUNK, p.messages - done)
            # Plain lists: indexing a list with numpy integers is several times slower.
            rooms: list[int] = rng.choice(p.rooms, size=n, p=room_p).tolist()
            lengths: list[int] = rng.integers(p.words_min, p.words_max + 1, size=n).tolist()
            tokens: list[int] = rng.choice(p.vocabulary, size=sum(lengths), p=word_p).tolist()
            senders: list[int] = rng.integers(0, SENDERS, size=n).tolist()
            chunk: list[Row] = []
            at = 0
            for i in range(n):
                room, length = rooms[i], lengths[i]
                text_words = [self.words[t] for t in tokens[at : at + length]]
                at += length
                seqs[room] += 1
                if room in readable:
                    self.readable_messages += 1
                    self.counts.update(set(text_words))
                sender = senders[i]
                ts = T0_MS + int((done + i) * step_ms)
                # A fifth of the senders are guests (nicknames), the rest accounts.
                chunk.append((room_name(room), seqs[room], f"user{sender}", " ".join(text_words), ts, f"s{sender}",
                              None, sender % 5 == 0))  # fmt: skip
                self.last_ts = ts
            done += n
            yield chunk

    def queries(self) -> list[tuple[str, str, int]]:
        """(band, word, rank): ``queries`` words drawn from each band of ranks, shuffled together so a run
        cut short by its time budget still has every band."""
        p = self.params
        rng = random.Random(p.seed + 2)
        chosen: list[tuple[str, str, int]] = []
        for first, last in p.bands:
            last = min(last, p.vocabulary)
            ranks = rng.sample(range(first, last + 1), min(p.queries, last - first + 1))
            chosen += [(band_label(first, last), self.words[r - 1], r) for r in ranks]
        rng.shuffle(chosen)
        return chosen


def band_label(first: int, last: int) -> str:
    return f"ranks {first:,}-{last:,}"
