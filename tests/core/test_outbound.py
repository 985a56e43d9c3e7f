"""Server frames: each typed frame encodes to exactly the JSON docs/protocol.md shows."""

from __future__ import annotations

import pytest

from chat.backends.base import presence_frame
from chat.core import outbound as out
from chat.core.errors import ErrorCode
from chat.core.model import Message, MyRoom, RoomInfo, RoomKind, RoomSummary, Standing, Visibility

M1 = Message("lobby", 1, "bob", "hi é", 1000, "s1", "r1")
M2 = Message("lobby", 2, "amy", "yo", 2000)
PUBLIC_M1 = '{"type":"message","room":"lobby","seq":1,"name":"bob","text":"hi é","ts":1000}'

PLANS = RoomInfo("~abcdefghijklmnopqrst", Visibility.PRIVATE, RoomKind.ROOM, "plans")
DM = RoomInfo("~abcdefghijklmnopqrst", Visibility.PRIVATE, RoomKind.DM)


@pytest.mark.parametrize(
    ("frame", "text"),
    [
        (
            out.Welcome("bob", "tok"),
            '{"type":"welcome","name":"bob","session":"tok","account":false,"admin":false,"guest":true,"rooms":[]}',
        ),
        (
            out.Welcome("amy", "", account=True, rooms=(MyRoom(PLANS, Standing.OWNER),)),
            '{"type":"welcome","name":"amy","session":"","account":true,"admin":false,"guest":false,'
            '"rooms":[{"room":"~abcdefghijklmnopqrst","title":"plans","visibility":"private","kind":"room","role":"owner"}]}',
        ),
        (
            out.MessageFrame(Message("lobby", 3, "gus", "hi", 3000, guest=True)),
            '{"type":"message","room":"lobby","seq":3,"name":"gus","text":"hi","ts":3000,"guest":true}',
        ),
        (
            out.Removed("~abcdefghijklmnopqrst", "banned"),
            '{"type":"removed","room":"~abcdefghijklmnopqrst","reason":"banned"}',
        ),
        (
            out.Done("invite", "~abcdefghijklmnopqrst", "bob", "i"),
            '{"type":"done","action":"invite","room":"~abcdefghijklmnopqrst","name":"bob","ref":"i"}',
        ),
        (
            out.RoleChanged("~abcdefghijklmnopqrst", "bob", Standing.MODERATOR),
            '{"type":"role","room":"~abcdefghijklmnopqrst","name":"bob","role":"moderator"}',
        ),
        (out.Error(ErrorCode.BAD_JSON, "no"), '{"type":"error","code":"bad_json","message":"no"}'),
        (out.Error(ErrorCode.EMPTY, "no", "r"), '{"type":"error","code":"empty","message":"no","ref":"r"}'),
        (out.Left("lobby"), '{"type":"left","room":"lobby"}'),
        (out.Left("lobby", ""), '{"type":"left","room":"lobby","ref":""}'),  # an empty ref is a ref
        (out.MessageFrame(M1), PUBLIC_M1),
        (out.MessageFrame(M1, with_ref=True), PUBLIC_M1[:-1] + ',"ref":"r1"}'),
        (
            out.MessageFrame(M2, with_ref=True),
            '{"type":"message","room":"lobby","seq":2,"name":"amy","text":"yo","ts":2000}',
        ),
        (out.History("lobby", [M1], "h"), '{"type":"history","room":"lobby","messages":[' + PUBLIC_M1 + '],"ref":"h"}'),
        (
            out.Rooms([RoomSummary("lobby", 2, 9)]),
            '{"type":"rooms","rooms":[{"room":"lobby","title":"lobby","visibility":"public","kind":"room",'
            '"members":2,"last_seq":9}]}',
        ),
        (out.Pong(), '{"type":"pong"}'),
        (out.Pong("p"), '{"type":"pong","ref":"p"}'),
        (out.Presence("lobby", "join", "bob"), '{"type":"presence","room":"lobby","event":"join","name":"bob"}'),
        (out.Typing("lobby", "bob"), '{"type":"typing","room":"lobby","name":"bob"}'),
        (out.Gap("lobby", 3, 7), '{"type":"gap","room":"lobby","from_seq":3,"to_seq":7}'),
    ],
)
def test_each_frame_encodes_to_its_documented_json(frame, text):
    assert out.encode(frame) == text


def test_joined_lists_members_seq_and_history_and_says_truncated_only_when_it_is():
    joined = out.Joined("lobby", ["amy", "bob"], 2, [M1], ref="j")
    head = '{"type":"joined","room":"lobby","members":["amy","bob"],"last_seq":2,"history":[' + PUBLIC_M1 + "]"
    public = ',"title":"lobby","visibility":"public","kind":"room","role":null'
    assert out.encode(joined) == head + public + ',"ref":"j"}'
    truncated = out.Joined("lobby", [], 2, [M1], truncated=True)
    assert (
        out.encode(truncated)
        == '{"type":"joined","room":"lobby","members":[],"last_seq":2,"history":['
        + PUBLIC_M1
        + "]"
        + public
        + ',"truncated":true}'
    )
    dm = out.Joined(PLANS.room, ["amy"], 0, [], info=DM, role=Standing.MEMBER, people=("amy", "bob"))
    assert out.encode(dm).endswith(
        '"title":"","visibility":"private","kind":"dm","role":"member","people":["amy","bob"]}'
    )


def test_frames_are_frozen():
    with pytest.raises(AttributeError):
        out.Pong().ref = "x"  # type: ignore[misc]


def test_presence_frame_is_the_typed_presence_on_the_wire():
    assert presence_frame("lobby", "leave", "bob") == out.Presence("lobby", "leave", "bob").to_wire()


def test_encode_still_takes_a_wire_dict():
    assert out.encode({"type": "pong"}) == '{"type":"pong"}'
