"""One exception hierarchy and one set of codes, importable where callers always found them."""

from __future__ import annotations

import json

import pytest

from chat.core import errors, protocol, service, validation
from chat.core.errors import ChatServiceError, CloseReason, ErrorCode, Invalid, ProtocolError, Refused
from chat.core.outbound import Error


@pytest.mark.parametrize("error", [Invalid, ProtocolError, Refused])
def test_every_error_of_the_rules_is_a_chat_service_error(error):
    assert issubclass(error, ChatServiceError)


def test_invalid_is_still_a_value_error():
    with pytest.raises(ValueError, match="the message is empty"):
        validation.normalize_text("  ", 10)


def test_the_old_import_paths_name_the_same_classes():
    assert service.Refused is errors.Refused
    assert protocol.ProtocolError is errors.ProtocolError
    assert protocol.ErrorCode is errors.ErrorCode
    assert protocol.CloseCode is errors.CloseCode
    assert validation.Invalid is errors.Invalid


@pytest.mark.parametrize(
    ("normalize", "code"),
    [
        (lambda: validation.normalize_name(""), ErrorCode.BAD_NAME),
        (lambda: validation.normalize_room("No Spaces"), ErrorCode.BAD_ROOM),
        (lambda: validation.normalize_text("", 10), ErrorCode.EMPTY),
        (lambda: validation.normalize_text("x" * 11, 10), ErrorCode.TOO_LONG),
        (lambda: validation.normalize_text("a\x00b", 10), ErrorCode.BAD_REQUEST),
    ],
)
def test_validation_raises_the_protocol_error_codes(normalize, code):
    with pytest.raises(Invalid) as refused:
        normalize()
    assert refused.value.code is code


def test_codes_go_on_the_wire_as_their_plain_strings():
    text = protocol.encode(Error(ErrorCode.TOO_MANY_ROOMS, "m", "r1"))
    assert text == '{"type":"error","code":"too_many_rooms","message":"m","ref":"r1"}'
    assert json.dumps({"reason": CloseReason.SLOW_CONSUMER}) == '{"reason": "slow consumer"}'


def test_a_refusal_carries_its_reason_and_message():
    refused = Refused(ErrorCode.NAME_TAKEN, "the name 'bob' is in use")
    assert (refused.reason, refused.message) == ("name_taken", "the name 'bob' is in use")
    assert str(refused) == refused.message
