"""The chat page in real headless Chromium (Playwright), against a real server process.

Each test starts ``server.py`` on a free loopback port with its own database,
logs people in through the form in separate browser contexts (separate cookie
jars, as separate people would have) and drives the page the way a person
would. Waiting is done by Playwright's auto-waiting ``expect``, never by sleeps.

Every state a test visits is also checked with axe-core (``assert_accessible``),
in light and dark colours: a serious or critical WCAG violation fails the test.
Chromium and the servers come from conftest.py; the shared pieces from helpers.py.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Protocol

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    WebSocketRoute,
    expect,
)
from websockets.sync.client import connect as ws_connect

from tests.browser.helpers import BROWSER_MARKS, TIMEOUT_MS, ChatPage, assert_accessible
from tests.support.procs import BlockingServerProcess as ServerProcess

XSS = "<img src=x onerror=alert(1)>"

pytestmark = BROWSER_MARKS


class OpenChat(Protocol):
    def __call__(
        self, server: ServerProcess, name: str, setup: Callable[[BrowserContext], None] | None = None
    ) -> ChatPage: ...


@pytest.fixture
def open_chat(browser: Browser) -> Iterator[OpenChat]:
    """Log a new person in through the form, in a browser context of their own.

    ``setup`` gets the context before the page loads (to route its socket, say).
    """
    pages: list[ChatPage] = []

    def open_page(server: ServerProcess, name: str, setup: Callable[[BrowserContext], None] | None = None) -> ChatPage:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        if setup is not None:
            setup(context)
        chat = ChatPage(name, context.new_page(), context)
        pages.append(chat)

        def on_dialog(dialog: Dialog) -> None:
            chat.dialogs.append(dialog.message)
            dialog.dismiss()

        def on_console(message: ConsoleMessage) -> None:
            # A CSP violation is only a console error: catch it here.
            if "Content Security Policy" in message.text:
                chat.errors.append(message.text)

        chat.page.on("dialog", on_dialog)
        chat.page.on("console", on_console)
        chat.page.on("pageerror", lambda error: chat.errors.append(str(error)))
        chat.page.goto(server.url + "/")
        assert_accessible(chat.page, "sign-in page")
        chat.by_id("login-name").fill(name)
        chat.by_id("login-submit").click()
        expect(chat.page.locator("body")).to_have_attribute("data-name", name)
        chat.expect_online()
        chat.assert_accessible("chat page, just signed in")
        return chat

    yield open_page
    for chat in pages:
        chat.context.close()
    for chat in pages:
        assert chat.errors == [], f"{chat.name}'s page had errors: {chat.errors}"
        assert chat.dialogs == [], f"{chat.name}'s page opened dialogs: {chat.dialogs}"


def seed_messages(server: ServerProcess, room: str, texts: list[str]) -> None:
    """Post messages as a script would; returns once the server has acknowledged them all."""
    with ws_connect(f"ws://127.0.0.1:{server.port}/ws?name=seeder", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "welcome"
        ws.send(json.dumps({"type": "join", "room": room}))
        while json.loads(ws.recv(timeout=10))["type"] != "joined":
            pass
        # Sent back to back, then acknowledged in order: the server handles a
        # connection's frames one after another.
        for i, text in enumerate(texts):
            ws.send(json.dumps({"type": "say", "room": room, "text": text, "ref": f"seed-{i}"}))
        last = f"seed-{len(texts) - 1}"
        while (frame := json.loads(ws.recv(timeout=10))).get("ref") != last:
            assert frame["type"] != "error", frame


# -- the tests ------------------------------------------------------------------


def test_two_people_chat_both_ways_with_presence_and_typing(server: ServerProcess, open_chat: OpenChat) -> None:
    alice = open_chat(server, "alice")
    bob = open_chat(server, "bob")
    alice.join("garden")
    bob.join("garden")

    # Presence: bob's join reached alice live; bob got alice in `joined`.
    expect(alice.member("bob")).to_have_count(1)
    expect(bob.member("alice")).to_have_count(1)

    alice.send("hello bob")
    last = bob.page.locator("#messages [data-testid=message]").last
    expect(last.get_by_test_id("message-text")).to_have_text("hello bob")
    expect(last.get_by_test_id("message-name")).to_have_text("alice")
    expect(last.get_by_test_id("message-time")).to_have_text(re.compile(r"\d"))  # a local time
    expect(alice.texts).to_have_text(["hello bob"])  # the sender's copy, once
    expect(alice.by_id("outbox").locator("li")).to_have_count(0)

    # Typing: bob types without sending; alice sees it until his message lands.
    bob.by_id("composer-input").press_sequentially("hi al")
    expect(alice.by_id("typing-indicator")).to_have_text("bob is typing…")
    alice.assert_accessible("room with a message, two members and someone typing")
    bob.by_id("composer-input").press_sequentially("ice")
    bob.by_id("composer-input").press("Enter")
    expect(alice.texts).to_have_text(["hello bob", "hi alice"])
    expect(alice.by_id("typing-indicator")).to_have_text("")

    # Leaving: bob's leave reaches alice's member list.
    bob.by_id("leave-room").click()
    expect(alice.member("bob")).to_have_count(0)
    expect(alice.member("alice")).to_have_count(1)


def test_enter_sends_and_shift_enter_makes_a_new_line(server: ServerProcess, open_chat: OpenChat) -> None:
    alice = open_chat(server, "alice")
    bob = open_chat(server, "bob")
    alice.join("lines")
    bob.join("lines")

    composer = alice.by_id("composer-input")
    composer.press_sequentially("line one")
    composer.press("Shift+Enter")
    composer.press_sequentially("line two")
    expect(composer).to_have_value("line one\nline two")  # not sent yet
    composer.press("Enter")

    expect(bob.texts).to_have_count(1)
    assert bob.texts.first.text_content() == "line one\nline two"
    expect(composer).to_have_value("")


def test_message_markup_shows_as_text(server: ServerProcess, open_chat: OpenChat) -> None:
    alice = open_chat(server, "alice")
    bob = open_chat(server, "bob")
    alice.join("safe")
    bob.join("safe")

    alice.send(XSS)
    for chat in (alice, bob):
        expect(chat.texts).to_have_text([XSS])
        assert chat.texts.first.text_content() == XSS
        expect(chat.by_id("message-list").locator("img")).to_have_count(0)
        chat.assert_accessible("room with a message of markup")
    # No alert fired: open_chat fails the test on any dialog or page error.
    assert alice.dialogs == bob.dialogs == []


def test_unread_count_on_a_room_not_in_view(server: ServerProcess, open_chat: OpenChat) -> None:
    alice = open_chat(server, "alice")
    bob = open_chat(server, "bob")
    bob.join("news")
    bob.join("quiet")  # bob now looks at #quiet
    alice.join("news")
    expect(bob.by_id("room-news")).to_be_visible()

    alice.send("one")
    alice.send("two")
    expect(bob.by_id("unread-news")).to_have_text("2")
    expect(bob.by_id("unread-quiet")).to_have_count(0)
    bob.assert_accessible("two rooms, unread messages in the other one")

    bob.by_id("room-news").click()
    expect(bob.texts).to_have_text(["one", "two"])
    expect(bob.by_id("unread-news")).to_have_count(0)


def test_scrolling_up_loads_older_messages(start_server: Callable[..., ServerProcess], open_chat: OpenChat) -> None:
    # 20 on join and 60 in the room: 40 are only reachable by scrolling up.
    # Rate limiting is off only so that the seeding script can post quickly.
    server = start_server("--history-on-join", "20", "--rate", "0")
    # Three lines each, so that 20 of them overflow the screen.
    seed_messages(server, "archive", [f"message {i}\nsecond line\nthird line" for i in range(1, 61)])

    alice = open_chat(server, "alice")
    alice.join("archive")
    expect(alice.texts).to_have_count(20)
    expect(alice.texts.first).to_contain_text("message 41")

    alice.by_id("scroller").evaluate("el => el.scrollTo(0, 0)")
    expect(alice.texts).to_have_count(60)  # every message, none twice
    assert alice.texts.first.text_content() == "message 1\nsecond line\nthird line"
    expect(alice.texts.last).to_contain_text("message 60")
    expect(alice.by_id("load-older")).to_be_hidden()  # seq 1 is the beginning
    alice.assert_accessible("room with 60 messages of three lines")


def test_server_errors_show_next_to_the_message(
    start_server: Callable[..., ServerProcess], open_chat: OpenChat
) -> None:
    server = start_server("--max-message-chars", "20")
    alice = open_chat(server, "alice")
    alice.join("limits")

    alice.send("this is far longer than twenty characters")
    failed = alice.by_id("pending-message")
    expect(failed).to_contain_text("Not sent")
    expect(failed).to_contain_text("at most 20")
    alice.assert_accessible("a message refused, with Retry and Discard")
    failed.get_by_role("button", name="Discard").click()
    expect(failed).to_have_count(0)
    alice.send("short")
    expect(alice.texts).to_have_text(["short"])


def test_page_reconnects_after_a_restart_and_shows_missed_messages_once(
    start_server: Callable[..., ServerProcess], open_chat: OpenChat
) -> None:
    # One message on join: a page that rejoined without `since` would miss
    # "while away 1", so only a real resume passes.
    server = start_server("--history-on-join", "1")
    alice = open_chat(server, "alice")
    bob = open_chat(server, "bob")
    alice.join("resume")
    bob.join("resume")
    alice.send("before restart")
    expect(bob.texts).to_have_text(["before restart"])

    # Alice's network goes away: her open socket lives on until the server
    # drops it, but no new one can open until she is back online.
    alice.context.set_offline(True)
    server.restart()
    expect(alice.by_id("connection-state")).to_have_attribute("data-state", "reconnecting")

    # Bob reconnects by himself and talks while alice is away.
    bob.expect_online()
    bob.send("while away 1")
    bob.send("while away 2")
    expect(bob.texts).to_have_text(["before restart", "while away 1", "while away 2"])

    # Alice writes while offline: it waits in her outbox.
    alice.send("written offline")
    expect(alice.by_id("pending-message")).to_contain_text("written offline")
    alice.assert_accessible("reconnecting, a message waiting for the connection")

    alice.context.set_offline(False)
    alice.expect_online()
    everything = ["before restart", "while away 1", "while away 2", "written offline"]
    expect(alice.texts).to_have_text(everything)  # the missed ones, each exactly once
    expect(bob.texts).to_have_text(everything)  # her queued message, exactly once
    expect(alice.by_id("outbox").locator("li")).to_have_count(0)
    expect(alice.member("bob")).to_have_count(1)
    expect(bob.member("alice")).to_have_count(1)


def test_resume_fetches_the_rest_when_more_than_a_thousand_were_missed(
    start_server: Callable[..., ServerProcess], open_chat: OpenChat
) -> None:
    # Rate limiting is off only so that the seeding script can post quickly.
    server = start_server("--rate", "0")
    alice = open_chat(server, "alice")
    alice.join("backlog")
    alice.context.set_offline(True)
    server.restart()
    expect(alice.by_id("connection-state")).to_have_attribute("data-state", "reconnecting")

    # The resume's `joined` carries 1000 of these and "truncated": the page
    # must fetch the other 5 with `history` `after`.
    seed_messages(server, "backlog", [f"m{i}" for i in range(1, 1006)])
    alice.context.set_offline(False)
    alice.expect_online()
    expect(alice.texts).to_have_count(1005)
    assert alice.texts.first.text_content() == "m1"
    assert alice.texts.last.text_content() == "m1005"


def test_a_gap_frame_makes_the_page_fetch_the_missing_range(server: ServerProcess, open_chat: OpenChat) -> None:
    # Alice's socket runs through Playwright, which drops the live copies of
    # two messages and then tells her page about them with a `gap` frame, as
    # a server that shed load would.
    dropped = {"two", "three"}
    page_sides: list[WebSocketRoute] = []

    def route(ws: WebSocketRoute) -> None:
        page_sides.append(ws)
        upstream = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if not (frame.get("type") == "message" and frame.get("text") in dropped):
                ws.send(message)

        upstream.on_message(from_server)

    alice = open_chat(server, "alice", setup=lambda context: context.route_web_socket("**/ws", route))
    bob = open_chat(server, "bob")
    alice.join("holes")
    bob.join("holes")
    bob.send("one")
    bob.send("two")
    bob.send("three")
    expect(bob.texts).to_have_text(["one", "two", "three"])
    expect(alice.texts).to_have_text(["one"])

    page_sides[-1].send(json.dumps({"type": "gap", "room": "holes", "from_seq": 2, "to_seq": 3}))
    expect(alice.texts).to_have_text(["one", "two", "three"])


def test_a_join_refused_as_unavailable_is_retried_not_dropped(server: ServerProcess, open_chat: OpenChat) -> None:
    # Playwright answers Alice's first join of the room the way a server answers
    # while Redis is away; her page must try again, not forget the room.
    refused: list[str] = []

    def route(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "join" and frame.get("room") == "flaky" and not refused:
                refused.append(frame.get("ref", ""))
                error = {"type": "error", "code": "unavailable", "message": "history is unavailable; try again"}
                ws.send(json.dumps({**error, "ref": frame.get("ref")}))
                return
            upstream.send(message)

        ws.on_message(from_page)

    alice = open_chat(server, "alice", setup=lambda context: context.route_web_socket("**/ws", route))
    bob = open_chat(server, "bob")
    alice.join("flaky")
    bob.join("flaky")
    bob.send("made it")
    expect(alice.texts).to_have_text(["made it"])
    assert len(refused) == 1


# A condition that only Python can see (what a WebSocket route recorded) is
# polled while Playwright dispatches the route's events: every 50 ms, for at
# most the usual timeout.
POLL_MS = 50


def wait_until(page: Page, condition: Callable[[], bool], what: str) -> None:
    """Let Playwright run the page's event handlers until ``condition()`` holds."""
    for _ in range(TIMEOUT_MS // POLL_MS):
        if condition():
            return
        page.wait_for_timeout(POLL_MS)
    raise AssertionError(f"timed out waiting until {what}")


def stored_texts(server: ServerProcess, room: str) -> list[str]:
    """The room's history as the server has stored it, oldest first (up to 200)."""
    url = f"{server.url}/api/rooms/{urllib.parse.quote(room)}/messages?limit=200"
    with urllib.request.urlopen(url, timeout=10) as response:
        return [m["text"] for m in json.load(response)["messages"]]


# Sending 60 says takes the page about 3 s at --rate 5 beyond its burst of 10:
# a reload one second after the last Enter surely interrupts it. Twice the
# default wait leaves room for that on a busy machine.
SLOW_RATE_TIMEOUT_MS = 2 * TIMEOUT_MS


@pytest.mark.parametrize("rate", ["20", "5"], ids=["default-rate", "slow-rate"])
def test_sixty_messages_typed_fast_are_stored_once_in_order_across_a_reload(
    start_server: Callable[..., ServerProcess], open_chat: OpenChat, rate: str
) -> None:
    # 60 says typed as fast as Playwright can type are more than the server
    # takes at once (its default --rate 20 frames/s allows bursts of 40), so
    # some are answered "not now" (or, on a server that paces its reading,
    # read later): the page must send each again before the ones typed after
    # it. Then the user reloads while some may still be "Sending…": the page
    # sends those again after the reload, and the server's history must hold
    # each of the 60 once, in the order typed. At --rate 5 (bursts of 10) the
    # reload always lands while many are still unsent, however fast this
    # machine types.
    server = start_server("--rate", rate)
    alice = open_chat(server, "alice")
    alice.join("fast")
    typed = [f"m{i}" for i in range(60)]
    for text in typed:
        alice.send(text)  # fill, then Enter: the fastest typing Playwright does
    # The user's one-second pause before reloading: part of the scenario
    # (the report), not a wait for something to happen.
    alice.page.wait_for_timeout(1000)
    pending_at_reload = alice.by_id("pending-message").count()
    alice.page.reload()
    alice.expect_online()

    # Every message the page still held is acknowledged: stored.
    expect(alice.by_id("outbox").locator("li")).to_have_count(0, timeout=SLOW_RATE_TIMEOUT_MS)
    assert stored_texts(server, "fast") == typed
    expect(alice.texts.last).to_have_text("m59")
    if rate == "5":
        assert pending_at_reload > 0, "the reload came after every message was stored: it proved nothing"
    alice.assert_accessible("room after 60 fast messages and a reload")


@pytest.mark.parametrize("how", ["reload", "tab-closed-and-reopened"])
def test_a_message_pending_during_a_reload_is_stored_once_after_it(
    server: ServerProcess, open_chat: OpenChat, how: str
) -> None:
    # Until the reload, Playwright swallows the server's acknowledgement of
    # Alice's first message: the server stored it, her page cannot know. Her
    # second message waits behind it. After the reload (or with the tab closed
    # and the page opened again in a new one) the page sends both again with
    # their refs; the server answers the first with the message it already
    # has (same session: the login cookie survives), and stores the second.
    state = {"blocking": True}
    say_refs: list[str] = []
    swallowed: list[str] = []

    def route(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "say":
                say_refs.append(frame["ref"])
            upstream.send(message)

        def from_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if state["blocking"] and frame.get("type") == "message" and frame.get("ref"):
                swallowed.append(frame["ref"])
                return
            ws.send(message)

        ws.on_message(from_page)
        upstream.on_message(from_server)

    alice = open_chat(server, "alice", setup=lambda context: context.route_web_socket("**/ws", route))
    bob = open_chat(server, "bob")
    alice.join("reload")
    bob.join("reload")
    alice.send("stored, answer lost")
    alice.send("typed after it")
    expect(bob.texts).to_have_text(["stored, answer lost"])  # stored: bob has it
    wait_until(alice.page, lambda: len(swallowed) == 1, "the acknowledgement is swallowed")
    expect(alice.by_id("pending-message")).to_have_count(2)  # alice does not know
    alice.assert_accessible("two messages shown as sending")
    assert say_refs == swallowed  # the second waits behind the first

    state["blocking"] = False
    if how == "reload":
        alice.page.reload()
    else:
        alice.page.close()
        alice.page = alice.context.new_page()
        alice.page.on("pageerror", lambda error: alice.errors.append(str(error)))
        alice.page.goto(server.url + "/")
    alice.expect_online()
    expect(alice.by_id("outbox").locator("li")).to_have_count(0)
    expect(bob.texts).to_have_text(["stored, answer lost", "typed after it"])
    assert stored_texts(server, "reload") == ["stored, answer lost", "typed after it"]
    expect(alice.texts).to_have_text(["stored, answer lost", "typed after it"])
    # The first one really went out twice, under one ref: the server's
    # deduplication, not luck, kept it single.
    assert say_refs[:2] == [swallowed[0], swallowed[0]]
    assert len(set(say_refs)) == 2


def test_a_say_refused_as_unavailable_is_sent_again_before_those_after_it(
    server: ServerProcess, open_chat: OpenChat
) -> None:
    # Playwright answers the first try of "m1" as a server answers while its
    # store is away; the page must send it again, and hold m2... until then.
    refused: list[str] = []

    def route(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "say" and frame.get("text") == "m1" and not refused:
                refused.append(frame["ref"])
                error = {"type": "error", "code": "unavailable", "message": "history is unavailable; try again"}
                ws.send(json.dumps({**error, "ref": frame["ref"]}))
                return
            upstream.send(message)

        ws.on_message(from_page)

    alice = open_chat(server, "alice", setup=lambda context: context.route_web_socket("**/ws", route))
    alice.join("flaky")
    typed = [f"m{i}" for i in range(5)]
    composer = alice.by_id("composer-input")
    for text in typed:
        composer.press_sequentially(text)
        composer.press("Enter")
    expect(alice.by_id("outbox").locator("li")).to_have_count(0)
    expect(alice.texts).to_have_text(typed)
    assert stored_texts(server, "flaky") == typed
    assert len(refused) == 1
