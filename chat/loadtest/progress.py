"""The live progress line on stderr: rewritten in place on a terminal, a line every few seconds otherwise."""

from __future__ import annotations

import time
from typing import TextIO

# A log file or CI output gets a line this often, not one a second.
PLAIN_EVERY_S = 5.0


def format_line(
    elapsed_s: float,
    phase: str,
    open_: int,
    sent: int,
    received: int,
    errors: int,
    p50: float | None,
    p99: float | None,
) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}ms"

    return (
        f"[{elapsed_s:5.1f}s {phase}] connected {open_}  sent {sent}  received {received}"
        f"  errors {errors}  p50 {ms(p50)}  p99 {ms(p99)}"
    )


class Progress:
    def __init__(self, stream: TextIO, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self._last_plain = 0.0
        self._width = 0

    def show(self, line: str) -> None:
        if self.quiet:
            return
        if self.tty:
            padding = " " * max(self._width - len(line), 0)
            self._width = len(line)
            self.stream.write("\r" + line + padding)
            self.stream.flush()
        else:
            now = time.monotonic()
            if now - self._last_plain >= PLAIN_EVERY_S:
                self._last_plain = now
                self.stream.write(line + "\n")
                self.stream.flush()

    def done(self) -> None:
        """End the rewritten line, so that what follows starts on its own."""
        if self.tty and self._width and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
