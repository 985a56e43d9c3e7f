"""Edits, deletions, reactions and read markers across processes, on both
engines (the access matrix's servers: tests/cluster/test_access.py). On
PostgreSQL the room's owner acts through process A and the reader through B."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from tests.cluster.test_access import Chat, joined_member, reply
from tests.support import Socket


async def token_socket(chat: Chat, server: Any, name: str) -> Socket:
    sock = await Socket.connect(HTTPRequest(server.url, headers={"Authorization": f"Bearer {chat.tokens[name]}"}))
    chat.sockets.append(sock)
    sock.welcome = await sock.recv_until("welcome")
    return sock


async def ask(sock: Socket, ref: str, **frame: Any) -> dict[str, Any]:
    await sock.send(ref=ref, **frame)
    return await reply(sock, ref)


@pytest.mark.gen_test(timeout=120)
async def test_a_reader_resuming_on_the_other_process_gets_every_change_made_while_away(chat: Chat) -> None:
    owner = chat.owner
    assert owner is not None
    first = await ask(owner, "m1", type="say", room=chat.room, text="the plan is ready")
    second = await ask(owner, "m2", type="say", room=chat.room, text="a typo here")
    mel = await joined_member(chat, chat.b, "mel")
    since = second["seq"]
    mel.close()
    edit = await ask(owner, "e", type="edit", room=chat.room, seq=first["seq"], text="the plan is final")
    gone = await ask(owner, "d", type="delete", room=chat.room, seq=second["seq"])
    thumbs = await ask(owner, "r", type="react", room=chat.room, seq=first["seq"], emoji="👍")
    assert [edit["type"], gone["type"], thumbs["type"]] == ["edit", "delete", "reaction"]
    back = await token_socket(chat, chat.b, "mel")
    joined = await ask(back, "j", type="join", room=chat.room, since=since)
    assert [(e["type"], e["seq"], e.get("target")) for e in joined["history"]] == [
        ("edit", since + 1, first["seq"]),
        ("delete", since + 2, second["seq"]),
        ("reaction", since + 3, first["seq"]),
    ]
    assert joined["history"][0]["text"] == "the plan is final"
    assert joined["history"][2]["on"] is True
    assert joined["last_seq"] == thumbs["seq"]
    # Scrolling back shows the messages as they are now.
    page = await ask(back, "h", type="history", room=chat.room, before=thumbs["seq"] + 1)
    shown = {m["seq"]: m for m in page["messages"]}
    assert (shown[first["seq"]]["text"], shown[first["seq"]]["reactions"]) == ("the plan is final", {"👍": ["olive"]})
    assert (shown[second["seq"]]["deleted"], shown[second["seq"]]["text"]) == (True, "")


@pytest.mark.gen_test(timeout=120)
async def test_a_read_marker_moved_on_one_process_reaches_the_accounts_socket_on_the_other(chat: Chat) -> None:
    owner = chat.owner
    assert owner is not None
    laptop = await joined_member(chat, chat.a, "mel")
    phone = await joined_member(chat, chat.b, "mel")
    said = [await ask(owner, f"s{i}", type="say", room=chat.room, text=f"news {i} @mel") for i in range(3)]
    marked = await ask(laptop, "read", type="read", room=chat.room, seq=said[0]["seq"])
    assert (marked["seq"], marked["unread"], marked["mentions"]) == (said[0]["seq"], 2, 2)
    synced = await phone.recv_until("read")
    assert synced == {"type": "read", "room": chat.room, "seq": said[0]["seq"], "unread": 2, "mentions": 2}
    later = await token_socket(chat, chat.b, "mel")
    [mine] = [r for r in later.welcome["rooms"] if r["room"] == chat.room]
    assert (mine["read"], mine["unread"]) == (said[0]["seq"], 2)


@pytest.mark.gen_test(timeout=120)
async def test_search_over_http_on_the_other_process_never_shows_a_private_room_to_an_outsider(chat: Chat) -> None:
    owner = chat.owner
    assert owner is not None
    await ask(owner, "s", type="say", room=chat.room, text="zeppelin budget")
    client = AsyncHTTPClient()
    for name, expected in (("mel", [chat.room]), ("nora", [])):
        response = await client.fetch(
            chat.http(chat.b, "/api/search?q=zeppelin"), headers={"Authorization": f"Bearer {chat.tokens[name]}"}
        )

        assert [hit["room"] for hit in json.loads(response.body)["results"]] == expected, name
