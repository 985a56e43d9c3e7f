"""The page's pure modules (static/sync.js, static/pending.js) under ``node --test``.

The tests themselves are in tests/js/: the order of says on every retry path
and the outbox kept in storage across a reload, with a fake connection and
fake timers, so they run in well under a second.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")
# Generous for a shared machine; the tests take well under a second.
NODE_TIMEOUT_S = 120


@pytest.mark.skipif(NODE is None, reason="node is missing: the page's unit tests need Node.js 20 or newer")
def test_page_unit_tests_pass_under_node() -> None:
    assert NODE is not None
    files = sorted(str(path) for path in (ROOT / "tests" / "js").glob("*.test.mjs"))
    assert files, "no tests/js/*.test.mjs found"
    result = subprocess.run(
        [NODE, "--test", *files], cwd=ROOT, capture_output=True, text=True, timeout=NODE_TIMEOUT_S, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout
