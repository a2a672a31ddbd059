"""The database refusing writes: locked by another connection past the busy timeout, or the disk full.

Real SQLite errors, no mocks: a second connection holds the write lock (`BEGIN IMMEDIATE`), and
`PRAGMA max_page_count` stops the file from growing (SQLITE_FULL, "database or disk is full").
Every write is one transaction: a refused one leaves posts, cursor and FTS as they were; the live
loops retry and lose nothing; the CLI says it in one line with an exit code.
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot

from bot.delivery import Deliverer, Limits
from collectors.collector import Collector
from collectors.refs import parse_channel_ref
from collectors.source import TelethonSource
from core.alerts import OutboxSink, SubscriptionQueries
from core.cli import main
from core.health import HealthRecorder
from core.models import RawPost
from core.pipeline import Pipeline
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import AlertRecord, SubscriptionStore
from core.stories import StoryIndex
from tests.conftest import FIXTURES
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.memory import FixedDetector, RecordingSink
from tests.fakes.outbox import queue
from tests.fakes.telethon_client import FakeTelegramClient
from tests.fakes.tl_builders import FIXED_DATE, make_channel, make_message
from tests.test_faults_telethon import POLL, Stop, Timeline

CHANNEL = 1001
NO_LIMIT = 1073741823
EXPORTS = (FIXTURES / "tdesktop" / "single_chat", FIXTURES / "tdesktop" / "account.result.json")


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Another process holds the database's write lock until the block ends."""
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        yield
        other.execute("ROLLBACK")


async def fill_disk(archive: SqliteArchive) -> None:
    """The file may not grow by a page from now on (as a full disk would have it)."""
    (pages,) = await archive._one("PRAGMA page_count")
    await archive._db.execute(f"PRAGMA max_page_count = {pages}")


async def free_disk(archive: SqliteArchive) -> None:
    await archive._db.execute(f"PRAGMA max_page_count = {NO_LIMIT}")


async def assert_consistent(archive: SqliteArchive) -> None:
    assert not archive._db.in_transaction
    assert await archive.integrity_ok() and await archive.fts_consistent()


async def last_seen(archive: SqliteArchive, channel_id: int = CHANNEL) -> int:
    channel = await archive.get_channel(channel_id)
    assert channel is not None
    return channel.last_seen_id


async def stored_ids(archive: SqliteArchive) -> list[int]:
    found = await archive._all("SELECT message_id FROM posts ORDER BY message_id")
    return [int(r[0]) for r in found]


@pytest.fixture
async def short_wait(archive: SqliteArchive) -> SqliteArchive:
    """The busy timeout cut from 15 s to 0.1 s, so a held lock fails the write at once."""
    await archive._db.execute("PRAGMA busy_timeout = 100")
    return archive


def raws(first: int, last: int) -> list[RawPost]:
    text = "Протест в Алматы: жители вышли на площадь, требуя освободить задержанных активистов. " * 8
    return [
        RawPost(CHANNEL, i, FIXED_DATE + timedelta(minutes=i), f"{i} {text}") for i in range(first, last + 1)
    ]


@pytest.mark.parametrize("fault", ["locked", "full"])
async def test_a_refused_batch_leaves_posts_cursor_and_fts_as_they_were(
    short_wait: SqliteArchive, pipeline: Pipeline, sink: RecordingSink, fault: str
) -> None:
    from core.models import ChannelProgress

    archive = short_wait
    await archive.upsert_channel(CHANNEL, "newsroom", "Newsroom", watched=True)
    await pipeline.ingest(raws(1, 10), progress=ChannelProgress(CHANNEL, last_seen_id=10))
    batch = raws(11, 300)
    if fault == "full":
        await fill_disk(archive)
        with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
            await pipeline.ingest(batch, progress=ChannelProgress(CHANNEL, last_seen_id=300))
        await free_disk(archive)
    else:
        with write_lock(archive.path), pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await pipeline.ingest(batch, progress=ChannelProgress(CHANNEL, last_seen_id=300))
    assert await stored_ids(archive) == list(range(1, 11)) and await last_seen(archive) == 10
    assert len(sink.new) == 10  # nothing of the refused batch was handed over for alerts
    await assert_consistent(archive)
    await pipeline.ingest(batch, progress=ChannelProgress(CHANNEL, last_seen_id=300))  # space or lock back
    assert await stored_ids(archive) == list(range(1, 301)) and await last_seen(archive) == 300
    assert len(sink.new) == 300
    await assert_consistent(archive)


