"""Accounts: sign-up, sign-in, page sessions, tokens, invites and disabling. No I/O of its own.

:class:`Accounts` applies the rules of docs/security.md over a
:class:`chat.backends.base.Directory` (the durable rows), a
:class:`chat.core.passwords.Passwords` (Argon2id) and a
:class:`chat.core.throttle.Throttle`. Secrets (session ids, tokens, invite
codes) are handed to people once and reach the directory only as their
:func:`chat.core.secrets.digest`. Whatever ends a session or a token, or
disables an account, tells :class:`Sockets` so its sockets close on every
process (the chat service implements it).

Every refusal is an :class:`AccountError` whose ``code`` the HTTP layer turns
into a status. A failed sign-in never says whether the name or the password
was wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from chat.backends.base import Conflict, Directory
from chat.core import secrets
from chat.core.errors import ChatServiceError, ErrorCode, Invalid
from chat.core.model import Account, TokenInfo
from chat.core.passwords import Passwords
from chat.core.throttle import Throttle, account_key, address_key
from chat.core.validation import PASSWORD_MAX_CHARS, check_password, name_key, normalize_name

LABEL_MAX_CHARS = 64
WRONG = "wrong name or password"


class Registration(StrEnum):
    OPEN = "open"  # anyone may sign up
    INVITE = "invite"  # with a single-use code an admin made (the first account needs none)
    CLOSED = "closed"  # only `server.py users add`


class AccountError(ChatServiceError):
    """A refused account action. ``retry_after``: seconds, with ``THROTTLED``."""

    def __init__(self, code: ErrorCode, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class Sockets(Protocol):
    """Closes sockets on every process: the chat service's entry points."""

    def end_sessions(self, keys: list[str]) -> None:
        """Close the sockets of these session keys (:meth:`Accounts.session_key`, :meth:`Accounts.token_key`)."""
        ...

    def account_disabled(self, account_id: int) -> None:
        """Close every socket of the account, whatever it signed in with."""
        ...

    def account_created(self, name: str) -> None:
        """``name`` is an account's now: close the guests using it."""
        ...


class NoSockets:
    """For a process with no sockets to close (the command line without --redis)."""

    def end_sessions(self, keys: list[str]) -> None:
        pass

    def account_disabled(self, account_id: int) -> None:
        pass

    def account_created(self, name: str) -> None:
        pass


