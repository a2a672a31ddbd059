"""Compile a parsed query and match it against a post: whole words, morphology, phrases, spans.

A post becomes a `Document` once (tokens, folded words, stem keys); every query compiled here is then
evaluated against it. `core.query.index` decides which queries are worth evaluating.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import regex

from core.query import ast
from core.query.parser import parse
from core.query.text import Token, doc_stem_keys, query_stem_keys, tokenize

log = logging.getLogger("tgmon.query")

REGEX_TIMEOUT = 0.05  # seconds per regex per post: a pathological pattern cannot stall the pipeline


@dataclass(frozen=True, slots=True)
class Span:
    """Matched text as str offsets into the post's text."""

    start: int
    end: int


def window(length: int, spans: Sequence[Span], width: int) -> tuple[int, int]:
    """`width` characters of a text around its first match (a quarter of them before it)."""
    first = spans[0].start if spans else 0
    start = max(0, min(first - width // 4, length - width))
    return start, min(length, start + width)


def spans_within(spans: Sequence[Span], start: int, end: int) -> list[tuple[int, int]]:
    """The spans that lie inside [start, end), as offsets from `start`."""
    return [(s.start - start, s.end - start) for s in spans if s.start >= start and s.end <= end]


@dataclass(slots=True)
class Document:
    text: str
    tokens: list[Token]
    lang: str | None = None
    channel_id: int | None = None
    channel_username: str | None = None
    words: dict[str, list[int]] = field(default_factory=dict)  # folded word → token indexes
    stems: dict[str, list[int]] = field(default_factory=dict)  # "ru:протест" → token indexes

    @classmethod
    def of(
        cls,
        text: str,
        *,
        lang: str | None = None,
        channel_id: int | None = None,
        channel_username: str | None = None,
        tokens: list[Token] | None = None,
    ) -> Document:
        """`tokens`: `tokenize(text)` when the caller has it already (the pipeline shares it)."""
        words = tokenize(text) if tokens is None else tokens
        doc = cls(text, words, lang, channel_id, (channel_username or "").lower() or None)
        for i, token in enumerate(doc.tokens):
            doc.words.setdefault(token.norm, []).append(i)
            for key in doc_stem_keys(token.norm, lang):
                doc.stems.setdefault(key, []).append(i)
        return doc


# compiled nodes: each returns the matching token indexes / spans, or None when it does not match


@dataclass(frozen=True, slots=True)
class WordMatcher:
    norm: str
    stem_keys: frozenset[str]
    prefix: bool

    def positions(self, doc: Document) -> set[int]:
        if self.prefix:
            return {i for word, idx in doc.words.items() if word.startswith(self.norm) for i in idx}
        found = set(doc.words.get(self.norm, ()))
        for key in self.stem_keys:
            found.update(doc.stems.get(key, ()))
        return found


def word_matchers(text: str, *, exact: bool, prefix: bool) -> tuple[WordMatcher, ...]:
    """A query word as post words: `Алма-Ата` or `don't` are several, like in posts; `*` marks the last."""
    tokens = tokenize(text)
    if len(tokens) > 1 and "_" in text:  # #free_press / @some_name: one word in posts too
        tagged = tokenize("#" + text)
        tokens = tagged if len(tagged) == 1 else tokens
    found = []
    for n, token in enumerate(tokens):
        is_prefix = prefix and n == len(tokens) - 1
        keys = frozenset() if exact or is_prefix else query_stem_keys(token.norm)
        found.append(WordMatcher(token.norm, keys, is_prefix))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class CTerm:
    word: WordMatcher

    def spans(self, doc: Document) -> list[Span] | None:
        found = self.word.positions(doc)
        if not found:
            return None
        return [Span(doc.tokens[i].start, doc.tokens[i].end) for i in sorted(found)]


@dataclass(frozen=True, slots=True)
class CPhrase:
    words: tuple[WordMatcher, ...]

    def spans(self, doc: Document) -> list[Span] | None:
        hits = [w.positions(doc) for w in self.words]
        if not all(hits):
            return None
        n = len(self.words)
        found = [
            Span(doc.tokens[i].start, doc.tokens[i + n - 1].end)
            for i in sorted(hits[0])
            if all(i + k in hits[k] for k in range(1, n))
        ]
        return found or None


@dataclass(frozen=True, slots=True)
class CRegex:
    pattern: regex.Pattern[str]

    def spans(self, doc: Document) -> list[Span] | None:
        try:
            found = [
                Span(*m.span())
                for m in self.pattern.finditer(doc.text, timeout=REGEX_TIMEOUT)
                if m.end() > m.start()
            ]
        except TimeoutError:
            log.warning("regex_timeout pattern=%r chars=%s", self.pattern.pattern, len(doc.text))
            return None
        return found or None


@dataclass(frozen=True, slots=True)
class CLang:
    lang: str

    def spans(self, doc: Document) -> list[Span] | None:
        return [] if doc.lang == self.lang else None


@dataclass(frozen=True, slots=True)
class CChannel:
    channel: str

    def spans(self, doc: Document) -> list[Span] | None:
        if self.channel.isdigit():
            return [] if doc.channel_id == int(self.channel) else None
        return [] if doc.channel_username == self.channel else None


@dataclass(frozen=True, slots=True)
class CAnd:
    items: tuple[Compiled, ...]

    def spans(self, doc: Document) -> list[Span] | None:
        found: list[Span] = []
        for item in self.items:
            spans = item.spans(doc)
            if spans is None:
                return None
            found.extend(spans)
        return found


@dataclass(frozen=True, slots=True)
class COr:
    items: tuple[Compiled, ...]

    def spans(self, doc: Document) -> list[Span] | None:
        found: list[Span] | None = None
        for item in self.items:
            spans = item.spans(doc)
            if spans is not None:
                found = (found or []) + spans
        return found


@dataclass(frozen=True, slots=True)
class CNot:
    item: Compiled

    def spans(self, doc: Document) -> list[Span] | None:
        return None if self.item.spans(doc) is not None else []


@dataclass(frozen=True, slots=True)
class CNever:
    """A term that folds to nothing (only punctuation): matches no post."""

    def spans(self, doc: Document) -> list[Span] | None:
        return None


Compiled = CTerm | CPhrase | CRegex | CLang | CChannel | CAnd | COr | CNot | CNever


def compile_node(node: ast.Node) -> Compiled:
    match node:
        case ast.Term(word=word, exact=exact, prefix=prefix):
            parts = word_matchers(word, exact=exact, prefix=prefix)
            if len(parts) == 1:
                return CTerm(parts[0])
            return CPhrase(parts) if parts else CNever()
        case ast.Phrase(words=words, exact=exact):
            parts = tuple(m for w in words for m in word_matchers(w, exact=exact, prefix=False))
            return CPhrase(parts) if parts else CNever()
        case ast.Regex(pattern=pattern, ignore_case=ignore_case):
            flags = regex.UNICODE | regex.V0 | (regex.IGNORECASE if ignore_case else 0)
            return CRegex(regex.compile(pattern, flags))
        case ast.LangFilter(lang=lang):
            return CLang(lang)
        case ast.ChannelFilter(channel=channel):
            return CChannel(channel)
        case ast.And(items=items):
            return CAnd(tuple(compile_node(i) for i in items))
        case ast.Or(items=items):
            return COr(tuple(compile_node(i) for i in items))
        case ast.Not(item=item):
            return CNot(compile_node(item))
    raise TypeError(f"unknown query node {node!r}")


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if merged and span.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = Span(last.start, max(last.end, span.end))
        else:
            merged.append(span)
    return tuple(merged)


@dataclass(frozen=True, slots=True)
class Query:
    """A compiled query: `match(doc)` gives the highlighted spans, or None."""

    text: str
    tree: ast.Node
    root: Compiled

    def match(self, doc: Document) -> tuple[Span, ...] | None:
        spans = self.root.spans(doc)
        return None if spans is None else merge_spans(spans)


def compile_query(text: str) -> Query:
    """Parse and compile; raises ast.QuerySyntaxError with a message for the user."""
    tree = parse(text)
    return Query(text, tree, compile_node(tree))


def matches(query: str, text: str, *, lang: str | None = None) -> tuple[Span, ...] | None:
    """One query against one text: for tests and the CLI; the pipeline uses QueryIndex."""
    return compile_query(query).match(Document.of(text, lang=lang))
