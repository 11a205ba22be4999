"""Invitation codes: their shape, finding one in a message, and keeping them out of storage.

A code is ``TL`` and ten characters of :data:`ALPHABET`, shown as ``TL-ABCDE-FGHJK``. Codes
are secrets (a multi-use code enrols anyone who has it): they are stored only as a hash,
and every text that is written anywhere — the message log, log lines — goes through
:func:`redact_codes` first. Wrong guesses look like codes too and are redacted the same way.
"""

from __future__ import annotations

import re

__all__ = [
    "ALPHABET",
    "CODE_LENGTH",
    "DEEP_LINK_ACTIONS",
    "PREFIX",
    "REDACTED",
    "find_code",
    "normalise_code",
    "redact_codes",
    "redact_user",
]

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed on phones
CODE_LENGTH = 10
PREFIX = "TL"
REDACTED = "TL-*****-*****"
# Telegram deep links that are not codes (``/start baocao`` from a "continue in private" link).
DEEP_LINK_ACTIONS = frozenset({"baocao", "tiendo", "thongbao", "toi", "hoi", "help"})

_SEP = r"[ \-_.]"
_EXACT = re.compile(rf"^{PREFIX}[{ALPHABET}]{{{CODE_LENGTH}}}$")
# A code inside a sentence: TL, then two groups of five (any case, separators optional).
_IN_TEXT = re.compile(
    rf"(?<![0-9A-Za-z]){PREFIX}{_SEP}?([{ALPHABET}]{{5}}){_SEP}?([{ALPHABET}]{{5}})(?![0-9A-Za-z])",
    re.IGNORECASE,
)
# What to redact: anything shaped like a code or a near miss (a wrong guess), any letters.
_CODE_LIKE = re.compile(
    rf"(?<![0-9A-Za-z])(TL)({_SEP}?)([0-9A-Za-z]{{4,6}})({_SEP}?)([0-9A-Za-z]{{4,6}})(?![0-9A-Za-z])",
    re.IGNORECASE,
)
_START = re.compile(r"^(\s*/start(?:@\w+)?\s+)(\S+)(.*)$", re.IGNORECASE | re.DOTALL)


def normalise_code(text: str) -> str:
    """Upper case without separators: ``tl-abcde fghjk`` -> ``TLABCDEFGHJK``."""
    return re.sub(r"[\s\-_.]", "", text).upper()


def find_code(text: str | None) -> str | None:
    """The invitation code in ``text`` (the whole message, or inside a sentence such as
    «Mã mời của tôi: TL-ABCDE-FGHJK»), normalised; ``None`` when there is none."""
    if not text or len(text) > 2000:
        return None
    whole = normalise_code(text)
    if len(text) <= 40 and _EXACT.match(whole):
        return whole
    match = _IN_TEXT.search(text)
    if match is None:
        return None
    return f"{PREFIX}{match.group(1)}{match.group(2)}".upper()


def _looks_secret(match: re.Match[str]) -> bool:
    body = match.group(3) + match.group(5)
    spaced = " " in (match.group(2) + match.group(4))
    # "tl nhanh giup" is chat, not a code: a space-separated form must look like one.
    return not spaced or any(c.isdigit() for c in body) or match.group(0).isupper()


def redact_codes(text: str | None) -> str | None:
    """``text`` with every invitation code (or code-like guess) replaced by ``REDACTED``;
    the payload of ``/start <payload>`` is always treated as a code."""
    if not text:
        return text
    start = _START.match(text)
    if start is not None and start.group(2).lower() not in DEEP_LINK_ACTIONS:
        text = f"{start.group(1)}{REDACTED}{start.group(3)}"
    if len(text) <= 40 and _EXACT.match(normalise_code(text)):
        return REDACTED
    return _CODE_LIKE.sub(lambda m: REDACTED if _looks_secret(m) else m.group(0), text)


def redact_user(user_id: str) -> str:
    """A platform user id as log lines show it: its last four characters (``…1234``).
    Applying it twice changes nothing."""
    return user_id if len(user_id) <= 4 else f"…{user_id[-4:]}"
