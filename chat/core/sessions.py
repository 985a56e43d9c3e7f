"""Session tokens: a random id signed with the server's secret.

The token proves the session was issued by this server (under this secret), so
a client presenting it gets its identity back after a reconnect or a restart
without the server keeping a table of sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


class SessionSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def new(self) -> tuple[str, str]:
        """A fresh ``(session_id, token)``."""
        session_id = secrets.token_urlsafe(16)
        return session_id, self.token(session_id)

    def token(self, session_id: str) -> str:
        mac = hmac.new(self._secret, session_id.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{session_id}.{mac}"

    def verify(self, token: str) -> str | None:
        """The session id if ``token`` is genuine, else None."""
        session_id, dot, _ = token.partition(".")
        if not dot or not session_id or len(token) > 128:
            return None
        if hmac.compare_digest(self.token(session_id), token):
            return session_id
        return None
