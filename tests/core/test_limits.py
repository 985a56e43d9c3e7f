"""Each limit is defined once: the options' defaults, Limits and the protocol agree."""

from __future__ import annotations

import json

from chat.core import limits
from chat.core.limits import Limits
from chat.core.protocol import History, parse_client_frame
from chat.server.options import Settings, parse_settings


def test_the_default_limits_are_the_default_options():
    s = Settings()
    assert Limits() == Limits(
        history_on_join=s.history_on_join,
        max_message_chars=s.max_message_chars,
        rate=s.rate,
        burst=s.burst,
        max_rooms_per_connection=s.max_rooms_per_connection,
        max_backlog_bytes=s.max_backlog_bytes,
    )


def test_the_command_line_defaults_come_from_the_core():
    s = parse_settings([], {})
    assert (s.history_on_join, s.max_message_chars, s.rate, s.burst) == (
        limits.HISTORY_ON_JOIN,
        limits.MAX_MESSAGE_CHARS,
        limits.RATE,
        limits.RATE * limits.BURST_PER_RATE,
    )


def test_a_history_request_is_capped_at_the_page_size_and_defaults_to_the_default_page():
    capped = parse_client_frame(json.dumps({"type": "history", "room": "r", "limit": 10**6}), max_message_chars=10)
    plain = parse_client_frame(json.dumps({"type": "history", "room": "r"}), max_message_chars=10)
    assert isinstance(capped, History)
    assert isinstance(plain, History)
    assert (capped.limit, plain.limit) == (limits.HISTORY_PAGE_MAX, limits.HISTORY_PAGE_DEFAULT)