def news(n: int, *, fresh: bool = False) -> list[Any]:
    date = datetime.now(UTC) - timedelta(minutes=5) if fresh else FIXED_DATE
    return [make_message(CHANNEL, i, f"Protest number {i} in Almaty", date=date) for i in range(251, 251 + n)]


@pytest.fixture
def client() -> FakeTelegramClient:
    fake = FakeTelegramClient()
    fake.add_channel(
        make_channel(CHANNEL, "newsroom", "Newsroom"),
        [make_message(CHANNEL, i, f"post {i}", date=FIXED_DATE) for i in range(1, 251)],
    )
    return fake


def make_collector(
    archive: SqliteArchive, pipeline: Pipeline, client: FakeTelegramClient, at: Timeline
) -> Collector:
    return Collector(
        archive, TelethonSource(client), pipeline, poll_interval=POLL, batch_size=40, sleep=at.sleep,
        clock=at.clock, observer=HealthRecorder(archive),
    )  # fmt: skip


@pytest.mark.parametrize("fault", ["locked", "full"])
async def test_the_collector_keeps_its_cursor_and_retries_until_the_database_takes_writes(
    short_wait: SqliteArchive, pipeline: Pipeline, client: FakeTelegramClient, fault: str
) -> None:
    archive, timeline = short_wait, Timeline()
    collector = make_collector(archive, pipeline, client, timeline)
    await collector.add_channel(parse_channel_ref("@newsroom"))
    for message in news(100):
        client.post(message)
    during: list[int] = []
    lock = write_lock(archive.path)

    async def hook(seconds: float) -> None:
        if seconds == 5:  # the retry's backoff: the cursor did not move; then the database recovers
            during.extend([await last_seen(archive), await archive.count_posts()])
            if fault == "full":
                await free_disk(archive)
            else:
                lock.__exit__(None, None, None)
        elif seconds == POLL:
            raise Stop

    timeline.hook = hook
    if fault == "full":
        await fill_disk(archive)
    else:
        lock.__enter__()
    with pytest.raises(Stop):
        await collector.run_channel(CHANNEL)
    assert timeline.slept == [5, POLL] and during == [250, 0]
    assert await stored_ids(archive) == list(range(251, 351)) and await last_seen(archive) == 350
    await assert_consistent(archive)


class RefusingStore(SubscriptionStore):
    """The real store; its next `refusals` writes of one kind find the database locked by another."""

    def __init__(self, archive: SqliteArchive, method: str, refusals: int = 1) -> None:
        super().__init__(archive)
        self.method, self.refusals, self.refused = method, refusals, 0

    async def _maybe_locked(self, write: Any) -> Any:
        if self.refusals <= self.refused:
            return await write
        self.refused += 1
        try:
            with write_lock(self.archive.path):
                return await write
        finally:
            write.close()  # not awaited when taking the lock failed first

    async def record_alerts(
        self, records: Sequence[AlertRecord], *, not_before: datetime | None = None
    ) -> int:
        write = super().record_alerts(records, not_before=not_before)
        return int(await self._maybe_locked(write) if self.method == "record_alerts" else await write)

    async def mark_sent(self, ids: Sequence[int], at: float) -> None:
        write = super().mark_sent(ids, at)
        await (self._maybe_locked(write) if self.method == "mark_sent" else write)


async def test_alerts_refused_by_a_locked_database_are_queued_on_the_next_round(
    short_wait: SqliteArchive, client: FakeTelegramClient
) -> None:
    archive, timeline = short_wait, Timeline()
    store = RefusingStore(archive, "record_alerts")
    queries = SubscriptionQueries(store)
    pipeline = Pipeline(archive, FixedDetector(), OutboxSink(store, queries), queries, StoryIndex())
    collector = make_collector(archive, pipeline, client, timeline)
    await collector.add_channel(parse_channel_ref("@newsroom"))
    await store.upsert_subscriber(100, 100, "en")
    await store.add_query(100, "protest")
    for message in news(3, fresh=True):
        client.post(message)

    async def hook(seconds: float) -> None:
        if seconds == POLL:
            raise Stop

    timeline.hook = hook
    with pytest.raises(Stop):
        await collector.run_channel(CHANNEL)
    assert store.refused == 1 and timeline.slept == [5, POLL]  # the failed round, the retry, the poll
    # the refused round rolled back its posts with its alerts; the retry stored both together
    assert await stored_ids(archive) == [251, 252, 253]
    queued = await store.due(datetime.now(UTC) + timedelta(days=1))
    assert sorted(str(i.payload["url"]) for i in queued) == [
        f"https://t.me/newsroom/{i}" for i in (251, 252, 253)
    ]
    await assert_consistent(archive)


