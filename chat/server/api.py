"""The JSON API (docs/api.md): rooms and messages, tokens, the password, administration.

Callers authenticate with ``Authorization: Bearer TOKEN`` or the page's
``chat_session`` cookie (see :func:`chat.server.web.credentials`). With the
cookie, a request that changes something must carry the ``X-XSRFToken``
header (Tornado checks it); a Bearer request skips that check: a browser
never attaches one by itself, so another site cannot forge it. Every room
access is decided by :func:`chat.core.policy.decide`. Errors are
``{"code": C, "error": C, "message": M}`` with the status of the code.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from chat.backends.base import Duplicate
from chat.core.accounts import AccountError, Accounts
from chat.core.errors import ErrorCode
from chat.core.limits import HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX
from chat.core.model import Account, RoomInfo, Standing, Visibility
from chat.core.policy import Action, Decision, decide
from chat.core.protocol import REF_MAX_CHARS, SEARCH_MAX_CHARS, SEARCH_MAX_LIMIT
from chat.core.ratelimit import TokenBucket
from chat.core.service import ChatService
from chat.core.validation import is_private_id, normalize_room, normalize_text
from chat.server.web import SESSION_COOKIE, BaseHandler, Credentials, credentials

NEEDS_ACCOUNT = "this needs an account: sign in, or send a token (Authorization: Bearer ...)"


def account_to_wire(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "admin": account.admin,
        "disabled": account.disabled,
        "created": account.created,
    }


class ApiHandler(BaseHandler):
    creds: Credentials

    def check_xsrf_cookie(self) -> None:
        # A Bearer request carries no ambient credential (cookies are not read
        # for it), so a cross-site form cannot make one: no XSRF token needed.
        # Nor does a request without a session cookie: everything here that
        # changes something needs an account, so it is refused (401) anyway.
        if "Authorization" in self.request.headers or SESSION_COOKIE not in self.request.cookies:
            return
        super().check_xsrf_cookie()

    async def prepare(self) -> None:
        self.creds = await credentials(self, self.accounts)

    def account(self) -> Account:
        if self.creds.account is None:
            raise AccountError(ErrorCode.UNAUTHORIZED, NEEDS_ACCOUNT)
        return self.creds.account

    def admin(self) -> Account:
        account = self.account()
        if not account.admin:
            raise AccountError(ErrorCode.FORBIDDEN, "only admins may do this")
        return account

    def reader(self) -> None:
        """Anyone may read public rooms when guests are allowed; else only accounts."""
        if self.creds.account is None and not self.accounts.guests:
            raise AccountError(ErrorCode.UNAUTHORIZED, NEEDS_ACCOUNT)

    def body(self) -> dict[str, Any]:
        try:
            value = json.loads(self.request.body or b"{}")
        except ValueError:
            raise AccountError(ErrorCode.BAD_JSON, "the body is not JSON") from None
        if not isinstance(value, dict):
            raise AccountError(ErrorCode.BAD_JSON, "the body is a JSON object")
        return value

    def _int_arg(self, key: str, default: int | None) -> int | None:
        raw = self.get_query_argument(key, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise AccountError(ErrorCode.BAD_REQUEST, f"{key} must be an integer") from None
        if value < 0:
            raise AccountError(ErrorCode.BAD_REQUEST, f"{key} must not be negative")
        return value

    def field(self, body: dict[str, Any], key: str, kind: type) -> Any:
        value = body.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise AccountError(ErrorCode.BAD_REQUEST, f"field {key!r} must be a {kind.__name__}")
        return value

    async def room_of(self, raw: str) -> tuple[str, RoomInfo | None, Standing | None]:
        """The room asked for, its description (None: no row), and the caller's standing there."""
        room = normalize_room(raw)  # Invalid: 400 bad_room
        directory = self.accounts.directory
        info = await directory.room(room)
        account = self.creds.account
        standing = await directory.standing(room, account.id) if info is not None and account is not None else None
        return room, info, standing


