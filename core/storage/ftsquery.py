"""Turn a user's search text into a safe FTS5 expression: user syntax never reaches SQLite raw."""

from __future__ import annotations

import re

from core.textnorm import fold

_TOKEN = re.compile(r'"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w+")


class SearchSyntaxError(ValueError):
    """The search text has nothing to look for; the message is fit for the user."""


def _phrase(text: str, prefix: bool = False) -> str | None:
    words = _WORD.findall(fold(text))
    if not words:
        return None
    return '"' + " ".join(words) + '"' + ("*" if prefix else "")


def to_fts5(query: str) -> str:
    """Words AND-ed, "exact phrases", OR between groups, -word to exclude, word* for a prefix."""
    groups: list[tuple[list[str], list[str]]] = [([], [])]
    negate_next = False
    for match in _TOKEN.finditer(query):
        quoted, bare = match.group(1), match.group(2)
        if bare is not None and bare == "OR":
            groups.append(([], []))
            continue
        if bare is not None and bare == "NOT":
            negate_next = True
            continue
        negative = negate_next
        negate_next = False
        if quoted is not None:
            phrase = _phrase(quoted)
        else:
            assert bare is not None
            if bare.startswith("-") and len(bare) > 1:
                negative, bare = True, bare[1:]
            phrase = _phrase(bare.rstrip("*"), prefix=bare.endswith("*") and len(bare) > 1)
        if phrase:
            groups[-1][1 if negative else 0].append(phrase)
    parts = []
    for positives, negatives in groups:
        if not positives:
            if negatives:
                raise SearchSyntaxError("Add at least one word to look for next to the excluded ones.")
            continue
        expr = "(" + " AND ".join(positives) + ")"
        if negatives:
            expr = f"({expr} NOT ({' OR '.join(negatives)}))"
        parts.append(expr)
    if not parts:
        raise SearchSyntaxError("The search has no words to look for.")
    return " OR ".join(parts)
