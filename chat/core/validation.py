"""Rules for names, room names and message text. Pure functions, no I/O.

Each ``normalize_*`` returns the cleaned value or raises :class:`Invalid`, whose
``code`` is the protocol error code to send back.
"""

from __future__ import annotations

import re
import unicodedata

from chat.core.errors import ErrorCode
from chat.core.errors import Invalid as Invalid  # re-exported: callers catch it from here

NAME_MAX_CHARS = 32
ROOM_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Private rooms and DMs are named by the server: "~" and 20 base32 letters,
# never a public room's name. A join never creates a room of this form, so to
# an outsider a private room answers exactly as an id nobody made (not_found);
# their titles are kept apart and need not be unique (docs/security.md).
PRIVATE_ROOM_RE = re.compile(r"^~[a-z2-7]{20}$")
# Text may carry line breaks and tabs (Shift+Enter makes a new line); any other
# control character could hide or reorder what others see.
TEXT_ALLOWED_CONTROLS = frozenset("\n\t")


def _has_control(text: str, allowed: frozenset[str] = frozenset()) -> bool:
    # Category "C*" covers control (Cc), format (Cf, e.g. bidi overrides),
    # surrogates (Cs), private use and unassigned. Names reject all of them;
    # text rejects only Cc and lone surrogates, because emoji sequences need
    # zero-width joiners (Cf).
    if text.isprintable():
        # No character of category C* (nor Z* but the ASCII space) is
        # printable, so there is nothing to find: the one C call stands in for
        # a category lookup per character (most names and texts end here).
        return False
    return any(unicodedata.category(ch).startswith("C") and ch not in allowed for ch in text)


def normalize_name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise Invalid(ErrorCode.BAD_NAME, "a name needs 1 to 32 characters")
    if len(name) > NAME_MAX_CHARS:
        raise Invalid(ErrorCode.BAD_NAME, f"a name has at most {NAME_MAX_CHARS} characters")
    if _has_control(name):
        raise Invalid(ErrorCode.BAD_NAME, "a name may not contain control characters")
    return name


def name_key(name: str) -> str:
    """Names are unique regardless of case, so "Bob" cannot pose as "bob".

    Normalized again after case folding: folding can leave a sequence that
    NFKC composes differently ("ῧ" folds to three code points, its upper case
    to two), and both spellings must meet on one key (Unicode's caseless
    identifier matching, NFKC_Casefold, does the same)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def is_private_id(room: str) -> bool:
    """A server-made id (private room or DM), as opposed to a public room's name."""
    return PRIVATE_ROOM_RE.match(room) is not None


def normalize_room(raw: str) -> str:
    room = raw.strip().lower()
    if not ROOM_RE.match(room) and not PRIVATE_ROOM_RE.match(room):
        raise Invalid(
            ErrorCode.BAD_ROOM,
            "a room name is 1 to 64 of a-z, 0-9, '_' and '-', starting with a letter or digit",
        )
    return room


TITLE_MAX_CHARS = 64


def normalize_title(raw: str) -> str:
    """A private room's title: what its members see, 1 to 64 characters, no control characters."""
    title = raw.strip()
    if not title or len(title) > TITLE_MAX_CHARS:
        raise Invalid(ErrorCode.BAD_ROOM, f"a room title has 1 to {TITLE_MAX_CHARS} characters")
    if _has_control(title):
        raise Invalid(ErrorCode.BAD_ROOM, "a room title may not contain control characters")
    return title


PASSWORD_MIN_CHARS = 8
# Long enough for any passphrase or password manager; bounded so a sign-in
# cannot hand Argon2 megabytes to hash.
PASSWORD_MAX_CHARS = 1024


def check_password(raw: str) -> str:
    """A new password: 8 to 1024 characters, kept exactly as typed (no composition rules)."""
    if len(raw) < PASSWORD_MIN_CHARS:
        raise Invalid(ErrorCode.BAD_PASSWORD, f"a password has at least {PASSWORD_MIN_CHARS} characters")
    if len(raw) > PASSWORD_MAX_CHARS:
        raise Invalid(ErrorCode.BAD_PASSWORD, f"a password has at most {PASSWORD_MAX_CHARS} characters")
    return raw


def normalize_text(raw: str, max_chars: int) -> str:
    text = raw.strip()
    if not text:
        raise Invalid(ErrorCode.EMPTY, "the message is empty")
    if len(text) > max_chars:
        raise Invalid(ErrorCode.TOO_LONG, f"a message has at most {max_chars} characters")
    for ch in text:
        cat = unicodedata.category(ch)
        if (cat == "Cc" and ch not in TEXT_ALLOWED_CONTROLS) or cat == "Cs":
            raise Invalid(ErrorCode.BAD_REQUEST, "field 'text' may not contain control characters")
    return text
