"""Builds the Tornado application from :class:`chat.server.options.Settings`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import tornado.web
from tornado.log import access_log

from chat.backends.base import Broker, Directory, HistoryStore
from chat.backends.factory import open_backends
from chat.core.accounts import Accounts, Registration
from chat.core.admission import Admission
from chat.core.passwords import Passwords
from chat.core.service import ChatService, Limits
from chat.core.sessions import SessionSigner
from chat.core.throttle import Throttle
from chat.server import api, web
from chat.server.metrics import Cluster, Metrics
from chat.server.options import Settings, cookie_secret
from chat.server.ws import ChatSocket

# Where static/ and templates/ are: inside the package when installed from a
# wheel (chat/static, chat/templates), else at the top of a source checkout.
_PACKAGE = Path(__file__).resolve().parents[1]
ROOT = _PACKAGE if (_PACKAGE / "static").is_dir() else _PACKAGE.parent


class ChatApplication(tornado.web.Application):
    chat: ChatService
    accounts: Accounts
    posts: api.PostLimiter

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        # A WebSocket upgrade (101) is logged at DEBUG, not INFO: it is every
        # socket's open, and in a join storm of 10,000 sockets those lines
        # took 3% of the workers' CPU. Refusals (4xx, 5xx) are logged as before.
        if handler.get_status() == 101:
            if access_log.isEnabledFor(logging.DEBUG):
                access_log.debug("101 %s", handler._request_summary())
            return
        super().log_request(handler)


def make_app(
    settings: Settings,
    *,
    store: HistoryStore | None = None,
    broker: Broker | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    cluster: Cluster | None = None,
    directory: Directory | None = None,
    passwords: Passwords | None = None,
) -> ChatApplication:
    """The application; ``await app.chat.start()`` before serving.

    ``store`` and ``broker``: a pair to use instead of the one ``settings``
    ask for (see :func:`chat.backends.factory.open_backends`).
    ``cluster``: this is one worker of ``server.py --workers``, and /metrics
    reports every worker (see :mod:`chat.server.metrics`).
    ``directory``: the accounts' and rooms' rows (default: the store's own,
    ``store.directory()``); ``passwords``: the hasher (tests pass a cheap one).
    """
    secret = cookie_secret(settings)
    if store is None and broker is None:
        store, broker = open_backends(settings, clock)
    elif store is None or broker is None:
        raise TypeError("make_app takes a store and its broker together, or neither")
    metrics = Metrics(cluster)
    service = ChatService(
        store,
        SessionSigner(secret.encode()),
        Limits(
            history_on_join=settings.history_on_join,
            max_message_chars=settings.max_message_chars,
            rate=settings.rate,
            burst=settings.burst,
            max_rooms_per_connection=settings.max_rooms_per_connection,
            max_backlog_bytes=settings.max_backlog_bytes,
        ),
        broker=broker,
        clock=clock,
        wall=wall,
        metrics=metrics,
        directory=directory,
        guests=settings.guests,
    )
    accounts = Accounts(
        service.directory,
        passwords if passwords is not None else Passwords(),
        Throttle(clock),
        service,
        wall=wall,
        registration=Registration(settings.registration),
        guests=settings.guests,
    )
    deps = {"service": service, "accounts": accounts}
    posts = api.PostLimiter(settings.rate, settings.burst, clock)
    app = ChatApplication(
        [
            # The socket first: a join storm routes every connect, and Tornado tries the rules in order.
            (
                r"/ws",
                ChatSocket,
                {
                    "service": service,
                    "accounts": accounts,
                    "admission": Admission(settings.max_connections, settings.max_connections_per_ip),
                    "allowed_origins": frozenset(settings.allow_origin),
                    "compress": settings.compress,
                },
            ),
            (r"/", web.PageHandler, deps),
            (r"/signup", web.SignUpHandler, deps),
            (r"/signin", web.SignInHandler, deps),
            (r"/signout", web.SignOutHandler, deps),
            (r"/login", web.LoginHandler, deps),
            (r"/logout", web.LogoutHandler, deps),
            (r"/tokens", web.AccountPage, {**deps, "template": "tokens.html"}),
            (r"/admin", web.AccountPage, {**deps, "template": "admin.html", "admin": True}),
            (r"/api/me", api.MeApi, deps),
            (r"/api/rooms", api.RoomsApi, deps),
            (r"/api/rooms/([^/]+)/messages", api.MessagesApi, {**deps, "posts": posts}),
            (r"/api/search", api.SearchApi, deps),
            (r"/api/tokens", api.TokensApi, deps),
            (r"/api/tokens/([^/]+)", api.TokenApi, deps),
            (r"/api/password", api.PasswordApi, deps),
            (r"/api/admin/accounts", api.AdminAccountsApi, deps),
            (r"/api/admin/accounts/([^/]+)", api.AdminAccountApi, deps),
            (r"/api/invites", api.InvitesApi, deps),
            (r"/healthz", web.HealthHandler, deps),
            (r"/metrics", web.MetricsHandler, {"metrics": metrics}),
        ],
        template_path=str(ROOT / "templates"),
        static_path=str(ROOT / "static"),
        cookie_secret=secret,
        xsrf_cookies=True,
        # The page's script never reads the XSRF cookie (the forms carry the
        # token), so it is HttpOnly too; Secure whenever we serve TLS.
        xsrf_cookie_kwargs={"samesite": "Lax", "httponly": True, "secure": settings.tls},
        websocket_max_message_size=settings.max_frame_bytes,
        websocket_ping_interval=settings.ping_interval or None,
    )
    app.chat = service
    app.accounts = accounts
    app.posts = posts
    return app
