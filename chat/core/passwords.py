"""Password hashes: Argon2id through argon2-cffi, off the event loop.

One hash or verify costs tens of milliseconds of CPU and 64 MiB of memory
(that is the point of Argon2); run on the loop it would stall every socket of
the process, so both run in worker threads of their own: a few, so a burst of
sign-ins takes neither all the memory nor the threads other work runs in
(:func:`asyncio.to_thread`'s pool) - it queues. The parameters are
argon2-cffi's defaults (RFC 9106's low-memory profile); tests pass a cheap
hasher (``argon2.profiles.CHEAPEST``). A hash made with older parameters is
replaced after the next good sign-in (:meth:`Passwords.needs_rehash`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

T = TypeVar("T")
# Hashes computed at once, per process: each holds its memory_cost while it runs.
MAX_PARALLEL = max(1, min(4, os.cpu_count() or 1))


class Passwords:
    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher if hasher is not None else PasswordHasher()
        self._dummy: str | None = None
        self._threads = ThreadPoolExecutor(MAX_PARALLEL, thread_name_prefix="argon2")

    async def _off_loop(self, work: Callable[..., T], *args: str) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, work, *args)

    async def hash(self, password: str) -> str:
        return await self._off_loop(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """True when ``password`` matches; False for a mismatch or a hash that is not Argon2's."""
        return await self._off_loop(self._verify, password_hash, password)

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
