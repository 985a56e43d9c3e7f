"""The benchmark harness's package, bench/suite/, imports as ``suite``: ``bench/run.py`` runs as a script,
so Python puts bench/ first on its path, and mypy names the package that way too. The tests do the same."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = str(Path(__file__).resolve().parents[2] / "bench")
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)
