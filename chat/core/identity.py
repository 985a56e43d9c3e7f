"""Who a connection is: its session, and the name it holds across processes.

:class:`Identities` answers logins and admits sockets; names are held in this
process by a :class:`~chat.core.names.NameRegistry` and across processes by
the broker's claims. Refusals are :class:`~chat.core.errors.Refused`, whose
``reason`` is what the client is told.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chat.backends.base import Broker, Directory, StoreUnavailable
from chat.core.errors import ErrorCode, Refused
from chat.core.names import NameRegistry
from chat.core.sessions import SessionSigner
from chat.core.validation import Invalid, name_key, normalize_name


class AccountNames:
    """The names that belong to accounts, held in this process, so a guest's
    connect costs no query (in a join storm, one read per socket was the
    difference). Loaded at start; every sign-up on any process adds its name
    (the ``name`` control event, chat.core.control); a reload every
    :data:`RELOAD_S` catches what that missed (an account made from a shell, an
    event lost while Redis was down). Until it is loaded, the directory is asked."""

    def __init__(self) -> None:
        self._keys: set[str] | None = None

    @property
    def loaded(self) -> bool:
        return self._keys is not None

    async def load(self, directory: Directory) -> list[str]:
        """Read every account's name; returns the names this process did not know (after the first load)."""
        names = {name_key(a.name): a.name for a in await directory.accounts()}
        new = [] if self._keys is None else [n for k, n in names.items() if k not in self._keys]
        self._keys = set(names)
        return new

    def add(self, name: str) -> None:
        if self._keys is not None:
            self._keys.add(name_key(name))

    def taken(self, name: str) -> bool:
        return self._keys is not None and name_key(name) in self._keys


# How often each process reads the account names again (see AccountNames).
RELOAD_S = 30.0


class Identities:
    def __init__(self, signer: SessionSigner, broker: Broker, clock: Callable[[], float] = time.monotonic) -> None:
        self.signer = signer
        self.broker = broker
        self.clock = clock
        self.names = NameRegistry()
        self.account_names = AccountNames()

    def resolve_session(self, token: str | None) -> tuple[str, str]:
        """``(session_id, token)`` for a presented token, or a new session if it is absent or forged."""
        if token:
            session_id = self.signer.verify(token)
            if session_id is not None:
                return session_id, token
        return self.signer.new()

    async def login(self, raw_name: str, token: str | None, directory: Directory | None = None) -> tuple[str, str, str]:
        """Reserve a name for a guest's browser login: ``(name, session_id, token)``. Raises :class:`Refused`."""
        name = valid_name(raw_name)
        session_id, token = self.resolve_session(token)
        if directory is not None:
            await self.refuse_account_name(name, directory)
        if not self.names.reserve(name, session_id, self.clock()):
            raise Refused(ErrorCode.NAME_TAKEN, f"the name {name!r} is in use")
        refusal = await self._claim(name, session_id)
        if refusal is ErrorCode.UNAVAILABLE:
            raise Refused(refusal, "the chat is unavailable; try again in a moment")
        if refusal is not None:
            raise Refused(refusal, f"the name {name!r} is in use")
        self.broker.release(name, session_id)  # held by the reservation, not by a connection
        return name, session_id, token

    async def admit(
        self, raw_name: str | None, token: str | None, directory: Directory | None = None
    ) -> tuple[str, str, str]:
        """A new guest socket's ``(name, session_id, token)``, its name now held by it.

        Raises :class:`Refused` with ``bad_name``, ``name_taken`` (held by
        another session, or an account's name in ``directory``) or
        ``unavailable`` (the broker or the directory cannot tell whether the name is free)."""
        name = valid_name(raw_name)
        session_id, token = self.resolve_session(token)
        if directory is not None:
            await self.refuse_account_name(name, directory)
        if not self.names.acquire(name, session_id, self.clock()):
            raise Refused(ErrorCode.NAME_TAKEN, f"the name {name!r} is in use")
        refusal = await self._claim(name, session_id)
        if refusal is not None:
            self.names.release(name, session_id, self.clock())
            raise Refused(refusal, f"the name {name!r} is not available")
        return name, session_id, token

    async def refuse_account_name(self, name: str, directory: Directory) -> None:
        """A guest may not use an account's name, whatever its case. Raises :class:`Refused`."""
        if self.account_names.loaded:
            taken = self.account_names.taken(name)
        else:
            try:
                taken = await directory.account_by_name(name) is not None
            except StoreUnavailable:
                raise Refused(ErrorCode.UNAVAILABLE, "the chat is unavailable; try again in a moment") from None
        if taken:
            raise Refused(ErrorCode.NAME_TAKEN, f"the name {name!r} belongs to an account: sign in to use it")

    def release(self, name: str, session_id: str) -> None:
        """A socket that :meth:`admit` admitted closed."""
        self.names.release(name, session_id, self.clock())
        self.broker.release(name, session_id)

    def logout(self, name: str, session_id: str) -> None:
        """Free the name at once, here and in every process."""
        self.names.drop(name, session_id)
        self.broker.logout(name, session_id)

    def sweep(self) -> None:
        """Forget expired name reservations."""
        self.names.sweep(self.clock())

    async def _claim(self, name: str, session_id: str) -> ErrorCode | None:
        """Hold ``name`` across processes: None, or why not (``name_taken``, ``unavailable``)."""
        try:
            claimed = await self.broker.claim(name, session_id)
        except StoreUnavailable:
            return ErrorCode.UNAVAILABLE
        return None if claimed else ErrorCode.NAME_TAKEN


def valid_name(raw_name: str | None) -> str:
    """The normalized name. Raises :class:`Refused` (``bad_name``)."""
    try:
        return normalize_name(raw_name or "")
    except Invalid as exc:
        raise Refused(ErrorCode.BAD_NAME, exc.message) from None
