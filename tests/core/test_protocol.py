import json

import pytest

from chat.core.protocol import (
    HISTORY_MAX_LIMIT,
    History,
    Join,
    Leave,
    Ping,
    ProtocolError,
    Rooms,
    Say,
    Typing,
    encode,
    parse_client_frame,
)


def parse(frame: object) -> object:
    return parse_client_frame(json.dumps(frame), max_message_chars=100)


def refused(frame: object | str) -> ProtocolError:
    text = frame if isinstance(frame, str) else json.dumps(frame)
    with pytest.raises(ProtocolError) as exc:
        parse_client_frame(text, max_message_chars=100)
    return exc.value


def test_every_frame_type_parses():
    assert parse({"type": "join", "room": "Lobby", "since": 3, "ref": "r"}) == Join("lobby", 3, "r")
    assert parse({"type": "leave", "room": "lobby"}) == Leave("lobby")
    assert parse({"type": "say", "room": "lobby", "text": " hi "}) == Say("lobby", "hi")
    assert parse({"type": "typing", "room": "lobby"}) == Typing("lobby")
    assert parse({"type": "history", "room": "lobby", "before": 9, "limit": 5}) == History("lobby", 9, None, 5)
    assert parse({"type": "history", "room": "lobby", "after": 9}) == History("lobby", None, 9, 50)
    assert parse({"type": "rooms", "ref": "x"}) == Rooms("x")
    assert parse({"type": "ping"}) == Ping()


def test_history_limit_is_capped():
    frame = parse({"type": "history", "room": "lobby", "limit": 10_000})
    assert isinstance(frame, History)
    assert frame.limit == HISTORY_MAX_LIMIT


@pytest.mark.parametrize("text", ["not json", "", "{", "[1,2]", '"str"', "42", "null", "[" * 100_000])
def test_not_json_or_not_an_object_is_bad_json(text):
    assert refused(text).code == "bad_json"


def test_unknown_type_is_reported_with_ref():
    err = refused({"type": "dance", "ref": "r9"})
    assert (err.code, err.ref) == ("unknown_type", "r9")


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"room": "x"}, "type"),
        ({"type": 5}, "type"),
        ({"type": "join"}, "room"),
        ({"type": "join", "room": 7}, "room"),
        ({"type": "join", "room": "x", "since": "3"}, "since"),
        ({"type": "join", "room": "x", "since": True}, "since"),
        ({"type": "join", "room": "x", "since": 1.5}, "since"),
        ({"type": "join", "room": "x", "since": -1}, "since"),
        ({"type": "say", "room": "x"}, "text"),
        ({"type": "say", "room": "x", "text": ["hi"]}, "text"),
        ({"type": "history", "room": "x", "limit": 0}, "limit"),
        ({"type": "history", "room": "x", "before": {}}, "before"),
        ({"type": "ping", "ref": 12}, "ref"),
        ({"type": "ping", "ref": "r" * 65}, "ref"),
    ],
)
def test_missing_or_mistyped_field_is_bad_request_naming_it(frame, field):
    err = refused(frame)
    assert err.code == "bad_request"
    assert f"'{field}'" in err.message


def test_bad_room_name():
    assert refused({"type": "join", "room": "no spaces"}).code == "bad_room"


def test_empty_and_long_text():
    assert refused({"type": "say", "room": "x", "text": "   "}).code == "empty"
    assert refused({"type": "say", "room": "x", "text": "x" * 101}).code == "too_long"


def test_encode_is_compact_utf8():
    assert encode({"type": "message", "text": "é"}) == '{"type":"message","text":"é"}'
