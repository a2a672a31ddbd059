"""From a parsed query to an FTS5 prefilter: a superset of the posts the matcher will accept.

The full-text index holds each post's words as `core.query.text.tokenize` folds them, so the index
and the matcher see the same forms. Morphology is approximated by a prefix shared by the word and its
stems; exclusions, regexes and filters are left to the matcher, which has the last word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.query import ast
from core.query.text import Token, query_stem_keys, token_norms, tokenize

_PIECE = re.compile(r"[^\W_]+")  # what FTS5's unicode61 tokenizer keeps as one token
MIN_PREFIX = 2
# What the Arabic stemmer strips from the front of a word (the article, conjunctions, prepositions):
# المسجد and بالمسجد stem to مسجد, which is no prefix of them, so the prefilter tries each in front.
HAMZA_SEATS = "ءأإئؤا"  # a hamza alone, on alif, on ya, on waw; or written as a bare alif
AR_PROCLITICS = ("", "ال", "بال", "كال", "لل", "و", "ف", "ب", "ك", "ل", "وال", "فال", "وب", "فب", "ول", "فل")


def fts_body(text: str, tokens: Sequence[Token] | None = None) -> str:
    """What the index stores for a post; `tokens`: `tokenize(text)` when the caller has it already."""
    return " ".join(token_norms(text) if tokens is None else [token.norm for token in tokens])


def _phrase(norm: str, prefix: bool = False) -> str | None:
    pieces = _PIECE.findall(norm)
    if not pieces:
        return None
    return '"' + " ".join(pieces) + '"' + ("*" if prefix else "")


def _morph_prefix(norm: str) -> str | None:
    """A prefix every inflected form found by stemming is expected to share with `norm`."""
    stems = [key.split(":", 1)[1] for key in query_stem_keys(norm) if not key.startswith("sr:")]
    common = norm
    for stem in stems:
        n = 0
        while n < min(len(common), len(stem)) and common[n] == stem[n]:
            n += 1
        common = common[:n]
    if len(common) < len(norm):
        common = common[:-1]  # stemmers may rewrite the last kept letter (happy → happi)
    if len(common) < MIN_PREFIX or not _PIECE.fullmatch(common):
        return None
    return f'"{common}"*'


def _arabic_heads(stem: str) -> set[str]:
    """What an accepted post word has right after its proclitic: the stem itself, except that the stemmer
    writes a final hamza as ء whatever its seat (خائن → خاء, شيئا → شيء), so that letter may be any seat.
    (Cutting the stem's last letter instead left two-letter prefixes, خا*, that let in tens of thousands
    of posts for the matcher to reject: 180 ms for one search.)"""
    if stem.endswith("ء") and len(stem) > MIN_PREFIX:
        return {stem[:-1] + seat for seat in HAMZA_SEATS}
    return {stem}


def _arabic_forms(norm: str) -> str | None:
    """For an Arabic word: its stems behind each proclitic, or the word itself; None for words of other
    scripts."""
    stems = [key[3:] for key in query_stem_keys(norm) if key.startswith("ar:")]
    heads = {head for stem in stems for head in _arabic_heads(stem)}
    heads = {head for head in heads if len(head) >= MIN_PREFIX and _PIECE.fullmatch(head)}
    if not heads:
        return None
    forms = {f'"{clitic}{head}"*' for clitic in AR_PROCLITICS for head in heads}
    return "(" + " OR ".join(sorted(forms | {f'"{norm}"'})) + ")"


def _word(text: str, *, exact: bool, prefix: bool) -> str | None:
    tokens = tokenize(text)
    if not tokens:
        return None
    parts = []
    for n, token in enumerate(tokens):
        last = n == len(tokens) - 1
        if prefix and last:
            part = _phrase(token.norm, prefix=True)
        elif exact:
            part = _phrase(token.norm)
        else:
            part = _arabic_forms(token.norm) or _morph_prefix(token.norm) or _phrase(token.norm)
        if part is None:
            return None
        parts.append(part)
    return " AND ".join(parts) if len(parts) > 1 else parts[0]


def fts_prefilter(node: ast.Node) -> str | None:
    """An FTS5 expression, or None when the index cannot narrow the search."""
    match node:
        case ast.Term(word=word, exact=exact, prefix=prefix):
            return _word(word, exact=exact, prefix=prefix)
        case ast.Phrase(words=words, exact=exact):
            parts = [p for p in (_word(w, exact=exact, prefix=False) for w in words) if p]
            return "(" + " AND ".join(parts) + ")" if parts else None
        case ast.And(items=items):
            parts = [p for p in (fts_prefilter(i) for i in items) if p]
            return "(" + " AND ".join(parts) + ")" if parts else None
        case ast.Or(items=items):
            alternatives = [fts_prefilter(i) for i in items]
            if any(a is None for a in alternatives):
                return None
            return "(" + " OR ".join(a for a in alternatives if a) + ")"
    return None  # NOT, regex, lang:, channel: are the matcher's
