"""How a present name says whether it is an account's, across processes.

Presence (who is in a room) is kept by the broker as opaque strings: a dict in
one process, a Redis hash across processes, published as they change. An
account's entry is its name after a control character (:data:`ACCOUNT_MARK`),
which no name may contain (chat.core.validation), so a guest can never pose as
one; a guest's entry is its bare name. The service encodes entries with
:func:`entry` and decodes what the broker hands back with :func:`parse`, so
``joined`` and ``presence`` tell accounts from guests on every process without
a lookup. Everyone not marked as an account is a guest (docs/protocol.md).
"""

from __future__ import annotations

ACCOUNT_MARK = "\x01"


def entry(name: str, account: bool) -> str:
    return ACCOUNT_MARK + name if account else name


def parse(present: str) -> tuple[str, bool]:
    """``(name, is_account)`` of a presence entry."""
    if present.startswith(ACCOUNT_MARK):
        return present[len(ACCOUNT_MARK) :], True
    return present, False
