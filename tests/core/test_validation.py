import sys
import unicodedata

import pytest

from chat.core.validation import Invalid, name_key, normalize_name, normalize_room, normalize_text


@pytest.mark.parametrize("raw", ["bob", "  bob  ", "Zoë", "a" * 32, "😀 party"])
def test_valid_names_are_trimmed(raw):
    assert normalize_name(raw) == raw.strip()


@pytest.mark.parametrize("raw", ["", "   ", "a" * 33, "bo\x00b", "bo\nb", "evil\u202egnp", "zero\u200bwidth"])
def test_bad_names_are_refused(raw):
    with pytest.raises(Invalid) as exc:
        normalize_name(raw)
    assert exc.value.code == "bad_name"


def test_name_key_ignores_case():
    assert name_key("Bob") == name_key("bob") == name_key("BOB")


def test_name_key_meets_case_variants_that_fold_to_other_sequences():
    # "ῧ" folds to three code points, its upper case "Ϋ͂" to two: NFKC must run after folding too.
    assert name_key("ῧ") == name_key("ῧ".upper())


@pytest.mark.parametrize(
    ("raw", "room"), [("Lobby", "lobby"), ("a", "a"), ("dev_ops-2", "dev_ops-2"), ("9" * 64, "9" * 64)]
)
def test_room_names_are_lowercased(raw, room):
    assert normalize_room(raw) == room


@pytest.mark.parametrize("raw", ["", "-lobby", "_x", "a b", "a/b", "é", "a" * 65, "lobby!"])
def test_bad_room_names_are_refused(raw):
    with pytest.raises(Invalid) as exc:
        normalize_room(raw)
    assert exc.value.code == "bad_room"


def test_text_is_trimmed_and_keeps_newlines_and_tabs():
    assert normalize_text("  line one\n\tline two  ", 100) == "line one\n\tline two"


def test_text_keeps_emoji_sequences_and_rtl_marks():
    family = "👨\u200d👩\u200d👧 \u200f\u05e9\u05dc\u05d5\u05dd"  # Hebrew "shalom" after an RTL mark
    assert normalize_text(family, 100) == family


@pytest.mark.parametrize(("raw", "code"), [("", "empty"), (" \n\t ", "empty"), ("x" * 11, "too_long")])
def test_empty_and_long_text_are_refused(raw, code):
    with pytest.raises(Invalid) as exc:
        normalize_text(raw, 10)
    assert exc.value.code == code


@pytest.mark.parametrize("raw", ["nul\x00", "bell\x07", "lone \ud800 surrogate", "esc\x1b[31m"])
def test_control_characters_in_text_are_refused(raw):
    with pytest.raises(Invalid) as exc:
        normalize_text(raw, 100)
    assert exc.value.code == "bad_request"
    assert "text" in exc.value.message


def test_every_kind_of_control_character_is_refused_in_a_name():
    # Every Cc, Cf and Cs code point, and a spread of the private-use (Co) and
    # unassigned (Cn) ones: each refused inside an otherwise fine name.
    checked = 0
    for point in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(point))
        if category in ("Cc", "Cf", "Cs") or (category in ("Co", "Cn") and point % 101 == 0):
            with pytest.raises(Invalid):
                normalize_name(f"a{chr(point)}b")
            checked += 1
    assert checked > 9000
