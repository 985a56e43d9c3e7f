"""Argon2id hashes: verify, mismatch, rehash on new parameters, and the dummy verify for unknown names."""

from __future__ import annotations

import asyncio
import threading

import pytest
from argon2 import PasswordHasher, profiles

from chat.core.passwords import Passwords

CHEAP = PasswordHasher.from_parameters(profiles.CHEAPEST)


@pytest.mark.gen_test
async def test_a_hash_verifies_its_password_and_no_other():
    passwords = Passwords(CHEAP)
    stored = await passwords.hash("correct horse")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert await passwords.verify(stored, "correct horse")
    assert not await passwords.verify(stored, "correct horsE")


@pytest.mark.gen_test
async def test_a_hash_that_is_not_argon2_does_not_verify():
    assert not await Passwords(CHEAP).verify("plain text", "plain text")


@pytest.mark.gen_test
async def test_hashing_and_verifying_run_off_the_event_loop(monkeypatch):
    threads: list[str] = []

    class Spy(PasswordHasher):
        def hash(self, password, *, salt=None):
            threads.append(threading.current_thread().name)
            return super().hash(password, salt=salt)

        def verify(self, hash, password):
            threads.append(threading.current_thread().name)
            return super().verify(hash, password)

    spy = Spy.from_parameters(profiles.CHEAPEST)
    passwords = Passwords(spy)
    await passwords.verify(await passwords.hash("a password"), "a password")
    loop_thread = threading.current_thread().name
    assert len(threads) == 2
    assert all(name != loop_thread for name in threads)
    await asyncio.sleep(0)


@pytest.mark.gen_test
async def test_a_hash_made_with_other_parameters_needs_a_rehash():
    old = await Passwords(CHEAP).hash("a password")
    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1, hash_len=16, salt_len=8))
    assert stronger.needs_rehash(old)
    assert not Passwords(CHEAP).needs_rehash(old)
    assert stronger.needs_rehash("not a hash")


@pytest.mark.gen_test
async def test_spend_verifies_against_a_dummy_hash_made_once():
    calls: list[str] = []

    class Spy(PasswordHasher):
        def verify(self, hash, password):
            calls.append(hash)
            return super().verify(hash, password)

    passwords = Passwords(Spy.from_parameters(profiles.CHEAPEST))
    await passwords.spend("guess one")
    await passwords.spend("guess two")
    assert len(calls) == 2
    assert calls[0] == calls[1]  # the same dummy, made once
    assert calls[0].startswith("$argon2id$v=19$m=8,t=1,p=1$")  # with the hasher's own parameters
