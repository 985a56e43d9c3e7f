"""An in-memory :class:`chat.backends.base.Directory` for fast tests of what sits above it.

It keeps the protocol's promises (names unique whatever their case, the first
account an admin, single-use invites, secrets kept only as the hashes it is
given, a DM's set of people having one room) without a database. The SQL
implementations are held to the same contract in tests/backends.
``down = True`` makes every call raise :class:`StoreUnavailable`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from chat.backends.base import Conflict, StoreUnavailable
from chat.core.model import Account, Member, MyRoom, RoomInfo, RoomKind, Standing, TokenInfo, Visibility
from chat.core.validation import name_key


@dataclass
class _Token:
    info: TokenInfo
    token_hash: str


class FakeDirectory:
    def __init__(self) -> None:
        self.down = False
        self._accounts: dict[int, Account] = {}
        self._hashes: dict[int, str] = {}  # account id -> password hash
        self._by_key: dict[str, int] = {}
        self.sessions: dict[str, tuple[int, int]] = {}  # session hash -> (account id, last used)
        self._tokens: dict[int, _Token] = {}
        self.invites: dict[str, tuple[int, bool]] = {}  # code hash -> (made by, used)
        self._rooms: dict[str, RoomInfo] = {}
        self._standings: dict[tuple[str, int], Standing] = {}

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("the directory is down")

    @property
    def token_hashes(self) -> list[str]:
        """What the directory keeps of the tokens (for tests: never the secrets)."""
        return [t.token_hash for t in self._tokens.values()]

    # -- accounts
    async def create_account(
        self, name: str, password_hash: str, now: int, *, admin: bool | None = None, invite: str | None = None
    ) -> Account:
        self._check()
        key = name_key(name)
        if key in self._by_key:
            raise Conflict(f"the name {name!r} is taken")
        if invite is not None:
            made = self.invites.get(invite)
            if made is None or made[1]:
                raise Conflict("no such invite, or it was used")
            self.invites[invite] = (made[0], True)
        account = Account(
            len(self._accounts) + 1, name, admin=not self._accounts if admin is None else admin, created=now
        )
        self._accounts[account.id] = account
        self._hashes[account.id] = password_hash
        self._by_key[key] = account.id
        return account

    async def account(self, account_id: int) -> Account | None:
        self._check()
        return self._accounts.get(account_id)

    async def account_by_name(self, name: str) -> tuple[Account, str] | None:
        self._check()
        account_id = self._by_key.get(name_key(name))
        if account_id is None:
            return None
        return self._accounts[account_id], self._hashes[account_id]

    async def accounts(self) -> list[Account]:
        self._check()
        return sorted(self._accounts.values(), key=lambda a: name_key(a.name))

    async def set_password(self, account_id: int, password_hash: str) -> None:
        self._check()
        self._hashes[account_id] = password_hash

    async def set_disabled(self, account_id: int, disabled: bool) -> None:
        self._check()
        self._accounts[account_id] = replace(self._accounts[account_id], disabled=disabled)

    # -- sessions
    async def create_session(self, session_hash: str, account_id: int, now: int) -> None:
        self._check()
        self.sessions[session_hash] = (account_id, now)

    async def session_account(self, session_hash: str, now: int) -> Account | None:
        self._check()
        found = self.sessions.get(session_hash)
        if found is None:
            return None
        self.sessions[session_hash] = (found[0], now)
        return self._accounts[found[0]]

    async def end_session(self, session_hash: str) -> None:
        self._check()
        self.sessions.pop(session_hash, None)

    async def end_sessions(self, account_id: int) -> list[str]:
        self._check()
        ended = [h for h, (a, _) in self.sessions.items() if a == account_id]
        for h in ended:
            del self.sessions[h]
        return ended

    # -- tokens
    async def create_token(self, account_id: int, label: str, token_hash: str, now: int) -> TokenInfo:
        self._check()
        info = TokenInfo(len(self._tokens) + 1, account_id, label, now)
        self._tokens[info.id] = _Token(info, token_hash)
        return info

    async def token_account(self, token_hash: str, now: int) -> tuple[Account, TokenInfo] | None:
        self._check()
        for token in self._tokens.values():
            if token.token_hash == token_hash and token.info.revoked is None:
                token.info = replace(token.info, last_used=now)
                return self._accounts[token.info.account], token.info
        return None

    async def tokens(self, account_id: int) -> list[TokenInfo]:
        self._check()
        mine = [t.info for t in self._tokens.values() if t.info.account == account_id]
        return sorted(mine, key=lambda i: (i.created, i.id), reverse=True)

    async def revoke_token(self, account_id: int, token_id: int, now: int) -> bool:
        self._check()
        token = self._tokens.get(token_id)
        if token is None or token.info.account != account_id or token.info.revoked is not None:
            return False
        token.info = replace(token.info, revoked=now)
        return True

    # -- invites
    async def create_invite(self, code_hash: str, created_by: int, now: int) -> None:
        self._check()
        if code_hash in self.invites:
            raise Conflict("that invite exists")
        self.invites[code_hash] = (created_by, False)

    # -- rooms and memberships
    async def room(self, room: str) -> RoomInfo | None:
        self._check()
        return self._rooms.get(room)

    async def create_room(self, info: RoomInfo, members: dict[int, Standing]) -> RoomInfo:
        self._check()
        if info.kind is RoomKind.DM:
            people = set(members)
            for existing in self._rooms.values():
                if existing.kind is RoomKind.DM and self._people(existing.room) == people:
                    return existing
        if info.room in self._rooms:
            raise Conflict(f"the room {info.room!r} exists")
        self._rooms[info.room] = info
        for account_id, standing in members.items():
            self._standings[(info.room, account_id)] = standing
        return info

    def _people(self, room: str) -> set[int]:
        return {a for (r, a), s in self._standings.items() if r == room and s is not Standing.BANNED}

    async def ensure_public(self, room: str, now: int) -> RoomInfo:
        self._check()
        if room not in self._rooms:
            self._rooms[room] = RoomInfo(room, Visibility.PUBLIC, title=room, created=now)
        return self._rooms[room]

    async def standing(self, room: str, account_id: int) -> Standing | None:
        self._check()
        return self._standings.get((room, account_id))

    async def set_standing(self, room: str, account_id: int, standing: Standing | None, now: int) -> None:
        self._check()
        if standing is None:
            self._standings.pop((room, account_id), None)
        else:
            self._standings[(room, account_id)] = standing

    async def members(self, room: str) -> list[Member]:
        self._check()
        rows = [Member(a, self._accounts[a].name, s) for (r, a), s in self._standings.items() if r == room]
        return sorted(rows, key=lambda m: name_key(m.name))

    async def account_rooms(self, account_id: int) -> list[MyRoom]:
        self._check()
        mine = []
        for (room, who), standing in self._standings.items():
            if who != account_id or standing is Standing.BANNED:
                continue
            info = self._rooms[room]
            people = sorted((self._accounts[a].name for a in self._people(room)), key=name_key)
            mine.append(MyRoom(info, standing, people if info.kind is RoomKind.DM else []))
        return sorted(mine, key=lambda r: (r.info.title.casefold(), r.info.room))

    async def public_rooms(self) -> list[RoomInfo]:
        self._check()
        return sorted((r for r in self._rooms.values() if r.visibility is Visibility.PUBLIC), key=lambda r: r.room)
