"""Fan-out: one room's stored messages, framed once, handed to every member.

Pure bookkeeping over outboxes: :func:`room_frames` builds the frames (and each
sender's own copy, which carries its ref), :func:`fan_out` hands them over.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from chat.core.frames import OutFrame
from chat.core.model import Message
from chat.core.outbound import MessageFrame, encode
from chat.core.peer import Peer


def room_frames(
    batch: list[tuple[Message, Peer | None]], live: Collection[Peer]
) -> tuple[list[OutFrame], dict[Peer, list[OutFrame]]]:
    """The frames of ``batch`` (one room's messages in seq order, each with its
    sender if here) for every member, and for each sender in ``live`` its own
    list: the same frames, but its messages carry its ref (its acknowledgement)."""
    frames: list[OutFrame] = []
    own: dict[Peer, list[OutFrame]] = {}
    for i, (message, sender) in enumerate(batch):
        frames.append(OutFrame.message(encode(MessageFrame(message)), message.room, message.seq))
        if sender is not None and message.ref is not None and sender in live:
            mine = own.get(sender)
            if mine is None:
                mine = own[sender] = []
            mine.extend(frames[len(mine) : i])  # the others' messages before this one
            mine.append(OutFrame.of(encode(MessageFrame(message, with_ref=True))))
    for mine in own.values():  # and those after its last one
        mine.extend(frames[len(mine) :])
    return frames, own


def fan_out(live: Iterable[Peer], frames: list[OutFrame], own: dict[Peer, list[OutFrame]], direct: bool) -> None:
    """Hand ``frames`` (one room's, in order) to every member of ``live``; the
    peers in ``own`` get their own list instead.

    The hot loop, once per member per message. With ``direct``, a member whose
    outbox has nothing waiting gets the frames' bytes straight from one
    ``send()`` on its socket, as they would have gone out at the end of the
    tick: no queue, no flush, no object made per member. Everyone else (and
    every member when not ``direct``) has the frames pushed on its outbox.
    """
    # The senders' copies carry their refs: they go through the outbox, which
    # also takes the senders off the direct path below (a push closes it).
    for sender, mine in own.items():
        push = sender.outbox.push
        for frame in mine:
            push(frame)
    if not direct:
        for member in live:
            if member not in own:
                push = member.outbox.push
                for frame in frames:
                    push(frame)
        return
    data = frames[0].data if len(frames) == 1 else b"".join(f.data for f in frames)
    size = len(data)
    for member in live:
        send = member.outbox.send
        if send is None:
            if member not in own:
                push = member.outbox.push
                for frame in frames:
                    push(frame)
            continue
        try:
            sent = send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            continue  # the socket is gone: its close disconnects the member
        if sent != size:
            member.outbox.sent_part(data, sent)
