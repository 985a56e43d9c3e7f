"""Edits, deletions, reactions, read markers, mentions and search in the page,
in real headless Chromium against a real server process, with two accounts
each in a browser context of their own (the `person` fixture, conftest.py),
one of them on a phone (a long press instead of hover).

What one person does to a message reaches the other live: an edit (with its
"edited" mark), a deletion (a tombstone without the text), reaction chips with
counts. The server's read marker survives a reload: the room list shows the
unread and mention counts, and opening the room puts a "new since you left"
line above the first message not read; a message naming the reader is
highlighted. A search result opens its room at the message, even one older
than what the room first loads. Every state visited passes axe-core in light
and dark colours.
"""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Locator, expect

from tests.browser.helpers import BROWSER_MARKS, ChatPage, Person
from tests.support.procs import BlockingServerProcess as ServerProcess

pytestmark = BROWSER_MARKS

# Few messages on join, so that a search result can be older than what a
# room first loads; no rate limit, so that filling the room is quick.
SERVER_ARGS = ("--history-on-join", "10", "--rate", "0")


def message(chat: ChatPage, text: str) -> Locator:
    """The message of the room on screen whose text is ``text``."""
    return chat.page.locator("#messages [data-testid=message]").filter(
        has=chat.page.get_by_test_id("message-text").get_by_text(text, exact=True)
    )


def tool(chat: ChatPage, msg: Locator, action: str) -> Locator:
    """A message's tool button (react, edit, delete), shown on hover."""
    msg.hover()
    return msg.get_by_test_id(f"message-{action}")


def long_press(msg: Locator) -> None:
    """A finger held on a message (touch screens have no hover): its tools open."""
    box = msg.bounding_box()
    assert box is not None
    where = {"pointerType": "touch", "isPrimary": True, "clientX": box["x"] + 20, "clientY": box["y"] + 10}
    msg.dispatch_event("pointerdown", where)
    expect(msg).to_contain_class("msg--tools-open")  # after the press time, without moving
    msg.dispatch_event("pointerup", where)


def chip(msg: Locator, emoji: str) -> Locator:
    return msg.get_by_test_id("reaction-chip").filter(has_text=emoji)


def test_edit_delete_and_react_reach_the_other_person(
    start_server: Callable[..., ServerProcess], person: Person
) -> None:
    server = start_server(*SERVER_ARGS)
    alice = person(server, "alice")
    bob = person(server, "bob", phone=True)
    alice.join("lobby")
    bob.join("lobby")
    alice.send("helo wrold")
    alice.send("a second thought")
    expect(bob.texts).to_have_text(["helo wrold", "a second thought"])

    # Alice edits her message inline: Esc leaves it as it was, Enter saves.
    tool(alice, message(alice, "helo wrold"), "edit").click()
    editor = alice.by_id("edit-input")
    expect(editor).to_be_focused()
    expect(editor).to_have_value("helo wrold")
    editor.fill("never mind")
    editor.press("Escape")
    expect(alice.by_id("edit-input")).to_have_count(0)
    expect(alice.texts).to_have_text(["helo wrold", "a second thought"])
    tool(alice, message(alice, "helo wrold"), "edit").click()
    alice.by_id("edit-input").fill("hello world")
    alice.by_id("edit-input").press("Enter")
    expect(alice.texts).to_have_text(["hello world", "a second thought"])
    # Bob sees the new text, marked as edited.
    expect(bob.texts).to_have_text(["hello world", "a second thought"])
    expect(message(bob, "hello world").get_by_test_id("message-edited")).to_have_count(1)

    # Bob, on a phone, holds his finger on alice's message: he may only react
    # to it, no edit, no delete offered.
    theirs = message(bob, "hello world")
    long_press(theirs)
    expect(theirs.get_by_test_id("message-react")).to_be_visible()
    expect(theirs.get_by_test_id("message-edit")).to_have_count(0)
    expect(theirs.get_by_test_id("message-delete")).to_have_count(0)
    theirs.get_by_test_id("message-react").click()
    theirs.get_by_role("button", name="React 🎉").click()
    expect(chip(theirs, "🎉")).to_have_attribute("aria-pressed", "true")
    # Alice sees bob's 🎉 and adds hers by clicking the chip: two, hers highlighted.
    mine = message(alice, "hello world")
    expect(chip(mine, "🎉")).to_contain_text("1")
    expect(chip(mine, "🎉")).to_have_attribute("aria-pressed", "false")
    chip(mine, "🎉").click()
    expect(chip(mine, "🎉")).to_contain_text("2")
    expect(chip(mine, "🎉")).to_have_attribute("aria-pressed", "true")
    expect(chip(theirs, "🎉")).to_contain_text("2")
    # Bob takes his back with the chip.
    chip(theirs, "🎉").click()
    expect(chip(mine, "🎉")).to_contain_text("1")
    expect(chip(theirs, "🎉")).to_have_attribute("aria-pressed", "false")
    bob.assert_accessible("a message with a reaction chip, on a phone")

    # Alice deletes her second message, after confirming: a tombstone for both.
    tool(alice, message(alice, "a second thought"), "delete").click()
    expect(alice.by_id("delete-dialog")).to_be_visible()
    alice.assert_accessible("the delete confirmation")
    alice.by_id("delete-cancel").click()
    expect(alice.texts).to_have_text(["hello world", "a second thought"])
    tool(alice, message(alice, "a second thought"), "delete").click()
    alice.by_id("delete-confirm").click()
    expect(alice.texts).to_have_text(["hello world", "message deleted"])
    expect(bob.texts).to_have_text(["hello world", "message deleted"])
    expect(bob.page.get_by_text("a second thought")).to_have_count(0)
    # A tombstone offers nothing more.
    tombstone = message(bob, "message deleted")
    tombstone.hover()
    expect(tombstone.get_by_test_id("message-react")).to_have_count(0)
    alice.assert_accessible("an edited message, a reaction and a deleted message")


