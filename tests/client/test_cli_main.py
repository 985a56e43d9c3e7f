"""``chat.client.cli.main(argv)``, the ``chat-client`` command, called in-process."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from chat.client.cli import EXIT_UNREACHABLE, main


def _closed_port() -> int:
    # A port nothing listens on: bound, then released.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_main_returns_unreachable_when_no_server_listens(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    url = f"ws://127.0.0.1:{_closed_port()}/ws"

    status = main([url, "--name", "bot", "--room", "lobby", "--send", "hi", "--timeout", "5"])

    assert status == EXIT_UNREACHABLE
    assert f"error: cannot reach {url}" in capsys.readouterr().err


def test_main_rejects_since_without_tail_as_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["ws://127.0.0.1:1/ws", "--name", "bot", "--room", "lobby", "--since", "3"])

    assert exited.value.code == 2
    assert "--since goes with --tail" in capsys.readouterr().err
