"""``chat.client.cli.main(argv)``, the ``chat-client`` command, called in-process."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from chat.client.cli import EXIT_UNREACHABLE, build_parser, main, parse_args


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


@pytest.mark.parametrize("token", ["-dashfirst.0123abcd", "--dashes.0123abcd", "-v", "--help"])
def test_an_option_value_that_starts_with_a_dash_is_the_value(token: str) -> None:
    # Session tokens are base64url: one in 64 starts with "-", which plain
    # argparse took for an option ("expected one argument", exit 2).
    parser = build_parser()
    for argv in (["--session", token], ["--sess", token], [f"--session={token}"]):
        args = parse_args(parser, ["ws://127.0.0.1:1/ws", "--name", "bot", "--room", "lobby", *argv])
        assert args.session == token, argv


def test_texts_and_names_that_start_with_a_dash_are_taken_as_given() -> None:
    args = parse_args(build_parser(), ["--name", "-bot", "--room", "-ops", "--send", "--help me", "--", "--url--"])
    assert (args.name, args.room, args.send, args.url) == ("-bot", "-ops", "--help me", "--url--")


def test_an_ambiguous_or_missing_value_is_still_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in (
        (["--s", "-x"], "ambiguous option"),  # --session, --send or --since
        (["--session"], "expected one argument"),
        (["--session", "--"], "expected one argument"),
    ):
        with pytest.raises(SystemExit) as exited:
            parse_args(build_parser(), ["ws://127.0.0.1:1/ws", "--name", "bot", "--room", "lobby", *argv])
        assert exited.value.code == 2
        assert message in capsys.readouterr().err
