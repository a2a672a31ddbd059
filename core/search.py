"""Search the archive with the query language: the FTS5 index narrows, the matcher decides."""

from __future__ import annotations

from dataclasses import dataclass

from core.models import Post, PostFilter
from core.query.fts import fts_prefilter
from core.query.matcher import Document, Span, compile_query
from core.storage import Archive

PAGE = 200
MAX_SCANNED = 20_000  # a query the index cannot narrow (a bare regex) reads at most this many posts


@dataclass(frozen=True, slots=True)
class Hit:
    post: Post
    spans: tuple[Span, ...]


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[Hit]
    scanned: int
    exhaustive: bool  # False: the scan limit stopped a query the index could not narrow


async def search(
    archive: Archive, text: str, *, limit: int = 20, filters: PostFilter | None = None
) -> SearchResult:
    """Newest posts first; raises QuerySyntaxError with a message for the user."""
    query = compile_query(text)
    fts = fts_prefilter(query.tree)
    hits: list[Hit] = []
    before: tuple[int, int, int] | None = None
    scanned = 0
    while len(hits) < limit:
        page = await archive.search_candidates(fts, filters=filters, limit=PAGE, before=before)
        for post in page:
            doc = Document.of(
                post.text, lang=post.lang, channel_id=post.channel_id, channel_username=post.channel_username
            )
            spans = query.match(doc)
            if spans is not None:
                hits.append(Hit(post, spans))
        scanned += len(page)
        if len(page) < PAGE:
            return SearchResult(hits[:limit], scanned, True)
        if fts is None and scanned >= MAX_SCANNED:
            return SearchResult(hits[:limit], scanned, False)
        last = page[-1]
        before = (int(last.date.timestamp()), last.channel_id, last.message_id)
    return SearchResult(hits[:limit], scanned, True)
