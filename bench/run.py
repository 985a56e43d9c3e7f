"""The benchmark suite behind ``make bench``: our server and both baselines, in one run.

    .venv/bin/python bench/run.py               # the whole suite -> bench/results.md
    .venv/bin/python bench/run.py --quick       # every scenario, shortened: a smoke test of the harness
    .venv/bin/python bench/run.py --only burst --servers ours,naive
    .venv/bin/python bench/run.py --only redis  # ours alone, with Redis, and 2 workers with Redis
    .venv/bin/python bench/run.py --only joinstorm  # 50,000 sockets join 500 rooms over 3 workers + Redis
    .venv/bin/python bench/run.py --only search  # search latency over 1,000,000 messages, SQLite and PostgreSQL
    .venv/bin/python bench/run.py --render bench/out/<time>-runs.json  # rewrite results.md, run nothing

The suite itself is the package beside this file, bench/suite/ (its ``__init__`` maps the modules);
bench/README.md explains what it measures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The search scenario drives the history stores in this process: the repository's `chat` package too.
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from suite.cli import main

if __name__ == "__main__":
    sys.exit(main())
