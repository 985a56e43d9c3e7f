"""Fixtures of the browser tests: one Chromium per module, servers stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, expect, sync_playwright

from tests.browser.helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PASSWORD,
    PHONE,
    TIMEOUT_MS,
    ChatPage,
    How,
    Person,
)
from tests.support.procs import BlockingServerProcess as ServerProcess


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start a server with extra flags; every server started is stopped after the test."""
    servers: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        server = ServerProcess(tmp_path / f"server{len(servers)}", args)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server()


@pytest.fixture
def person(browser: Browser) -> Iterator[Person]:
    """A person on the sign-in page: signs up, signs in or continues as a guest,
    in a browser context of their own, and ends on the chat page, online."""
    pages: list[ChatPage] = []

    def open_page(server: ServerProcess, name: str, how: How = "signup", phone: bool = False) -> ChatPage:
        context = browser.new_context(viewport=PHONE if phone else DESKTOP)
        context.set_default_timeout(TIMEOUT_MS)
        chat = ChatPage(name, context.new_page(), context)
        pages.append(chat)

        def on_dialog(dialog: Dialog) -> None:
            chat.dialogs.append(dialog.message)
            dialog.dismiss()

        def on_console(message: ConsoleMessage) -> None:
            if "Content Security Policy" in message.text:  # a CSP violation is only a console error
                chat.errors.append(message.text)

        chat.page.on("dialog", on_dialog)
        chat.page.on("console", on_console)
        chat.page.on("pageerror", lambda error: chat.errors.append(str(error)))
        chat.page.goto(server.url + "/")
        if how == "guest":
            chat.by_id("login-name").fill(name)
            chat.by_id("login-submit").click()
        else:
            chat.by_id(f"{how}-name").fill(name)
            chat.by_id(f"{how}-password").fill(PASSWORD)
            chat.by_id(f"{how}-submit").click()
        expect(chat.page.locator("body")).to_have_attribute("data-name", name)
        chat.expect_online()
        # `welcome` said who we are: accounts get their controls, guests a mark.
        expect(chat.page.locator("body")).to_contain_class("is-guest" if how == "guest" else "is-account")
        return chat

    yield open_page
    for chat in pages:
        chat.context.close()
    for chat in pages:
        assert chat.errors == [], f"{chat.name}'s page had errors: {chat.errors}"
        assert chat.dialogs == [], f"{chat.name}'s page opened dialogs: {chat.dialogs}"
