import pytest


@pytest.mark.gen_test
async def test_say_reaches_every_member(connect):
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.send(type="join", room="lobby")
    await alice.recv_until("joined")
    await bob.send(type="join", room="lobby")
    joined = await bob.recv_until("joined")
    assert joined["members"] == ["alice", "bob"]
    await bob.send(type="say", room="lobby", text="hi", ref="r1")
    mine = await bob.recv_until("message")
    theirs = await alice.recv_until("message")
    assert mine["seq"] == theirs["seq"] == 1
    assert mine["ref"] == "r1"
    assert "ref" not in theirs
