"""The real chat server in-process, with accounts, for the client's tests against it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import tornado.ioloop
from argon2 import PasswordHasher, profiles

from chat.core.passwords import Passwords
from chat.server.app import ChatApplication, make_app
from chat.server.options import Settings
from tests.support.fakes import FakeClock

# Reconnect at once: the tests drop connections on purpose.
FAST: dict[str, Any] = {"backoff_base": 0.01, "backoff_cap": 0.05}


def started_app(settings: Settings, io_loop: tornado.ioloop.IOLoop, clock: FakeClock) -> Iterator[ChatApplication]:
    """The app with a cheap password hasher, started, and stopped after (a fixture's body)."""
    cheap = Passwords(PasswordHasher.from_parameters(profiles.CHEAPEST))
    application = make_app(settings, clock=clock, passwords=cheap)
    io_loop.run_sync(application.chat.start)
    yield application
    io_loop.run_sync(application.chat.stop)


async def token_for(app: ChatApplication, name: str) -> str:
    """A new account ``name`` (the first one is the admin) and a token of it."""
    account = await app.accounts.add_user(name, "correct horse battery")
    token, _ = await app.accounts.create_token(account, "tests")
    return token
