"""What every export format reads: batches of records (or of posts, for tdesktop), filtered by a query.

CSV, JSONL and Parquet read one SELECT whose column is the record already formatted by SQLite
(`records`): matched queries and edit history come from correlated lookups in the same statement,
so a batch costs one fetch. Telegram Desktop's layout is built in Python from the few columns it
needs (`tdesktop.DesktopRow`), channel by channel. With a `--query`, each batch is filtered by the
matcher before it is written. Memory stays flat: one batch is held at a time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiosqlite

from core.exporters.tdesktop import ROW_SQL, DesktopRow
from core.models import PostFilter
from core.query.matcher import Document, Query
from core.storage.sqlite import SqliteArchive, _filter_sql

BATCH = 1000  # posts per fetch, per write and per query-filter pass
AHEAD = 2  # batches read (and converted) while the caller writes one
ORDER = "p.date, p.channel_id, p.message_id"  # the export's order

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Batch(Generic[T]):
    """Records (or posts) to write, with the channel of each for the manifest's counts."""

    items: Sequence[T]  # or what the writer converted them to (`record_batches`' `convert`)
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
    order: str = ORDER,
    convert: Callable[[list[Any]], Any] | None = None,
) -> AsyncGenerator[Batch[Any], None]:
    """The posts the filters select, in `order` ((date, channel, message) unless the writer orders
    them), as the records `record_sql` formats (its `width` columns: one gives the value, more give
    the row, channel id first); `on_read` counts posts read (kept by the query or not).

    With `convert` and no query, a batch's items are `convert(rows)`, called in the connection's thread
    as soon as the rows are fetched, while the previous batch is being written (`_converted`)."""
    where, params = _filter_sql(filters)
    extra = ", p.text, p.lang, c.username" if query is not None else ""
    end = 1 + width
    async with archive._db.execute(
        f"SELECT p.channel_id, {record_sql}{extra} FROM posts p JOIN channels c ON c.id = p.channel_id "
        f"WHERE 1 = 1 {where} ORDER BY {order}",
        params,
    ) as cursor:
        if (
            convert is not None
            and query is None
            and hasattr(cursor, "_execute")
            and hasattr(cursor, "_cursor")
        ):
            async with aclosing(_converted(cursor, convert, size)) as converted:
                async for batch in converted:
                    if on_read is not None:
                        on_read(len(batch.channel_ids))
                    yield batch
            return
        while chunk := list(await cursor.fetchmany(size)):
            if on_read is not None:
                on_read(len(chunk))
            found: Sequence[Any] = chunk
            if query is not None:
                found = [r for r in chunk if _matches(query, r[end], r[end + 1], r[0], r[end + 2])]
                if not found:
                    continue
            items: Sequence[Any]
            if width == 1:
                items = [r[1] for r in found]
            else:  # the rows as they come, unless the query's columns follow
                items = [r[:end] for r in found] if query is not None else found
            yield Batch(items, [r[0] for r in found])


Fetched = tuple[Any, list[int]]  # converted rows, the channel id of each


async def _converted(
    cursor: aiosqlite.Cursor, convert: Callable[[list[Any]], Any], size: int
) -> AsyncGenerator[Batch[Any], None]:
    """The rows converted where they are read: in the connection's thread (aiosqlite's), one batch
    ahead of the caller.

    Python's sqlite3 module lets go of the GIL around every column of every row it reads; a converting
    thread would take it each time, so reading and converting in two threads runs them one after the
    other, and slower. In one thread, the rows are also converted while they are in that core's cache.
    aiosqlite has no public call for this: `Cursor._execute` runs a function in its thread.
    """
    rows_cursor = cursor._cursor
    in_thread: Callable[[Callable[[], Fetched | None]], Awaitable[Fetched | None]] = cursor._execute

    def fetch() -> Fetched | None:
        rows = rows_cursor.fetchmany(size)
        return (convert(rows), [r[0] for r in rows]) if rows else None

    ahead = deque(asyncio.ensure_future(in_thread(fetch)) for _ in range(AHEAD))
    try:
        while (fetched := await ahead[0]) is not None:
            ahead.popleft()
            ahead.append(asyncio.ensure_future(in_thread(fetch)))
            yield Batch(*fetched)
    finally:  # the cursor is closed after them, in the same thread: let them finish first
        await asyncio.gather(*ahead, return_exceptions=True)


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
