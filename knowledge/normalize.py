"""Vietnamese text normalisation for search.

Everything here is pure Python and deterministic. The pipeline is:

1. ``nfc``: canonical composition, so ``"hòa"`` typed as ``o`` + combining grave equals the
   precomposed letter;
2. ``fold``: lower case, accents removed (``đ`` -> ``d``). Both tone-placement conventions
   (``hoà``/``hòa``, ``thuỷ``/``thủy``) collapse to the same letters once tones are gone;
3. ``words``: ASCII word and number tokens, letters split from digits (``kl185`` -> ``kl 185``).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = ["fold", "nfc", "roman_to_int", "words"]


def _build_fold_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for code in range(0x00C0, 0x1EFF + 1):
        char = chr(code)
        decomposed = unicodedata.normalize("NFD", char)
        base = "".join(c for c in decomposed if not unicodedata.combining(c))
        lowered = base.lower()
        if lowered != char:
            table[code] = lowered
    table[ord("đ")] = "d"
    table[ord("Đ")] = "d"
    table[ord("ð")] = "d"
    # Stray combining marks left after NFC (e.g. on letters with no precomposed form).
    for code in range(0x0300, 0x036F + 1):
        table[code] = None
    return table


_FOLD_TABLE = _build_fold_table()
_TOKEN_RE = re.compile(r"[a-z]+|[0-9]+")


def nfc(text: str) -> str:
    """Canonical composition (NFC)."""
    return unicodedata.normalize("NFC", text)


def fold(text: str) -> str:
    """Lower-case, accent-free form of ``text`` (``"Đại hội"`` -> ``"dai hoi"``)."""
    return nfc(text).lower().translate(_FOLD_TABLE)


def words(text: str) -> list[str]:
    """Folded word and number tokens; letters and digits are always separate tokens."""
    return _TOKEN_RE.findall(fold(text))


_ROMAN_VALUES = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100}
_ROMAN_RE = re.compile(r"^(x{0,3})(ix|iv|v?i{0,3})$")


@lru_cache(maxsize=4096)
def roman_to_int(token: str) -> int | None:
    """Value of a Roman numeral between 2 and 39 (``"xiv"`` -> 14), else ``None``."""
    token = token.lower()
    if len(token) < 2 or not _ROMAN_RE.match(token):
        return None
    total = 0
    previous = 0
    for char in reversed(token):
        value = _ROMAN_VALUES[char]
        if value < previous:
            total -= value
        else:
            total += value
            previous = value
    return total if total >= 2 else None
