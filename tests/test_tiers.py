"""The tiers are honest: a test not marked as leaving this process cannot start one (tests/conftest.py).

(asyncio's subprocesses start through subprocess.Popen, the first case.)
"""

from __future__ import annotations

import multiprocessing
import subprocess

import pytest


def test_an_unmarked_test_cannot_run_a_command() -> None:
    with pytest.raises(AssertionError, match=r"test_an_unmarked_test_cannot_run_a_command starts a process"):
        subprocess.run(["true"], check=False)


def test_an_unmarked_test_cannot_start_a_worker_process() -> None:
    process = multiprocessing.get_context("spawn").Process(target=print)
    with pytest.raises(AssertionError, match="mark it"):
        process.start()


@pytest.mark.subprocess
def test_a_test_marked_subprocess_may() -> None:
    assert subprocess.run(["true"], check=False).returncode == 0
