"""Collector health: the heartbeat and channel marks the collector writes, and the monitor's alerts."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from telethon import errors

from collectors.collector import Collector
from collectors.refs import parse_channel_ref
from collectors.source import TelethonSource
from core.health import (
    HEARTBEAT,
    STATE,
    HealthMonitor,
    HealthRecorder,
    beat,
    channel_lags,
    iso,
    parse_iso,
)
from core.models import ChannelStatus
from core.pipeline import Pipeline
from core.settings import load_settings
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import SubscriptionStore
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.telethon_client import FakeTelegramClient
from tests.fakes.tl_builders import FIXED_DATE, make_channel, make_message

CHANNEL = 1001
T = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ADMIN, OPERATOR, ANALYST, NO_ROW = 10, 20, 30, 40


async def meta(archive: SqliteArchive, key: str) -> str | None:
    row = await archive._one("SELECT value FROM meta WHERE key = ?", (key,))
    return None if row is None else str(row[0])


async def set_meta(archive: SqliteArchive, **values: str) -> None:
    async with archive._write() as db:
        await db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [(key.replace("__", ":"), value) for key, value in values.items()],
        )


async def notices(archive: SqliteArchive) -> list[tuple[int, str]]:
    found = await archive._all("SELECT chat_id, payload FROM outbox WHERE kind = 'notice' ORDER BY id")
    return [(chat, json.loads(payload)["text"]) for chat, payload in found]


@pytest.fixture
def client() -> FakeTelegramClient:
    fake = FakeTelegramClient()
    fake.add_channel(
        make_channel(CHANNEL, "newsroom", "Newsroom"),
        [make_message(CHANNEL, i, f"post {i}", date=FIXED_DATE + timedelta(minutes=i)) for i in range(1, 21)],
    )
    return fake


@pytest.fixture
async def store(archive: SqliteArchive) -> AsyncIterator[SubscriptionStore]:
    """Admin 10 (ADMIN_IDS), operator 20 and analyst 30 (roles) have sent /start; operator 40 has not."""
    store = SubscriptionStore(archive)
    for user in (ADMIN, OPERATOR, ANALYST):
        await store.upsert_subscriber(user, user + 1000, "en")
    async with archive._write() as db:
        await db.executemany(
            "INSERT INTO roles (user_id, role, granted_at) VALUES (?, ?, 0)",
            [(OPERATOR, "operator"), (ANALYST, "analyst"), (NO_ROW, "operator")],
        )
    yield store


def monitor(archive: SqliteArchive, store: SubscriptionStore) -> HealthMonitor:
    return HealthMonitor(
        archive,
        store,
        admin_ids=[ADMIN],
        max_lag=timedelta(minutes=15),
        heartbeat_timeout=timedelta(minutes=5),
        channel_failures=3,
        clock=lambda: T,
    )


async def watched_channel(archive: SqliteArchive, **status: object) -> None:
    await archive.upsert_channel(CHANNEL, "newsroom", "Newsroom", watched=True)
    if status:
        await archive.set_channel_status(CHANNEL, **status)  # type: ignore[arg-type]


# the collector's side


async def test_a_collector_round_writes_the_heartbeat_and_the_channel_mark(
    archive: SqliteArchive, pipeline: Pipeline, client: FakeTelegramClient
) -> None:
    collector = Collector(
        archive, TelethonSource(client), pipeline, poll_interval=0.01, observer=HealthRecorder(archive)
    )
    await collector.add_channel(parse_channel_ref("@newsroom"), backfill=5)
    before = datetime.now(UTC).replace(microsecond=0)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    for _ in range(300):
        await asyncio.sleep(0.01)
        if await meta(archive, HEARTBEAT) and await meta(archive, f"channel_ok:{CHANNEL}"):
            break
    stop.set()
    await asyncio.wait_for(task, 5)
    heartbeat = parse_iso(await meta(archive, HEARTBEAT))
    started = parse_iso(await meta(archive, "collector_started"))
    read = parse_iso(await meta(archive, f"channel_ok:{CHANNEL}"))
    assert heartbeat is not None and started is not None and read is not None
    assert before <= started <= heartbeat <= datetime.now(UTC)
    assert before <= read <= datetime.now(UTC)
    lags = await channel_lags(archive, datetime.now(UTC))
    assert list(lags) == [CHANNEL] and lags[CHANNEL] < 5


async def test_failed_rounds_are_counted_in_a_row_and_reset_by_a_good_one(
    archive: SqliteArchive, pipeline: Pipeline, client: FakeTelegramClient
) -> None:
    now = [T]

    async def sleep(seconds: float) -> None:
        failures.append(await meta(archive, f"channel_failures:{CHANNEL}"))
        now[0] += timedelta(seconds=seconds)
        if len(failures) >= 3:  # raised inside the round's try: the retry's sleep raises it again
            raise _Stop

    failures: list[str | None] = []
    collector = Collector(
        archive, TelethonSource(client), pipeline, sleep=sleep, clock=lambda: now[0],
        observer=HealthRecorder(archive),
    )  # fmt: skip
    await collector.add_channel(parse_channel_ref("@newsroom"))
    client.faults[CHANNEL] = [
        errors.RPCError(request=None, message="INTERNAL_SERVER_ERROR", code=500),
        errors.FloodWaitError(request=None, capture=60),
    ]
    with pytest.raises(_Stop):
        await collector.run_channel(CHANNEL)
    assert failures[:3] == ["1", "2", None]  # error, flood wait, then a good round clears the count
    assert await meta(archive, f"channel_ok:{CHANNEL}") == iso(T + timedelta(seconds=65))


async def test_beat_writes_iso_utc(archive: SqliteArchive) -> None:
    await beat(archive, T)
    assert await meta(archive, HEARTBEAT) == "2025-03-01T12:00:00+00:00"


# the monitor


async def test_down_alerts_each_operator_once_then_recovers_once(
    archive: SqliteArchive, store: SubscriptionStore
) -> None:
    health = monitor(archive, store)
    await beat(archive, T - timedelta(minutes=12))

    (change,) = await health.check(T)
    assert change.key == "collector_down" and change.started
    sent = await notices(archive)
    assert sorted(chat for chat, _ in sent) == [ADMIN + 1000, OPERATOR + 1000]  # not the analyst
    assert (
        "collector is down" in sent[0][1] and "12 min" in sent[0][1] and "коллектор не работает" in sent[0][1]
    )

    assert await health.check(T + timedelta(minutes=1)) == []  # still down: nothing new
    assert await health.check(T + timedelta(minutes=30)) == []
    assert len(await notices(archive)) == 2

    await beat(archive, T + timedelta(minutes=31))
    (change,) = await health.check(T + timedelta(minutes=31))
    assert change.key == "collector_down" and not change.started
    sent = await notices(archive)
    assert len(sent) == 4 and sorted(chat for chat, _ in sent[2:]) == [ADMIN + 1000, OPERATOR + 1000]
    assert "running again" in sent[2][1] and "43 min" in sent[2][1] and "снова работает" in sent[2][1]
    assert await health.check(T + timedelta(minutes=32)) == []
    assert json.loads(await meta(archive, STATE) or "") == {}


async def test_a_restarted_monitor_does_not_alert_again(
    archive: SqliteArchive, store: SubscriptionStore
) -> None:
    assert len(await monitor(archive, store).check(T)) == 1  # no heartbeat at all
    assert "never" in (await notices(archive))[0][1]
    assert await monitor(archive, store).check(T + timedelta(minutes=5)) == []  # a new instance
    assert len(await notices(archive)) == 2


async def test_a_channel_behind_alerts_once_and_when_caught_up(
    archive: SqliteArchive, store: SubscriptionStore
) -> None:
    await watched_channel(archive)
    health = monitor(archive, store)
    await beat(archive, T)
    await set_meta(archive, collector_started=iso(T - timedelta(hours=2)))
    await set_meta(archive, channel_ok__1001=iso(T - timedelta(minutes=14)))
    assert await health.check(T) == []  # within MAX_LAG

    await set_meta(archive, channel_ok__1001=iso(T - timedelta(minutes=20)))
    (change,) = await health.check(T)
    assert change.key == f"channel_behind:{CHANNEL}" and change.started
    assert "@newsroom is behind" in change.text and "20 min" in change.text and "отстаёт" in change.text
    assert len(await notices(archive)) == 2
    assert await health.check(T + timedelta(minutes=1)) == []

    await set_meta(archive, channel_ok__1001=iso(T + timedelta(minutes=2)))
    (change,) = await health.check(T + timedelta(minutes=2))
    assert not change.started and "@newsroom has caught up" in change.text
    assert len(await notices(archive)) == 4


async def test_lag_counts_from_the_collector_start_and_skips_backfills(
    archive: SqliteArchive, store: SubscriptionStore
) -> None:
    await watched_channel(archive)
    await beat(archive, T)
    await set_meta(archive, channel_ok__1001=iso(T - timedelta(hours=3)))
    await set_meta(archive, collector_started=iso(T - timedelta(minutes=2)))  # restarted just now
    assert await monitor(archive, store).check(T) == []
    assert (await channel_lags(archive, T))[CHANNEL] == 120

    await set_meta(archive, collector_started=iso(T - timedelta(hours=3)))
    async with archive._write() as db:
        await db.execute("UPDATE channels SET backfill_active = 1 WHERE id = ?", (CHANNEL,))
    assert await monitor(archive, store).check(T) == []  # a long backfill is not "behind"


async def test_repeated_failures_alert_once_and_recover(
    archive: SqliteArchive, store: SubscriptionStore
) -> None:
    await watched_channel(archive, status=ChannelStatus.FLOOD_WAIT, error="A wait of 900 seconds")
    health = monitor(archive, store)
    recorder = HealthRecorder(archive)
    await beat(archive, T)
    await set_meta(archive, collector_started=iso(T - timedelta(hours=1)))
    await recorder.channel_read(CHANNEL, T - timedelta(minutes=40), 0)
    for _ in range(2):
        await recorder.channel_failed(CHANNEL, T, "A wait of 900 seconds", flood_wait=900)
    (change,) = await health.check(T)  # two failures: not yet failing, but 40 minutes behind
    assert change.key == f"channel_behind:{CHANNEL}"

    await recorder.channel_failed(CHANNEL, T, "A wait of 900 seconds", flood_wait=900)
    (change,) = await health.check(T)  # failing; its lag is not told apart (nor "caught up")
    assert change.key == f"channel_failing:{CHANNEL}" and change.started
    assert "@newsroom is failing" in change.text and "3 failed rounds" in change.text
    assert "A wait of 900 seconds" in change.text and "не читается" in change.text
    assert await health.check(T + timedelta(minutes=1)) == []

    await archive.set_channel_status(CHANNEL, ChannelStatus.ACTIVE)
    await recorder.channel_read(CHANNEL, T + timedelta(minutes=2), 3)
    changes = await health.check(T + timedelta(minutes=2))
    assert {(c.key, c.started) for c in changes} == {
        (f"channel_failing:{CHANNEL}", False),
        (f"channel_behind:{CHANNEL}", False),
    }
    sent = await notices(archive)
    assert len(sent) == 6  # behind, failing, and one message with both recoveries, to two operators
    assert "read normally again" in sent[-1][1] and "caught up" in sent[-1][1]


async def test_a_channel_in_error_is_failing(archive: SqliteArchive, store: SubscriptionStore) -> None:
    await watched_channel(archive, status=ChannelStatus.ERROR, error="the channel is private")
    await beat(archive, T)
    (change,) = await monitor(archive, store).check(T)
    assert change.key == f"channel_failing:{CHANNEL}" and "the channel is private" in change.text
    await archive.unwatch_channel(CHANNEL)  # the operator gave up on it: no "recovered" message
    assert await monitor(archive, store).check(T) == []
    assert json.loads(await meta(archive, STATE) or "") == {}


async def test_channels_are_not_judged_while_the_collector_is_down(
    archive: SqliteArchive, store: SubscriptionStore
) -> None:
    await watched_channel(archive)
    health = monitor(archive, store)
    await beat(archive, T)
    await set_meta(archive, collector_started=iso(T - timedelta(hours=1)))
    await set_meta(archive, channel_ok__1001=iso(T - timedelta(minutes=30)))
    assert [c.key for c in await health.check(T)] == [f"channel_behind:{CHANNEL}"]

    later = T + timedelta(minutes=20)
    await set_meta(archive, channel_ok__1001=iso(later))  # caught up, but the heartbeat is stale
    assert [(c.key, c.started) for c in await health.check(later)] == [("collector_down", True)]

    await beat(archive, later)
    changes = await health.check(later)
    assert {(c.key, c.started) for c in changes} == {
        ("collector_down", False),
        (f"channel_behind:{CHANNEL}", False),
    }


async def test_operators_without_a_subscriber_row_are_skipped(
    archive: SqliteArchive, store: SubscriptionStore, caplog: pytest.LogCaptureFixture
) -> None:
    await store.deactivate(OPERATOR, "Forbidden: bot was blocked by the user")
    health = monitor(archive, store)
    assert await health.operators() == [ADMIN, OPERATOR, NO_ROW]
    with caplog.at_level(logging.WARNING, "tgmon.health"):
        await health.check(T)
    assert [chat for chat, _ in await notices(archive)] == [ADMIN + 1000]
    assert f"health_notice_skipped user={NO_ROW} reason=no subscriber row" in caplog.text
    assert f"health_notice_skipped user={OPERATOR} reason=inactive" in caplog.text


async def test_from_settings_and_run(archive: SqliteArchive, store: SubscriptionStore) -> None:
    settings = load_settings(
        admin_ids=[ADMIN],
        max_lag_minutes=30,
        heartbeat_timeout_minutes=1,
        channel_failures=5,
        poll_interval=300,
    )
    health = HealthMonitor.from_settings(archive, store, settings)
    assert health.admin_ids == (ADMIN,) and health.max_lag == timedelta(minutes=30)
    assert health.heartbeat_timeout == timedelta(minutes=10)  # never under two POLL_INTERVALs
    assert health.channel_failures == 5

    stop = asyncio.Event()
    task = asyncio.create_task(health.run(stop, every=0.01))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if await notices(archive):
            break
    stop.set()
    await asyncio.wait_for(task, 2)
    assert len(await notices(archive)) == 2  # checked repeatedly, told once (admin and operator)


async def test_the_bot_delivers_the_notice(archive: SqliteArchive, store: SubscriptionStore) -> None:
    from bot.delivery import Deliverer, Limits

    await watched_channel(archive, status=ChannelStatus.ERROR, error="<b>odd</b> & broken")
    await beat(archive, T)
    await monitor(archive, store).check(T)
    async with FakeBotAPI(poll_wait=0.1) as server:
        bot = server.make_bot(timeout=2)
        try:
            await Deliverer(bot, store, limits=Limits(fold_window=0.0)).drain(within=5)
        finally:
            await bot.session.close()
    calls = server.sent("sendMessage")
    assert sorted(c.chat_id for c in calls) == [ADMIN + 1000, OPERATOR + 1000]
    text = calls[0].text or ""
    assert "tgmon: @newsroom is failing" in text and "&lt;b&gt;odd&lt;/b&gt; &amp; broken" in text
    assert await store.outbox_counts() == {"sent": 2}


class _Stop(Exception):
    pass
