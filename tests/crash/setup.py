"""Databases the crash tests start from: subscribers with queries, channels waiting for a backfill."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collectors.collector import Collector
from collectors.refs import ChannelRef
from collectors.source import TelethonSource
from core.pipeline import Pipeline
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import AlertRecord, SubscriptionStore
from tests.crash.telegram import Spec, build_client
from tests.fakes.memory import FixedDetector

# (subscriber, languages, queries): words of the template channels (shared exports, else fixtures) and
# of the edits the tests make, so that new posts and edited ones both alert
SUBSCRIPTIONS: tuple[tuple[int, tuple[str, ...], tuple[str, ...]], ...] = (
    (7001, (), ("Украина OR Україна", "UPDATE")),
    (7002, ("ru",), ("Путин", "мир")),
    (7003, (), ("Allah", "图书")),
    (7004, (), ("EDITED", "Привет")),
    (7005, ("en", "zh"), ("Salaf* OR 书",)),
)
WORDS = ("Украина", "Путин", "Allah", "图书", "UPDATE", "EDITED", "мир", "Salaf")


async def _subscribe(database: Path) -> None:
    archive = await SqliteArchive.open(database)
    try:
        store = SubscriptionStore(archive)
        for subscriber, langs, queries in SUBSCRIPTIONS:
            await store.upsert_subscriber(subscriber, subscriber, "en")
            if langs:
                await store.update_subscriber(subscriber, langs=langs)
            for text in queries:
                await store.add_query(subscriber, text)
    finally:
        await archive.close()


def subscribe(database: Path) -> None:
    database.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(_subscribe(database))


async def _watch(database: Path, spec: Spec) -> None:
    """Every channel of the spec watched with a pending backfill: all of it, the newest part, or since a
    date, so the three ways a backfill ends are all crossed by kills."""
    archive = await SqliteArchive.open(database)
    try:
        collector = Collector(archive, TelethonSource(build_client(spec)), Pipeline(archive, FixedDetector()))
        since = datetime.fromtimestamp(spec.start, UTC) + timedelta(hours=2)
        for n, channel_id in enumerate(spec.channel_ids()):
            ref = ChannelRef(username=spec.username(channel_id))
            if n % 3 == 0:
                await collector.add_channel(ref, backfill=spec.posts + 50)
            elif n % 3 == 1:
                await collector.add_channel(ref, backfill=spec.posts - spec.posts // 7)
            else:
                await collector.add_channel(ref, since=since)
    finally:
        await archive.close()


def watch(database: Path, spec: Spec) -> None:
    database.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(_watch(database, spec))


async def fan_out(database: Path, chats: int, per_chat: int) -> None:
    """`chats * per_chat` alerts queued, each with a word `crash<n>x` (and the story `story-<n>`) that
    tells it apart in what is sent."""
    database.parent.mkdir(parents=True, exist_ok=True)
    archive = await SqliteArchive.open(database)
    try:
        store = SubscriptionStore(archive)
        await archive.upsert_channel(1, "crash_news", "Crash News")
        for chat in range(chats):
            await store.upsert_subscriber(10_000 + chat, 10_000 + chat, "en")
        records = []
        for n in range(chats * per_chat):
            chat = 10_000 + n % chats
            payload = {"channel": "@crash_news", "channel_title": "Crash News",
                       "url": f"https://t.me/crash_news/{n}", "date": "2026-01-01T00:00:00+00:00",
                       "snippet": f"alert crash{n}x", "spans": [], "queries": ["crash"], "edited": False,
                       "also_in": []}  # fmt: skip
            records.append(AlertRecord(chat, chat, 1, n, f"story-{n}", (), payload, True, time.time()))
        assert await store.record_alerts(records) == len(records)
    finally:
        await archive.close()
