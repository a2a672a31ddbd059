"""The SQLite archive: WAL, foreign keys, a busy timeout, batched writes, an FTS5 index."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from core.models import (
    Channel,
    ChannelProgress,
    ChannelStatus,
    Post,
    PostFilter,
    PostVersion,
    ProcessedPost,
    SaveResult,
    StoryRow,
)
from core.query.fts import fts_body
from core.storage import rows
from core.storage.migrations import migrate

BUSY_TIMEOUT_MS = 15_000
# Page cache for a bulk import (`prepare_bulk_writes`; SQLite's default of 2 MiB stays for the collector,
# the bot and exports): the indexes every batch writes to at random places (matches, alerts, stories) stay
# in memory as the archive grows; 7 % more ingest at 200,000 posts.
BULK_CACHE_KIB = 32 * 1024
# WAL pages between checkpoints during a bulk import (SQLite's default: 1,000): an index page rewritten by
# many batches is copied into the database once per checkpoint, not once per batch; the WAL file grows to
# about 128 MiB meanwhile. 16 % less CPU in SQLite's thread over 200,000 posts.
BULK_WAL_PAGES = 32_768
_CHUNK = 500  # ids per IN (...) list, well under SQLite's variable limit


def _chunks(items: Sequence[int], size: int = _CHUNK) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _create_private(path: Path) -> None:
    """Create the database file readable by the owner only, from its first byte."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _fts_body(post: ProcessedPost) -> str:
    return post.fts_body if post.fts_body is not None else fts_body(post.raw.text)


