"""The one row source of every export format: posts, filtered by a query, enriched in batches.

Posts come from the archive in batches of `BATCH`; for each batch two queries at most add what the
post row does not hold: the texts of the subscribers' queries the posts matched, and the edit history
of the posts that have more than one version. Memory stays flat: one batch is held at a time.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.models import Post, PostFilter
from core.query.matcher import Document, Query
from core.storage import rows
from core.storage.sqlite import SqliteArchive, _filter_sql

BATCH = 1000  # posts enriched together: two IN (...) lookups per batch, not two queries per post
_CHUNK = 500  # ids per IN (...) list, well under SQLite's variable limit

PostKey = tuple[int, int]  # (channel_id, message_id)


@dataclass(frozen=True, slots=True)
class EditVersion:
    """One stored version of a post's text: 1 is the first text the archive saw."""

    version: int
    text: str
    edit_date: datetime | None  # Telegram's edit time of this version (None: never edited then)
    recorded_at: datetime  # when tgmon stored this version


@dataclass(frozen=True, slots=True)
class ExportRow:
    post: Post
    matched_queries: tuple[str, ...] = ()  # texts of the queries it matched, in order of query creation
    edit_history: tuple[EditVersion, ...] = ()  # every version, oldest first, when the post has several


def _by_channel(keys: Sequence[PostKey]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for channel_id, message_id in keys:
        grouped.setdefault(channel_id, []).append(message_id)
    return grouped


async def _per_chunk(archive: SqliteArchive, sql: str, keys: Sequence[PostKey]) -> list[Any]:
    """Run `sql` (with `{marks}` for the id list) for each channel's ids, in chunks; rows concatenated."""
    found: list[Any] = []
    for channel_id, message_ids in _by_channel(keys).items():
        for start in range(0, len(message_ids), _CHUNK):
            chunk = message_ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found += await archive._all(sql.format(marks=marks), (channel_id, *chunk))
    return found


async def has_matches(archive: SqliteArchive) -> bool:
    """Whether any post ever matched a query: when none did, the per-batch lookup is skipped."""
    found = await archive._all("SELECT EXISTS (SELECT 1 FROM post_matches)")
    return bool(found[0][0])


async def matched_queries(archive: SqliteArchive, keys: Sequence[PostKey]) -> dict[PostKey, tuple[str, ...]]:
    """Texts of the queries each post matched (paused and deleted queries included: the match happened).

    Two subscribers with the same query text give it once.
    """
    found = await _per_chunk(
        archive,
        "SELECT p.channel_id, p.message_id, q.text FROM posts p "
        "JOIN post_matches m ON m.post_id = p.id JOIN queries q ON q.id = m.query_id "
        "WHERE p.channel_id = ? AND p.message_id IN ({marks}) ORDER BY p.message_id, q.id",
        keys,
    )
    texts: dict[PostKey, dict[str, None]] = {}
    for channel_id, message_id, text in found:
        texts.setdefault((channel_id, message_id), {})[text] = None
    return {key: tuple(found_texts) for key, found_texts in texts.items()}


async def edit_histories(
    archive: SqliteArchive, keys: Sequence[PostKey]
) -> dict[PostKey, tuple[EditVersion, ...]]:
    """Every stored version of each post's text, oldest first."""
    found = await _per_chunk(
        archive,
        "SELECT p.channel_id, p.message_id, v.version, v.text, v.edit_date, v.recorded_at FROM posts p "
        "JOIN post_versions v ON v.post_id = p.id "
        "WHERE p.channel_id = ? AND p.message_id IN ({marks}) ORDER BY p.message_id, v.version",
        keys,
    )
    history: dict[PostKey, list[EditVersion]] = {}
    for channel_id, message_id, version, text, edit_date, recorded_at in found:
        recorded = rows.dt(recorded_at) or datetime.fromtimestamp(0, UTC)
        history.setdefault((channel_id, message_id), []).append(
            EditVersion(version, text, rows.dt(edit_date), recorded)
        )
    return {key: tuple(versions) for key, versions in history.items()}


def matches(query: Query, post: Post) -> bool:
    doc = Document.of(
        post.text, lang=post.lang, channel_id=post.channel_id, channel_username=post.channel_username
    )
    return query.match(doc) is not None


class RowSource:
    """Turns batches of posts into batches of `ExportRow`s: query filter first, then enrichment."""

    def __init__(self, archive: SqliteArchive, query: Query | None = None) -> None:
        self.archive = archive
        self.query = query
        self._with_matches: bool | None = None

    async def enrich(self, posts: Sequence[Post]) -> list[ExportRow]:
        if self.query is not None:
            query = self.query
            posts = [post for post in posts if matches(query, post)]
        if not posts:
            return []
        if self._with_matches is None:
            self._with_matches = await has_matches(self.archive)
        keys = [(post.channel_id, post.message_id) for post in posts]
        queries = await matched_queries(self.archive, keys) if self._with_matches else {}
        edited = [(post.channel_id, post.message_id) for post in posts if post.versions > 1]
        history = await edit_histories(self.archive, edited) if edited else {}
        return [
            ExportRow(post, queries.get(key, ()), history.get(key, ()))
            for key, post in zip(keys, posts, strict=True)
        ]

    async def batches(
        self, posts: AsyncGenerator[list[Post], None], on_read: Callable[[int], None] | None = None
    ) -> AsyncGenerator[list[ExportRow], None]:
        """Enriched rows, one batch per batch of posts read; `on_read` counts posts read (kept or not)."""
        async with aclosing(posts) as stream:  # an export stopped early closes the archive's cursor now
            async for batch in stream:
                if on_read is not None:
                    on_read(len(batch))
                found = await self.enrich(batch)
                if found:
                    yield found


async def batched(posts: AsyncGenerator[Post, None], size: int = BATCH) -> AsyncGenerator[list[Post], None]:
    """`archive.iter_posts(...)` in lists of `size` posts."""
    batch: list[Post] = []
    async with aclosing(posts) as stream:
        async for post in stream:
            batch.append(post)
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


async def count_posts(archive: SqliteArchive, filters: PostFilter) -> int:
    """How many posts the filters select (before a query filter): the progress bar's total."""
    where, params = _filter_sql(filters)
    found = await archive._all(f"SELECT COUNT(*) FROM posts p WHERE 1 = 1 {where}", params)
    return int(found[0][0])


async def channel_counts(archive: SqliteArchive, filters: PostFilter) -> list[tuple[int, int]]:
    """(channel id, posts the filters select) of every channel with any, by channel id."""
    where, params = _filter_sql(filters)
    found = await archive._all(
        f"SELECT p.channel_id, COUNT(*) FROM posts p WHERE 1 = 1 {where} "
        "GROUP BY p.channel_id ORDER BY p.channel_id",
        params,
    )
    return [(int(channel_id), int(count)) for channel_id, count in found]


async def channel_posts(
    archive: SqliteArchive, channel_id: int, filters: PostFilter, size: int = BATCH
) -> AsyncGenerator[list[Post], None]:
    """One channel's posts in message-id order (Telegram Desktop's order), in batches, flat memory."""
    where, params = _filter_sql(filters)
    async with archive._db.execute(
        f"SELECT {rows.POST_COLUMNS} FROM posts p JOIN channels c ON c.id = p.channel_id "
        f"WHERE p.channel_id = ? {where} ORDER BY p.message_id",
        (channel_id, *params),
    ) as cursor:
        while chunk := await cursor.fetchmany(size):
            yield [rows.post_from(row) for row in chunk]