def test_unread_line_mentions_and_search_across_a_reload(
    start_server: Callable[..., ServerProcess], person: Person
) -> None:
    server = start_server(*SERVER_ARGS)
    alice = person(server, "alice")
    bob = person(server, "bob")
    alice.join("lobby")
    bob.join("lobby")
    bob.send("the zebra crossing is on fifth street")
    # More than a room first loads (and one screen), so that the search
    # result must bring its context back.
    for i in range(60):
        alice.send(f"filler {i}")
    expect(bob.texts.last).to_have_text("filler 59")

    # Bob reads lobby, then moves to another room; alice goes on in lobby.
    bob.join("side")
    alice.send("while you were away")
    # Typing @ offers the room's members: Tab takes the name.
    composer = alice.by_id("composer-input")
    composer.fill("@b")
    expect(alice.by_id("mention-option")).to_have_text(["@bob"])
    alice.assert_accessible("a member's name offered after @")
    composer.press("Tab")
    expect(composer).to_have_value("@bob ")
    expect(alice.by_id("mention-bar")).to_be_hidden()
    composer.press_sequentially("have a look at this")
    composer.press("Enter")
    expect(bob.by_id("unread-lobby")).to_have_text("2")
    expect(bob.by_id("mentions-lobby")).to_have_text("@1")

    # A reload: the counts come back from the server's read marker.
    bob.page.reload()
    bob.expect_online()
    expect(bob.by_id("room-title")).to_have_text("# side")
    expect(bob.by_id("unread-lobby")).to_have_text("2")
    expect(bob.by_id("mentions-lobby")).to_have_text("@1")
    bob.assert_accessible("unread and mention badges after a reload")

    # Opening lobby: the line sits right above the first message he has not read.
    bob.by_id("room-lobby").click()
    line = bob.by_id("unread-line")
    expect(line).to_be_visible()
    expect(line).to_have_text("New since you left")
    after_line = bob.page.locator("#messages .unread-line + li [data-testid=message-text]")
    expect(after_line).to_have_text("while you were away")
    # The message that names him stands out; the counts are gone now that he read it.
    mention = message(bob, "@bob have a look at this")
    expect(mention).to_contain_class("msg--mention")
    expect(message(bob, "while you were away")).not_to_contain_class("msg--mention")
    expect(bob.by_id("unread-lobby")).to_have_count(0)
    expect(bob.by_id("mentions-lobby")).to_have_count(0)
    bob.assert_accessible("the new-since-you-left line and a mention")
    # Read on the server too: another reload shows no line and no count.
    bob.page.reload()
    bob.expect_online()
    expect(bob.texts.last).to_have_text("@bob have a look at this")
    expect(bob.by_id("unread-line")).to_have_count(0)
    expect(bob.by_id("unread-lobby")).to_have_count(0)

    # Alice, elsewhere, searches: the snippet marks the word (text, not HTML).
    alice.join("side")
    alice.by_id("search-input").fill("zebra")
    alice.by_id("search-input").press("Enter")
    result = alice.by_id("search-result")
    expect(result).to_have_count(1)
    expect(result.locator("mark")).to_have_text("zebra")
    expect(alice.by_id("result-snippet")).to_contain_text("the zebra crossing")
    alice.assert_accessible("search results")
    # The result opens lobby at bob's message, 60 messages back, flashed.
    result.click()
    expect(alice.by_id("room-title")).to_have_text("# lobby")
    target = message(alice, "the zebra crossing is on fifth street")
    expect(target).to_be_in_viewport()
    expect(target).to_contain_class("msg--flash")
    # Nothing is missing between it and the newest message.
    expect(alice.texts).to_have_count(63)