class SqliteArchive:
    """One connection per process; writes are serialised and each batch is one transaction."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._write_lock = asyncio.Lock()
        self._writer: asyncio.Task[Any] | None = None  # the task holding the write transaction

    @classmethod
    async def open(cls, path: Path) -> SqliteArchive:
        if str(path) != ":memory:":
            await asyncio.to_thread(_create_private, path)
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            await db.create_function("tgmon_fts_body", 1, fts_body, deterministic=True)  # for migrations
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            await migrate(db)
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    async def close(self) -> None:
        await self._db.close()

    @asynccontextmanager
    async def _write(self) -> AsyncGenerator[aiosqlite.Connection, None]:
        """One write transaction; cancellation or an error at any step leaves no transaction open.

        Called again by the task that holds the transaction (e.g. the alert stage inside a batch's save),
        it joins that transaction: everything commits together or not at all.
        """
        task = asyncio.current_task()
        if task is not None and self._writer is task:
            yield self._db
            return
        async with self._write_lock:
            if self._db.in_transaction:  # orphaned by a task cancelled mid-BEGIN: nothing of it was ours
                await self._db.execute("ROLLBACK")
            begin = asyncio.ensure_future(self._db.execute("BEGIN IMMEDIATE"))
            self._writer = task
            try:
                await asyncio.shield(begin)
                yield self._db
                await asyncio.shield(self._db.execute("COMMIT"))
            except BaseException:
                with contextlib.suppress(Exception):
                    await begin  # a cancelled BEGIN still runs: let it finish, then undo it
                if self._db.in_transaction:
                    await asyncio.shield(self._db.execute("ROLLBACK"))
                raise
            finally:
                self._writer = None

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        async with self._db.execute(sql, params) as cur:
            return await cur.fetchone()

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._db.execute(sql, params) as cur:
            return list(await cur.fetchall())

    # channels

    async def upsert_channel(
        self,
        channel_id: int,
        username: str | None,
        title: str,
        *,
        access_hash: int | None = None,
        watched: bool | None = None,
    ) -> Channel:
        """Add a channel or refresh its names; `watched=True` (re)starts collecting it."""
        now = rows.now_ts()
        async with self._write() as db:
            if username:  # a username that changed hands no longer points at the old channel
                await db.execute(
                    "UPDATE channels SET username = NULL WHERE username = ? AND id != ?",
                    (username, channel_id),
                )
            await db.execute(
                "INSERT INTO channels (id, username, title, access_hash, watched, added_at) "
                "VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET username = COALESCE(excluded.username, username), "
                "title = CASE WHEN excluded.title != '' THEN excluded.title ELSE title END, "
                "access_hash = COALESCE(excluded.access_hash, access_hash), "
                "watched = CASE WHEN ? IS NULL THEN watched ELSE excluded.watched END, "
                "status = CASE WHEN ? = 1 THEN 'active' ELSE status END",
                (
                    channel_id,
                    username,
                    title,
                    access_hash,
                    1 if watched is None else int(watched),
                    now,
                    watched,
                    1 if watched else 0,
                ),
            )
        channel = await self.get_channel(channel_id)
        assert channel is not None
        return channel

    async def unwatch_channel(self, channel_id: int) -> None:
        """Stop collecting a channel; its posts stay in the archive."""
        async with self._write() as db:
            await db.execute(
                "UPDATE channels SET watched = 0, status = 'removed' WHERE id = ?", (channel_id,)
            )

    async def get_channel(self, ref: int | str) -> Channel | None:
        if isinstance(ref, int):
            row = await self._one(f"SELECT {rows.CHANNEL_COLUMNS} FROM channels WHERE id = ?", (ref,))
        else:
            row = await self._one(
                f"SELECT {rows.CHANNEL_COLUMNS} FROM channels WHERE username = ?", (ref.lstrip("@"),)
            )
        return rows.channel_from(row) if row else None

    async def list_channels(self, *, watched_only: bool = True) -> list[Channel]:
        where = "WHERE watched = 1" if watched_only else ""
        found = await self._all(f"SELECT {rows.CHANNEL_COLUMNS} FROM channels {where} ORDER BY added_at, id")
        return [rows.channel_from(r) for r in found]

    async def set_channel_status(
        self,
        channel_id: int,
        status: ChannelStatus,
        *,
        error: str | None = None,
        flood_wait_until: datetime | None = None,
    ) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE channels SET status = ?, last_error = COALESCE(?, last_error), flood_wait_until = ? "
                "WHERE id = ?",
                (status.value, error, rows.ts(flood_wait_until), channel_id),
            )

    async def record_progress(self, progress: ChannelProgress) -> None:
        async with self._write() as db:
            await self._apply_progress(db, progress)

    async def _apply_progress(self, db: aiosqlite.Connection, progress: ChannelProgress) -> None:
        if progress.last_seen_id is not None:
            await db.execute(
                "UPDATE channels SET last_seen_id = MAX(last_seen_id, ?) WHERE id = ?",
                (progress.last_seen_id, progress.channel_id),
            )
        if progress.backfill_done:
            await db.execute(
                "UPDATE channels SET backfill_active = 0, backfill_remaining = NULL, backfill_since = NULL "
                "WHERE id = ?",
                (progress.channel_id,),
            )
        elif progress.backfill is not None:
            state = progress.backfill
            await db.execute(
                "UPDATE channels SET backfill_active = 1, backfill_cursor = ?, backfill_remaining = ?, "
                "backfill_since = ? WHERE id = ?",
                (state.cursor, state.remaining, rows.ts(state.since), progress.channel_id),
            )

    # posts

    async def known_hashes(self, channel_id: int, message_ids: Sequence[int]) -> dict[int, str]:
        """Content hashes of the stored posts among `message_ids`: the pipeline skips unchanged text."""
        found = await self._posts_by_id("message_id, content_hash", channel_id, message_ids)
        return {message_id: content_hash for message_id, content_hash in found}

    async def _posts_by_id(self, columns: str, channel_id: int, message_ids: Sequence[int]) -> list[Any]:
        """`columns` of one channel's posts among `message_ids`, in chunks under SQLite's variable limit."""
        found: list[Any] = []
        for chunk in _chunks(message_ids):
            marks = ",".join("?" * len(chunk))
            found += await self._all(
                f"SELECT {columns} FROM posts WHERE channel_id = ? AND message_id IN ({marks})",
                (channel_id, *chunk),
            )
        return found

    async def prepare_bulk_writes(self) -> None:
        """Many posts are about to be stored (an import): keep more of the archive in memory meanwhile."""
        await self._db.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
        await self._db.execute(f"PRAGMA wal_autocheckpoint = {BULK_WAL_PAGES}")

    async def save_posts(
        self,
        posts: Sequence[ProcessedPost],
        *,
        progress: ChannelProgress | None = None,
        then: Callable[[SaveResult], Awaitable[None]] | None = None,
    ) -> SaveResult:
        """Insert new posts, record new versions of edited ones, refresh counters: one transaction.

        `then` runs inside that transaction once the posts are written (the alert stage queues its alerts
        there), so a crash keeps both or neither.
        """
        result = SaveResult()
        now = rows.now_ts()
        async with self._write() as db:
            by_channel: dict[int, list[ProcessedPost]] = {}
            for post in posts:
                by_channel.setdefault(post.raw.channel_id, []).append(post)
            for channel_id, batch in by_channel.items():
                await self._save_channel_batch(db, channel_id, batch, now, result)
            if progress is not None:
                await self._apply_progress(db, progress)
            if then is not None:
                await then(result)
        return result

    async def _save_channel_batch(
        self,
        db: aiosqlite.Connection,
        channel_id: int,
        batch: list[ProcessedPost],
        now: int,
        result: SaveResult,
    ) -> None:
        row = await self._one("SELECT username, title FROM channels WHERE id = ?", (channel_id,))
        if row is None:
            raise LookupError(f"channel {channel_id} is not in the archive; add it first")
        username, title = row
        latest: dict[int, ProcessedPost] = {}
        for post in batch:  # the last copy of a message in one batch wins
            latest[post.raw.message_id] = post
        existing: dict[int, tuple[int, str, int | None, int, str | None]] = {
            mid: (pid, chash, edit, version, story)
            for pid, mid, chash, edit, version, story in await self._posts_by_id(
                "id, message_id, content_hash, edit_date, version, story_id", channel_id, list(latest)
            )
        }

        new_rows, edits, counters = [], [], []
        for mid, post in latest.items():
            raw = post.raw
            link = rows.permalink(channel_id, username, mid)
            if mid not in existing:
                new_rows.append(post)
                result.new.append(self._post(post, link, now, username, title, 1, post.story_id))
                continue
            pid, old_hash, old_edit, version, story = existing[mid]
            new_edit = rows.ts(raw.edit_date)
            # an older copy (an export made before the edit, a fetch that raced an edit) changes nothing
            stale = old_edit is not None and (new_edit is None or new_edit < old_edit)
            if stale:
                result.unchanged += 1
            elif old_hash != post.content_hash:
                edits.append((pid, version + 1, post))
                result.edited.append(self._post(post, link, now, username, title, version + 1, story))
            else:
                counters.append((raw.views, raw.forwards, raw.replies, rows.json_or_none(raw.reactions), pid))
                result.unchanged += 1

        if new_rows:
            await db.executemany(
                "INSERT INTO posts (channel_id, message_id, date, text, entities, lang, lang_confidence, "
                "views, forwards, replies, reactions, media_type, forwarded_from, reply_to, album_id, "
                "author, service_action, tags, permalink, edit_date, collected_at, content_hash, story_id, "
                "story_sig) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    self._insert_params(p, rows.permalink(channel_id, username, p.raw.message_id), now)
                    for p in new_rows
                ],
            )
            new_ids = [p.raw.message_id for p in new_rows]
            ids = {mid: pid for pid, mid in await self._posts_by_id("id, message_id", channel_id, new_ids)}
            await db.executemany(
                "INSERT INTO posts_fts (rowid, body) VALUES (?, ?)",
                [(ids[p.raw.message_id], _fts_body(p)) for p in new_rows if p.raw.text],
            )
        if edits:
            await db.executemany(  # the version an edit replaces joins the history
                "INSERT OR REPLACE INTO post_versions (post_id, version, text, entities, edit_date, "
                "recorded_at, content_hash) SELECT id, version, text, entities, edit_date, "
                "COALESCE(version_at, collected_at), content_hash FROM posts WHERE id = ?",
                [(pid,) for pid, _, _ in edits],
            )
            await db.executemany(
                "UPDATE posts SET text = ?, entities = ?, lang = ?, lang_confidence = ?, tags = ?, "
                "edit_date = ?, content_hash = ?, version = ?, version_at = ?, media_type = ?, "
                "deleted_at = NULL, "
                "story_sig = COALESCE(?, story_sig), "
                "views = COALESCE(?, views), forwards = COALESCE(?, forwards), "
                "replies = COALESCE(?, replies), reactions = COALESCE(?, reactions) WHERE id = ?",
                [
                    (
                        p.raw.text,
                        rows.entities_json(p.raw.entities),
                        p.lang,
                        p.lang_confidence,
                        rows.json_or_none(list(p.tags)),
                        rows.ts(p.raw.edit_date),
                        p.content_hash,
                        version,
                        now,
                        p.raw.media_type,
                        p.story_signature or None,
                        p.raw.views,
                        p.raw.forwards,
                        p.raw.replies,
                        rows.json_or_none(p.raw.reactions),
                        pid,
                    )
                    for pid, version, p in edits
                ],
            )
            await db.executemany("DELETE FROM posts_fts WHERE rowid = ?", [(pid,) for pid, _, _ in edits])
            await db.executemany(
                "INSERT INTO posts_fts (rowid, body) VALUES (?, ?)",
                [(pid, _fts_body(p)) for pid, _, p in edits if p.raw.text],
            )
        if counters:
            await db.executemany(
                "UPDATE posts SET views = COALESCE(?, views), forwards = COALESCE(?, forwards), "
                "replies = COALESCE(?, replies), reactions = COALESCE(?, reactions) WHERE id = ?",
                counters,
            )

    @staticmethod
    def _insert_params(p: ProcessedPost, link: str, now: int) -> tuple[Any, ...]:
        raw = p.raw
        return (
            raw.channel_id,
            raw.message_id,
            rows.ts(raw.date),
            raw.text,
            rows.entities_json(raw.entities),
            p.lang,
            p.lang_confidence,
            raw.views,
            raw.forwards,
            raw.replies,
            rows.json_or_none(raw.reactions),
            raw.media_type,
            raw.forwarded_from,
            raw.reply_to,
            raw.album_id,
            raw.author,
            raw.service_action,
            rows.json_or_none(list(p.tags)),
            link,
            rows.ts(raw.edit_date),
            now,
            p.content_hash,
            p.story_id,
            p.story_signature or None,
        )

    @staticmethod
    def _post(
        p: ProcessedPost,
        link: str,
        now: int,
        username: str | None,
        title: str,
        version: int,
        story_id: str | None,
    ) -> Post:
        raw = p.raw
        return Post(
            channel_id=raw.channel_id,
            message_id=raw.message_id,
            date=raw.date,
            text=raw.text,
            entities=raw.entities,
            lang=p.lang,
            lang_confidence=p.lang_confidence,
            views=raw.views,
            forwards=raw.forwards,
            replies=raw.replies,
            reactions=raw.reactions,
            media_type=raw.media_type,
            forwarded_from=raw.forwarded_from,
            reply_to=raw.reply_to,
            album_id=raw.album_id,
            author=raw.author,
            service_action=raw.service_action,
            tags=p.tags,
            permalink=link,
            edit_date=raw.edit_date,
            deleted_at=None,
            collected_at=datetime.fromtimestamp(now, UTC),
            content_hash=p.content_hash,
            channel_username=username,
            channel_title=title,
            versions=version,
            story_id=story_id or f"{raw.channel_id}:{raw.message_id}",
        )

    async def story_rows(self, since: datetime) -> list[StoryRow]:
        """Recent posts with a story, oldest first: the story index is rebuilt from them at start-up."""
        found = await self._all(
            "SELECT channel_id, message_id, story_id, story_sig, date, forwarded_from, text FROM posts "
            "WHERE date >= ? AND story_id IS NOT NULL AND deleted_at IS NULL ORDER BY date",
            (rows.ts(since),),
        )
        return [StoryRow(r[0], r[1], r[2], r[3], rows.dt(r[4]) or since, r[5], r[6]) for r in found]

    async def newest_story_date(self) -> datetime | None:
        """The date of the newest post with a story (None: there is none)."""
        row = await self._one(  # read backwards along posts_date: stops at the first such post
            "SELECT date FROM posts WHERE story_id IS NOT NULL AND deleted_at IS NULL "
            "ORDER BY date DESC LIMIT 1"
        )
        return rows.dt(row[0]) if row else None

    async def story_channels(self, story_id: str) -> list[Channel]:
        """Every channel that carried a story, in the order they first did: for "also in: …"."""
        found = await self._all(
            f"SELECT {', '.join('c.' + c.strip() for c in rows.CHANNEL_COLUMNS.split(','))} FROM channels c "
            "JOIN (SELECT channel_id, MIN(date) AS first FROM posts WHERE story_id = ? "
            "GROUP BY channel_id) s ON s.channel_id = c.id ORDER BY s.first",
            (story_id,),
        )
        return [rows.channel_from(r) for r in found]

    async def mark_deleted(self, channel_id: int, message_ids: Sequence[int], at: datetime) -> int:
        """Flag deleted posts (they stay in the archive); returns how many were newly flagged."""
        changed = 0
        async with self._write() as db:
            for chunk in _chunks(list(message_ids)):
                marks = ",".join("?" * len(chunk))
                cur = await db.execute(
                    f"UPDATE posts SET deleted_at = ? WHERE channel_id = ? AND deleted_at IS NULL "
                    f"AND message_id IN ({marks})",
                    (rows.ts(at), channel_id, *chunk),
                )
                changed += cur.rowcount
        return changed

    async def recent_message_ids(self, channel_id: int, since: datetime) -> list[int]:
        found = await self._all(
            "SELECT message_id FROM posts WHERE channel_id = ? AND date >= ? AND deleted_at IS NULL "
            "ORDER BY message_id",
            (channel_id, rows.ts(since)),
        )
        return [r[0] for r in found]

    async def get_post(self, channel_id: int, message_id: int) -> Post | None:
        row = await self._one(
            f"SELECT {rows.POST_COLUMNS} FROM posts p JOIN channels c ON c.id = p.channel_id "
            "WHERE p.channel_id = ? AND p.message_id = ?",
            (channel_id, message_id),
        )
        return rows.post_from(row) if row else None

    async def versions(self, channel_id: int, message_id: int) -> list[PostVersion]:
        found = await self._all(
            "SELECT v.version, v.text, v.edit_date, v.recorded_at FROM post_versions v "
            "JOIN posts p ON p.id = v.post_id WHERE p.channel_id = ?1 AND p.message_id = ?2 "
            "UNION ALL SELECT version, text, edit_date, COALESCE(version_at, collected_at) FROM posts "
            "WHERE channel_id = ?1 AND message_id = ?2 ORDER BY 1",
            (channel_id, message_id),
        )
        return [
            PostVersion(channel_id, message_id, r[0], r[1], rows.dt(r[2]), rows.dt(r[3]) or datetime.now(UTC))
            for r in found
        ]

    async def count_posts(self, channel_id: int | None = None) -> int:
        if channel_id is None:
            row = await self._one("SELECT COUNT(*) FROM posts")
        else:
            row = await self._one("SELECT COUNT(*) FROM posts WHERE channel_id = ?", (channel_id,))
        return int(row[0])

    async def channel_stats(self) -> dict[int, tuple[int, datetime | None]]:
        """Per channel: stored posts and the date of the newest one."""
        found = await self._all("SELECT channel_id, COUNT(*), MAX(date) FROM posts GROUP BY channel_id")
        return {r[0]: (r[1], rows.dt(r[2])) for r in found}

    async def search_candidates(
        self,
        fts: str | None,
        *,
        filters: PostFilter | None = None,
        limit: int = 200,
        before: tuple[int, int, int] | None = None,
    ) -> list[Post]:
        """Posts whose indexed words satisfy the FTS5 expression `fts` (built by core.query.fts, never
        by a user), newest first, strictly older than the `before` (date, channel, message) key."""
        where, params = _filter_sql(filters or PostFilter())
        if before is not None:
            where += " AND (p.date, p.channel_id, p.message_id) < (?, ?, ?)"
            params += list(before)
        if fts is None:
            found = await self._all(
                f"SELECT {rows.POST_COLUMNS} FROM posts p JOIN channels c ON c.id = p.channel_id "
                f"WHERE 1 = 1 {where} ORDER BY p.date DESC, p.channel_id DESC, p.message_id DESC LIMIT ?",
                (*params, limit),
            )
            return [rows.post_from(r) for r in found]
        ids = await self._newest_hits(fts, where, params, limit)
        if not ids:
            return []
        found = await self._all(
            f"SELECT {rows.POST_COLUMNS}, p.id FROM posts p JOIN channels c ON c.id = p.channel_id "
            f"WHERE p.id IN ({','.join('?' * len(ids))})",
            ids,
        )
        by_id = {r[-1]: r for r in found}
        return [rows.post_from(by_id[i]) for i in ids if i in by_id]

    async def index_terms(self, prefix: str, *, limit: int) -> list[str] | None:
        """The full-text index's words that start with `prefix` (a folded word), or None when there are
        more than `limit`."""
        # every time: created inside a write transaction that then rolls back, it would be gone
        await self._db.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.posts_vocab USING fts5vocab(main, posts_fts, row)"
        )
        found = await self._all(
            "SELECT term FROM temp.posts_vocab WHERE term >= ? AND term < ? LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit + 1),
        )
        return None if len(found) > limit else [term for (term,) in found]

    async def _newest_hits(self, fts: str, where: str, params: list[Any], limit: int) -> list[int]:
        """Ids of the `limit` newest posts matching `fts` and the `where` clause, newest first.

        Sorting every hit by date costs a row lookup per hit, too slow for a word in a third of a
        million posts. Instead the hits are read newest id first (FTS5 gives that order without
        sorting), and reading stops once the `limit` newest hits seen so far are all newer than any
        post with a smaller id can be (one query on the date index). Ids follow collection order,
        which is mostly date order, so a common word stops after a few hundred hits; when they do not
        (imports, backfill), reading goes on, at worst through every hit: the old plan's cost.
        """
        best: list[tuple[int, int, int, int]] = []  # (date, channel, message, id) seen, newest kept
        check_at = limit
        seen = 0
        async with self._db.execute(
            "SELECT p.date, p.channel_id, p.message_id, p.id FROM posts_fts f JOIN posts p ON p.id = f.rowid "
            f"WHERE posts_fts MATCH ? {where} ORDER BY f.rowid DESC",
            (fts, *params),
        ) as cursor:
            while chunk := list(await cursor.fetchmany(limit)):
                best = heapq.nlargest(limit, [*best, *(tuple(row) for row in chunk)])
                seen += len(chunk)
                if len(best) < limit or seen < check_at:
                    continue
                check_at = seen * 2  # checks at doubling counts: a few per search whatever happens
                # `+p.id`: walk the date index down (the rowid range would read every older post)
                newest_older = await self._one(
                    f"SELECT p.date FROM posts p WHERE +p.id < ? {where} ORDER BY p.date DESC LIMIT 1",
                    (chunk[-1][3], *params),
                )
                if newest_older is None or newest_older[0] < best[-1][0]:
                    break
        return [key[3] for key in best]

    async def iter_posts(
        self, filters: PostFilter | None = None, *, batch: int = 1000
    ) -> AsyncGenerator[Post, None]:
        """Stream posts in (date, channel, message) order with flat memory."""
        where, params = _filter_sql(filters or PostFilter())
        async with self._db.execute(
            f"SELECT {rows.POST_COLUMNS} FROM posts p JOIN channels c ON c.id = p.channel_id "
            f"WHERE 1 = 1 {where} ORDER BY p.date, p.channel_id, p.message_id",
            params,
        ) as cur:
            while chunk := await cur.fetchmany(batch):
                for row in chunk:
                    yield rows.post_from(row)

    async def fts_consistent(self) -> bool:
        """True when the full-text index holds exactly the posts that have text."""
        row = await self._one(
            "SELECT (SELECT COUNT(*) FROM posts WHERE text != '') = (SELECT COUNT(*) FROM posts_fts) "
            "AND NOT EXISTS (SELECT 1 FROM posts_fts f LEFT JOIN posts p ON p.id = f.rowid "
            "WHERE p.id IS NULL)"
        )
        return bool(row[0])

    async def integrity_ok(self) -> bool:
        row = await self._one("PRAGMA integrity_check")
        return bool(row and row[0] == "ok")


def _filter_sql(f: PostFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if f.channel_id is not None:
        clauses.append("p.channel_id = ?")
        params.append(f.channel_id)
    if f.since is not None:
        clauses.append("p.date >= ?")
        params.append(rows.ts(f.since))
    if f.until is not None:
        clauses.append("p.date < ?")
        params.append(rows.ts(f.until))
    if f.lang is not None:
        clauses.append("p.lang = ?")
        params.append(f.lang)
    if not f.include_deleted:
        clauses.append("p.deleted_at IS NULL")
    return "".join(f" AND {c}" for c in clauses), params
