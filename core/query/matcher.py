"""Compile a parsed query and match it against a post: whole words, morphology, phrases, spans.

A post becomes a `Document` once (tokens, folded words, stem keys); every query compiled here is then
evaluated against it. `core.query.index` decides which queries are worth evaluating.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import chain, compress, islice
from operator import add
from typing import NamedTuple

import regex

from core.query import ast
from core.query.parser import parse
from core.query.text import (
    NO_KEYS,
    Token,
    doc_stem_keys_cache,
    fold_words,
    locate,
    query_stem_keys,
    scan,
)

log = logging.getLogger("tgmon.query")

REGEX_TIMEOUT = 0.05  # seconds per regex per post: a pathological pattern cannot stall the pipeline


class Span(NamedTuple):
    """Matched text as str offsets into the post's text."""

    start: int
    end: int


new_span = partial(tuple.__new__, Span)
_new_token = partial(tuple.__new__, Token)


def window(length: int, spans: Sequence[Span], width: int) -> tuple[int, int]:
    """`width` characters of a text around its first match (a quarter of them before it)."""
    first = spans[0].start if spans else 0
    start = max(0, min(first - width // 4, length - width))
    return start, min(length, start + width)


def spans_within(spans: Sequence[Span], start: int, end: int) -> list[tuple[int, int]]:
    """The spans that lie inside [start, end), as offsets from `start`."""
    return [(s.start - start, s.end - start) for s in spans if s.start >= start and s.end <= end]


class _Keyed(NamedTuple):
    distinct: list[str]
    keys: list[tuple[str, ...]]


def _keyed(word_set: set[str], lang: str | None) -> _Keyed:
    """The distinct words with their stem keys for a post in `lang`."""
    cache = doc_stem_keys_cache(lang)
    distinct = list(word_set)
    keys = list(map(cache.get, distinct))
    if None in keys:
        keys = [cache.add(w) if k is None else k for w, k in zip(distinct, keys, strict=True)]
    return _Keyed(distinct, keys)  # type: ignore[arg-type]


class Document:
    """A post as the matcher sees it: its folded words and their stem keys, built once per post.

    `words`/`stems` (word or stem key → token indexes) and `tokens` (with offsets) are built on first
    use: most posts match no query and need neither. `tokens` may be given when already computed.
    """

    __slots__ = (
        "_ends",
        "_scanned",
        "_starts",
        "_stems",
        "_tokens",
        "_word_keys",
        "_words",
        "channel_id",
        "channel_username",
        "lang",
        "norms",
        "stem_set",
        "text",
        "word_set",
    )

    def __init__(
        self,
        text: str,
        tokens: list[Token] | None = None,
        lang: str | None = None,
        channel_id: int | None = None,
        channel_username: str | None = None,
    ) -> None:
        self.text = text
        self.lang = lang
        self.channel_id = channel_id
        self.channel_username = channel_username
        self._tokens = tokens
        self._starts: list[int] | None = None
        self._ends: list[int] | None = None
        self._words: dict[str, list[int]] | None = None
        self._stems: dict[str, list[int]] | None = None
        self._scanned: tuple[list[str], list[str]] | None = None
        if tokens is None:
            self._scanned = scan(text)
            norms = self._scanned[1]
            self.norms: list[str] = norms if all(norms) else [n for n in norms if n]
        else:
            self.norms = [t.norm for t in tokens]
        self.word_set: set[str] = set(self.norms)  # the distinct folded words
        distinct, keys = _keyed(self.word_set, lang)
        self._word_keys = (distinct, keys)
        self.stem_set: set[str] = set(chain.from_iterable(keys))

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
        """`tokens`, when given, must be `tokenize(text)`."""
        return cls(text, tokens, lang, channel_id, (channel_username or "").lower() or None)

    @property
    def tokens(self) -> list[Token]:
        if self._tokens is None:
            starts, ends = self.offsets()
            self._tokens = list(map(_new_token, zip(self.norms, starts, ends, strict=True)))
        return self._tokens

    def offsets(self) -> tuple[list[int], list[int]]:
        """Start and end offsets of every token, as two lists."""
        if self._starts is None or self._ends is None:
            if self._scanned is None:
                tokens = self.tokens
                self._starts, self._ends = [t.start for t in tokens], [t.end for t in tokens]
            else:
                words, norms = self._scanned
                starts = locate(self.text, words)
                ends = list(map(add, starts, map(len, words)))
                if not all(norms):  # words that fold to nothing are no tokens
                    starts, ends = list(compress(starts, norms)), list(compress(ends, norms))
                self._starts, self._ends = starts, ends
        return self._starts, self._ends

    @property
    def words(self) -> dict[str, list[int]]:
        """Folded word → its token indexes."""
        if self._words is None:
            words: dict[str, list[int]] = {}
            get = words.get
            for i, norm in enumerate(self.norms):
                found = get(norm)
                if found is None:
                    words[norm] = [i]
                else:
                    found.append(i)
            self._words = words
        return self._words

    @property
    def stems(self) -> dict[str, list[int]]:
        """Stem key ("ru:протест") → token indexes."""
        if self._stems is None:
            stems: dict[str, list[int]] = {}
            words = self.words
            for norm, keys in zip(*self._word_keys, strict=True):
                for key in keys:
                    found = stems.get(key)
                    stems[key] = words[norm] if found is None else found + words[norm]  # never mutated
            self._stems = stems
        return self._stems


# compiled nodes: each returns the matching token indexes / spans, or None when it does not match


@dataclass(frozen=True, slots=True)
class WordMatcher:
    norm: str
    stem_keys: frozenset[str]
    prefix: bool

    def present(self, doc: Document) -> bool:
        """Whether `positions(doc)` is not empty, without computing it."""
        if self.prefix:
            norm = self.norm
            return any(word.startswith(norm) for word in doc.word_set)
        return self.norm in doc.word_set or not self.stem_keys.isdisjoint(doc.stem_set)

    def positions(self, doc: Document) -> list[int]:
        """The indexes of the tokens this word matches, ascending."""
        if self.prefix:
            norm = self.norm
            return sorted({i for word, idx in doc.words.items() if word.startswith(norm) for i in idx})
        own = doc.words.get(self.norm)
        if not self.stem_keys:
            return own or []
        stems = doc.stems
        found = [stems[key] for key in self.stem_keys.intersection(doc.stem_set)]
        if own is not None:
            found.append(own)
        if not found:
            return []
        if found.count(found[0]) == len(found):  # the common case: one word, its own stems
            return found[0]
        return sorted(set(chain.from_iterable(found)))


def word_matchers(text: str, *, exact: bool, prefix: bool) -> tuple[WordMatcher, ...]:
    """A query word as post words: `Алма-Ата` or `don't` are several, like in posts; `*` marks the last."""
    return _word_matchers(text, exact, prefix)


@lru_cache(maxsize=1 << 14)  # one matcher object per common word among the live queries
def _word_matchers(text: str, exact: bool, prefix: bool) -> tuple[WordMatcher, ...]:
    norms = fold_words(text)
    if len(norms) > 1 and "_" in text:  # #free_press / @some_name: one word in posts too
        tagged = fold_words("#" + text)
        norms = tagged if len(tagged) == 1 else norms
    found = []
    for n, norm in enumerate(norms):
        is_prefix = prefix and n == len(norms) - 1
        keys = NO_KEYS if exact or is_prefix else query_stem_keys(norm)
        found.append(WordMatcher(norm, keys, is_prefix))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class CTerm:
    word: WordMatcher

    def test(self, doc: Document) -> bool:
        return self.word.present(doc)

    def spans(self, doc: Document) -> list[Span] | None:
        if not self.word.present(doc):
            return None
        starts, ends = doc.offsets()
        return [new_span((starts[i], ends[i])) for i in self.word.positions(doc)]


@dataclass(frozen=True, slots=True)
class CPhrase:
    words: tuple[WordMatcher, ...]

    def test(self, doc: Document) -> bool:
        return self.spans(doc) is not None

    def spans(self, doc: Document) -> list[Span] | None:
        for word in self.words:
            if not word.present(doc):
                return None
        first, *rest = [w.positions(doc) for w in self.words]
        hits = [set(idx) for idx in rest]
        n = len(self.words)
        starts, ends = doc.offsets()
        found = [
            Span(starts[i], ends[i + n - 1]) for i in first if all(i + k in hits[k - 1] for k in range(1, n))
        ]
        return found or None


@dataclass(frozen=True, slots=True)
class CRegex:
    pattern: regex.Pattern[str]

    def test(self, doc: Document) -> bool:
        return self.spans(doc) is not None

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

    def test(self, doc: Document) -> bool:
        return doc.lang == self.lang

    def spans(self, doc: Document) -> list[Span] | None:
        return [] if doc.lang == self.lang else None


@dataclass(frozen=True, slots=True)
class CChannel:
    channel: str

    def test(self, doc: Document) -> bool:
        return self.spans(doc) is not None

    def spans(self, doc: Document) -> list[Span] | None:
        if self.channel.isdigit():
            return [] if doc.channel_id == int(self.channel) else None
        return [] if doc.channel_username == self.channel else None


@dataclass(frozen=True, slots=True)
class CAnd:
    items: tuple[Compiled, ...]

    def test(self, doc: Document) -> bool:
        for item in self.items:  # noqa: SIM110 - a loop is faster than all() over a generator
            if not item.test(doc):
                return False
        return True

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

    def test(self, doc: Document) -> bool:
        for item in self.items:  # noqa: SIM110 - a loop is faster than any() over a generator
            if item.test(doc):
                return True
        return False

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

    def test(self, doc: Document) -> bool:
        return not self.item.test(doc)

    def spans(self, doc: Document) -> list[Span] | None:
        return None if self.item.spans(doc) is not None else []


@dataclass(frozen=True, slots=True)
class CNever:
    """A term that folds to nothing (only punctuation): matches no post."""

    def test(self, doc: Document) -> bool:
        return False

    def spans(self, doc: Document) -> list[Span] | None:
        return None


Compiled = CTerm | CPhrase | CRegex | CLang | CChannel | CAnd | COr | CNot | CNever


def compile_node(node: ast.Node) -> Compiled:
    # isinstance in the order of how common each node is: an index compiles queries by the million
    if isinstance(node, ast.Term):
        return _compile_term(node.word, node.exact, node.prefix)
    if isinstance(node, ast.And):
        return CAnd(tuple(map(compile_node, node.items)))
    if isinstance(node, ast.Phrase):
        return _compile_phrase(node.words, node.exact)
    if isinstance(node, ast.Not):
        return CNot(compile_node(node.item))
    if isinstance(node, ast.Or):
        return COr(tuple(map(compile_node, node.items)))
    if isinstance(node, ast.Regex):
        flags = regex.UNICODE | regex.V0 | (regex.IGNORECASE if node.ignore_case else 0)
        return CRegex(regex.compile(node.pattern, flags))
    if isinstance(node, ast.LangFilter):
        return CLang(node.lang)
    if isinstance(node, ast.ChannelFilter):
        return CChannel(node.channel)
    raise TypeError(f"unknown query node {node!r}")


def _compile_term(word: str, exact: bool, prefix: bool) -> Compiled:
    parts = _word_matchers(word, exact, prefix)
    if len(parts) == 1:
        return CTerm(parts[0])
    return CPhrase(parts) if parts else CNever()


def _compile_phrase(words: tuple[str, ...], exact: bool) -> Compiled:
    parts = tuple(m for w in words for m in _word_matchers(w, exact, False))
    return CPhrase(parts) if parts else CNever()


def _has_regex(node: Compiled) -> bool:
    if isinstance(node, CRegex):
        return True
    if isinstance(node, CAnd | COr):
        return any(_has_regex(item) for item in node.items)
    return isinstance(node, CNot) and _has_regex(node.item)


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    """The spans sorted, overlapping or touching ones merged."""
    ordered = sorted(spans)
    if len(ordered) < 2:
        return tuple(ordered)
    merged = [ordered[0]]
    for span in islice(ordered, 1, None):
        last = merged[-1]
        if span.start <= last.end:
            if span.end > last.end:
                merged[-1] = Span(last.start, span.end)
        else:
            merged.append(span)
    return tuple(merged)


class Query:
    """A compiled query: `match(doc)` gives the highlighted spans, or None.

    `tree` is parsed again from `text` on first use when not given: an index holds many queries and
    the tree would double their memory. Queries with the same text are equal.
    """

    __slots__ = ("_quick", "_tree", "root", "text")

    def __init__(self, text: str, tree: ast.Node | None, root: Compiled) -> None:
        self.text = text
        self.root = root
        self._tree = tree
        # `test` first, then spans only when it holds: worth it unless the root's own spans fail as
        # fast, or a regex would run twice
        self._quick = not isinstance(root, CTerm | CPhrase) and not _has_regex(root)

    @property
    def tree(self) -> ast.Node:
        if self._tree is None:
            self._tree = parse(self.text)
        return self._tree

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Query) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Query({self.text!r})"

    def match(self, doc: Document) -> tuple[Span, ...] | None:
        if self._quick and not self.root.test(doc):
            return None
        spans = self.root.spans(doc)
        return None if spans is None else merge_spans(spans)


def compile_query(text: str) -> Query:
    """Parse and compile; raises ast.QuerySyntaxError with a message for the user."""
    return Query(text, None, compile_node(parse(text)))


def matches(query: str, text: str, *, lang: str | None = None) -> tuple[Span, ...] | None:
    """One query against one text: for tests and the CLI; the pipeline uses QueryIndex."""
    return compile_query(query).match(Document.of(text, lang=lang))
