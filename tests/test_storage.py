"""The SQLite archive: schema, pragmas, versions, deletions, full-text search in several scripts."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest

from core.models import ChannelProgress, PostFilter, RawPost
from core.pipeline import Pipeline
from core.query.ast import QuerySyntaxError
from core.search import search
from core.storage.migrations import SCHEMA_VERSION, SchemaTooNewError
from core.storage.sqlite import BULK_CACHE_KIB, BULK_WAL_PAGES, SqliteArchive

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def raw(message_id: int, text: str, channel_id: int = 7, **kw: object) -> RawPost:
    return RawPost(
        channel_id=channel_id, message_id=message_id, date=T0 + timedelta(minutes=message_id), text=text, **kw
    )  # type: ignore[arg-type]


async def found(archive: SqliteArchive, query: str) -> list[int]:
    return [hit.post.message_id for hit in (await search(archive, query, limit=100)).hits]


@pytest.fixture
async def channel(archive: SqliteArchive) -> int:
    await archive.upsert_channel(7, "kz_news", "KZ News")
    return 7


async def test_pragmas_schema_and_file_mode(archive: SqliteArchive, tmp_path: Path) -> None:
    db_path = tmp_path / "tgmon.db"
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    async with aiosqlite.connect(db_path) as db:
        assert (await (await db.execute("PRAGMA journal_mode")).fetchone())[0] == "wal"  # type: ignore[index]
        assert (await (await db.execute("PRAGMA user_version")).fetchone())[0] == SCHEMA_VERSION  # type: ignore[index]
    assert await archive.integrity_ok()


async def test_reopening_is_idempotent_and_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    for _ in range(2):  # the second open finds the schema current and changes nothing
        opened = await SqliteArchive.open(path)
        await opened.close()
    async with aiosqlite.connect(path) as db:
        await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        await db.commit()
    with pytest.raises(SchemaTooNewError, match="upgrade tgmon"):
        await SqliteArchive.open(path)


async def test_foreign_keys_refuse_posts_of_unknown_channels(pipeline: Pipeline) -> None:
    with pytest.raises(LookupError, match="add it first"):
        await pipeline.ingest([raw(1, "orphan", channel_id=999)])


async def test_edit_history_keeps_every_version(
    pipeline: Pipeline, archive: SqliteArchive, channel: int
) -> None:
    await pipeline.ingest([raw(1, "first")])
    await pipeline.ingest([raw(1, "second", edit_date=T0 + timedelta(hours=1))])
    await pipeline.ingest([raw(1, "second", edit_date=T0 + timedelta(hours=1), views=5)])  # counters only
    await pipeline.ingest([raw(1, "stale copy", edit_date=T0 + timedelta(minutes=30))])  # older than stored
    versions = await archive.versions(channel, 1)
    assert [(v.version, v.text) for v in versions] == [(1, "first"), (2, "second")]
    post = await archive.get_post(channel, 1)
    assert post is not None and post.text == "second" and post.views == 5 and post.versions == 2
    assert await found(archive, "second") == [1]
    assert await found(archive, "first") == []
    assert await archive.fts_consistent()
    await pipeline.ingest([raw(1, "third", edit_date=T0 + timedelta(hours=2))])
    versions = await archive.versions(channel, 1)
    assert [(v.version, v.text, v.edit_date) for v in versions] == [
        (1, "first", None),
        (2, "second", T0 + timedelta(hours=1)),
        (3, "third", T0 + timedelta(hours=2)),
    ]
    assert [v.recorded_at for v in versions] == sorted(v.recorded_at for v in versions)
    # the text is stored once: the history holds the versions edits replaced, the post its current one
    assert await archive._all("SELECT version, text FROM post_versions") == [(1, "first"), (2, "second")]


async def test_deleted_posts_are_kept_and_flagged(
    pipeline: Pipeline, archive: SqliteArchive, channel: int
) -> None:
    await pipeline.ingest([raw(1, "keep me"), raw(2, "and me")])
    assert await archive.mark_deleted(channel, [2, 3], T0) == 1
    assert await archive.mark_deleted(channel, [2], T0) == 0
    assert await archive.count_posts() == 2
    post = await archive.get_post(channel, 2)
    assert post is not None and post.deleted_at == T0
    live = [p.message_id async for p in archive.iter_posts(PostFilter(include_deleted=False))]
    assert live == [1]


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("Протестующие собрались в Алмате", "алмате"),
        ("Ёлки зелёные", "елки"),  # ё folds to е
        ("Українці сміливі", "УКРАЇНЦІ"),
        ("عَلَىٰ نَهجِ السَّلَفِ", "نهج"),  # harakat do not split Arabic words
        ("著名浏览器用户js脚本管理器Tampermonkey正式确定了其中文名——篡改猴", "篡改猴"),
        ("著名浏览器用户js脚本管理器", "浏览器"),
        ("Café in Zürich", "zurich"),
        ("#Kazakhstan news from @kz_news", "kazakhstan"),
    ],
)
async def test_full_text_search_across_scripts(
    pipeline: Pipeline, archive: SqliteArchive, channel: int, text: str, query: str
) -> None:
    await pipeline.ingest([raw(1, text), raw(2, "unrelated filler words")])
    assert await found(archive, query) == [1]


async def test_search_syntax_is_ours_not_sqlites(
    pipeline: Pipeline, archive: SqliteArchive, channel: int
) -> None:
    await pipeline.ingest([raw(1, "protest in almaty"), raw(2, "protests in astana"), raw(3, "weather")])
    assert set(await found(archive, "protest -astana")) == {1}
    assert set(await found(archive, "protest")) == {1, 2}  # morphology through the index prefilter
    assert set(await found(archive, "almaty OR weather")) == {1, 3}
    assert set(await found(archive, '"in almaty"')) == {1}
    assert set(await found(archive, "prot*")) == {1, 2}
    assert set(await found(archive, "/ast.na/")) == {2}  # no word: a bounded scan
    for hostile in ["NEAR(a b)", "text:protest", "^protest", "a AND b", "{body}: x"]:
        await found(archive, hostile)  # never an sqlite3.OperationalError
    for bad in ["", "   ", "-protest", "*", '"unbalanced', "protest)"]:
        with pytest.raises(QuerySyntaxError):
            await found(archive, bad)


async def test_search_pages_through_candidates(
    pipeline: Pipeline, archive: SqliteArchive, channel: int
) -> None:
    posts = [raw(i, f"protest number {i}" + (" astana" if i % 3 else "")) for i in range(1, 701)]
    await pipeline.ingest(posts)
    result = await search(archive, "protest -astana", limit=500)
    assert [h.post.message_id for h in result.hits] == list(range(699, 0, -3))  # newest first, all of them
    assert result.exhaustive


async def test_filters(pipeline: Pipeline, archive: SqliteArchive, channel: int) -> None:
    await archive.upsert_channel(8, None, "Other")
    await pipeline.ingest([raw(1, "hello world"), raw(2, "привет мир"), raw(3, "hello again", channel_id=8)])
    by = [p.message_id async for p in archive.iter_posts(PostFilter(lang="ru"))]
    assert by == [2]
    since = [p.message_id async for p in archive.iter_posts(PostFilter(since=T0 + timedelta(minutes=2)))]
    assert since == [2, 3]
    other = [p.permalink async for p in archive.iter_posts(PostFilter(channel_id=8))]
    assert other == ["https://t.me/c/8/3"]


async def test_a_batch_is_one_transaction(archive: SqliteArchive, pipeline: Pipeline, channel: int) -> None:
    statements: list[str] = []
    await archive._db.set_trace_callback(statements.append)
    await pipeline.ingest([raw(i, f"post {i}") for i in range(1, 301)])
    await archive._db.set_trace_callback(None)
    assert sum(s.startswith("BEGIN") for s in statements) == 1
    assert sum(s == "COMMIT" for s in statements) == 1
    assert await archive.count_posts() == 300


async def test_progress_commits_with_posts(archive: SqliteArchive, pipeline: Pipeline, channel: int) -> None:
    await pipeline.ingest([raw(5, "x")], progress=ChannelProgress(channel, last_seen_id=5))
    await pipeline.ingest([raw(3, "y")], progress=ChannelProgress(channel, last_seen_id=3))  # never goes back
    found = await archive.get_channel(channel)
    assert found is not None and found.last_seen_id == 5


async def test_username_changing_hands(archive: SqliteArchive) -> None:
    await archive.upsert_channel(1, "breaking", "Old owner")
    await archive.upsert_channel(2, "breaking", "New owner")
    old = await archive.get_channel(1)
    new = await archive.get_channel("@breaking")
    assert old is not None and old.username is None
    assert new is not None and new.id == 2


async def test_two_connections_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    first, second = await SqliteArchive.open(path), await SqliteArchive.open(path)
    try:
        await first.upsert_channel(1, "a_channel", "A")
        channel = await second.get_channel("a_channel")
        assert channel is not None and channel.title == "A"
    finally:
        await first.close()
        await second.close()


async def test_a_copy_without_edit_date_after_an_edit_is_stale(
    pipeline: Pipeline, archive: SqliteArchive, channel: int
) -> None:
    await pipeline.ingest([raw(1, "original", views=10)])
    await pipeline.ingest([raw(1, "corrected", edit_date=T0 + timedelta(hours=2), views=20)])
    # a catch-up batch or an old export that still holds the original text
    await pipeline.ingest([raw(1, "original", views=5)])
    post = await archive.get_post(channel, 1)
    assert post is not None and post.text == "corrected" and post.versions == 2 and post.views == 20


async def test_cancelled_writer_leaves_no_open_transaction(
    archive: SqliteArchive, pipeline: Pipeline, channel: int, tmp_path: Path
) -> None:
    import asyncio

    other = await aiosqlite.connect(tmp_path / "tgmon.db", isolation_level=None)
    await other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        task = asyncio.create_task(pipeline.ingest([raw(1, "waits for the lock")]))
        await asyncio.sleep(0.2)  # our BEGIN IMMEDIATE now waits in SQLite's busy handler
        task.cancel()
        await asyncio.sleep(0)
    finally:
        await other.execute("ROLLBACK")  # the waiting BEGIN now succeeds, after its task was cancelled
        await other.close()
    with pytest.raises(asyncio.CancelledError):
        await task
    await pipeline.ingest([raw(2, "after the cancel")])  # the connection still writes and commits
    fresh = await SqliteArchive.open(tmp_path / "tgmon.db")
    try:
        assert [p.message_id async for p in fresh.iter_posts()] == [2]
    finally:
        await fresh.close()


async def test_a_schema_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    from core.storage.migrations import MIGRATIONS

    path = tmp_path / "old.db"
    async with aiosqlite.connect(path) as db:  # as tgmon with schema 1 left it
        await db.executescript(MIGRATIONS[0])
        await db.execute("INSERT INTO channels (id, title, added_at) VALUES (7, 'c', 0)")
        await db.execute(
            "INSERT INTO posts (id, channel_id, message_id, date, text, lang, lang_confidence, permalink, "
            "collected_at, content_hash) VALUES (1, 7, 1, 0, 'Kаzakhstan news', 'en', 1, 'x', 0, 'h')"
        )
        await db.execute("INSERT INTO posts_fts (rowid, body) VALUES (1, 'kаzakhstan news')")  # Cyrillic а
        await db.execute("PRAGMA user_version = 1")
        await db.commit()
    upgraded = await SqliteArchive.open(path)
    try:
        assert await found(upgraded, "Kazakhstan") == [1]  # migration 2 re-indexed with folded homoglyphs
        post = await upgraded.get_post(7, 1)
        assert post is not None and post.story_id == "7:1"  # migration 3: no story yet reads as its own
        assert await upgraded.fts_consistent()
    finally:
        await upgraded.close()


async def test_a_schema_6_database_keeps_its_history_and_alerts_through_migration_7(tmp_path: Path) -> None:
    from core.storage.migrations import MIGRATIONS
    from core.storage.subscriptions import SubscriptionStore

    path = tmp_path / "old.db"
    payload = {"channel": "@c", "snippet": "second", "spans": [[0, 6]], "queries": ["second"], "also_in": []}
    async with aiosqlite.connect(path) as db:  # as tgmon with schema 6 left it: every version in the history
        await db.executescript(";".join(MIGRATIONS[:6]).replace("tgmon_fts_body(text)", "text"))
        await db.executescript(
            """
            INSERT INTO channels (id, title, added_at) VALUES (7, 'c', 0);
            INSERT INTO posts (id, channel_id, message_id, date, text, lang, lang_confidence, permalink,
                collected_at, content_hash, version, edit_date) VALUES
                (1, 7, 1, 0, 'second', 'en', 1, 'x', 100, 'h2', 2, 150),
                (2, 7, 2, 0, 'only', 'en', 1, 'y', 110, 'h3', 1, NULL);
            INSERT INTO post_versions (post_id, version, text, edit_date, recorded_at, content_hash) VALUES
                (1, 1, 'first', NULL, 100, 'h1'), (1, 2, 'second', 150, 200, 'h2'),
                (2, 1, 'only', NULL, 110, 'h3');
            INSERT INTO subscribers (id, chat_id, created_at) VALUES (5, 5, 0);
            """
        )
        await db.execute(
            "INSERT INTO outbox (subscriber_id, chat_id, kind, payload, not_before, created_at) "
            "VALUES (5, 5, 'alert', ?, 0, 0)",
            (json.dumps(payload),),
        )
        await db.execute("PRAGMA user_version = 6")
        await db.commit()
    upgraded = await SqliteArchive.open(path)
    try:
        versions = await upgraded.versions(7, 1)
        assert [(v.version, v.text, v.recorded_at.timestamp()) for v in versions] == [
            (1, "first", 100),
            (2, "second", 200),
        ]
        assert [(v.version, v.text) for v in await upgraded.versions(7, 2)] == [(1, "only")]
        assert await upgraded._all("SELECT post_id, version FROM post_versions") == [(1, 1)]
        (item,) = await SubscriptionStore(upgraded).due(datetime.now(UTC))
        assert item.payload == payload  # an alert queued before keeps its whole payload
    finally:
        await upgraded.close()


async def test_alerts_queued_before_migration_8_are_still_not_sent_twice(tmp_path: Path) -> None:
    from core.storage.migrations import MIGRATIONS
    from core.storage.subscriptions import AlertRecord, SubscriptionStore

    path = tmp_path / "old.db"
    async with aiosqlite.connect(path) as db:  # as tgmon with schema 7 left it: two alerts, one still pending
        await db.executescript(";".join(MIGRATIONS[:7]).replace("tgmon_fts_body(text)", "text"))
        await db.executescript(
            """
            INSERT INTO channels (id, title, added_at) VALUES (7, 'c', 0);
            INSERT INTO posts (id, channel_id, message_id, date, text, lang, lang_confidence, permalink,
                collected_at, content_hash) VALUES (1, 7, 1, 0, 'news', 'en', 1, 'x', 0, 'h');
            INSERT INTO subscribers (id, chat_id, created_at) VALUES (5, 50, 0), (6, 60, 0);
            INSERT INTO queries (id, subscriber_id, text, created_at) VALUES
                (1, 5, 'news', 0), (2, 6, 'news', 0);
            INSERT INTO outbox (id, subscriber_id, chat_id, kind, story_id, payload, status, not_before,
                created_at) VALUES
                (1, 5, 50, 'alert', '7:1', '{"channel": "@c", "also_in": []}', 'sent', 0, 0),
                (2, 6, 60, 'alert', '7:1', '{"channel": "@c", "also_in": []}', 'pending', 0, 0);
            INSERT INTO alerted (subscriber_id, story_id, outbox_id) VALUES (5, '7:1', 1), (6, '7:1', 2);
            PRAGMA user_version = 7;
            """
        )
        await db.commit()
    upgraded = await SqliteArchive.open(path)
    try:
        assert await upgraded._all("SELECT subscriber_id, story_id, outbox_id FROM alerted ORDER BY 1") == [
            (5, "7:1", 1),
            (6, "7:1", 2),
        ]
        (plan,) = [r[-1] for r in await upgraded._all(
            "EXPLAIN QUERY PLAN SELECT 1 FROM alerted WHERE subscriber_id = 5 AND story_id = '7:1'"
        )]  # fmt: skip
        assert plan.endswith("USING PRIMARY KEY (story_id=? AND subscriber_id=?)")  # keyed by story first
        copies = [  # the story again, from another channel: no new alert, "also in" on the pending one
            AlertRecord(sub, sub * 10, 8, 1, "7:1", (sub - 4,), {"queries": ["news"], "also_in": []},
                        alert=True, stored_at=0.0, shared={"channel": "@other"})
            for sub in (5, 6)
        ]  # fmt: skip
        assert await SubscriptionStore(upgraded).record_alerts(copies) == 0
        also_in = await upgraded._all("SELECT id, json_extract(payload, '$.also_in') FROM outbox ORDER BY id")
        assert also_in == [(1, "[]"), (2, '["@other"]')]
    finally:
        await upgraded.close()


async def test_bulk_imports_take_more_cache_and_rarer_checkpoints(tmp_path: Path) -> None:
    archive = await SqliteArchive.open(tmp_path / "a.db")
    try:
        (default,) = await archive._one("PRAGMA cache_size")
        (checkpoint,) = await archive._one("PRAGMA wal_autocheckpoint")
        await archive.upsert_channel(1, "a", "A")
        await archive.save_posts([])
        assert (await archive._one("PRAGMA cache_size"))[0] == default  # the collector, the bot, exports
        assert (await archive._one("PRAGMA wal_autocheckpoint"))[0] == checkpoint == 1000
        await archive.prepare_bulk_writes()
        assert (await archive._one("PRAGMA cache_size"))[0] == -BULK_CACHE_KIB != default
        assert (await archive._one("PRAGMA wal_autocheckpoint"))[0] == BULK_WAL_PAGES
    finally:
        await archive.close()
