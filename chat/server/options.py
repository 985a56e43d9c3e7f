"""Server options: command-line flags, each also read from ``CHAT_<NAME>`` (the flag wins)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from chat.core import limits


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8888
    db: str = "data/chat.sqlite3"
    history_on_join: int = limits.HISTORY_ON_JOIN
    max_message_chars: int = limits.MAX_MESSAGE_CHARS
    max_frame_bytes: int = 65536
    rate: float = limits.RATE
    max_rooms_per_connection: int = limits.MAX_ROOMS_PER_CONNECTION
    allow_origin: tuple[str, ...] = ()
    cookie_secret: str | None = None
    # Pings find dead peers (a laptop that slept, a NAT that forgot us); 20 s
    # stays under the idle timeouts of common proxies and NATs.
    ping_interval: float = 20.0
    max_backlog_bytes: int = limits.MAX_BACKLOG_BYTES
    compress: bool = False
    max_connections: int = 100_000
    max_connections_per_ip: int = 1000
    # A client gets this long to send its request headers: slowloris clients
    # that trickle headers to hold sockets open are cut off.
    handshake_timeout: float = 10.0
    # Browsers send a few KB of headers; 16 KiB leaves room for big cookies.
    max_header_bytes: int = 16 * 1024
    certfile: str | None = None
    keyfile: str | None = None
    # redis://HOST:PORT/DB: fan-out and presence shared by every process
    # pointed at it (the history is in --db). None: one process, no broker.
    redis: str | None = None
    workers: int = 1
    # Retired with Redis history (issue 11): 0 means not given; any other value is refused.
    history_max: int = 0
    presence_ttl: float = 15.0
    # Messages older than this many days are deleted in the background; None keeps everything.
    retention_days: float | None = None

    @property
    def tls(self) -> bool:
        return bool(self.certfile)

    log_level: str = "info"
    # Who may make an account: open (anyone), invite (an admin's single-use
    # link; the first account needs none) or closed (`server.py users add` only).
    registration: str = "open"
    # Guests: chat under a nickname without an account (and read public rooms
    # over HTTP without credentials). --no-guests leaves accounts only.
    guests: bool = True

    @property
    def burst(self) -> float:
        # A multiple of the rate: room for a paste of lines or a reconnect's rejoins.
        return self.rate * limits.BURST_PER_RATE


_OPTIONS: list[tuple[str, type, str]] = [
    ("host", str, "address to listen on"),
    ("port", int, "port to listen on"),
    (
        "db",
        str,
        "history: a SQLite file (':memory:' keeps nothing) or postgresql://USER@HOST:PORT/DB, shared by many processes",
    ),
    ("history_on_join", int, "messages sent with 'joined'"),
    ("max_message_chars", int, "longest message text, in characters"),
    ("max_frame_bytes", int, "largest client frame; bigger ones close the socket with 1009"),
    ("rate", float, "frames per second per connection (burst: twice that); 0 disables"),
    ("max_rooms_per_connection", int, "rooms one connection may join"),
    ("cookie_secret", str, "secret that signs cookies and session tokens (default: kept under data/)"),
    ("ping_interval", float, "seconds between pings that find dead peers; 0 disables"),
    ("max_backlog_bytes", int, "bytes queued for a slow member before its messages are dropped for a gap notice"),
    ("max_connections", int, "sockets the server holds in all; 0 means no cap"),
    ("max_connections_per_ip", int, "sockets one client address may hold; 0 means no cap"),
    ("handshake_timeout", float, "seconds a client has to send its request headers"),
    ("max_header_bytes", int, "largest request head; bigger requests are refused"),
    ("certfile", str, "TLS certificate chain (PEM): serve https and wss"),
    ("keyfile", str, "TLS private key (PEM), with --certfile"),
    ("redis", str, "redis://HOST:PORT/DB: fan-out and presence shared by many processes (needs a PostgreSQL --db)"),
    ("workers", int, "server processes sharing the port (more than 1 needs --redis and a PostgreSQL --db)"),
    ("history_max", int, "retired: history is kept in the --db store (see --retention-days)"),
    ("presence_ttl", float, "with --redis: seconds without a heartbeat before a process's members leave"),
    ("retention_days", float, "delete messages older than this many days, in the background (default: keep all)"),
    ("log_level", str, "debug, info, warning or error"),
    ("registration", str, "who may sign up: open, invite (an admin's single-use link) or closed (server.py users add)"),
]
REGISTRATION_MODES = ("open", "invite", "closed")
_TRUE = {"1", "true", "yes", "on"}


def parse_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    env = dict(environ or {})
    defaults = Settings()
    parser = argparse.ArgumentParser(
        # The name it was started by: server.py, or the chat-server command.
        prog=Path(sys.argv[0]).name if sys.argv and sys.argv[0].endswith("chat-server") else "server.py",
        description="Real-time chat server. Every option is also read from CHAT_<OPTION> (the flag wins).",
    )
    for name, kind, help_text in _OPTIONS:
        flag = "--" + name.replace("_", "-")
        env_name = "CHAT_" + name.upper()
        default = env.get(env_name, getattr(defaults, name))
        parser.add_argument(
            flag, type=kind, default=default, help=f"{help_text} [{env_name}; default {getattr(defaults, name)}]"
        )
    env_origins = [o for o in env.get("CHAT_ALLOW_ORIGIN", "").split(",") if o.strip()]
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=None,
        help="an Origin allowed to open sockets, repeatable"
        " [CHAT_ALLOW_ORIGIN, comma-separated; default: same origin only]",
    )
    parser.add_argument(
        "--compress",
        action="store_true",
        default=env.get("CHAT_COMPRESS", "").lower() in _TRUE,
        help="offer permessage-deflate (costs memory and CPU per socket) [CHAT_COMPRESS; default off]",
    )
    parser.add_argument(
        "--guests",
        action=argparse.BooleanOptionalAction,
        default=env.get("CHAT_GUESTS", "on").lower() in _TRUE,
        help="let people chat under a nickname without an account, and read public rooms over HTTP"
        " without credentials; --no-guests: accounts only [CHAT_GUESTS; default on]",
    )
    args = parser.parse_args(argv)
    values = {
        name: kind(getattr(args, name)) if getattr(args, name) is not None else None for name, kind, _ in _OPTIONS
    }
    origins = args.allow_origin if args.allow_origin is not None else env_origins
    settings = Settings(
        **values,  # type: ignore[arg-type]
        allow_origin=tuple(o.strip().rstrip("/").lower() for o in origins),
        compress=args.compress,
        guests=args.guests,
    )
    for name in (
        "port",
        "history_on_join",
        "max_message_chars",
        "max_frame_bytes",
        "max_rooms_per_connection",
        "max_backlog_bytes",
        "max_connections",
        "max_connections_per_ip",
        "max_header_bytes",
    ):
        if getattr(settings, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    if settings.rate < 0:
        parser.error("--rate must not be negative")
    if bool(settings.certfile) != bool(settings.keyfile):
        parser.error("--certfile and --keyfile go together")
    if settings.workers < 1:
        parser.error("--workers must be at least 1")
    if settings.history_max:
        parser.error(
            "--history-max is retired: history is no longer kept in Redis streams but in the --db"
            " store, untrimmed (--retention-days deletes old messages). To move a Redis history to"
            " PostgreSQL: python -m chat.backends.redis.export --redis URL --db postgresql://..."
            ' (docs/scaling.md, "Moving from Redis streams")'
        )
    if settings.workers > 1 and not settings.redis:
        parser.error(
            "--workers needs --redis: each process keeps its own rooms, so without a shared"
            " backplane members on different workers would not see each other"
        )
    if settings.redis and not settings.redis.startswith(("redis://", "rediss://", "unix://")):
        parser.error("--redis takes a URL: redis://HOST:PORT/DB, rediss://... or unix://PATH")
    if (settings.redis or settings.workers > 1) and not settings.db.startswith(("postgresql://", "postgres://")):
        flag = "--workers" if settings.workers > 1 else "--redis"
        parser.error(
            f"{flag} needs a PostgreSQL --db (postgresql://USER@HOST:PORT/DB): the history must be"
            " shared by every process, and a SQLite file belongs to one process"
        )
    if settings.retention_days is not None and settings.retention_days <= 0:
        parser.error("--retention-days must be positive (leave it out to keep everything)")
    if settings.registration not in REGISTRATION_MODES:
        parser.error("--registration is open, invite or closed")
    if settings.presence_ttl <= 0:
        parser.error("--presence-ttl must be positive")
    return settings


def cookie_secret(settings: Settings) -> str:
    """The configured secret, or one generated once and kept beside the database."""
    if settings.cookie_secret:
        return settings.cookie_secret
    on_disk = settings.db != ":memory:" and not settings.db.startswith(("postgresql://", "postgres://"))
    folder = Path(settings.db).parent if on_disk else Path("data")
    path = folder / "cookie_secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    # Created 0600, never readable by others even for a moment, and written
    # whole under a temporary name: os.link then fails if another process put
    # its secret there first, and that one is used, so both sign alike.
    tmp = folder / f".cookie_secret.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secret + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_text().strip()
    finally:
        tmp.unlink()
    return secret
