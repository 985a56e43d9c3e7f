"""Accounts over the in-memory directory with a cheap hasher: the rules of sign-up, sign-in,
sessions, tokens, invites and disabling (docs/security.md)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, profiles

from chat.core import secrets
from chat.core.accounts import AccountError, Accounts, Registration
from chat.core.errors import ErrorCode
from chat.core.passwords import Passwords
from chat.core.throttle import Throttle
from tests.support import VirtualClock
from tests.support.fake_directory import FakeDirectory
from tests.support.fakes import RecordingSockets

CHEAP = PasswordHasher.from_parameters(profiles.CHEAPEST)
PASSWORD = "correct horse battery"
ADDR = "10.0.0.1"


Recorder = RecordingSockets


class World:
    def __init__(self, registration: Registration = Registration.OPEN, hasher: PasswordHasher = CHEAP) -> None:
        self.clock = VirtualClock()
        self.directory = FakeDirectory()
        self.sockets = Recorder()
        self.accounts = Accounts(
            self.directory,
            Passwords(hasher),
            Throttle(self.clock),
            self.sockets,
            wall=lambda: 1_700_000_000 + self.clock(),
            registration=registration,
        )


async def refused(awaitable, code: ErrorCode) -> AccountError:
    with pytest.raises(AccountError) as caught:
        await awaitable
    assert caught.value.code == code
    return caught.value


@pytest.mark.gen_test
async def test_sign_up_signs_in_and_the_first_account_is_the_admin():
    w = World()
    alice, secret = await w.accounts.sign_up("alice", PASSWORD, None, ADDR)
    bob, _ = await w.accounts.sign_up("bob", PASSWORD, None, ADDR)
    assert w.sockets.created == ["alice", "bob"]  # guests using these names are closed
    assert alice.admin
    assert not bob.admin
    assert await w.accounts.from_session(secret) == alice
    # The directory keeps the secret's digest, never the secret.
    assert secrets.digest(secret) in w.directory.sessions
    assert secret not in w.directory.sessions
    stored = await w.directory.account_by_name("alice")
    assert stored is not None
    assert stored[1].startswith("$argon2id$")
    assert PASSWORD not in stored[1]


@pytest.mark.gen_test
async def test_a_name_is_taken_whatever_its_case():
    w = World()
    await w.accounts.sign_up("Alice", PASSWORD, None, ADDR)
    await refused(w.accounts.sign_up("aLICE", PASSWORD, None, ADDR), ErrorCode.NAME_TAKEN)
    assert not await w.accounts.guest_name_allowed("ALICE")
    assert await w.accounts.guest_name_allowed("carol")


@pytest.mark.gen_test
async def test_sign_up_checks_the_name_and_the_password():
    w = World()
    await refused(w.accounts.sign_up(" ", PASSWORD, None, ADDR), ErrorCode.BAD_NAME)
    await refused(w.accounts.sign_up("alice", "short", None, ADDR), ErrorCode.BAD_PASSWORD)
    assert await w.directory.accounts() == []


@pytest.mark.gen_test
async def test_sign_in_sign_out():
    w = World()
    alice, first = await w.accounts.sign_up("alice", PASSWORD, None, ADDR)
    account, second = await w.accounts.sign_in("ALICE", PASSWORD, ADDR)
    assert account == alice
    assert second != first
    await w.accounts.sign_out(second)
    assert await w.accounts.from_session(second) is None
    assert await w.accounts.from_session(first) == alice  # the other session goes on
    assert w.sockets.ended == [[w.accounts.session_key(second)]]
    assert w.accounts.session_key(second) == secrets.digest(second)


@pytest.mark.gen_test
async def test_a_wrong_password_and_an_unknown_name_get_the_same_answer():
    w = World()
    await w.accounts.sign_up("alice", PASSWORD, None, ADDR)
    wrong_password = await refused(w.accounts.sign_in("alice", "not the password", ADDR), ErrorCode.UNAUTHORIZED)
    unknown_name = await refused(w.accounts.sign_in("nobody", PASSWORD, ADDR), ErrorCode.UNAUTHORIZED)
    assert wrong_password.message == unknown_name.message == "wrong name or password"


@pytest.mark.gen_test
async def test_an_unknown_name_still_spends_an_argon2_verify():
    verified: list[str] = []

    class Spy(PasswordHasher):
        def verify(self, hash, password):
            verified.append(password)
            return super().verify(hash, password)

    w = World(hasher=Spy.from_parameters(profiles.CHEAPEST))
    await refused(w.accounts.sign_in("nobody", "a guess at it", ADDR), ErrorCode.UNAUTHORIZED)
    assert verified == ["a guess at it"]


@pytest.mark.gen_test
async def test_failures_throttle_with_growing_waits_then_a_success_clears_them():
    w = World()
    await w.accounts.sign_up("alice", PASSWORD, None, ADDR)
    for _ in range(5):
        await refused(w.accounts.sign_in("alice", "wrong password", "10.0.0.2"), ErrorCode.UNAUTHORIZED)
    first = await refused(w.accounts.sign_in("alice", PASSWORD, "10.0.0.3"), ErrorCode.THROTTLED)
    assert first.retry_after == 1.0
    w.clock.advance(1.0)
    await refused(w.accounts.sign_in("alice", "wrong password", "10.0.0.2"), ErrorCode.UNAUTHORIZED)
    second = await refused(w.accounts.sign_in("alice", PASSWORD, "10.0.0.3"), ErrorCode.THROTTLED)
    assert second.retry_after == 2.0
    # An unknown name is throttled the same way: the answers do not tell names apart.
    for _ in range(5):
        await refused(w.accounts.sign_in("nobody", "wrong password", "10.0.0.4"), ErrorCode.UNAUTHORIZED)
    assert (await refused(w.accounts.sign_in("nobody", "x" * 8, "10.0.0.5"), ErrorCode.THROTTLED)).retry_after == 1.0
    w.clock.advance(2.0)
    await w.accounts.sign_in("alice", PASSWORD, "10.0.0.3")
    # The success cleared the account's count: five free failures again (from another address).
    for _ in range(5):
        await refused(w.accounts.sign_in("alice", "wrong password", "10.0.0.6"), ErrorCode.UNAUTHORIZED)


@pytest.mark.gen_test
async def test_a_disabled_account_cannot_sign_in_and_its_sessions_and_tokens_end():
    w = World()
    admin, _ = await w.accounts.sign_up("root", PASSWORD, None, ADDR)
    bob, session = await w.accounts.sign_up("bob", PASSWORD, None, ADDR)
    token, _info = await w.accounts.create_token(bob, "script")
    updated = await w.accounts.set_disabled("BOB", True, by=admin)
    assert updated.disabled
    assert w.sockets.disabled == [bob.id]
    assert w.sockets.ended == []  # its sockets close as disabled, not as signed out
    assert await w.accounts.from_session(session) is None
    assert await w.accounts.from_token(token) is None
    # The right password is needed to be told the account is disabled.
    await refused(w.accounts.sign_in("bob", "wrong password", ADDR), ErrorCode.UNAUTHORIZED)
    await refused(w.accounts.sign_in("bob", PASSWORD, ADDR), ErrorCode.FORBIDDEN)
    # Enabled again: the token works again, a sign-in too.
    assert not (await w.accounts.set_disabled("bob", False)).disabled
    assert await w.accounts.from_token(token) is not None
    await w.accounts.sign_in("bob", PASSWORD, ADDR)


@pytest.mark.gen_test
async def test_an_admin_cannot_disable_themself_and_unknown_names_are_not_found():
    w = World()
    admin, _ = await w.accounts.sign_up("root", PASSWORD, None, ADDR)
    await refused(w.accounts.set_disabled("root", True, by=admin), ErrorCode.BAD_REQUEST)
    await refused(w.accounts.set_disabled("ghost", True), ErrorCode.NOT_FOUND)


@pytest.mark.gen_test
async def test_registration_closed_refuses_every_sign_up_but_the_command_line_adds():
    w = World(Registration.CLOSED)
    await refused(w.accounts.sign_up("alice", PASSWORD, None, ADDR), ErrorCode.FORBIDDEN)
    alice = await w.accounts.add_user("alice", PASSWORD)
    assert alice.admin  # the first account, whichever way it is made
    bob = await w.accounts.add_user("bob", PASSWORD)
    carol = await w.accounts.add_user("carol", PASSWORD, admin=True)
    assert w.sockets.created == ["alice", "bob", "carol"]
    assert not bob.admin
    assert carol.admin
    await refused(w.accounts.add_user("Bob", PASSWORD), ErrorCode.NAME_TAKEN)
    await w.accounts.sign_in("bob", PASSWORD, ADDR)


@pytest.mark.gen_test
async def test_registration_by_invite_lets_the_first_account_in_then_needs_a_single_use_code():
    w = World(Registration.INVITE)
    assert await w.accounts.sign_up_mode() is Registration.OPEN  # the form offers sign-up to the first
    admin, _ = await w.accounts.sign_up("root", PASSWORD, None, ADDR)
    assert await w.accounts.sign_up_mode() is Registration.INVITE
    await refused(w.accounts.sign_up("bob", PASSWORD, None, ADDR), ErrorCode.FORBIDDEN)
    await refused(w.accounts.sign_up("bob", PASSWORD, "made-up", ADDR), ErrorCode.FORBIDDEN)
    code = await w.accounts.create_invite(admin)
    assert code not in w.directory.invites
    assert secrets.digest(code) in w.directory.invites
    bob, _ = await w.accounts.sign_up("bob", PASSWORD, code, ADDR)
    assert not bob.admin
    await refused(w.accounts.sign_up("carol", PASSWORD, code, ADDR), ErrorCode.FORBIDDEN)  # used
    await refused(w.accounts.create_invite(bob), ErrorCode.FORBIDDEN)  # only admins


@pytest.mark.gen_test
async def test_a_better_hasher_rehashes_at_the_next_good_sign_in():
    w = World()
    await w.accounts.sign_up("alice", PASSWORD, None, ADDR)
    found = await w.directory.account_by_name("alice")
    assert found is not None
    old = found[1]

    async def stored_hash() -> str:
        row = await w.directory.account_by_name("alice")
        assert row is not None
        return row[1]

    w.accounts.passwords = Passwords(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1, hash_len=16))
    await refused(w.accounts.sign_in("alice", "wrong password", ADDR), ErrorCode.UNAUTHORIZED)
    assert await stored_hash() == old  # not on a failure
    await w.accounts.sign_in("alice", PASSWORD, ADDR)
    new = await stored_hash()
    assert new != old
    assert "t=2" in new
    await w.accounts.sign_in("alice", PASSWORD, ADDR)  # the new hash verifies
    assert await stored_hash() == new


@pytest.mark.gen_test
async def test_tokens_are_shown_once_kept_hashed_and_revoked():
    w = World()
    alice, _ = await w.accounts.sign_up("alice", PASSWORD, None, ADDR)
    bob, _ = await w.accounts.sign_up("bob", PASSWORD, None, ADDR)
    token, info = await w.accounts.create_token(alice, "  backup script ")
    assert token.startswith("chat_")
    assert info.label == "backup script"
    assert w.directory.token_hashes == [secrets.digest(token)]
    assert token not in str(vars(w.directory))
    found = await w.accounts.from_token(token)
    assert found is not None
    assert found[0] == alice
    assert found[1].id == info.id
    assert w.accounts.token_key(found[1]) == f"token:{info.id}"
    assert "chat_" not in str([t.to_wire() for t in await w.accounts.tokens(alice)])
    assert await w.accounts.from_token("chat_not-a-token") is None
    assert await w.accounts.from_token("not even the prefix") is None
    await refused(w.accounts.revoke_token(bob, info.id), ErrorCode.NOT_FOUND)  # not bob's
    await w.accounts.revoke_token(alice, info.id)
    assert await w.accounts.from_token(token) is None
    assert w.sockets.ended == [[f"token:{info.id}"]]
    await refused(w.accounts.revoke_token(alice, info.id), ErrorCode.NOT_FOUND)  # once
    [listed] = await w.accounts.tokens(alice)
    assert listed.revoked is not None


@pytest.mark.gen_test
@pytest.mark.parametrize("label", ["", "   ", "x" * 65, "a\nb"])
async def test_a_token_label_has_1_to_64_printable_characters(label):
    w = World()
    alice, _ = await w.accounts.sign_up("alice", PASSWORD, None, ADDR)
    await refused(w.accounts.create_token(alice, label), ErrorCode.BAD_REQUEST)


@pytest.mark.gen_test
async def test_a_password_change_needs_the_old_one_and_ends_the_other_sessions():
    w = World()
    alice, here = await w.accounts.sign_up("alice", PASSWORD, None, ADDR)
    _, elsewhere = await w.accounts.sign_in("alice", PASSWORD, ADDR)
    token, _ = await w.accounts.create_token(alice, "script")
    await refused(w.accounts.change_password(alice, "not the old one", "a new password", here), ErrorCode.UNAUTHORIZED)
    await refused(w.accounts.change_password(alice, PASSWORD, "short", here), ErrorCode.BAD_PASSWORD)
    fresh = await w.accounts.change_password(alice, PASSWORD, "a new password", here)
    assert fresh is not None
    assert fresh not in (here, elsewhere)
    assert await w.accounts.from_session(fresh) == alice
    assert await w.accounts.from_session(here) is None
    assert await w.accounts.from_session(elsewhere) is None
    assert w.sockets.ended == [[secrets.digest(elsewhere)]]  # the caller's own page stays open
    assert await w.accounts.from_token(token) is not None  # tokens stay valid
    await refused(w.accounts.sign_in("alice", PASSWORD, ADDR), ErrorCode.UNAUTHORIZED)
    await w.accounts.sign_in("alice", "a new password", ADDR)


@pytest.mark.gen_test
async def test_list_accounts_by_name():
    w = World()
    await w.accounts.sign_up("bob", PASSWORD, None, ADDR)
    await w.accounts.sign_up("Alice", PASSWORD, None, ADDR)
    assert [a.name for a in await w.accounts.list_accounts()] == ["Alice", "bob"]
