"""chat.server.options: the generated cookie secret."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat.server.options import Settings, cookie_secret


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that takes no permission away: only the mode the code asks for counts."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_the_generated_secret_is_never_readable_by_others(tmp_path, monkeypatch):
    # No chmod can narrow the mode afterwards: the file must be 0600 from the
    # moment it exists, or another user could read the secret in between.
    def no_chmod(*args: object, **kwargs: object) -> None:
        pass

    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(os, "fchmod", no_chmod)
    monkeypatch.setattr(Path, "chmod", no_chmod)
    settings = Settings(db=str(tmp_path / "data" / "chat.sqlite3"))
    secret = cookie_secret(settings)
    path = tmp_path / "data" / "cookie_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == secret + "\n"
    assert len(secret) >= 40  # 32 random bytes
    assert sorted(p.name for p in path.parent.iterdir()) == ["cookie_secret"]  # no temporary file left


def test_the_secret_is_generated_once_and_then_read(tmp_path):
    settings = Settings(db=str(tmp_path / "chat.sqlite3"))
    first = cookie_secret(settings)
    assert cookie_secret(settings) == first
    assert cookie_secret(Settings(db=str(tmp_path / "chat.sqlite3"), cookie_secret="given")) == "given"


def test_a_secret_another_process_wrote_first_wins(tmp_path, monkeypatch):
    # Two servers started at once on one data folder must sign alike.
    real_link = os.link

    def raced(src: str, dst: str) -> None:
        Path(dst).write_text("theirs\n")  # the other process got there first
        real_link(src, dst)

    monkeypatch.setattr(os, "link", raced)
    assert cookie_secret(Settings(db=str(tmp_path / "chat.sqlite3"))) == "theirs"
    assert (tmp_path / "cookie_secret").read_text() == "theirs\n"
