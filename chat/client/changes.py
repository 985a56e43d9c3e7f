"""Changes to a room's messages, read markers and search: the issue-13 requests of docs/protocol.md.

:class:`RoomChanges` is part of :class:`chat.client.ChatClient`. An edit, a
deletion and a reaction each take the room's next seq, like a message: the
reply is the stored event, which every member of the room also gets (and the
client yields it in seq order, see :class:`chat.client.ChatClient`). Each is
idempotent by its ref on the server, so a reconnect resends it safely.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Frame = dict[str, Any]


class RoomChanges:
    """The edit/delete/react/read/search side of a :class:`chat.client.ChatClient`
    (a mixin: it sends through the client's ``_request``)."""

    async def _request(
        self,
        frame: Frame,
        *,
        resend: bool = True,
        once: bool = False,
        on_reply: Callable[[Frame], None] | None = None,
    ) -> Frame:
        raise NotImplementedError

    async def edit(self, room: str, seq: int, text: str) -> Frame:
        """Replace the text of our message ``seq`` in ``room`` (accounts only); returns
        the stored ``edit`` event (its own seq, ``target`` = ``seq``), which the
        room's members also get. Resent with its ref after a reconnect, like
        :meth:`say`: the server stores it once."""
        return dict(await self._request({"type": "edit", "room": room, "seq": seq, "text": text}))

    async def delete(self, room: str, seq: int) -> Frame:
        """Delete message ``seq`` of ``room`` (our own; owners and moderators: anyone's).
        Its text is removed from the server. Returns the stored ``delete`` event."""
        return dict(await self._request({"type": "delete", "room": room, "seq": seq}))

    async def react(self, room: str, seq: int, emoji: str) -> Frame:
        """Toggle our ``emoji`` reaction (one of :data:`chat.core.model.REACTIONS`) on
        message ``seq``; returns the stored ``reaction`` event, whose ``on`` says
        whether it was added (True) or taken back (False)."""
        return dict(await self._request({"type": "react", "room": room, "seq": seq, "emoji": emoji}))

    async def mark_read(self, room: str, seq: int) -> Frame:
        """Mark ``room`` read up to ``seq`` (accounts only; markers only move forward).
        Returns the ``read`` frame: ``seq`` (the marker now), ``unread`` and
        ``mentions`` as the server counts them. The account's other connections
        get the same frame as an event."""
        return await self._request({"type": "read", "room": room, "seq": seq})

    async def search(
        self, q: str, room: str | None = None, before: int | None = None, limit: int | None = None
    ) -> list[Frame]:
        """Messages matching the words ``q``, newest first, over the rooms we may read
        (or only ``room``): ``[{"room","seq","name","ts","snippet"}]``, the matched
        words in the snippet between ``[`` and ``]``. ``before`` (ms) pages back:
        pass the last result's ``ts``; ``limit`` is at most 50 (20 by default)."""
        frame: Frame = {"type": "search", "q": q}
        if room is not None:
            frame["room"] = room
        if before is not None:
            frame["before"] = before
        if limit is not None:
            frame["limit"] = limit
        reply = await self._request(frame)
        results: list[Frame] = reply.get("results", [])
        return results
