"""The command line: ``python -m chat.client`` (the ``chat-client`` command).

Interactive by default; ``--send`` sends one message and exits once it is
stored (``--edit``, ``--delete`` and ``--react`` likewise change one), ``--tail``
prints every new event of the room (messages, edits, deletions, reactions, our
read marker) as a JSON line. With ``--token``
(or ``$CHAT_TOKEN``) it signs in as the token's account; without, ``--name``
chats as a guest, whose session token is kept between runs (see
:mod:`chat.client.sessions`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TextIO

from chat.client.client import ChatClient, Frame
from chat.client.errors import ChatError, ChatRefused
from chat.client.rooms import ROOM_EVENTS
from chat.client.sessions import load_session, save_session, session_file
from chat.client.transport import ws_url
from chat.core.model import REACTIONS

EXIT_OK = 0
EXIT_UNREACHABLE = 1  # could not connect, or timed out
EXIT_REFUSED = 2  # the server answered with an error (also argparse's usage errors)
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chat.client",
        description="Chat from the command line. Interactive by default: each line of "
        "standard input is sent, messages are printed as '[HH:MM] name: text'.",
        epilog="Exit status: 0 done, 1 server unreachable or timed out, 2 refused by the "
        "server (its error is printed on stderr), 130 interrupted.",
    )
    parser.add_argument("url", help="the server, e.g. ws://127.0.0.1:8888/ws (http://host:port works too)")
    parser.add_argument("--name", help="your name in the chat, as a guest (not needed with a token)")
    parser.add_argument(
        "--token",
        help="an account's token for scripts (python server.py tokens create NAME --label L, or the page's "
        "'Tokens for scripts'): the account's name is used. Default: $CHAT_TOKEN, which is safer (a command "
        "line can be read by other users of the machine); --token '' ignores it",
    )
    parser.add_argument("--room", required=True, help="the room to join")
    parser.add_argument(
        "--session",
        help="a guest's session token to resume (keeps your name reserved); by default the token of the last run "
        "with this name and server, kept under $XDG_CONFIG_HOME/chat/sessions/ (~/.config/chat/sessions/)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--send", metavar="TEXT", help="send one message, exit 0 once the server stored it")
    mode.add_argument(
        "--tail",
        action="store_true",
        help="print every new event of the room (message, edit, delete, reaction, read) as a JSON line until "
        "interrupted",
    )
    mode.add_argument("--edit", type=int, metavar="SEQ", help="replace the text of your message SEQ with --text")
    mode.add_argument("--delete", type=int, metavar="SEQ", help="delete message SEQ (yours; a moderator: anyone's)")
    mode.add_argument("--react", type=int, metavar="SEQ", help="toggle your --emoji reaction on message SEQ")
    parser.add_argument("--text", help="with --edit: the new text")
    parser.add_argument("--emoji", help=f"with --react: one of {' '.join(REACTIONS)}")
    parser.add_argument("--since", type=int, metavar="SEQ", help="with --tail: start after this seq instead of now")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="with --send, --edit, --delete, --react: seconds to wait for the acknowledgement (default 30)",
    )
    parser.add_argument("--cafile", help="trust the CA certificates in this PEM file (for wss:// with your own CA)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log connection changes on stderr")
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args`` with the value of an option that takes one taken as is,
    as getopt does: ``--session -Xy.z`` is the token ``-Xy.z``.

    Plain argparse reads a value that starts with "-" as the next option and
    exits 2 ("expected one argument"). Session tokens are base64url, so one in
    64 starts with "-": ``--session TOKEN`` failed for them, as did
    ``--send -text``. Each such pair is glued into ``--option=value`` first."""
    args = list(sys.argv[1:] if argv is None else argv)
    takes_value = {o for a in parser._actions if a.nargs is None for o in a.option_strings if o.startswith("--")}
    long_options = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
    glued: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":  # everything after it is positional already
            glued.extend(args[i:])
            break
        # An abbreviation (--sess) counts when argparse would accept it: one option starts so.
        matches = [arg] if arg in long_options else [o for o in long_options if o.startswith(arg)]
        # Not a value of "--": argparse (3.11) drops it from "--option=--".
        value = args[i + 1] if i + 1 < len(args) else "--"
        if arg.startswith("--") and len(matches) == 1 and matches[0] in takes_value and value != "--":
            glued.append(f"{matches[0]}={value}")
            i += 2
            continue
        glued.append(arg)
        i += 1
    return parser.parse_args(glued)


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """Settle who we are: ``args.token`` becomes the token to use (the flag wins
    over ``$CHAT_TOKEN``; empty means none), or None for a guest. Exits 2 (usage)
    when neither a token nor a name is given."""
    if args.since is not None and not args.tail:
        parser.error("--since goes with --tail")
    if (args.text is not None) != (args.edit is not None):
        parser.error("--edit SEQ and --text go together")
    if (args.emoji is not None) != (args.react is not None):
        parser.error("--react SEQ and --emoji go together")
    try:
        ws_url(args.url)
    except ValueError as exc:
        parser.error(str(exc))
    args.token = (args.token if args.token is not None else environ.get("CHAT_TOKEN", "")) or None
    if args.token is None and not args.name:
        parser.error("--name is needed to chat as a guest; an account signs in with --token or $CHAT_TOKEN")
    if args.token is not None and args.session is not None:
        parser.error("--session resumes a guest; with a token the account is the identity")


