"""The command line's session file: one kept session token per server and name.

The server holds a name for its session 60 s after the session's last socket
closes. A run that started a new session every time would find its own name
held by the previous run's, so the command line keeps the token in a file per
server and name, and the next run resumes the same session.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from chat.client.transport import ws_url
from chat.core.validation import name_key

# Named for the package, not this module: it is what users configure.
log = logging.getLogger("chat.client")


def session_file(url: str, name: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the token for ``name`` on the server at ``url`` is kept, or None
    when there is no config directory (no $XDG_CONFIG_HOME and no home).

    One file per server (``http://h:p`` and ``ws://h:p/ws`` are one server)
    and per name as the server compares names (``Bob`` and ``bob`` are one
    name there, so they share a session here too). The file is named by a
    hash: names may hold any character, paths may not."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME", "")
    if os.path.isabs(base):  # the XDG spec says to ignore a relative one
        config = Path(base)
    else:
        try:
            config = Path.home() / ".config"
        except RuntimeError:  # no $HOME and no password entry
            return None
    key = f"{_server_key(url)}\n{name_key(name.strip())}".encode("utf-8", "surrogatepass")
    return config / "chat" / "sessions" / (hashlib.sha256(key).hexdigest()[:32] + ".json")


def _server_key(url: str) -> str:
    parts = urlsplit(ws_url(url))
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path, "", ""))


def load_session(path: Path) -> str | None:
    """The token kept in ``path``, or None (no file yet, or one we cannot read: start a new session)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring the session file %s: %s", path, exc)
        return None
    token = value.get("session") if isinstance(value, dict) else None
    return token if isinstance(token, str) and token else None


def save_session(path: Path, url: str, name: str, token: str) -> None:
    """Keep ``token`` in ``path``, readable by the user only from the first byte:
    the file is created 0600 (in a 0700 directory) and renamed into place, so a
    reader never sees half a file. A failure is logged: the message still goes out."""
    sessions = path.parent
    tmp = sessions / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        sessions.parent.parent.mkdir(parents=True, exist_ok=True)  # the config directory itself
        for folder in (sessions.parent, sessions):
            folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"server": _server_key(url), "name": name, "session": token}, out, ensure_ascii=False)
            out.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not keep the session in %s: %s", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()