class MeApi(ApiHandler):
    def get(self) -> None:
        account = self.creds.account
        if account is None and self.creds.guest is None:
            raise AccountError(ErrorCode.UNAUTHORIZED, "no credentials: sign in, or send a token")
        self.write_json(
            {
                "name": account.name if account is not None else self.creds.guest,
                "account": account is not None,
                "admin": account is not None and account.admin,
                "guest": account is None,
            }
        )


class RoomsApi(ApiHandler):
    async def get(self) -> None:
        """What the ``rooms`` frame lists: the public rooms and the caller's own, never another's private room."""
        self.reader()
        rooms = await self.service.room_summaries(self.creds.actor)
        self.write_json({"rooms": [r.to_wire() for r in rooms]})


# A post over the rate waits up to this long (a script's loop slows down, as a
# socket's frames do); one that would wait longer is a flood: 429.
POST_WAIT_MAX_S = 5.0
# Accounts whose buckets are kept; beyond it the least recently posting go (a full bucket).
POST_BUCKETS_MAX = 100_000


class PostLimiter:
    """HTTP posts per account at the rate a socket's frames keep (``--rate``, its
    burst): a token may not flood a room faster than a socket could. ``rate`` 0 disables."""

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.sleep = sleep
        self._buckets: OrderedDict[int, TokenBucket] = OrderedDict()

    async def admit(self, account: int) -> None:
        """Return when the account may post; raises THROTTLED (with retry_after) for a flood."""
        if self.rate <= 0:
            return
        bucket = self._buckets.pop(account, None) or TokenBucket(self.rate, self.burst)
        self._buckets[account] = bucket
        while len(self._buckets) > POST_BUCKETS_MAX:
            self._buckets.popitem(last=False)
        wait = bucket.reserve(self.clock())
        if wait > POST_WAIT_MAX_S:
            bucket.tokens += 1.0  # refused: nothing owed
            raise AccountError(
                ErrorCode.THROTTLED, "too many messages: slow down", retry_after=math.ceil(wait - POST_WAIT_MAX_S)
            )
        if wait > 0:
            await self.sleep(wait)


class MessagesApi(ApiHandler):
    posts: PostLimiter

    def initialize(self, service: ChatService, accounts: Accounts, posts: PostLimiter | None = None) -> None:
        super().initialize(service, accounts)
        self.posts = posts if posts is not None else PostLimiter(0, 0, service.clock)

    async def get(self, raw_room: str) -> None:
        self.reader()
        room, info, standing = await self.room_of(raw_room)
        if info is None and not is_private_id(room):
            # A public name without a row: history from before accounts (those
            # rooms were all public), or nobody used it yet (no messages).
            info = RoomInfo(room, Visibility.PUBLIC, title=room)
        decision = decide(self.creds.actor, Action.SEE, info, standing, room_id=room)
        if not decision.allowed and decision.code is not None:
            raise AccountError(decision.code, decision.message)
        before = self._int_arg("before", None)
        limit = self._int_arg("limit", HISTORY_PAGE_DEFAULT)
        if limit is None or limit < 1:
            raise AccountError(ErrorCode.BAD_REQUEST, "limit must be at least 1")
        messages = await self.service.store.before(room, before, min(limit, HISTORY_PAGE_MAX))
        self.write_json({"messages": [m.to_public() for m in messages]})

    async def post(self, raw_room: str) -> None:
        """Store a message; with an ``Idempotency-Key`` a repeat answers 200 with
        the original (stored once) instead of 201."""
        account = self.account()
        room, info, standing = await self.room_of(raw_room)
        if info is None and decide(self.creds.actor, Action.JOIN, None, room_id=room).allowed:
            # A public name without a row: posting to it makes the room (or the row
            # of one from before accounts), as joining it would.
            info = await self.accounts.directory.ensure_public(room, int(self.service.wall() * 1000))
        decision = decide(self.creds.actor, Action.SAY, info, standing, room_id=room)
        if not decision.allowed and decision.code is not None:
            raise AccountError(decision.code, decision.message)
        assert info is not None  # decide() allows SAY only in a room that exists
        text = normalize_text(self.field(self.body(), "text", str), self.service.limits.max_message_chars)
        key = self.request.headers.get("Idempotency-Key")
        if key is not None and not (1 <= len(key) <= REF_MAX_CHARS and key.isprintable()):
            raise AccountError(ErrorCode.BAD_REQUEST, f"Idempotency-Key has 1 to {REF_MAX_CHARS} characters")
        await self.posts.admit(account.id)
        now = int(self.service.wall() * 1000)
        if info.visibility is Visibility.PUBLIC and standing is None:
            # Posting to a public room joins it durably, as a socket's join does.
            await self.accounts.directory.set_standing(room, account.id, Standing.MEMBER, now)
        # Not a guest's message: append's guest flag (Message.guest) keeps its default, False.
        try:
            message = await self.service.store.append(room, account.name, text, now, self.creds.key, key)
        except Duplicate as exc:
            self.write_json({"message": exc.message.to_public()}, 200)
            return
        self.write_json({"message": message.to_public()}, 201)


