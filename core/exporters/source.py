"""What every export format reads: batches of records (or of posts, for tdesktop), filtered by a query.

CSV, JSONL and Parquet read one SELECT whose column is the record already formatted by SQLite
(`records`): matched queries and edit history come from correlated lookups in the same statement,
so a batch costs one fetch. Telegram Desktop's layout is built in Python from the few columns it
needs (`tdesktop.DesktopRow`), channel by channel. With a `--query`, each batch is filtered by the
matcher before it is written. Memory stays flat: one batch is held at a time.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from core.exporters.tdesktop import ROW_SQL, DesktopRow
from core.models import PostFilter
from core.query.matcher import Document, Query
from core.storage.sqlite import SqliteArchive, _filter_sql

BATCH = 1000  # posts per fetch, per write and per query-filter pass

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Batch(Generic[T]):
    """Records (or posts) to write, with the channel of each for the manifest's counts."""

    items: list[T]
    channel_ids: list[int]


async def has_matches(archive: SqliteArchive) -> bool:
    """Whether any post ever matched a query: when none did, the per-post lookup is left out."""
    found = await archive._all("SELECT EXISTS (SELECT 1 FROM post_matches)")
    return bool(found[0][0])


def _matches(query: Query, text: str, lang: str, channel_id: int, username: str | None) -> bool:
    doc = Document.of(text, lang=lang, channel_id=channel_id, channel_username=username)
    return query.match(doc) is not None


async def record_batches(
    archive: SqliteArchive,
    record_sql: str,
    filters: PostFilter,
    query: Query | None = None,
    on_read: Callable[[int], None] | None = None,
    size: int = BATCH,
    width: int = 1,
) -> AsyncGenerator[Batch[Any], None]:
    """The posts the filters select, in (date, channel, message) order, as the records `record_sql`
    formats (its `width` columns: one gives the value, more a tuple); `on_read` counts posts read
    (kept by the query or not)."""
    where, params = _filter_sql(filters)
    extra = ", p.text, p.lang, c.username" if query is not None else ""
    end = 1 + width
    async with archive._db.execute(
        f"SELECT p.channel_id, {record_sql}{extra} FROM posts p JOIN channels c ON c.id = p.channel_id "
        f"WHERE 1 = 1 {where} ORDER BY p.date, p.channel_id, p.message_id",
        params,
    ) as cursor:
        while chunk := list(await cursor.fetchmany(size)):
            if on_read is not None:
                on_read(len(chunk))
            found: Sequence[Any] = chunk
            if query is not None:
                found = [r for r in chunk if _matches(query, r[end], r[end + 1], r[0], r[end + 2])]
                if not found:
                    continue
            items = [r[1] for r in found] if width == 1 else [r[1:end] for r in found]
            yield Batch(items, [r[0] for r in found])


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
    archive: SqliteArchive,
    channel_id: int,
    filters: PostFilter,
    query: Query | None = None,
    on_read: Callable[[int], None] | None = None,
    size: int = BATCH,
) -> AsyncGenerator[Batch[DesktopRow], None]:
    """One channel's posts in message-id order (Telegram Desktop's order), in batches, flat memory."""
    where, params = _filter_sql(filters)
    async with archive._db.execute(
        f"SELECT {ROW_SQL} FROM posts p JOIN channels c ON c.id = p.channel_id "
        f"WHERE p.channel_id = ? {where} ORDER BY p.message_id",
        (channel_id, *params),
    ) as cursor:
        while chunk := list(await cursor.fetchmany(size)):
            if on_read is not None:
                on_read(len(chunk))
            posts = [DesktopRow._make(row) for row in chunk]
            if query is not None:
                posts = [p for p in posts if _matches(query, p.text, p.lang, p.channel_id, p.username)]
            if posts:
                yield Batch(posts, [channel_id] * len(posts))
