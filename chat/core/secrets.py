"""Secrets handed to people (session ids, tokens, invite codes) and what the database keeps of them.

A secret is 32 random bytes, URL-safe. The database keeps only its SHA-256:
the secrets are random and long, so a fast hash is enough (a password needs
Argon2 because people choose it), and a leaked copy of the database signs
nobody in.
"""

from __future__ import annotations

import hashlib
import secrets

# Tokens carry a prefix so a leaked one is recognisable (secret scanners, logs).
TOKEN_PREFIX = "chat_"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the database keeps of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_room_id() -> str:
    """A private room's or DM's id: "~" and 20 base32 letters (100 bits), see chat.core.validation."""
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    return "~" + "".join(secrets.choice(alphabet) for _ in range(20))
