"""Text folding shared by the full-text index and its queries, so both sides see the same tokens."""

from __future__ import annotations

import re
import unicodedata

# Scripts written without spaces between words: each character becomes its own token, and a query
# for a word becomes a phrase of its characters.
_CJK = re.compile(
    r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff\u0e00-\u0e7f])"
)
_TATWEEL = "\u0640"
_FOLD_TABLE = str.maketrans({"ё": "е", _TATWEEL: None})


def strip_marks(text: str) -> str:
    """Drop combining marks (Arabic harakat, Hebrew points) that would otherwise split words."""
    if text.isascii():
        return text
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Mn", "Me"))


def fold(text: str) -> str:
    """NFKC, case-fold, ё→е, no combining marks, CJK split into characters."""
    folded = strip_marks(unicodedata.normalize("NFKC", text).casefold().translate(_FOLD_TABLE))
    if not folded.isascii():
        folded = _CJK.sub(r" \1 ", folded)
    return folded