def format_message(message: Frame) -> str:
    stamp = time.strftime("%H:%M", time.localtime(message.get("ts", 0) / 1000))
    return f"[{stamp}] {message.get('name')}: {message.get('text')}"


def _print(line: str, stream: TextIO) -> None:
    print(line, file=stream, flush=True)


async def _send_once(client: ChatClient, args: argparse.Namespace) -> None:
    """One change (``--send``, ``--edit``, ``--delete``, ``--react``): print the stored event."""
    room = args.room
    await client.join(room)
    if args.send is not None:
        event = await client.say(room, args.send)
    elif args.edit is not None:
        event = await client.edit(room, args.edit, args.text)
    elif args.delete is not None:
        event = await client.delete(room, args.delete)
    else:
        event = await client.react(room, args.react, args.emoji)
    _print(json.dumps(event, ensure_ascii=False), sys.stdout)


# What --tail prints: the room's event log, and our read marker there (set on another device).
TAILED = ROOM_EVENTS | {"read"}


def format_event(event: Frame) -> str | None:
    """An interactive line for a change to a message (None: not such a change)."""
    kind, name, target = event.get("type"), event.get("name"), event.get("target")
    if kind == "edit":
        return f"* {name} edited #{target}: {event.get('text')}"
    if kind == "delete":
        return f"* {name} deleted #{target}"
    if kind == "reaction":
        return f"* {name} {'reacted' if event.get('on') else 'took back'} {event.get('emoji')} on #{target}"
    return None


def presence_lines(event: Frame) -> list[str]:
    """The lines for a ``presence`` frame: a busy room's changes come together as ``changes`` (docs/protocol.md)."""
    changes = event.get("changes")
    return [
        f"* {change.get('name')} {change.get('event')}s {event.get('room')}"
        for change in (changes if isinstance(changes, list) else [event])
        if isinstance(change, dict)
    ]


# What a ``removed`` frame's reason says to the user.
REMOVALS = {"removed": "you were removed from", "banned": "you were banned from", "left": "you left"}


def removal(event: Frame, room: str) -> ChatError | None:
    """The error that ends a run in ``room`` (the joined room's id) when ``event`` takes us out of it."""
    if event.get("type") != "removed" or event.get("room") != room:
        return None
    reason = str(event.get("reason") or "removed")
    return ChatError(reason, f"{REMOVALS.get(reason, 'you are no longer in')} {room}")


async def _tail(client: ChatClient, room: str, since: int | None) -> None:
    joined = await client.join(room, since=since)
    async for event in client:
        if event.get("type") in TAILED and event.get("room") == joined["room"]:
            _print(json.dumps(event, ensure_ascii=False), sys.stdout)
        elif (error := removal(event, joined["room"])) is not None:
            raise error  # nothing more will come from the room


