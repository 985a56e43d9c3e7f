"""Accounts in the page, in real headless Chromium against a real server process:
sign-up and sign-in, a private room a guest cannot see, a direct message
between two accounts, a removal that empties the removed member's view at once,
and the "Tokens for scripts" and admin pages.

People sign up, sign in or continue as guests through the sign-in page's forms,
each in a browser context of its own (separate cookie jars), and drive the page
the way a person would. Every state visited is checked with axe-core in light
and dark colours, as in test_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Browser, Locator, expect

from tests.browser.helpers import BROWSER_MARKS, PASSWORD, PHONE, ChatPage, Person, assert_accessible
from tests.support.procs import BlockingServerProcess as ServerProcess

pytestmark = BROWSER_MARKS

# A token as the server hands it out (chat.core.secrets.new_token).
TOKEN_RE = re.compile(r"^chat_\S{20,}$")


def phone(chat: ChatPage) -> bool:
    return chat.page.viewport_size == PHONE


def show_rooms(chat: ChatPage) -> None:
    """On a phone the room list is a drawer: open it."""
    if phone(chat) and "show-rooms" not in (chat.page.locator("body").get_attribute("class") or "").split():
        chat.by_id("rooms-toggle").click()


def show_members(chat: ChatPage) -> None:
    if (
        chat.by_id("members-toggle").is_visible()
        and "show-members" not in (chat.page.locator("body").get_attribute("class") or "").split()
    ):
        chat.by_id("members-toggle").click()


def room_button(chat: ChatPage, list_id: str, text: str) -> Locator:
    return chat.by_id(list_id).get_by_role("button", name=text)


def create_private_room(chat: ChatPage, title: str) -> str:
    """Create a private room through "New room"; returns its id, once the room is on screen and live."""
    show_rooms(chat)
    chat.by_id("new-room").click()
    chat.by_id("new-room-name").fill(title)
    chat.by_id("new-room-private").check()
    chat.assert_accessible("the New room sheet")
    chat.by_id("new-room-create").click()
    expect(chat.by_id("room-title")).to_have_text(title)
    expect(chat.member(chat.name)).to_have_count(1)
    room = room_button(chat, "joined-rooms", title).get_attribute("data-room")
    assert room is not None
    assert room.startswith("~"), room
    return room


def invite(chat: ChatPage, name: str) -> None:
    show_members(chat)
    chat.by_id("invite-input").fill(name)
    chat.by_id("invite-button").click()
    expect(chat.by_id("toast").filter(has_text=f"{name} was added")).to_have_count(1)
    expect(chat.member(name)).to_have_count(1)  # the member list has them now, away or not
    chat.page.keyboard.press("Escape")


def open_room(chat: ChatPage, list_id: str, label: str) -> None:
    show_rooms(chat)
    room_button(chat, list_id, label).click()
    expect(chat.by_id("room-title")).to_have_text(label)


def person_sheet(chat: ChatPage, name: str) -> Locator:
    """Open the sheet of what one can do with ``name``, from the member list."""
    show_members(chat)
    chat.member(name).get_by_role("button", name=name).click()
    sheet = chat.by_id("person-sheet")
    expect(sheet).to_be_visible()
    expect(chat.by_id("person-name")).to_have_text(name)
    return sheet


# -- the tests ------------------------------------------------------------------


def test_a_private_room_is_invisible_to_a_guest(
    start_server: Callable[..., ServerProcess], person: Person, browser: Browser
) -> None:
    server = start_server()
    page = browser.new_page()
    page.goto(server.url + "/")
    for form in ("signin-form", "signup-form", "login-form"):
        expect(page.get_by_test_id(form)).to_be_visible()
    assert_accessible(page, "the sign-in page with sign-up and guests")
    page.close()

    alice = person(server, "alice")
    bob = person(server, "bob")
    visitor = person(server, "visitor", how="guest")

    room = create_private_room(alice, "Plans")
    alice.send("the secret plan")
    expect(alice.texts).to_have_text(["the secret plan"])
    invite(alice, "bob")
    # Bob's list gains the room live (invited), without a reload.
    expect(room_button(bob, "joined-rooms", "Plans")).to_have_count(1)
    open_room(bob, "joined-rooms", "Plans")
    expect(bob.texts).to_have_text(["the secret plan"])
    bob.assert_accessible("a private room he was invited to")

    # The guest: no private room anywhere, no controls for one.
    visitor.join("lobby")
    expect(visitor.by_id("new-room")).to_be_hidden()
    expect(visitor.by_id("dm-rooms")).to_be_hidden()
    expect(visitor.page.get_by_role("button", name="Plans")).to_have_count(0)
    expect(visitor.by_id("me-guest")).to_be_visible()
    # Even with its id, the room answers as one that does not exist.
    visitor.by_id("join-input").fill(room)
    visitor.by_id("join-input").press("Enter")
    expect(visitor.by_id("toast").filter(has_text="Not found")).to_have_count(1)
    expect(visitor.by_id(f"room-{room}")).to_have_count(0)
    expect(visitor.page.get_by_text("the secret plan")).to_have_count(0)
    visitor.assert_accessible("a guest refused a private room")

    # What a guest says carries a visible mark for the others.
    alice.join("lobby")
    visitor.by_id("room-lobby").click()
    visitor.send("hello, I am only visiting")
    last = alice.page.locator("#messages [data-testid=message]").last
    expect(last.get_by_test_id("message-text")).to_have_text("hello, I am only visiting")
    expect(last.get_by_test_id("guest-mark")).to_have_text("guest")
    # ... and offers no "Message privately": a guest cannot be in a DM.
    expect(last.get_by_role("button", name="visitor")).to_have_count(0)
    alice.assert_accessible("a guest's message with its mark")


def test_a_direct_message_between_two_accounts(start_server: Callable[..., ServerProcess], person: Person) -> None:
    server = start_server()
    alice = person(server, "alice")
    bob = person(server, "bob", phone=True)
    visitor = person(server, "visitor", how="guest")
    for chat in (alice, bob, visitor):
        chat.join("lobby")

    # Alice starts a DM from bob's name in the member list.
    sheet = person_sheet(alice, "bob")
    alice.assert_accessible("bob's sheet")
    sheet.get_by_role("button", name="Message privately").click()
    expect(alice.by_id("room-title")).to_have_text("bob")
    expect(room_button(alice, "dm-rooms", "bob")).to_have_count(1)
    alice.send("just between us")
    expect(alice.texts).to_have_text(["just between us"])

    # Bob, on a phone, finds it in his "Direct messages", live, with an unread count.
    show_rooms(bob)
    expect(room_button(bob, "dm-rooms", "alice")).to_have_count(1)
    dm = room_button(bob, "dm-rooms", "alice").get_attribute("data-room")
    expect(bob.by_id(f"unread-{dm}")).to_have_text("1")
    bob.assert_accessible("a new direct message in the list, on a phone")
    room_button(bob, "dm-rooms", "alice").click()
    expect(bob.by_id("room-title")).to_have_text("alice")
    expect(bob.texts).to_have_text(["just between us"])
    bob.send("agreed")
    expect(alice.texts).to_have_text(["just between us", "agreed"])

    # The same two people again: the same DM, not a second one.
    open_room(alice, "joined-rooms", "# lobby")
    person_sheet(alice, "bob").get_by_role("button", name="Message privately").click()
    expect(alice.by_id("room-title")).to_have_text("bob")
    expect(alice.by_id("dm-rooms").get_by_role("button")).to_have_count(1)
    expect(alice.texts).to_have_text(["just between us", "agreed"])

    # The guest sees none of it, and is offered no DM from a name.
    expect(visitor.page.get_by_role("button", name="alice")).to_have_count(0)
    expect(visitor.page.get_by_text("just between us")).to_have_count(0)
    expect(visitor.by_id("other-rooms").get_by_role("button")).to_have_count(0)


def test_a_removed_member_s_view_empties_at_once(start_server: Callable[..., ServerProcess], person: Person) -> None:
    server = start_server()
    alice = person(server, "alice")
    bob = person(server, "bob", phone=True)
    room = create_private_room(alice, "Plans")
    alice.send("before")
    invite(alice, "bob")
    open_room(bob, "joined-rooms", "Plans")
    expect(bob.texts).to_have_text(["before"])
    bob.send("hi all")
    expect(alice.texts).to_have_text(["before", "hi all"])

    # Alice, the owner, removes bob from the member list's sheet.
    sheet = person_sheet(alice, "bob")
    expect(sheet.get_by_role("button", name="Make moderator")).to_be_visible()
    sheet.get_by_role("button", name="Remove from room").click()
    expect(sheet).to_be_hidden()

    # Bob's view empties at once and says why; the room leaves his list.
    expect(bob.by_id("message-list").locator("li")).to_have_count(0)
    expect(bob.by_id("placeholder")).to_have_text("You were removed from Plans.")
    expect(bob.by_id(f"room-{room}")).to_have_count(0)
    expect(bob.by_id("composer-input")).to_be_disabled()
    bob.assert_accessible("removed from the room on screen, on a phone")

    # Nothing more from the room reaches him, and it stays gone after a reload.
    alice.send("after")
    expect(alice.texts).to_have_text(["before", "hi all", "after"])
    expect(bob.page.get_by_text("after", exact=True)).to_have_count(0)
    bob.page.reload()
    bob.expect_online()
    show_rooms(bob)
    expect(bob.by_id(f"room-{room}")).to_have_count(0)
    expect(alice.member("bob")).to_have_count(0)


def test_sign_out_sign_in_tokens_and_admin(start_server: Callable[..., ServerProcess], person: Person) -> None:
    server = start_server()
    alice = person(server, "alice")  # the first account: the site's admin
    bob = person(server, "bob")
    expect(alice.by_id("admin-link")).to_be_visible()
    expect(bob.by_id("admin-link")).to_be_hidden()

    # Tokens for scripts: made, shown once, listed, revoked.
    bob.by_id("tokens-link").click()
    expect(bob.page).to_have_url(server.url + "/tokens")
    bob.by_id("token-label").fill("deploy bot")
    bob.by_id("token-create").click()
    expect(bob.by_id("new-token-value")).to_have_value(TOKEN_RE)
    expect(bob.by_id("token")).to_have_count(1)
    expect(bob.by_id("token").first).to_contain_text("deploy bot")
    assert_accessible(bob.page, "bob's tokens page with a new token")
    bob.page.reload()
    expect(bob.by_id("token")).to_have_count(1)
    expect(bob.by_id("new-token")).to_be_hidden()  # shown once
    bob.by_id("token-revoke").click()
    expect(bob.by_id("token").get_by_role("button", name="Revoke deploy bot")).to_have_count(0)

    # Admin: alice disables bob; bob's open chat page is signed out.
    bob.page.goto(server.url + "/")
    bob.expect_online()
    alice.by_id("admin-link").click()
    expect(alice.page).to_have_url(server.url + "/admin")
    account = alice.by_id("account").filter(has_text="bob")
    account.get_by_role("button", name="Disable bob").click()
    expect(account.get_by_test_id("account-disabled")).to_be_visible()
    assert_accessible(alice.page, "the admin page with a disabled account")
    expect(bob.by_id("banner")).to_contain_text("disabled")
    account.get_by_role("button", name="Enable bob").click()
    expect(account.get_by_test_id("account-disabled")).to_have_count(0)

    # Sign out, then in again with the password; a wrong one is refused.
    alice.page.goto(server.url + "/")
    alice.expect_online()
    alice.by_id("logout").click()
    expect(alice.by_id("signin-form")).to_be_visible()
    alice.by_id("signin-name").fill("alice")
    alice.by_id("signin-password").fill("not the password")
    alice.by_id("signin-submit").click()
    expect(alice.by_id("login-error")).to_contain_text("wrong name or password")
    assert_accessible(alice.page, "a refused sign-in")
    alice.by_id("signin-name").fill("alice")
    alice.by_id("signin-password").fill(PASSWORD)
    alice.by_id("signin-submit").click()
    alice.expect_online()
    expect(alice.by_id("me-name")).to_have_text("alice")
