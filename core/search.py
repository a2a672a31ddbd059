"""Search the archive with the query language: the FTS5 index narrows, the matcher decides.

Candidates come newest first in pages that start small and double (most queries are answered by
their first few dozen candidates; one the matcher keeps rejecting reads larger pages, so pages stay
few). The matcher stops as soon as the page of results is full. A top-level `lang:` or numeric
`channel:` of the query also narrows the archive's query, so that posts it would reject are not read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from core.models import Post, PostFilter
from core.query import ast
from core.query.fts import fts_prefilter
from core.query.matcher import Document, Span, WordMatcher, compile_query, word_matchers
from core.query.text import query_stem_keys, script_of
from core.storage import Archive

FIRST_PAGE = 50
PAGE = 1600  # the largest page
MAX_SCANNED = 20_000  # a query the index cannot narrow (a bare regex) reads at most this many posts
MAX_FORMS = 1000  # index words looked at to replace one prefix by the forms the matcher accepts
_PREFIX_PIECE = re.compile(r'"([^"\s]+)"\*')
_ONE_TOKEN = re.compile(r"[^\W_]+")  # one token of the index's tokenizer
_INDEX_ALIKE = ("latin", "cyrillic", "arabic", "greek")  # scripts whose folded words the index keeps as is


@dataclass(frozen=True, slots=True)
class Hit:
    post: Post
    spans: tuple[Span, ...]


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[Hit]
    scanned: int
    exhaustive: bool  # False: the scan limit stopped a query the index could not narrow


def narrowed(tree: ast.Node, filters: PostFilter) -> PostFilter:
    """`filters` plus what a top-level `lang:` or numeric `channel:` of the query requires of every
    post it matches (the matcher checks them again; this only spares reading the others)."""
    items = tree.items if isinstance(tree, ast.And) else (tree,)
    for item in items:
        if isinstance(item, ast.LangFilter) and filters.lang is None:
            filters = replace(filters, lang=item.lang)
        elif isinstance(item, ast.ChannelFilter) and item.channel.isdigit() and filters.channel_id is None:
            filters = replace(filters, channel_id=int(item.channel))
    return filters


def _words(node: ast.Node) -> Iterator[WordMatcher]:
    """Every word the FTS prefilter is built from (words under NOT are not in it)."""
    match node:
        case ast.Term(word=word, exact=exact, prefix=prefix):
            yield from word_matchers(word, exact=exact, prefix=prefix)
        case ast.Phrase(words=words, exact=exact):
            for word in words:
                yield from word_matchers(word, exact=exact, prefix=False)
        case ast.And(items=items) | ast.Or(items=items):
            for item in items:
                yield from _words(item)


async def sharpened(archive: Archive, tree: ast.Node, fts: str) -> str:
    """The prefilter with each morphology prefix (`"mus"*`, shared by every stem of `mushrik`, and by
    `music` and `must`) replaced by the index's words that the matcher accepts for that query word:
    the same posts are found, minus most of those the matcher would read and reject.

    A prefix is kept when it is also a `word*` of the query, or when it stands for too many words.
    """
    accepted: dict[str, set[str]] = {}  # prefix piece → index words the matcher accepts for it
    terms: dict[str, list[str] | None] = {}
    absent: dict[str, str] = {}  # prefix piece → a query word's own form, a word the index lacks
    keep: set[str] = set()
    for word in _words(tree):
        piece = fts_prefilter(ast.Term(word.norm, exact=not word.stem_keys, prefix=word.prefix))
        if piece is None or not _PREFIX_PIECE.fullmatch(piece):
            continue
        if word.prefix or not word.stem_keys or script_of(word.norm) not in _INDEX_ALIKE:
            keep.add(piece)
            continue
        if piece not in terms:
            terms[piece] = await archive.index_terms(piece[1:-2], limit=MAX_FORMS)
        found = terms[piece]
        if found is None or not _ONE_TOKEN.fullmatch(word.norm):
            keep.add(piece)
            continue
        forms = accepted.setdefault(piece, set())
        forms.update(t for t in found if t == word.norm or query_stem_keys(t) & word.stem_keys)
        absent[piece] = word.norm
    for piece, forms in accepted.items():
        if piece not in keep:
            words = sorted(forms) or [absent[piece]]  # none: the word itself, which no post holds
            fts = fts.replace(piece, "(" + " OR ".join(f'"{t}"' for t in words) + ")")
    return fts


async def search(
    archive: Archive, text: str, *, limit: int = 20, filters: PostFilter | None = None
) -> SearchResult:
    """Newest posts first; raises QuerySyntaxError with a message for the user."""
    query = compile_query(text)
    fts = fts_prefilter(query.tree)
    if fts is not None:
        fts = await sharpened(archive, query.tree, fts)
    narrow = narrowed(query.tree, filters or PostFilter())
    hits: list[Hit] = []
    before: tuple[int, int, int] | None = None
    scanned = 0
    size = FIRST_PAGE
    while True:
        page = await archive.search_candidates(fts, filters=narrow, limit=size, before=before)
        for post in page:
            scanned += 1
            doc = Document.of(
                post.text, lang=post.lang, channel_id=post.channel_id, channel_username=post.channel_username
            )
            spans = query.match(doc)
            if spans is not None:
                hits.append(Hit(post, spans))
                if len(hits) >= limit:
                    return SearchResult(hits, scanned, True)
        if len(page) < size:
            return SearchResult(hits, scanned, True)
        if fts is None and scanned >= MAX_SCANNED:
            return SearchResult(hits, scanned, False)
        last = page[-1]
        before = (int(last.date.timestamp()), last.channel_id, last.message_id)
        size = min(size * 2, PAGE)
