from chat.core.model import Message
from chat.core.rooms import RoomRegistry


def msg(seq: int) -> Message:
    return Message("lobby", seq, "n", "t", 0)


def test_presence_counts_names_not_connections():
    rooms: RoomRegistry[str] = RoomRegistry()
    assert rooms.join("lobby", "tab1", "bob") is True
    assert rooms.join("lobby", "tab2", "bob") is False
    assert rooms.member_count("lobby") == 1
    assert rooms.leave("lobby", "tab1", "bob") is False
    assert rooms.leave("lobby", "tab2", "bob") is True
    assert "lobby" not in rooms


def test_members_are_listed_by_name():
    rooms: RoomRegistry[str] = RoomRegistry()
    rooms.join("lobby", "c1", "carol")
    rooms.join("lobby", "c2", "Alice")
    assert rooms.member_names("lobby") == ["Alice", "carol"]


def test_leaving_a_room_not_joined_changes_nothing():
    rooms: RoomRegistry[str] = RoomRegistry()
    rooms.join("lobby", "c1", "bob")
    assert rooms.leave("lobby", "c2", "bob") is False
    assert rooms.member_count("lobby") == 1


def test_messages_published_while_syncing_are_handed_back_on_go_live():
    rooms: RoomRegistry[str] = RoomRegistry()
    rooms.join("lobby", "old", "alice")
    rooms.go_live("lobby", "old")
    rooms.join("lobby", "new", "bob")
    rooms.buffer("lobby", msg(1))
    rooms.buffer("lobby", msg(2))
    assert rooms.go_live("lobby", "new") == [msg(1), msg(2)]
    room = rooms.room("lobby")
    assert room is not None
    assert list(room.live) == ["old", "new"]