async def test_a_send_the_database_could_not_mark_is_recorded_later_not_sent_twice(
    short_wait: SqliteArchive, server: FakeBotAPI
) -> None:
    archive = short_wait
    store = RefusingStore(archive, "mark_sent")
    await archive.upsert_channel(1, "kz_news", "KZ News")
    await queue(store, 42)
    bot: Bot = server.make_bot(timeout=2)
    sender = Deliverer(bot, store, limits=Limits(fold_window=0, chat_interval=0, retry_base=0.05))
    stop = asyncio.Event()
    loop = asyncio.create_task(sender.run(stop, poll=0.05))
    try:
        for _ in range(100):
            if await store.outbox_counts() == {"sent": 1}:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a few more rounds: none may send it again
        assert not loop.done()
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)
        await bot.session.close()
    assert store.refused == 1 and await store.outbox_counts() == {"sent": 1}
    assert len(server.sent("sendMessage", chat_id=42)) == 1


# the command line


def tgmon(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    code = main(list(argv), stderr=err)
    return code, err.getvalue()


def counts(path: Path) -> tuple[int, int, str]:
    with closing(sqlite3.connect(path)) as db:
        posts = db.execute("SELECT COUNT(*) FROM posts").fetchone()[0]
        fts = db.execute("SELECT COUNT(*) FROM posts_fts").fetchone()[0]
        check = db.execute("PRAGMA integrity_check").fetchone()[0]
    return int(posts), int(fts), str(check)


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "tgmon.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("LANG_ENGINE", "fasttext")
    asyncio.run(_create(path))
    return path


async def _create(path: Path) -> None:
    archive = await SqliteArchive.open(path)
    await archive.close()


def test_import_into_a_locked_database_is_one_line_and_imports_after(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("core.storage.sqlite.BUSY_TIMEOUT_MS", 100)
    with write_lock(db):
        code, err = tgmon("import", *map(str, EXPORTS))
    assert code == 1 and "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("tgmon:")]
    assert line == (
        "tgmon: the database is locked by another process (waited 0.1 s); nothing half-written was kept: "
        "run again when it is free"
    )
    assert counts(db) == (0, 0, "ok")
    assert tgmon("import", *map(str, EXPORTS))[0] == 0
    posts, fts, check = counts(db)
    assert posts > 0 and fts > 0 and check == "ok"


def big_export(path: Path, messages: int = 150) -> Path:
    """A channel export whose import needs the file to grow (the fixtures fit in the empty tables)."""
    text = "Жители Алматы вышли на площадь, требуя освободить задержанных активистов. " * 6
    chat = {"name": "KZ Wire", "type": "public_channel", "id": 1500000077, "messages": [
        {"id": i, "type": "message", "date": "2026-01-01T00:00:00", "date_unixtime": str(1767225600 + i),
         "from": "KZ Wire", "from_id": "channel1500000077", "text": f"{i}. {text}"}
        for i in range(1, messages + 1)
    ]}  # fmt: skip
    path.write_text(json.dumps(chat, ensure_ascii=False), encoding="utf-8")
    return path


def test_import_onto_a_full_disk_is_one_line_rolls_back_and_completes_after(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = str(big_export(db.parent / "result.json"))
    opened = SqliteArchive.open.__func__  # type: ignore[attr-defined]

    async def open_on_a_full_disk(cls: type[SqliteArchive], path: Path) -> SqliteArchive:
        archive: SqliteArchive = await opened(cls, path)
        await fill_disk(archive)
        return archive

    monkeypatch.setattr(SqliteArchive, "open", classmethod(open_on_a_full_disk))
    code, err = tgmon("import", export)
    assert code == 1 and "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("tgmon:")]
    assert line.startswith(
        "tgmon: the disk holding the database is full; the write in progress was rolled back"
    )
    posts, fts, check = counts(db)
    assert check == "ok" and posts == 0 and fts == 0
    monkeypatch.undo()
    monkeypatch.chdir(db.parent)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("LANG_ENGINE", "fasttext")
    code, err = tgmon("import", export)
    assert code == 0, err
    assert counts(db) == (150, 150, "ok")
    assert tgmon("import", export)[0] == 0 and counts(db) == (150, 150, "ok")  # nothing twice
