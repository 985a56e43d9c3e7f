"""What the browser tests share: how Chromium starts, the axe-core check, a signed-in page."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import pytest
from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from playwright.sync_api import BrowserContext, Locator, Page, ViewportSize, expect

from tests.support.procs import BlockingServerProcess as ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
# How Chromium starts on these machines (see ../shared/DESIGN.md): Debian's
# build, no sandbox in the container, nothing that phones home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous: the machines are shared and noisy. Nothing waits this long unless
# a test is failing. A reconnect after a restart includes the page's backoff.
TIMEOUT_MS = 20_000
# axe-core's two worst impact levels: each is a WCAG failure a user meets.
SERIOUS_IMPACTS = {"serious", "critical"}
# The bundled axe.min.js (axe-playwright-python ships it): no network needed.
AXE = Axe()

# Every browser test module starts with ``pytestmark = BROWSER_MARKS``.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing: `make browser` installs Debian's chromium for the browser tests",
    ),
]

expect.set_options(timeout=TIMEOUT_MS)

# People who sign up (the `person` fixture, conftest.py) use this password.
PASSWORD = "correct horse battery"
PHONE: ViewportSize = {"width": 375, "height": 740}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}

How = Literal["signup", "signin", "guest"]


def assert_accessible(page: Page, state: str) -> None:
    """axe-core on the page as it is now, in light and in dark colours.

    style.css follows ``prefers-color-scheme``, so each scheme is a page state
    of its own (contrast differs). Reduced motion stops the toast's fade-in,
    which axe would otherwise measure halfway.
    """
    try:
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
            results = AXE.run(page)
            serious = [v for v in results.response["violations"] if v["impact"] in SERIOUS_IMPACTS]
            assert serious == [], f"axe on {state}, {scheme}: " + results.generate_report()
    finally:
        page.emulate_media(color_scheme="light", reduced_motion="no-preference")


@dataclass
class ChatPage:
    """A logged-in page and what it did that it should not have."""

    name: str
    page: Page
    context: BrowserContext
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def by_id(self, testid: str) -> Locator:
        return self.page.get_by_test_id(testid)

    @property
    def texts(self) -> Locator:
        """The text of every message in the room on screen, oldest first."""
        return self.page.locator("#messages [data-testid=message-text]")

    def member(self, name: str) -> Locator:
        return self.by_id("member-list").locator(f'[data-name="{name}"]')

    def expect_online(self) -> None:
        expect(self.by_id("connection-state")).to_have_attribute("data-state", "online")

    def join(self, room: str) -> None:
        self.by_id("join-input").fill(room)
        self.by_id("join-input").press("Enter")
        expect(self.by_id("room-title")).to_have_text(f"# {room}")
        # Members come with the server's `joined` reply: then the room is live.
        expect(self.member(self.name)).to_have_count(1)

    def send(self, text: str) -> None:
        self.by_id("composer-input").fill(text)
        self.by_id("composer-input").press("Enter")

    def assert_accessible(self, state: str) -> None:
        assert_accessible(self.page, f"{self.name}'s {state}")


class Person(Protocol):
    """The `person` fixture (conftest.py): someone who signs up, signs in or
    continues as a guest, in a browser context of their own."""

    def __call__(self, server: ServerProcess, name: str, how: How = "signup", phone: bool = False) -> ChatPage: ...
