"""Services wired as the server wires them, for tests that build one by hand."""

from __future__ import annotations

from typing import Any

from chat.backends.factory import local_broker
from chat.backends.sqlite import SQLiteHistory
from chat.core.service import ChatService, Limits
from chat.core.sessions import SessionSigner


def local_service(
    store: SQLiteHistory, signer: SessionSigner, limits: Limits | None = None, **options: Any
) -> ChatService:
    """A ChatService of one process: ``store`` with the in-process broker fed by its commits."""
    return ChatService(store, signer, limits if limits is not None else Limits(), broker=local_broker(store), **options)
