"""The ``chat-server`` command (also ``python server.py``): parse the options, log, serve.

``server.py users ...`` and ``server.py tokens ...`` manage accounts and
tokens in the server's database instead (:func:`manage`), and exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import IO, Any, cast

from chat.backends.base import Directory, HistoryStore, SchemaTooNew, StoreUnavailable
from chat.core.accounts import AccountError, Accounts, NoSockets
from chat.core.errors import ErrorCode
from chat.core.model import Account
from chat.core.passwords import Passwords
from chat.core.throttle import Throttle
from chat.server.options import Settings, parse_settings
from chat.server.serve import EXIT_REFUSED, refuse, serve
from chat.server.supervise import supervise

COMMANDS = ("users", "tokens")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in COMMANDS:
        return manage(args, os.environ)
    settings = parse_settings(argv, os.environ)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s"
        + ("[%(process)d]" if settings.workers > 1 else "")
        + ": %(message)s",
    )
    if settings.workers > 1:
        return supervise(settings)  # its workers refuse a database too new themselves
    try:
        asyncio.run(serve(settings))
    except SchemaTooNew as exc:
        return refuse(exc)
    return 0


def manage_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        default=environ.get("CHAT_DB", Settings().db),
        help="the server's database, as its --db [CHAT_DB; default %(default)s]",
    )
    common.add_argument(
        "--redis",
        default=environ.get("CHAT_REDIS"),
        help="the running servers' Redis: their sockets of ended sessions close at once [CHAT_REDIS]",
    )
    parser = argparse.ArgumentParser(prog="server.py", description="Manage accounts and tokens, then exit.")
    kinds = parser.add_subparsers(dest="kind", required=True)

    users = kinds.add_parser("users", help="accounts").add_subparsers(dest="action", required=True)
    add = users.add_parser("add", parents=[common], help="make an account (any --registration)")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="a site admin (the first account is one anyway)")
    add.add_argument("--password-stdin", action="store_true", required=True, help="read the password from stdin")
    users.add_parser("list", parents=[common], help="every account: id, name, admin, disabled")
    for action, text in (("disable", "refuse its sign-ins and tokens, end its sessions"), ("enable", "undo disable")):
        users.add_parser(action, parents=[common], help=text).add_argument("name")

    tokens = kinds.add_parser("tokens", help="tokens for scripts").add_subparsers(dest="action", required=True)
    create = tokens.add_parser("create", parents=[common], help="print a new token (shown this once)")
    create.add_argument("name")
    create.add_argument("--label", required=True, help="what the token is for, 1 to 64 characters")
    tokens.add_parser("list", parents=[common], help="the account's tokens").add_argument("name")
    revoke = tokens.add_parser("revoke", parents=[common], help="revoke a token by its id")
    revoke.add_argument("name")
    revoke.add_argument("id", type=int)
    return parser


def manage(
    argv: Sequence[str],
    environ: Mapping[str, str],
    *,
    directory: Directory | None = None,
    passwords: Passwords | None = None,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
) -> int:
    """Run one ``users``/``tokens`` command; the exit status. Only a new token
    goes to stdout for ``tokens create``; messages go to stderr.
    ``directory`` and ``passwords``: tests pass their own."""
    args = manage_parser(environ).parse_args(argv)
    out = stdout if stdout is not None else sys.stdout
    password = None
    if args.kind == "users" and args.action == "add":
        password = (stdin if stdin is not None else sys.stdin).readline().rstrip("\r\n")
    try:
        return asyncio.run(_manage(args, password, out, directory, passwords))
    except SchemaTooNew as exc:
        refuse(exc)
        return EXIT_REFUSED
    except AccountError as exc:
        print(f"server.py: {exc.message}", file=sys.stderr)
        return 1
    except StoreUnavailable as exc:
        print(f"server.py: the database cannot answer: {exc}", file=sys.stderr)
        return 1


async def _manage(
    args: argparse.Namespace,
    password: str | None,
    out: IO[str],
    directory: Directory | None,
    passwords: Passwords | None,
) -> int:
    store: HistoryStore | None = None
    if directory is None:
        from chat.backends.factory import shared_store

        store = cast(HistoryStore, shared_store(args.db))
        directory = store.directory()
    sockets = ControlSockets() if args.redis else NoSockets()
    accounts = Accounts(directory, passwords or Passwords(), Throttle(), sockets)
    try:
        status = await _run(accounts, args, password, out)
        if isinstance(sockets, ControlSockets):
            await sockets.publish(args.redis)
        return status
    finally:
        if store is not None:
            await store.close()


async def _run(accounts: Accounts, args: argparse.Namespace, password: str | None, out: IO[str]) -> int:
    def say(text: str) -> None:
        print(text, file=sys.stderr)

    if args.kind == "users":
        if args.action == "add":
            account = await accounts.add_user(args.name, password or "", admin=args.admin)
            say(f"added {account.name}" + (" (admin)" if account.admin else ""))
        elif args.action == "list":
            for a in await accounts.list_accounts():
                flags = " ".join(f for f, on in (("admin", a.admin), ("disabled", a.disabled)) if on)
                print(f"{a.id}\t{a.name}\t{flags}".rstrip(), file=out)
        else:
            account = await accounts.set_disabled(args.name, args.action == "disable")
            say(f"{account.name} is {'disabled' if account.disabled else 'enabled'}")
        return 0
    account = await _account(accounts, args.name)
    if args.action == "create":
        token, info = await accounts.create_token(account, args.label)
        print(token, file=out)
        say(f"token {info.id} for {account.name}: keep it now, it is not shown again")
    elif args.action == "list":
        for t in await accounts.tokens(account):
            state = "revoked" if t.revoked is not None else "active"
            print(f"{t.id}\t{t.label}\t{state}\tcreated {t.created}\tlast used {t.last_used or '-'}", file=out)
    else:
        await accounts.revoke_token(account, args.id)
        say(f"token {args.id} of {account.name} is revoked")
    return 0


async def _account(accounts: Accounts, name: str) -> Account:
    found = await accounts.directory.account_by_name(name)
    if found is None:
        raise AccountError(ErrorCode.NOT_FOUND, "no such account")
    return found[0]


class ControlSockets:
    """Ends sessions on running servers through Redis's control channel, as a
    server's own broker does (chat.backends.redis.subscription): every process
    subscribed there closes the sockets. Without --redis nothing reaches them:
    the sessions end in the database, and their sockets close when they reconnect."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def end_sessions(self, keys: list[str]) -> None:
        if keys:
            self.events.append({"t": "end", "sessions": keys})

    def account_disabled(self, account_id: int) -> None:
        self.events.append({"t": "disable", "account": account_id})

    def account_created(self, name: str) -> None:
        self.events.append({"t": "name", "name": name})

    async def publish(self, url: str) -> None:
        if not self.events:
            return
        from chat.backends.redis import keys
        from chat.backends.redis.connection import connect
        from chat.backends.redis.subscription import CONTROL_PREFIX

        client = connect(url)
        origin = f"cli-{uuid.uuid4().hex}"  # no server's own: every one of them acts on it
        try:
            for event in self.events:
                wrapped = json.dumps({"origin": origin, "event": event}, separators=(",", ":"))
                await client.publish(keys.CTL, CONTROL_PREFIX + wrapped)
        finally:
            await client.aclose()


if __name__ == "__main__":
    sys.exit(main())