class Accounts:
    def __init__(
        self,
        directory: Directory,
        passwords: Passwords,
        throttle: Throttle,
        sockets: Sockets,
        *,
        wall: Callable[[], float] = time.time,
        registration: Registration = Registration.OPEN,
        guests: bool = True,
    ) -> None:
        """``wall``: seconds since the epoch (the directory keeps milliseconds)."""
        self.directory = directory
        self.passwords = passwords
        self.throttle = throttle
        self.sockets = sockets
        self.wall = wall
        self.registration = registration
        self.guests = guests
        self._has_accounts = False  # once true, for good: accounts are never deleted

    def _now(self) -> int:
        return int(self.wall() * 1000)

    # -- keys of the sockets a credential opened

    @staticmethod
    def session_key(secret: str) -> str:
        return secrets.digest(secret)

    @staticmethod
    def token_key(info: TokenInfo) -> str:
        return f"token:{info.id}"

    # -- sign-up, sign-in, sign-out

    async def sign_up_mode(self) -> Registration:
        """What the sign-up form offers now: ``invite`` is ``open`` until the
        first account exists (a fresh server needs its admin)."""
        if self.registration is Registration.INVITE and not await self._any_account():
            return Registration.OPEN
        return self.registration

    async def _any_account(self) -> bool:
        if not self._has_accounts:
            self._has_accounts = bool(await self.directory.accounts())
        return self._has_accounts

    async def sign_up(self, name: str, password: str, invite: str | None, address: str) -> tuple[Account, str]:
        """A new account, signed in: ``(account, session secret)``."""
        if self.registration is Registration.CLOSED:
            raise AccountError(ErrorCode.FORBIDDEN, "sign-up is closed: ask an admin for an account")
        name = _name(name)
        _password(password)
        code_hash = None
        if self.registration is Registration.INVITE:
            if invite:
                code_hash = secrets.digest(invite)
            elif await self._any_account():
                # A fresh server needs its first account (its admin) without an invite.
                raise AccountError(ErrorCode.FORBIDDEN, "sign-up needs an invite: ask an admin for a link")
        if await self.directory.account_by_name(name) is not None:
            raise AccountError(ErrorCode.NAME_TAKEN, "that name is taken")
        password_hash = await self.passwords.hash(password)
        try:
            account = await self.directory.create_account(name, password_hash, self._now(), invite=code_hash)
        except Conflict:
            if code_hash is not None and await self.directory.account_by_name(name) is None:
                raise AccountError(ErrorCode.FORBIDDEN, "this invite was used already or does not exist") from None
            raise AccountError(ErrorCode.NAME_TAKEN, "that name is taken") from None
        self.sockets.account_created(account.name)
        return account, await self._new_session(account)

    async def sign_in(self, name: str, password: str, address: str) -> tuple[Account, str]:
        """``(account, session secret)``; the same refusal for an unknown name and a wrong password."""
        try:
            name = normalize_name(name)
        except Invalid:
            name = name.strip()[:64]  # no account has it: refused below like any unknown name
        keys = [account_key(name_key(name)), address_key(address)]
        wait = self.throttle.retry_after(keys)
        if wait > 0:
            raise AccountError(ErrorCode.THROTTLED, "too many failed sign-ins: try again later", retry_after=wait)
        found = await self.directory.account_by_name(name)
        if len(password) > PASSWORD_MAX_CHARS:
            ok = False  # no password is that long: not worth hashing
        elif found is None:
            await self.passwords.spend(password)
            ok = False
        else:
            ok = await self.passwords.verify(found[1], password)
        if not ok or found is None:
            self.throttle.failed(keys)
            raise AccountError(ErrorCode.UNAUTHORIZED, WRONG)
        account, password_hash = found
        self.throttle.succeeded(keys[0])
        if account.disabled:
            raise AccountError(ErrorCode.FORBIDDEN, "this account is disabled")
        if self.passwords.needs_rehash(password_hash):
            await self.directory.set_password(account.id, await self.passwords.hash(password))
        return account, await self._new_session(account)

    async def sign_out(self, secret: str) -> None:
        key = self.session_key(secret)
        await self.directory.end_session(key)
        self.sockets.end_sessions([key])

    async def _new_session(self, account: Account) -> str:
        secret = secrets.new_secret()
        await self.directory.create_session(self.session_key(secret), account.id, self._now())
        return secret

    # -- credentials presented with a request or a socket

    async def from_session(self, secret: str) -> Account | None:
        account = await self.directory.session_account(self.session_key(secret), self._now())
        return None if account is None or account.disabled else account

    async def from_token(self, token: str) -> tuple[Account, TokenInfo] | None:
        if not token.startswith(secrets.TOKEN_PREFIX):
            return None  # not one of ours: no database round trip
        found = await self.directory.token_account(secrets.digest(token), self._now())
        if found is None or found[0].disabled:
            return None
        return found

    # -- passwords

    async def change_password(self, account: Account, old: str, new: str, current_secret: str | None) -> str | None:
        """Set a new password; every page session of the account ends (their sockets close)
        but the caller's, which is replaced: the new secret (None without ``current_secret``,
        a token's call). Tokens stay valid."""
        key = account_key(name_key(account.name))
        wait = self.throttle.retry_after([key])
        if wait > 0:
            raise AccountError(ErrorCode.THROTTLED, "too many wrong passwords: try again later", retry_after=wait)
        found = await self.directory.account_by_name(account.name)
        if found is None or not await self.passwords.verify(found[1], old):
            self.throttle.failed([key])
            raise AccountError(ErrorCode.UNAUTHORIZED, "the current password is wrong")
        _password(new)
        await self.directory.set_password(account.id, await self.passwords.hash(new))
        ended = await self.directory.end_sessions(account.id)
        current = self.session_key(current_secret) if current_secret is not None else None
        # The caller's own page is not cut off: it gets the new cookie in this answer.
        others = [k for k in ended if k != current]
        if others:
            self.sockets.end_sessions(others)
        return await self._new_session(account) if current_secret is not None else None

    # -- tokens

    async def create_token(self, account: Account, label: str) -> tuple[str, TokenInfo]:
        """A new token: the secret (shown once, never stored) and its description."""
        label = label.strip()
        if not 1 <= len(label) <= LABEL_MAX_CHARS or not label.isprintable():
            raise AccountError(ErrorCode.BAD_REQUEST, f"a label has 1 to {LABEL_MAX_CHARS} printable characters")
        token = secrets.new_token()
        info = await self.directory.create_token(account.id, label, secrets.digest(token), self._now())
        return token, info

    async def tokens(self, account: Account) -> list[TokenInfo]:
        return await self.directory.tokens(account.id)

    async def revoke_token(self, account: Account, token_id: int) -> None:
        if not await self.directory.revoke_token(account.id, token_id, self._now()):
            raise AccountError(ErrorCode.NOT_FOUND, "no such token (or it was revoked already)")
        self.sockets.end_sessions([f"token:{token_id}"])

    # -- administration

    async def set_disabled(self, name: str, disabled: bool, *, by: Account | None = None) -> Account:
        """Disable (or enable) an account: disabling ends its sessions and closes all its sockets.
        ``by``: the admin asking (None: the command line); an admin cannot disable themself."""
        found = await self.directory.account_by_name(name)
        if found is None:
            raise AccountError(ErrorCode.NOT_FOUND, "no such account")
        account = found[0]
        if by is not None and by.id == account.id and disabled:
            raise AccountError(ErrorCode.BAD_REQUEST, "you cannot disable your own account")
        await self.directory.set_disabled(account.id, disabled)
        if disabled:
            await self.directory.end_sessions(account.id)
            # One close for every socket of the account, sessions' and tokens' alike,
            # with the reason "account_disabled": closing the sessions' sockets
            # first would tell those pages "signed_out" instead.
            self.sockets.account_disabled(account.id)
        updated = await self.directory.account(account.id)
        return updated if updated is not None else account

    async def list_accounts(self) -> list[Account]:
        return await self.directory.accounts()

    async def create_invite(self, admin: Account) -> str:
        """A single-use sign-up code (``/signup?invite=CODE``); only admins make them."""
        if not admin.admin:
            raise AccountError(ErrorCode.FORBIDDEN, "only admins make invites")
        code = secrets.new_secret()
        await self.directory.create_invite(secrets.digest(code), admin.id, self._now())
        return code

    async def add_user(self, name: str, password: str, admin: bool = False) -> Account:
        """An account made on the command line (any registration mode); the first is an admin anyway."""
        name = _name(name)
        _password(password)
        password_hash = await self.passwords.hash(password)
        try:
            account = await self.directory.create_account(
                name, password_hash, self._now(), admin=True if admin else None
            )
        except Conflict:
            raise AccountError(ErrorCode.NAME_TAKEN, "that name is taken") from None
        self.sockets.account_created(account.name)
        return account

    # -- guests

    async def guest_name_allowed(self, name: str) -> bool:
        """A guest may not take an account's name (whatever its case)."""
        return await self.directory.account_by_name(name) is None


def _name(raw: str) -> str:
    try:
        return normalize_name(raw)
    except Invalid as exc:
        raise AccountError(exc.code, exc.message) from None


def _password(raw: str) -> None:
    try:
        check_password(raw)
    except Invalid as exc:
        raise AccountError(exc.code, exc.message) from None
