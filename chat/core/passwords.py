"""Password hashes: Argon2id through argon2-cffi, off the event loop.

One hash or verify costs tens of milliseconds of CPU (that is the point of
Argon2); run on the loop it would stall every socket of the process, so both
run in a worker thread (:func:`asyncio.to_thread`). The parameters are
argon2-cffi's defaults (RFC 9106's low-memory profile); tests pass a cheap
hasher (``argon2.profiles.CHEAPEST``). A hash made with older parameters is
replaced after the next good sign-in (:meth:`Passwords.needs_rehash`).
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher if hasher is not None else PasswordHasher()
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """True when ``password`` matches; False for a mismatch or a hash that is not Argon2's."""
        return await asyncio.to_thread(self._verify, password_hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """The hash was made with other parameters than this hasher's: store a new one."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    async def spend(self, password: str) -> None:
        """Verify against a hash nobody's password matches, made with the same
        parameters: a sign-in with an unknown name takes as long as one with a
        wrong password, so timing does not tell which names exist."""
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        await self.verify(self._dummy, password)
