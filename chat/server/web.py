"""HTTP handlers: the page, login and logout, the JSON API and health."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from typing import Any

import tornado.web

from chat.backends.base import StoreUnavailable
from chat.core.errors import ErrorCode, Invalid, Refused
from chat.core.limits import HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX
from chat.core.policy import ANONYMOUS
from chat.core.service import ChatService
from chat.core.validation import normalize_room
from chat.server.metrics import CONTENT_TYPE, Metrics

LOGIN_COOKIE = "chat_user"  # a guest's name and session
SESSION_COOKIE = "chat_session"  # an account's page session (its secret; the database keeps its hash)

# No inline script, no foreign source: a message that slipped into the page as
# HTML still could not run.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


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


class BaseHandler(tornado.web.RequestHandler):
    service: ChatService

    def initialize(self, service: ChatService) -> None:
        self.service = service

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")

    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(value, separators=(",", ":"), ensure_ascii=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if self.request.path.startswith("/api/") or self.request.path == "/healthz":
            self.write_json({"error": self._reason}, status_code)
        else:
            super().write_error(status_code, **kwargs)


class PageHandler(BaseHandler):
    def get(self) -> None:
        login = read_login_cookie(self)
        if login is None:
            self.render("login.html", error=None, name="")
        else:
            self.render("chat.html", name=login["name"])

    def head(self) -> None:
        # Uptime checks ask with HEAD: the same answer, and Tornado leaves the body out.
        self.get()


class LoginHandler(BaseHandler):
    async def post(self) -> None:
        raw = raw_argument(self.request.body_arguments, "name") or ""
        old = read_login_cookie(self)
        try:
            name, _, token = await self.service.login(raw, old["session"] if old else None)
        except Refused as exc:
            self.set_status({ErrorCode.NAME_TAKEN: 409, ErrorCode.UNAVAILABLE: 503}.get(exc.reason, 400))
            self.render("login.html", error=exc.message, name=_printable(raw[:64]))
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
        login = read_login_cookie(self)
        if login is not None:
            session = self.service.signer.verify(login["session"])
            if session is not None:
                self.service.logout(login["name"], session)
        self.clear_cookie(LOGIN_COOKIE)
        self.redirect("/")


class RoomsApi(BaseHandler):
    async def get(self) -> None:
        try:
            rooms = await self.service.room_summaries(ANONYMOUS)
        except StoreUnavailable:
            self.write_json({"error": ErrorCode.UNAVAILABLE, "message": "try again in a moment"}, 503)
            return
        self.write_json({"rooms": [r.to_wire() for r in rooms]})


class MessagesApi(BaseHandler):
    async def get(self, raw_room: str) -> None:
        try:
            room = normalize_room(raw_room)
        except Invalid as exc:
            self.write_json({"error": exc.code, "message": exc.message}, 400)
            return
        try:
            before = self._int_arg("before", None)
            limit = self._int_arg("limit", HISTORY_PAGE_DEFAULT)
        except ValueError as exc:
            self.write_json({"error": ErrorCode.BAD_REQUEST, "message": str(exc)}, 400)
            return
        if limit is None or limit < 1:
            self.write_json({"error": ErrorCode.BAD_REQUEST, "message": "limit must be at least 1"}, 400)
            return
        try:
            messages = await self.service.store.before(room, before, min(limit, HISTORY_PAGE_MAX))
        except StoreUnavailable:
            self.write_json({"error": ErrorCode.UNAVAILABLE, "message": "try again in a moment"}, 503)
            return
        self.write_json({"messages": [m.to_public() for m in messages]})

    def _int_arg(self, key: str, default: int | None) -> int | None:
        raw = self.get_query_argument(key, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{key} must be an integer") from None
        if value < 0:
            raise ValueError(f"{key} must not be negative")
        return value


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
