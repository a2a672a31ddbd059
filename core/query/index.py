"""Match a post against every active query at a cost that does not grow with the number of queries.

Each query gets a *trigger*: a set of keys (exact words, stem keys, prefixes) of which any matching
post must contain at least one. A post looks its own keys up in three dictionaries, and only the
queries found there (plus the few that cannot be triggered, such as regex-only ones) are evaluated.
Adding and removing a query updates the dictionaries in place.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from core.query.matcher import (
    CAnd,
    Compiled,
    COr,
    CPhrase,
    CTerm,
    Document,
    Query,
    Span,
    WordMatcher,
)

# ("w", norm) exact word, ("s", "ru:протест") stem key, ("p", prefix) word prefix
TriggerKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class QueryMatch:
    query_id: Hashable
    query: Query
    spans: tuple[Span, ...]


def _word_keys(word: WordMatcher) -> frozenset[TriggerKey]:
    if word.prefix:
        return frozenset({("p", word.norm)})
    return frozenset({("w", word.norm)} | {("s", key) for key in word.stem_keys})


def _selectivity(keys: frozenset[TriggerKey]) -> tuple[int, int]:
    """Lower is rarer: long words are rarer than short ones, then fewer keys means fewer look-ups."""
    return (-min(len(value.split(":", 1)[-1]) for _, value in keys), len(keys))


def trigger(node: Compiled) -> frozenset[TriggerKey] | None:
    """Keys of which a matching post has at least one; None when no such set exists."""
    if isinstance(node, CTerm):
        return _word_keys(node.word)
    if isinstance(node, CPhrase):  # every word must be there: the most specific one is enough
        return min(
            (_word_keys(w) for w in node.words), key=lambda keys: (len(keys), -max(len(k[1]) for k in keys))
        )
    if isinstance(node, CAnd):
        options = [t for t in (trigger(item) for item in node.items) if t is not None]
        if not options:
            return None
        return min(options, key=_selectivity)
    if isinstance(node, COr):
        union: set[TriggerKey] = set()
        for item in node.items:
            keys = trigger(item)
            if keys is None:
                return None
            union |= keys
        return frozenset(union)
    return None  # regex, filters, NOT: cannot narrow the candidates


class QueryIndex:
    def __init__(self) -> None:
        self._queries: dict[Hashable, Query] = {}
        self._triggers: dict[Hashable, frozenset[TriggerKey]] = {}
        self._words: dict[str, set[Hashable]] = {}
        self._stems: dict[str, set[Hashable]] = {}
        self._prefixes: dict[str, set[Hashable]] = {}
        self._prefix_lengths: dict[int, int] = {}  # length → how many prefixes of that length
        self._always: set[Hashable] = set()

    def __len__(self) -> int:
        return len(self._queries)

    def _table(self, kind: str) -> dict[str, set[Hashable]]:
        return {"w": self._words, "s": self._stems, "p": self._prefixes}[kind]

    def add(self, query_id: Hashable, query: Query) -> None:
        """Add or replace a query."""
        if query_id in self._queries:
            self.remove(query_id)
        self._queries[query_id] = query
        keys = trigger(query.root)
        if keys is None:
            self._always.add(query_id)
            return
        self._triggers[query_id] = keys
        for kind, value in keys:
            self._table(kind).setdefault(value, set()).add(query_id)
            if kind == "p":
                self._prefix_lengths[len(value)] = self._prefix_lengths.get(len(value), 0) + 1

    def remove(self, query_id: Hashable) -> None:
        if self._queries.pop(query_id, None) is None:
            return
        self._always.discard(query_id)
        for kind, value in self._triggers.pop(query_id, frozenset()):
            table = self._table(kind)
            ids = table.get(value)
            if ids is not None:
                ids.discard(query_id)
                if not ids:
                    del table[value]
            if kind == "p":
                left = self._prefix_lengths[len(value)] - 1
                if left:
                    self._prefix_lengths[len(value)] = left
                else:
                    del self._prefix_lengths[len(value)]

    def candidates(self, doc: Document) -> set[Hashable]:
        found = set(self._always)
        words, stems, prefixes = self._words, self._stems, self._prefixes
        for word in doc.words:
            ids = words.get(word)
            if ids:
                found |= ids
        for key in doc.stems:
            ids = stems.get(key)
            if ids:
                found |= ids
        if prefixes:
            for word in doc.words:
                for length in self._prefix_lengths:
                    if length <= len(word):
                        ids = prefixes.get(word[:length])
                        if ids:
                            found |= ids
        return found

    def match(self, doc: Document) -> list[QueryMatch]:
        """Every query the post matches, with the spans to highlight."""
        result = []
        for query_id in self.candidates(doc):
            query = self._queries[query_id]
            spans = query.match(doc)
            if spans is not None:
                result.append(QueryMatch(query_id, query, spans))
        return result
