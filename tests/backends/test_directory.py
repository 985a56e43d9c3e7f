"""The Directory contract (accounts, sessions, tokens, invites, rooms, memberships):
the same tests against SQLite and PostgreSQL, through the history store's ``directory()``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from chat.backends.base import Conflict, StoreUnavailable
from chat.backends.directory_sql import SQLDirectory
from chat.backends.postgres import PostgresHistory
from chat.backends.sqlite import SQLiteHistory
from chat.core.model import Account, Member, RoomInfo, RoomKind, Standing, TokenInfo, Visibility
from chat.core.secrets import digest
from tests.support import free_port

HASH = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA"  # stored as given: the directory never reads it
T0 = 1_800_000_000_000


@dataclass
class Store:
    history: SQLiteHistory | PostgresHistory
    directory: SQLDirectory

    async def overlap(self) -> None:
        """Open the pool's ten connections now, so that calls made together overlap in
        PostgreSQL (the pool would otherwise connect one by one, in turn, as they come)."""
        if isinstance(self.history, PostgresHistory):
            pool = await self.history._ready()
            held = [await pool.acquire() for _ in range(10)]
            for conn in held:
                await pool.release(conn)

    async def sql(self, query: str, *args: object) -> list[Any]:
        """A raw read, for what the protocol has no getter for (``$n`` parameters, as the directory's)."""
        return await self.directory._fetch(query, *args)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, io_loop, tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    history: SQLiteHistory | PostgresHistory
    if request.param == "sqlite":
        history = SQLiteHistory(str(tmp_path / "h.db"))
    else:
        history = PostgresHistory(request.getfixturevalue("postgres_dsn"), pool_size=10)
    yield Store(history, history.directory())
    io_loop.run_sync(history.close)


async def sign_up(store: Store, *names: str) -> list[Account]:
    return [await store.directory.create_account(name, HASH, T0) for name in names]


def private(room: str, title: str = "Plans") -> RoomInfo:
    return RoomInfo(room, Visibility.PRIVATE, RoomKind.ROOM, title, T0)


def dm(room: str) -> RoomInfo:
    return RoomInfo(room, Visibility.PRIVATE, RoomKind.DM, "", T0)


# -- accounts


@pytest.mark.gen_test
async def test_the_first_account_is_the_admin_and_names_are_found_whatever_their_case(store):
    d = store.directory
    alice, bob = await sign_up(store, "Alice", "bob")
    assert alice == Account(alice.id, "Alice", admin=True, disabled=False, created=T0)
    assert bob == Account(bob.id, "bob", admin=False, disabled=False, created=T0)
    assert bob.id != alice.id
    assert await d.account(alice.id) == alice
    assert await d.account(10**6) is None
    assert await d.account(2**70) is None  # an id from a URL: no such account, not an outage
    assert await d.account_by_name("ALICE") == (alice, HASH)
    assert await d.account_by_name("carol") is None
    carol = await d.create_account("carol", HASH, T0, admin=True)  # `users add --admin`
    assert carol.admin
    assert [a.name for a in await d.accounts()] == ["Alice", "bob", "carol"]


@pytest.mark.gen_test
async def test_a_name_taken_in_any_case_or_spelling_is_a_conflict(store):
    d = store.directory
    await sign_up(store, "Bob", "ﬁona")  # "ﬁ": one ligature, the same name as "fi" once normalized
    for taken in ("bob", "BOB", "Fiona"):
        with pytest.raises(Conflict):
            await d.create_account(taken, HASH, T0)
    assert [a.name for a in await d.accounts()] == ["Bob", "ﬁona"]


@pytest.mark.gen_test
async def test_an_explicit_admin_flag_wins_over_first_account(store):
    first = await store.directory.create_account("ops", HASH, T0, admin=False)
    assert not first.admin
    assert not (await store.directory.create_account("next", HASH, T0)).admin  # not the first any more


@pytest.mark.gen_test(timeout=30)
async def test_of_first_sign_ups_at_the_same_moment_exactly_one_is_admin(store):
    await store.overlap()
    made = await asyncio.gather(*(store.directory.create_account(f"user{i}", HASH, T0) for i in range(10)))
    assert sorted(a.admin for a in made) == [False] * 9 + [True]


@pytest.mark.gen_test
async def test_password_and_disabled_are_kept(store):
    d = store.directory
    (bob,) = await sign_up(store, "bob")
    await d.set_password(bob.id, "new-hash")
    await d.set_disabled(bob.id, True)
    assert await d.account_by_name("bob") == (Account(bob.id, "bob", True, True, T0), "new-hash")
    await d.set_disabled(bob.id, False)
    assert not (await d.account(bob.id)).disabled  # type: ignore[union-attr]


# -- invites


@pytest.mark.gen_test
async def test_an_invite_signs_up_once(store):
    d = store.directory
    (admin,) = await sign_up(store, "admin")
    await d.create_invite(digest("code"), admin.id, T0)
    bob = await d.create_account("bob", HASH, T0 + 1, invite=digest("code"))
    with pytest.raises(Conflict):
        await d.create_account("carol", HASH, T0 + 2, invite=digest("code"))
    with pytest.raises(Conflict):
        await d.create_account("dave", HASH, T0 + 2, invite=digest("never made"))
    # A refused sign-up leaves no account behind.
    assert [a.name for a in await d.accounts()] == ["admin", "bob"]
    assert await store.sql("SELECT used_by, used_at FROM invites") == [(bob.id, T0 + 1)]
    with pytest.raises(Conflict):  # a code is made once
        await d.create_invite(digest("code"), admin.id, T0 + 3)


@pytest.mark.gen_test
async def test_a_sign_up_refused_for_its_name_leaves_the_invite_unused(store):
    d = store.directory
    (admin,) = await sign_up(store, "admin")
    await d.create_invite(digest("code"), admin.id, T0)
    with pytest.raises(Conflict):
        await d.create_account("ADMIN", HASH, T0, invite=digest("code"))
    assert (await d.create_account("bob", HASH, T0, invite=digest("code"))).name == "bob"


@pytest.mark.gen_test(timeout=30)
async def test_two_sign_ups_with_one_invite_at_the_same_moment_make_one_account(store):
    d = store.directory
    (admin,) = await sign_up(store, "admin")
    await d.create_invite(digest("code"), admin.id, T0)
    await store.overlap()
    results = await asyncio.gather(
        *(d.create_account(f"user{i}", HASH, T0, invite=digest("code")) for i in range(6)), return_exceptions=True
    )
    assert sum(isinstance(r, Account) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 5
    assert len(await d.accounts()) == 2


# -- page sessions


@pytest.mark.gen_test
async def test_a_session_names_its_account_notes_its_use_and_ends(store):
    d = store.directory
    bob, carol = await sign_up(store, "bob", "carol")
    await d.create_session(digest("s1"), bob.id, T0)
    await d.create_session(digest("s2"), bob.id, T0)
    await d.create_session(digest("s3"), carol.id, T0)
    assert await d.session_account(digest("s1"), T0 + 5) == bob
    assert await store.sql("SELECT last_used FROM auth_sessions WHERE hash = $1", digest("s1")) == [(T0 + 5,)]
    assert await d.session_account(digest("unknown"), T0) is None
    await d.set_disabled(bob.id, True)
    assert (await d.session_account(digest("s2"), T0)).disabled  # type: ignore[union-attr]  # the caller refuses it
    await d.end_session(digest("s1"))
    assert await d.session_account(digest("s1"), T0) is None
    assert await d.end_sessions(bob.id) == [digest("s2")]
    assert await d.end_sessions(bob.id) == []
    assert await d.session_account(digest("s3"), T0) == carol  # another account's session stays


# -- tokens


@pytest.mark.gen_test
async def test_a_token_names_its_account_and_notes_its_last_use(store):
    d = store.directory
    bob, carol = await sign_up(store, "bob", "carol")
    first = await d.create_token(bob.id, "ci", digest("chat_1"), T0)
    second = await d.create_token(bob.id, "bot", digest("chat_2"), T0 + 1)
    assert first == TokenInfo(first.id, bob.id, "ci", T0, None, None)
    assert await d.token_account(digest("chat_1"), T0 + 10) == (bob, TokenInfo(first.id, bob.id, "ci", T0, T0 + 10))
    assert await d.token_account(digest("chat_x"), T0) is None
    assert await d.tokens(bob.id) == [second, TokenInfo(first.id, bob.id, "ci", T0, T0 + 10)]  # newest first
    assert await d.tokens(carol.id) == []


@pytest.mark.gen_test
async def test_a_revoked_token_is_refused_and_still_listed(store):
    d = store.directory
    bob, carol = await sign_up(store, "bob", "carol")
    token = await d.create_token(bob.id, "ci", digest("chat_1"), T0)
    assert not await d.revoke_token(carol.id, token.id, T0)  # not carol's
    assert not await d.revoke_token(bob.id, token.id + 1000, T0)
    assert not await d.revoke_token(bob.id, 2**70, T0)
    assert await d.revoke_token(bob.id, token.id, T0 + 3)
    assert not await d.revoke_token(bob.id, token.id, T0 + 4)  # already
    assert await d.token_account(digest("chat_1"), T0 + 5) is None
    assert await d.tokens(bob.id) == [TokenInfo(token.id, bob.id, "ci", T0, None, T0 + 3)]


# -- rooms and memberships


@pytest.mark.gen_test
async def test_a_joined_name_becomes_a_public_room_once(store):
    d = store.directory
    made = await d.ensure_public("lobby", T0)
    assert made == RoomInfo("lobby", Visibility.PUBLIC, RoomKind.ROOM, "lobby", T0)
    assert await d.ensure_public("lobby", T0 + 50) == made
    assert await d.room("lobby") == made
    assert await d.room("nowhere") is None
    with pytest.raises(Conflict):
        await d.create_room(RoomInfo("lobby", Visibility.PUBLIC, RoomKind.ROOM, "lobby", T0), {})


@pytest.mark.gen_test
async def test_a_room_with_history_is_a_public_room_that_exists(store):
    await store.history.append("old", "bob", "hi", T0, "s", None)
    d = store.directory
    assert await d.room("old") == RoomInfo("old", Visibility.PUBLIC, RoomKind.ROOM, "old", T0)
    with pytest.raises(Conflict):
        await d.create_room(RoomInfo("old", Visibility.PUBLIC, RoomKind.ROOM, "old", T0 + 1), {})
    assert [r.room for r in await d.public_rooms()] == ["old"]


@pytest.mark.gen_test
async def test_a_private_room_keeps_its_owner_and_its_kind_as_messages_arrive(store):
    d = store.directory
    (owner,) = await sign_up(store, "owner")
    info = private("~aaaaaaaaaaaaaaaaaaaa")
    assert await d.create_room(info, {owner.id: Standing.OWNER}) == info
    assert await store.history.rooms() == {}  # no history yet
    assert (await store.history.append(info.room, "owner", "hi", T0 + 1, "s", None)).seq == 1
    assert await d.room(info.room) == info
    assert await store.history.last_seq(info.room) == 1
    assert await d.standing(info.room, owner.id) == Standing.OWNER
    assert await d.public_rooms() == []
    with pytest.raises(Conflict):  # an id is made once
        await d.create_room(private(info.room, "Other"), {owner.id: Standing.OWNER})


@pytest.mark.gen_test
async def test_standings_are_set_changed_listed_and_deleted(store):
    d = store.directory
    owner, zed, amy = await sign_up(store, "owner", "zed", "Amy")
    room = (await d.create_room(private("~bbbbbbbbbbbbbbbbbbbb"), {owner.id: Standing.OWNER})).room
    await d.set_standing(room, zed.id, Standing.MEMBER, T0 + 1)
    await d.set_standing(room, amy.id, Standing.MEMBER, T0 + 1)
    await d.set_standing(room, zed.id, Standing.MODERATOR, T0 + 2)
    await d.set_standing(room, amy.id, Standing.BANNED, T0 + 3)
    assert await d.members(room) == [
        Member(amy.id, "Amy", Standing.BANNED),
        Member(owner.id, "owner", Standing.OWNER),
        Member(zed.id, "zed", Standing.MODERATOR),
    ]
    assert await d.standing(room, zed.id) == Standing.MODERATOR
    await d.set_standing(room, zed.id, None, T0 + 4)
    assert await d.standing(room, zed.id) is None
    assert [m.name for m in await d.members(room)] == ["Amy", "owner"]
    await d.set_standing(room, zed.id, None, T0 + 4)  # nothing to delete: no error


@pytest.mark.gen_test
async def test_since_is_when_the_standing_began(store):
    d = store.directory
    (bob,) = await sign_up(store, "bob")
    await d.ensure_public("lobby", T0)
    await d.set_standing("lobby", bob.id, Standing.MEMBER, T0 + 1)
    await d.set_standing("lobby", bob.id, Standing.MEMBER, T0 + 2)  # joined again
    assert await store.sql("SELECT since FROM memberships") == [(T0 + 1,)]
    await d.set_standing("lobby", bob.id, Standing.MODERATOR, T0 + 3)
    assert await store.sql("SELECT since FROM memberships") == [(T0 + 3,)]


@pytest.mark.gen_test
async def test_the_same_people_get_the_same_dm(store):
    d = store.directory
    amy, bob, cy = await sign_up(store, "amy", "bob", "cy")
    pair = {amy.id: Standing.MEMBER, bob.id: Standing.MEMBER}
    first = await d.create_room(dm("~cccccccccccccccccccc"), pair)
    again = await d.create_room(
        RoomInfo("~dddddddddddddddddddd", Visibility.PRIVATE, RoomKind.DM, "", T0 + 9), dict(reversed(pair.items()))
    )
    assert again == first
    assert await d.room("~dddddddddddddddddddd") is None
    trio = await d.create_room(dm("~eeeeeeeeeeeeeeeeeeee"), {**pair, cy.id: Standing.MEMBER})
    assert trio.room == "~eeeeeeeeeeeeeeeeeeee"
    assert [m.name for m in await d.members(first.room)] == ["amy", "bob"]


@pytest.mark.gen_test
async def test_who_left_a_dm_is_in_it_again_when_it_is_started_again(store):
    d = store.directory
    amy, bob = await sign_up(store, "amy", "bob")
    pair = {amy.id: Standing.MEMBER, bob.id: Standing.MEMBER}
    first = await d.create_room(dm("~cccccccccccccccccccc"), pair)
    await d.set_standing(first.room, amy.id, None, T0 + 1)  # amy leaves
    assert await d.account_rooms(amy.id) == []
    assert await d.create_room(dm("~dddddddddddddddddddd"), pair) == first  # bob writes to her again
    assert [r.people for r in await d.account_rooms(amy.id)] == [["amy", "bob"]]


@pytest.mark.gen_test(timeout=30)
async def test_a_dm_started_by_both_people_at_once_is_one_room(store):
    d = store.directory
    amy, bob = await sign_up(store, "amy", "bob")
    pair = {amy.id: Standing.MEMBER, bob.id: Standing.MEMBER}
    await store.overlap()
    made = await asyncio.gather(*(d.create_room(dm("~" + letter * 20), pair) for letter in "fghijk"))
    assert len({r.room for r in made}) == 1
    assert len(await d.account_rooms(amy.id)) == 1


@pytest.mark.gen_test
async def test_an_accounts_rooms_are_its_memberships_by_title_with_each_dms_people(store):
    d = store.directory
    amy, bob, cy = await sign_up(store, "amy", "Bob", "cy")
    await d.create_room(private("~pppppppppppppppppppp", "zoo"), {amy.id: Standing.OWNER})
    await d.create_room(private("~qqqqqqqqqqqqqqqqqqqq", "Plans"), {bob.id: Standing.OWNER})
    await d.set_standing("~qqqqqqqqqqqqqqqqqqqq", amy.id, Standing.MODERATOR, T0)
    await d.ensure_public("lobby", T0)
    await d.set_standing("lobby", amy.id, Standing.MEMBER, T0)
    await d.ensure_public("banned-here", T0)
    await d.set_standing("banned-here", amy.id, Standing.BANNED, T0)
    people = {cy.id: Standing.MEMBER, amy.id: Standing.MEMBER, bob.id: Standing.MEMBER}
    await d.create_room(dm("~rrrrrrrrrrrrrrrrrrrr"), people)
    mine = [(r.info.room, r.info.title, r.standing, r.people) for r in await d.account_rooms(amy.id)]
    assert mine == [
        ("~rrrrrrrrrrrrrrrrrrrr", "", Standing.MEMBER, ["amy", "Bob", "cy"]),
        ("lobby", "lobby", Standing.MEMBER, []),
        ("~qqqqqqqqqqqqqqqqqqqq", "Plans", Standing.MODERATOR, []),
        ("~pppppppppppppppppppp", "zoo", Standing.OWNER, []),
    ]
    assert [r.info.room for r in await d.account_rooms(cy.id)] == ["~rrrrrrrrrrrrrrrrrrrr"]


@pytest.mark.gen_test
async def test_public_rooms_are_listed_by_name_and_never_private_ones(store):
    d = store.directory
    (amy,) = await sign_up(store, "amy")
    for name in ("zeta", "alpha", "mid"):
        await d.ensure_public(name, T0)
    await d.create_room(private("~ssssssssssssssssssss"), {amy.id: Standing.OWNER})
    await d.create_room(RoomInfo("created", Visibility.PUBLIC, RoomKind.ROOM, "created", T0), {amy.id: Standing.OWNER})
    assert [r.room for r in await d.public_rooms()] == ["alpha", "created", "mid", "zeta"]


@pytest.mark.gen_test
async def test_retention_keeps_rooms_and_memberships(store):
    (amy,) = await sign_up(store, "amy")
    info = await store.directory.create_room(private("~tttttttttttttttttttt"), {amy.id: Standing.OWNER})
    await store.history.append(info.room, "amy", "old", T0, "s", "r1")
    assert await store.history.expire(T0 + 1) == 1
    assert await store.directory.room(info.room) == info
    assert await store.directory.standing(info.room, amy.id) == Standing.OWNER
    assert await store.history.last_seq(info.room) == 1


# -- outages


@pytest.mark.gen_test
async def test_a_closed_sqlite_store_answers_unavailable(tmp_path):
    history = SQLiteHistory(str(tmp_path / "h.db"))
    directory = history.directory()
    await history.close()
    with pytest.raises(StoreUnavailable):
        await directory.account(1)
    with pytest.raises(StoreUnavailable):
        await directory.create_account("bob", HASH, T0)


@pytest.mark.gen_test(timeout=30)
async def test_an_unreachable_postgres_answers_unavailable():
    history = PostgresHistory(f"postgresql://chat@127.0.0.1:{free_port()}/chat")  # nobody listens there
    directory = history.directory()
    try:
        with pytest.raises(StoreUnavailable):
            await directory.account_by_name("bob")
        with pytest.raises(StoreUnavailable):
            await directory.create_room(private("~uuuuuuuuuuuuuuuuuuuu"), {})
    finally:
        await history.close()
