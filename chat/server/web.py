"""HTTP pages and forms: the page, sign-up, sign-in and sign-out, the guest login, health.

Who a request comes from (:func:`credentials`) is decided here for every
handler, pages and the JSON API (:mod:`chat.server.api`) alike: a Bearer
token, else the signed ``chat_session`` cookie of a page session, else (when
guests are allowed) the guest's signed ``chat_user`` cookie, else nobody.
"""

from __future__ import annotations

import json
import logging
import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import tornado.web

from chat.backends.base import StoreUnavailable
from chat.core.accounts import AccountError, Accounts
from chat.core.errors import ErrorCode, Invalid, Refused
from chat.core.model import Account, TokenInfo
from chat.core.policy import Actor
from chat.core.service import ChatService
from chat.core.validation import normalize_name
from chat.server.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

LOGIN_COOKIE = "chat_user"  # a guest's name and signed session
SESSION_COOKIE = "chat_session"  # an account's page session: the secret, signed

# No inline script, no foreign source: a message that slipped into the page as
# HTML still could not run.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

# The HTTP status of each refusal; any other code is a bad request (400).
STATUS = {
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.NAME_TAKEN: 409,
    ErrorCode.ROOM_EXISTS: 409,
    ErrorCode.THROTTLED: 429,
    ErrorCode.UNAVAILABLE: 503,
}


def status_of(code: ErrorCode) -> int:
    return STATUS.get(code, 400)


def read_login_cookie(handler: tornado.web.RequestHandler) -> dict[str, str] | None:
    raw = handler.get_signed_cookie(LOGIN_COOKIE)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("name"), str)
        or not isinstance(value.get("session"), str)
    ):
        return None
    return {"name": value["name"], "session": value["session"]}


def read_session_cookie(handler: tornado.web.RequestHandler) -> str | None:
    """The page session's secret from its signed cookie, None if absent or forged."""
    raw = handler.get_signed_cookie(SESSION_COOKIE)
    if raw is None:
        return None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return None


def raw_argument(arguments: Mapping[str, list[bytes]], key: str, *, strict: bool = False) -> str | None:
    """The last value of ``key`` in ``arguments`` (a request's ``query_arguments``
    or ``body_arguments``) exactly as sent; None when absent.

    Tornado's ``get_argument`` turns control characters into spaces and trims,
    so ``?name=a%00b`` would pass for ``a b``: validation must see the real
    characters. Bytes that are not UTF-8 become lone surrogates
    (surrogateescape), which no name may hold, so such a name is a bad name;
    with ``strict`` they make the value None instead (a session token)."""
    values = arguments.get(key)
    if not values:
        return None
    try:
        return values[-1].decode("utf-8", "strict" if strict else "surrogateescape")
    except UnicodeDecodeError:
        return None


