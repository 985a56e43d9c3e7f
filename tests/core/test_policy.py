"""chat.core.policy: every identity against every action, without I/O."""

from __future__ import annotations

import pytest

from chat.core.errors import ErrorCode
from chat.core.model import RoomInfo, RoomKind, Standing, Visibility
from chat.core.policy import ANONYMOUS, Action, Actor, decide, visible

PUBLIC = RoomInfo("lobby", Visibility.PUBLIC)
PRIVATE = RoomInfo("~abcdefghijklmnopqrst", Visibility.PRIVATE, title="plans")
DM = RoomInfo("~bcdefghijklmnopqrstu", Visibility.PRIVATE, RoomKind.DM)

GUEST = Actor("gus")
ALICE = Actor("alice", 1)
ADMIN = Actor("root", 9, admin=True)

OK = None
NF = ErrorCode.NOT_FOUND
FB = ErrorCode.FORBIDDEN
UA = ErrorCode.UNAUTHORIZED


@pytest.mark.parametrize(
    ("actor", "standing", "room", "action", "expected"),
    [
        # Public rooms: anyone sees them; anyone with a name joins; the banned do not.
        (ANONYMOUS, None, PUBLIC, Action.SEE, OK),
        (ANONYMOUS, None, PUBLIC, Action.JOIN, UA),
        (GUEST, None, PUBLIC, Action.JOIN, OK),
        (GUEST, None, PUBLIC, Action.SAY, OK),
        (ALICE, None, PUBLIC, Action.JOIN, OK),
        (ALICE, Standing.BANNED, PUBLIC, Action.JOIN, FB),
        (ALICE, Standing.BANNED, PUBLIC, Action.SAY, FB),
        # Private rooms: members only; everyone else is told the room does not exist.
        (ANONYMOUS, None, PRIVATE, Action.SEE, NF),
        (GUEST, None, PRIVATE, Action.SEE, NF),
        (GUEST, None, PRIVATE, Action.JOIN, NF),
        (ALICE, None, PRIVATE, Action.JOIN, NF),
        (ALICE, None, PRIVATE, Action.SAY, NF),
        (ALICE, None, PRIVATE, Action.INVITE, NF),
        (ALICE, Standing.BANNED, PRIVATE, Action.JOIN, NF),
        (ADMIN, None, PRIVATE, Action.SEE, NF),  # site admins do not read private rooms
        (ALICE, Standing.MEMBER, PRIVATE, Action.JOIN, OK),
        (ALICE, Standing.MEMBER, PRIVATE, Action.SEE, OK),
        (ALICE, Standing.MEMBER, DM, Action.SAY, OK),
        (ALICE, None, DM, Action.SEE, NF),
    ],
)
def test_who_may_see_join_and_say(actor, standing, room, action, expected):
    assert decide(actor, action, room, standing, room_id=room.room).code == expected


def test_a_room_that_does_not_exist_answers_like_a_private_one():
    unknown_private = decide(ALICE, Action.JOIN, None, room_id="~zzzzzzzzzzzzzzzzzzzz")
    hidden = decide(ALICE, Action.JOIN, PRIVATE, None, room_id=PRIVATE.room)
    assert unknown_private == hidden
    assert decide(ALICE, Action.SEE, None, room_id="nowhere") == hidden


def test_joining_a_new_public_name_is_allowed_but_never_a_server_made_id():
    assert decide(GUEST, Action.JOIN, None, room_id="new-room").allowed
    assert not decide(GUEST, Action.JOIN, None, room_id="~zzzzzzzzzzzzzzzzzzzz").allowed
    assert decide(ANONYMOUS, Action.JOIN, None, room_id="new-room").code == UA


@pytest.mark.parametrize("action", [Action.CREATE_PUBLIC, Action.CREATE_PRIVATE, Action.DM])
def test_creating_rooms_and_dms_needs_an_account(action):
    assert decide(GUEST, action).code == UA
    assert decide(ANONYMOUS, action).code == UA
    assert decide(ALICE, action).allowed


@pytest.mark.parametrize(
    ("actor_standing", "action", "target", "expected"),
    [
        (Standing.OWNER, Action.INVITE, None, OK),
        (Standing.MODERATOR, Action.INVITE, None, OK),
        (Standing.MEMBER, Action.INVITE, None, FB),
        (Standing.OWNER, Action.INVITE, Standing.BANNED, FB),
        (Standing.OWNER, Action.REMOVE, Standing.MODERATOR, OK),
        (Standing.MODERATOR, Action.REMOVE, Standing.MEMBER, OK),
        (Standing.MODERATOR, Action.REMOVE, Standing.MODERATOR, FB),
        (Standing.MODERATOR, Action.REMOVE, Standing.OWNER, FB),
        (Standing.MEMBER, Action.REMOVE, Standing.MEMBER, FB),
        (Standing.OWNER, Action.REMOVE, None, NF),
        (Standing.MODERATOR, Action.BAN, Standing.MEMBER, OK),
        (Standing.MODERATOR, Action.BAN, None, OK),  # keep someone out before they come
        (Standing.MODERATOR, Action.BAN, Standing.OWNER, FB),
        (Standing.MEMBER, Action.BAN, None, FB),
        (Standing.MODERATOR, Action.UNBAN, Standing.BANNED, OK),
        (Standing.MODERATOR, Action.UNBAN, Standing.MEMBER, NF),
        (Standing.MEMBER, Action.UNBAN, Standing.BANNED, FB),
    ],
)
def test_moderation_by_rank(actor_standing, action, target, expected):
    assert decide(ALICE, action, PRIVATE, actor_standing, target=target).code == expected