class SearchApi(ApiHandler):
    async def get(self) -> None:
        """Full-text search over the rooms the caller may read (docs/api.md), newest first."""
        self.reader()
        q = self.get_query_argument("q", "").strip()
        if not q or len(q) > SEARCH_MAX_CHARS:
            raise AccountError(ErrorCode.BAD_REQUEST, f"q has 1 to {SEARCH_MAX_CHARS} characters")
        raw_room = self.get_query_argument("room", None)
        room = normalize_room(raw_room) if raw_room else None
        limit = self._int_arg("limit", 20)
        if limit is None or not 1 <= limit <= SEARCH_MAX_LIMIT:
            raise AccountError(ErrorCode.BAD_REQUEST, f"limit must be from 1 to {SEARCH_MAX_LIMIT}")
        found = await self.service.search(self.creds.actor, q, room, self._int_arg("before", None), limit)
        if isinstance(found, Decision):
            raise AccountError(found.code or ErrorCode.NOT_FOUND, found.message)
        self.write_json({"results": [hit.to_wire() for hit in found]})


class TokensApi(ApiHandler):
    async def get(self) -> None:
        tokens = await self.accounts.tokens(self.account())
        self.write_json({"tokens": [t.to_wire() for t in tokens]})

    async def post(self) -> None:
        account = self.account()
        label = self.field(self.body(), "label", str)
        token, info = await self.accounts.create_token(account, label)
        self.write_json({"token": token, "info": info.to_wire()}, 201)


class TokenApi(ApiHandler):
    async def delete(self, raw_id: str) -> None:
        account = self.account()
        try:
            token_id = int(raw_id)
        except ValueError:
            raise AccountError(ErrorCode.NOT_FOUND, "no such token") from None
        await self.accounts.revoke_token(account, token_id)
        self.set_status(204)
        self.finish()


class PasswordApi(ApiHandler):
    async def post(self) -> None:
        account = self.account()
        body = self.body()
        old, new = self.field(body, "old", str), self.field(body, "new", str)
        secret = await self.accounts.change_password(account, old, new, self.creds.secret)
        if secret is not None:
            self.set_session_cookie(secret)  # this page stays signed in; every other session ended
        self.set_status(204)
        self.finish()


class AdminAccountsApi(ApiHandler):
    async def get(self) -> None:
        self.admin()
        self.write_json({"accounts": [account_to_wire(a) for a in await self.accounts.list_accounts()]})


class AdminAccountApi(ApiHandler):
    async def post(self, name: str) -> None:
        admin = self.admin()
        disabled = self.field(self.body(), "disabled", bool)
        account = await self.accounts.set_disabled(name, disabled, by=admin)
        self.write_json(account_to_wire(account))


class InvitesApi(ApiHandler):
    async def post(self) -> None:
        code = await self.accounts.create_invite(self.admin())
        self.write_json({"code": code, "link": f"/signup?invite={code}"}, 201)