def _printable(raw: str) -> str:
    """A refused name, fit to be shown again in the form: control characters and
    lone surrogates (from bytes that were not UTF-8) become U+FFFD."""
    return "".join("\ufffd" if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in raw)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who a request comes from. ``key``: its Peer.session key (a page session's
    digest, ``token:ID``), empty for guests and nobody."""

    account: Account | None = None
    secret: str | None = None  # the page session's secret (from the cookie)
    token: TokenInfo | None = None
    guest: str | None = None  # a guest's name
    key: str = ""

    @property
    def actor(self) -> Actor:
        if self.account is not None:
            return Actor(self.account.name, self.account.id, self.account.admin)
        return Actor(self.guest or "")


class BadToken(Exception):
    """An Authorization header that does not authenticate (unknown, revoked, disabled): 401."""


async def credentials(handler: tornado.web.RequestHandler, accounts: Accounts) -> Credentials:
    """Who sent the request (see the module's doc). A Bearer token that fails
    raises :class:`BadToken` rather than falling back to a cookie: a script
    must hear its token is no good. Raises StoreUnavailable."""
    header = handler.request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        found = await accounts.from_token(token.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            raise BadToken()
        return Credentials(account=found[0], token=found[1], key=accounts.token_key(found[1]))
    secret = read_session_cookie(handler)
    if secret is not None:
        account = await accounts.from_session(secret)
        if account is not None:
            return Credentials(account=account, secret=secret, key=accounts.session_key(secret))
    if accounts.guests:
        login = read_login_cookie(handler)
        if login is not None:
            return Credentials(guest=login["name"])
    return Credentials()


class BaseHandler(tornado.web.RequestHandler):
    service: ChatService
    accounts: Accounts

    def initialize(self, service: ChatService, accounts: Accounts) -> None:
        self.service = service
        self.accounts = accounts

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")

    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(value, separators=(",", ":"), ensure_ascii=False))

    def write_problem(self, code: ErrorCode, message: str, status: int | None = None) -> None:
        """A JSON error: ``error`` repeats ``code`` for clients written before it existed."""
        self.write_json({"code": code, "error": code, "message": message}, status or status_of(code))

    def log_exception(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Refusals are answers, not server faults; a store outage is logged once by the store.
        if isinstance(value, AccountError | Invalid | BadToken | StoreUnavailable):
            log.debug("%s: %s", self._request_summary(), value)
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, StoreUnavailable):
            status_code = 503
            self.set_status(503)
        if self.request.path.startswith("/api/") or self.request.path == "/healthz":
            self._write_json_error(status_code, exc)
        else:
            super().write_error(status_code, **kwargs)

    def _write_json_error(self, status_code: int, exc: BaseException | None) -> None:
        if isinstance(exc, AccountError):
            if exc.retry_after is not None:
                self.set_header("Retry-After", str(max(1, math.ceil(exc.retry_after))))
            self.write_problem(exc.code, exc.message)
        elif isinstance(exc, Invalid):
            self.write_problem(exc.code, exc.message, 400)
        elif isinstance(exc, BadToken):
            self.write_problem(ErrorCode.UNAUTHORIZED, "the token is unknown, revoked, or its account disabled")
        elif isinstance(exc, StoreUnavailable):
            self.write_problem(ErrorCode.UNAVAILABLE, "try again in a moment", 503)
        elif isinstance(exc, tornado.web.HTTPError) and "xsrf" in (exc.log_message or "").lower():
            self.write_problem(ErrorCode.FORBIDDEN, "send the X-XSRFToken header (or use a token)", status_code)
        else:
            code = {400: ErrorCode.BAD_REQUEST, 403: ErrorCode.FORBIDDEN, 404: ErrorCode.NOT_FOUND}.get(status_code)
            self.write_json({"code": code, "error": code or self._reason, "message": self._reason}, status_code)

    def set_session_cookie(self, secret: str) -> None:
        self.set_signed_cookie(
            SESSION_COOKIE, secret, httponly=True, samesite="Lax", secure=self.request.protocol == "https"
        )

    def render_login(self, *, error: str | None = None, name: str = "", mode: str = "signin", invite: str = "") -> None:
        """The sign-in page: sign-in, sign-up (``mode`` says which is shown first) and, when allowed, the guest form."""
        self.render(
            "login.html",
            error=error,
            name=name,
            mode=mode,
            invite=invite,
            guests=self.accounts.guests,
            registration=str(self.accounts.registration),
        )

    def end_guest(self) -> None:
        """Forget the guest this browser was (signing in as an account replaces it)."""
        login = read_login_cookie(self)
        if login is not None:
            session = self.service.signer.verify(login["session"])
            if session is not None:
                self.service.logout(login["name"], session)
            self.clear_cookie(LOGIN_COOKIE)


class PageHandler(BaseHandler):
    async def get(self) -> None:
        secret = read_session_cookie(self)
        account = await self.accounts.from_session(secret) if secret is not None else None
        if account is not None:
            self.render("chat.html", name=account.name, account=True, admin=account.admin, guest=False)
            return
        login = read_login_cookie(self) if self.accounts.guests else None
        if login is None:
            self.render_login()
        else:
            self.render("chat.html", name=login["name"], account=False, admin=False, guest=True)

    async def head(self) -> None:
        # Uptime checks ask with HEAD: the same answer, and Tornado leaves the body out.
        await self.get()


class SignUpHandler(BaseHandler):
    def get(self) -> None:
        invite = raw_argument(self.request.query_arguments, "invite", strict=True) or ""
        self.render_login(mode="signup", invite=invite[:128])

    async def post(self) -> None:
        raw = raw_argument(self.request.body_arguments, "name") or ""
        password = raw_argument(self.request.body_arguments, "password", strict=True) or ""
        invite = raw_argument(self.request.body_arguments, "invite", strict=True) or None
        try:
            _, secret = await self.accounts.sign_up(raw, password, invite, self.request.remote_ip or "")
        except AccountError as exc:
            self.set_status(status_of(exc.code))
            self.render_login(error=exc.message, name=_printable(raw[:64]), mode="signup", invite=invite or "")
            return
        self.end_guest()
        self.set_session_cookie(secret)
        self.redirect("/")


class SignInHandler(BaseHandler):
    async def post(self) -> None:
        raw = raw_argument(self.request.body_arguments, "name") or ""
        password = raw_argument(self.request.body_arguments, "password", strict=True) or ""
        try:
            _, secret = await self.accounts.sign_in(raw, password, self.request.remote_ip or "")
        except AccountError as exc:
            self.set_status(status_of(exc.code))
            if exc.retry_after is not None:
                self.set_header("Retry-After", str(max(1, math.ceil(exc.retry_after))))
            self.render_login(error=exc.message, name=_printable(raw[:64]))
            return
        self.end_guest()
        self.set_session_cookie(secret)
        self.redirect("/")


class SignOutHandler(BaseHandler):
    async def post(self) -> None:
        secret = read_session_cookie(self)
        if secret is not None:
            await self.accounts.sign_out(secret)
        self.clear_cookie(SESSION_COOKIE)
        self.redirect("/")


class LoginHandler(BaseHandler):
    """A guest's login: a nickname, no account."""

    async def post(self) -> None:
        raw = raw_argument(self.request.body_arguments, "name") or ""
        if not self.accounts.guests:
            self.set_status(403)
            self.render_login(error="guests are not allowed here: sign in or sign up", name=_printable(raw[:64]))
            return
        try:
            taken = not await self.accounts.guest_name_allowed(normalize_name(raw))
        except Invalid:
            taken = False  # the service refuses it below, with its own words
        if taken:
            self.set_status(409)
            self.render_login(error="that name belongs to an account: sign in", name=_printable(raw[:64]))
            return
        old = read_login_cookie(self)
        try:
            name, _, token = await self.service.login(raw, old["session"] if old else None)
        except Refused as exc:
            self.set_status({ErrorCode.NAME_TAKEN: 409, ErrorCode.UNAVAILABLE: 503}.get(exc.reason, 400))
            self.render_login(error=exc.message, name=_printable(raw[:64]))
            return
        self.set_signed_cookie(
            LOGIN_COOKIE,
            json.dumps({"name": name, "session": token}),
            httponly=True,
            samesite="Lax",
            secure=self.request.protocol == "https",
        )
        self.redirect("/")


class LogoutHandler(BaseHandler):
    def post(self) -> None:
        self.end_guest()
        self.redirect("/")


class AccountPage(BaseHandler):
    """A page for accounts only (``template``); ``admin``: for admins only, a 404 to anyone else."""

    def initialize(self, service: ChatService, accounts: Accounts, template: str = "", admin: bool = False) -> None:
        super().initialize(service, accounts)
        self.template = template
        self.admin_only = admin

    async def get(self) -> None:
        secret = read_session_cookie(self)
        account = await self.accounts.from_session(secret) if secret is not None else None
        if self.admin_only and (account is None or not account.admin):
            raise tornado.web.HTTPError(404)
        if account is None:
            self.redirect("/")
            return
        self.render(
            self.template,
            name=account.name,
            account=True,
            admin=account.admin,
            guest=False,
            registration=str(self.accounts.registration),
        )


class HealthHandler(BaseHandler):
    def get(self) -> None:
        self.write_json(self.service.health())

    def head(self) -> None:
        self.get()  # as for the page: load balancers and uptime checks use HEAD


class MetricsHandler(BaseHandler):
    """Prometheus text format. Bind to loopback or put it behind a proxy if it should not be public."""

    def initialize(self, metrics: Metrics) -> None:  # type: ignore[override]
        self.metrics = metrics

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.finish(self.metrics.render())