def _read_lines(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    """Runs in a daemon thread: a blocking read works for ttys, pipes and files
    alike, and a daemon thread does not keep the process alive after Ctrl-C."""
    try:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n"))
        loop.call_soon_threadsafe(lines.put_nowait, None)
    except RuntimeError:
        return  # the loop closed first: the program is exiting


async def _interactive(client: ChatClient, room: str) -> None:
    joined = await client.join(room)
    for message in joined.get("history", []):
        _print(format_message(message), sys.stdout)
    where = joined.get("title") or joined["room"]
    _print(f"* {client.name} in {where} with {', '.join(joined.get('members', []))}", sys.stderr)

    async def show() -> None:
        welcomes = 0
        async for event in client:
            kind = event.get("type")
            if kind == "message":
                _print(format_message(event), sys.stdout)
            elif (line := format_event(event)) is not None:
                _print(line, sys.stdout)
            elif kind == "presence":
                for line in presence_lines(event):
                    _print(line, sys.stderr)
            elif kind == "welcome":
                welcomes += 1
                if welcomes > 1:
                    _print("* reconnected", sys.stderr)
            elif kind == "error":
                _print(f"error: {event.get('code')}: {event.get('message')}", sys.stderr)
            elif kind == "invited":
                invited = event.get("room") or {}
                _print(f"* you were added to {invited.get('title') or invited.get('room')}", sys.stderr)
            elif (error := removal(event, joined["room"])) is not None:
                raise error

    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_read_lines, args=(asyncio.get_running_loop(), lines), daemon=True).start()
    printer = asyncio.create_task(show())
    try:
        while True:
            # The printer ends the run too (refused, removed from the room), not only the end of input.
            reading = asyncio.ensure_future(lines.get())
            await asyncio.wait({reading, printer}, return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                reading.cancel()
                break
            line = reading.result()
            if line is None:
                break
            if not line.strip():
                continue
            try:
                await client.say(room, line)
            except ChatRefused:
                raise
            except ChatError as exc:
                _print(f"error: {exc.code}: {exc.message}", sys.stderr)
            if printer.done():
                break
    finally:
        if printer.done():
            printer.result()  # raises ChatRefused if the server refused us
        else:
            await client.close()
            await printer


async def run_cli(args: argparse.Namespace) -> int:
    """Run the command ``args`` asks for (as settled by :func:`check_args`); the exit status."""
    # A guest keeps its session between runs, or the next run finds its own name
    # held; an account needs no such thing (its token is its identity).
    path = session_file(args.url, args.name) if args.token is None else None
    kept = load_session(path) if path is not None else None
    if args.token is not None:
        client = ChatClient(args.url, token=args.token, cafile=args.cafile)
    else:
        # An explicit --session wins over the file (and replaces it once welcomed).
        client = ChatClient(args.url, args.name, session=args.session or kept, cafile=args.cafile)
    try:
        async with client:
            # Kept as soon as we are welcomed: a send the server then refuses
            # (too long, say) still leaves the session for the next run.
            if path is not None and client.session is not None and client.session != kept:
                save_session(path, args.url, args.name, client.session)
            if args.send is not None or args.edit is not None or args.delete is not None or args.react is not None:
                await asyncio.wait_for(_send_once(client, args), args.timeout)
            elif args.tail:
                await _tail(client, args.room, args.since)
            else:
                await _interactive(client, args.room)
    except ChatError as exc:
        _print(f"error: {exc.code}: {exc.message}", sys.stderr)
        return EXIT_REFUSED
    except TimeoutError:
        _print(f"error: no acknowledgement within {args.timeout:g}s", sys.stderr)
        return EXIT_UNREACHABLE
    except OSError as exc:
        _print(f"error: cannot reach {args.url}: {exc}", sys.stderr)
        return EXIT_UNREACHABLE
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    check_args(parser, args, os.environ)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        # asyncio.run turns Ctrl-C into a cancellation of run_cli, so the
        # client closes its socket cleanly before KeyboardInterrupt reaches here.
        return asyncio.run(run_cli(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of --tail went away (e.g. `| head`): a normal end. Point
        # stdout at /dev/null so the interpreter's final flush doesn't fail again.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
