"""Match a post against every active query at a cost that does not grow with the number of queries.

Each query gets a *trigger*: a few of its words, of which any matching post must contain at least one
(the word itself, one of its stem keys, or for a prefix a word starting with it). A post looks its own
words and stem keys up in three dictionaries, and only the queries found there (plus the few that
cannot be triggered, such as regex-only ones) are evaluated.
Adding and removing a query updates the dictionaries in place, and moves `revision` on: copies of the
index in other processes catch up from the journal of recent changes (`changes_since`).
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Hashable, Iterable, Iterator
from functools import partial
from itertools import islice
from typing import NamedTuple

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


class QueryMatch(NamedTuple):
    query_id: Hashable
    query: Query
    spans: tuple[Span, ...]


new_match = partial(tuple.__new__, QueryMatch)


def _key_count(word: WordMatcher) -> int:
    return 1 if word.prefix else 1 + len(word.stem_keys)


def _phrase_cost(word: WordMatcher) -> tuple[int, int]:
    """Fewer keys first, then the longest key."""
    return _key_count(word), -max((len(word.norm), *map(len, word.stem_keys)))


def _selectivity(words: tuple[WordMatcher, ...]) -> tuple[int, int]:
    """Lower is rarer: long words are rarer than short ones, then fewer keys means fewer look-ups."""
    shortest = min(min((len(w.norm), *(len(key) - key.index(":") - 1 for key in w.stem_keys))) for w in words)
    return -shortest, sum(map(_key_count, words))


def trigger(node: Compiled) -> tuple[WordMatcher, ...] | None:
    """Words of which a matching post has at least one (its form, stem keys, or prefix); None when no
    such set exists."""
    if isinstance(node, CTerm):
        return (node.word,)
    if isinstance(node, CPhrase):  # every word must be there: the most specific one is enough
        return (min(node.words, key=_phrase_cost),)
    if isinstance(node, CAnd):
        options = [t for t in map(trigger, node.items) if t is not None]
        if not options:
            return None
        return options[0] if len(options) == 1 else min(options, key=_selectivity)
    if isinstance(node, COr):
        union: list[WordMatcher] = []
        for item in node.items:
            words = trigger(item)
            if words is None:
                return None
            union += words
        return tuple(dict.fromkeys(union))
    return None  # regex, filters, NOT: cannot narrow the candidates


Ids = Hashable | set[Hashable]  # one query id, or several: a query id is never a set (unhashable)


def _post(table: dict[str, Ids], key: str, query_id: Hashable) -> None:
    ids = table.get(key, _MISSING)
    if ids is _MISSING:
        table[key] = query_id  # most keys belong to one query: no set for them
    elif isinstance(ids, set):
        ids.add(query_id)
    elif ids != query_id:
        table[key] = {ids, query_id}


def _unpost(table: dict[str, Ids], key: str, query_id: Hashable) -> None:
    ids = table.get(key, _MISSING)
    if isinstance(ids, set):
        ids.discard(query_id)
        if len(ids) == 1:
            table[key] = next(iter(ids))
    elif ids is not _MISSING and ids == query_id:
        del table[key]


_MISSING = object()
JOURNAL = 4096  # changes kept for copies of the index to catch up on (further back, they copy it whole)

Change = tuple[int, Hashable, str | None]  # (revision, query id, query text or None when removed)


class QueryIndex:
    def __init__(self) -> None:
        self._queries: dict[Hashable, Query] = {}
        self._words: dict[str, Ids] = {}
        self._stems: dict[str, Ids] = {}
        self._prefixes: dict[str, Ids] = {}
        self._prefix_lengths: dict[int, int] = {}  # length → how many prefixes of that length
        self._always: set[Hashable] = set()
        self.revision = 0  # moves on with every change
        self._journal: deque[Change] = deque(maxlen=JOURNAL)

    def __len__(self) -> int:
        return len(self._queries)

    def items(self) -> Iterator[tuple[Hashable, Query]]:
        """Every query with its id, in the order added."""
        return iter(self._queries.items())

    def get(self, query_id: Hashable) -> Query | None:
        return self._queries.get(query_id)

    def changes_since(self, revision: int) -> list[Change] | None:
        """The changes after `revision`, oldest first (a query's text is enough to compile it again);
        None when the journal no longer reaches back that far."""
        if revision == self.revision:
            return []
        journal = self._journal
        if not journal or journal[0][0] > revision + 1 or revision > self.revision:
            return None
        return list(islice(journal, revision + 1 - journal[0][0], None))

    def _changed(self, query_id: Hashable, text: str | None) -> None:
        self.revision += 1
        self._journal.append((self.revision, query_id, text))

    def add(self, query_id: Hashable, query: Query) -> None:
        """Add or replace a query."""
        if query_id in self._queries:
            self.remove(query_id)
        self._queries[query_id] = query
        self._changed(query_id, query.text)
        words = trigger(query.root)
        if words is None:
            self._always.add(query_id)
            return
        for word in words:
            if word.prefix:
                _post(self._prefixes, word.norm, query_id)
                self._prefix_lengths[len(word.norm)] = self._prefix_lengths.get(len(word.norm), 0) + 1
                continue
            _post(self._words, word.norm, query_id)
            for key in word.stem_keys:
                _post(self._stems, key, query_id)

    def add_many(self, queries: Iterable[tuple[Hashable, Query]]) -> None:
        """`add` each (id, query), with the cyclic garbage collector paused meanwhile (also while the
        iterable compiles them): it would walk the growing index over and over, more than doubling the
        time a million-term build takes."""
        paused = gc.isenabled()
        gc.disable()
        try:
            for query_id, query in queries:
                self.add(query_id, query)
        finally:
            if paused:
                gc.enable()

    def remove(self, query_id: Hashable) -> None:
        query = self._queries.pop(query_id, None)
        if query is None:
            return
        self._changed(query_id, None)
        self._always.discard(query_id)
        for word in trigger(query.root) or ():  # the words `add` posted: trigger is a function
            if word.prefix:
                _unpost(self._prefixes, word.norm, query_id)
                left = self._prefix_lengths[len(word.norm)] - 1
                if left:
                    self._prefix_lengths[len(word.norm)] = left
                else:
                    del self._prefix_lengths[len(word.norm)]
                continue
            _unpost(self._words, word.norm, query_id)
            for key in word.stem_keys:
                _unpost(self._stems, key, query_id)

    def candidates(self, doc: Document) -> set[Hashable]:
        found = set(self._always)
        hits = [ids for ids in map(self._words.get, doc.word_set) if ids is not None]
        hits += [ids for ids in map(self._stems.get, doc.stem_set) if ids is not None]
        prefixes = self._prefixes
        if prefixes:
            lengths = self._prefix_lengths
            for word in doc.word_set:
                for length in lengths:
                    if length <= len(word):
                        ids = prefixes.get(word[:length])
                        if ids is not None:
                            hits.append(ids)
        for ids in hits:
            if isinstance(ids, set):
                found |= ids
            else:
                found.add(ids)
        return found

    def match(self, doc: Document) -> list[QueryMatch]:
        """Every query the post matches, with the spans to highlight."""
        result = []
        queries = self._queries
        for query_id in self.candidates(doc):
            query = queries[query_id]
            spans = query.match(doc)
            if spans is not None:
                result.append(new_match((query_id, query, spans)))
        return result