def test_only_owners_appoint_moderators():
    assert decide(
        ALICE, Action.SET_ROLE, PRIVATE, Standing.OWNER, target=Standing.MEMBER, role=Standing.MODERATOR
    ).allowed
    assert decide(
        ALICE, Action.SET_ROLE, PRIVATE, Standing.OWNER, target=Standing.MODERATOR, role=Standing.MEMBER
    ).allowed
    refused = decide(
        ALICE, Action.SET_ROLE, PRIVATE, Standing.MODERATOR, target=Standing.MEMBER, role=Standing.MODERATOR
    )
    assert refused.code == FB
    on_owner = decide(ALICE, Action.SET_ROLE, PRIVATE, Standing.OWNER, target=Standing.OWNER, role=Standing.MEMBER)
    assert not on_owner.allowed


def test_members_leave_by_removing_themselves_but_owners_may_not():
    assert decide(ALICE, Action.REMOVE, PRIVATE, Standing.MEMBER, target=Standing.MEMBER, target_is_self=True).allowed
    assert decide(ALICE, Action.REMOVE, DM, Standing.MEMBER, target=Standing.MEMBER, target_is_self=True).allowed
    owner = decide(ALICE, Action.REMOVE, PRIVATE, Standing.OWNER, target=Standing.OWNER, target_is_self=True)
    assert owner.code == FB


def test_a_dm_has_fixed_people():
    assert decide(ALICE, Action.INVITE, DM, Standing.MEMBER).code == FB
    assert decide(ALICE, Action.REMOVE, DM, Standing.MEMBER, target=Standing.MEMBER).code == FB


def test_guests_moderate_nothing_and_moderators_may_remove_a_guest():
    assert decide(GUEST, Action.REMOVE, PUBLIC, None, target_guest=True).code == UA
    assert decide(ALICE, Action.REMOVE, PUBLIC, Standing.MODERATOR, target_guest=True).allowed
    assert decide(ALICE, Action.REMOVE, PUBLIC, Standing.MEMBER, target_guest=True).code == FB
    assert decide(ALICE, Action.BAN, PUBLIC, Standing.MODERATOR, target_guest=True).code == ErrorCode.BAD_REQUEST


def test_visible():
    assert visible(PUBLIC, None)
    assert not visible(PRIVATE, None)
    assert not visible(PRIVATE, Standing.BANNED)
    assert visible(PRIVATE, Standing.MEMBER)
    assert not visible(None, None)


@pytest.mark.parametrize(
    ("actor", "standing", "room", "action", "own", "expected"),
    [
        (ALICE, Standing.MEMBER, PRIVATE, Action.EDIT, True, OK),
        (ALICE, Standing.MEMBER, PRIVATE, Action.EDIT, False, FB),
        (ALICE, Standing.OWNER, PRIVATE, Action.EDIT, False, FB),  # nobody edits another's words
        (ALICE, Standing.MEMBER, PRIVATE, Action.DELETE, True, OK),
        (ALICE, Standing.MEMBER, PRIVATE, Action.DELETE, False, FB),
        (ALICE, Standing.MODERATOR, PRIVATE, Action.DELETE, False, OK),
        (ALICE, Standing.OWNER, PRIVATE, Action.DELETE, False, OK),
        (ALICE, None, PRIVATE, Action.DELETE, True, NF),  # removed since: the room is gone for them
        (ALICE, Standing.BANNED, PUBLIC, Action.EDIT, True, FB),
        (GUEST, None, PUBLIC, Action.EDIT, True, UA),
        (GUEST, None, PUBLIC, Action.DELETE, True, UA),
        (GUEST, None, PUBLIC, Action.REACT, False, OK),
        (GUEST, None, PRIVATE, Action.REACT, False, NF),
        (ALICE, None, PUBLIC, Action.REACT, False, OK),
        (ALICE, Standing.BANNED, PUBLIC, Action.REACT, False, FB),
        (GUEST, None, PUBLIC, Action.MARK_READ, False, UA),
        (ALICE, Standing.MEMBER, PRIVATE, Action.MARK_READ, False, OK),
        (ALICE, None, PRIVATE, Action.MARK_READ, False, NF),
    ],
)
def test_who_may_edit_delete_react_and_mark_read(actor, standing, room, action, own, expected):
    assert decide(actor, action, room, standing, room_id=room.room, own=own).code == expected
