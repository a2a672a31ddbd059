"""The Prometheus endpoint: off by default, fed by the collector, the delivery and a database poll."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from telethon import errors

from collectors.collector import Collector
from collectors.refs import parse_channel_ref
from collectors.source import TelethonSource
from core.health import HealthRecorder, iso
from core.metrics import Metrics, serve_metrics, start_endpoint
from core.pipeline import Pipeline
from core.settings import load_settings
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import AlertRecord, SubscriptionStore
from tests.fakes.telethon_client import FakeTelegramClient
from tests.fakes.tl_builders import FIXED_DATE, make_channel, make_message

prometheus_client = pytest.importorskip("prometheus_client")

CHANNEL = 1001


@pytest.fixture
def registry() -> Any:
    return prometheus_client.CollectorRegistry()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def endpoint(metrics: Metrics, registry: Any) -> Iterator[int]:
    server = start_endpoint(0, "127.0.0.1", metrics=metrics, registry=registry)
    assert server is not None
    yield server.server_port
    threading.Thread(target=server.shutdown, daemon=True).start()  # not waiting out its 0.5 s poll


async def scrape(port: int) -> dict[str, float]:
    """The sample lines of /metrics as {'name{labels}': value}."""

    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            return str(answer.read().decode())

    text = await asyncio.to_thread(get)
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_events_show_on_the_endpoint(endpoint: int, metrics: Metrics, archive: SqliteArchive) -> None:
    await archive.upsert_channel(CHANNEL, "newsroom", "Newsroom", watched=True)
    store = SubscriptionStore(archive)
    await store.upsert_subscriber(5, 5, "en")
    now = datetime.now(UTC)
    async with archive._write() as db:
        await db.execute(
            "INSERT INTO meta (key, value) VALUES ('channel_ok:1001', ?)", (iso(now - timedelta(seconds=90)),)
        )

    metrics.posts_ingested("newsroom", 7)
    metrics.flood_wait("newsroom", 30)
    metrics.delivered("alert", 2, [1.5, 3.0])
    metrics.delivered("notice", 1)  # not an alert
    metrics.delivery_failed("alert", 1)
    await metrics.poll(archive, now)  # the first poll marks where counting queued alerts starts
    await store.enqueue(5, 5, "notice", {"text": "hi"})
    for story in ("1:1", "1:2"):
        record = AlertRecord(5, 5, CHANNEL, 1, story, (), {}, alert=True, stored_at=time.time())
        await store.record_alerts([record])
    await metrics.poll(archive, now)

    samples = await scrape(endpoint)
    assert samples['tgmon_posts_ingested_total{channel="newsroom"}'] == 7
    assert samples['tgmon_flood_wait_seconds_total{channel="newsroom"}'] == 30
    assert samples['tgmon_channel_lag_seconds{channel="newsroom"}'] == pytest.approx(90, abs=1)
    assert samples["tgmon_alerts_queued_total"] == 2
    assert samples["tgmon_alerts_sent_total"] == 2
    assert samples["tgmon_alerts_failed_total"] == 1
    assert samples["tgmon_outbox_pending"] == 3
    assert samples["tgmon_delivery_latency_seconds_count"] == 2
    assert samples["tgmon_delivery_latency_seconds_sum"] == 4.5
    assert samples['tgmon_delivery_latency_seconds_bucket{le="2.5"}'] == 1


async def test_the_collector_feeds_posts_and_flood_waits(
    endpoint: int, metrics: Metrics, archive: SqliteArchive, pipeline: Pipeline
) -> None:
    client = FakeTelegramClient()
    client.add_channel(
        make_channel(CHANNEL, "newsroom", "Newsroom"),
        [make_message(CHANNEL, i, f"post {i}", date=FIXED_DATE + timedelta(minutes=i)) for i in range(1, 31)],
    )
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) >= 2:
            raise _Stop

    collector = Collector(
        archive, TelethonSource(client), pipeline, sleep=sleep, observer=HealthRecorder(archive, metrics)
    )
    await collector.add_channel(parse_channel_ref("@newsroom"), backfill=12)
    client.faults[CHANNEL] = [errors.FloodWaitError(request=None, capture=45)]
    with pytest.raises(_Stop):
        await collector.run_channel(CHANNEL)
    assert slept[:2] == [45, 60.0]
    samples = await scrape(endpoint)
    assert samples['tgmon_posts_ingested_total{channel="newsroom"}'] == 12
    assert samples['tgmon_flood_wait_seconds_total{channel="newsroom"}'] == 45


async def test_delivery_feeds_sent_failed_and_latency(
    endpoint: int, metrics: Metrics, archive: SqliteArchive, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.delivery import Deliverer, Limits
    from tests.fakes.botapi import FakeBotAPI

    monkeypatch.setattr("bot.delivery.METRICS", metrics)
    await archive.upsert_channel(CHANNEL, "newsroom", "Newsroom")
    store = SubscriptionStore(archive)
    for chat in (1, 2):
        await store.upsert_subscriber(chat, chat, "en")
        payload = {"channel": "@newsroom", "channel_title": "Newsroom", "url": "https://t.me/newsroom/1",
                   "date": datetime.now(UTC).isoformat(), "lang": "en", "queries": ["x"], "snippet": "x",
                   "spans": [], "edited": False, "also_in": []}  # fmt: skip
        record = AlertRecord(chat, chat, CHANNEL, 1, f"1:{chat}", (), payload, True, time.time() - 2)
        await store.record_alerts([record])
    async with FakeBotAPI(poll_wait=0.1) as server:
        server.fail("sendMessage", status=400, description="Bad Request: message is odd", times=1)
        bot = server.make_bot(timeout=2)
        try:
            deliverer = Deliverer(bot, store, limits=Limits(fold_window=0.0))
            assert await deliverer.dispatch_round() == 2  # one round: each chat's message tried once
            await asyncio.gather(*deliverer._tasks)
        finally:
            await bot.session.close()
    assert await store.outbox_counts() == {"sent": 1, "failed": 1}
    samples = await scrape(endpoint)
    assert samples["tgmon_alerts_sent_total"] == 1 and samples["tgmon_alerts_failed_total"] == 1
    assert samples["tgmon_delivery_latency_seconds_count"] == 1
    assert 2 <= samples["tgmon_delivery_latency_seconds_sum"] < 10


async def test_nothing_starts_without_metrics_port(archive: SqliteArchive, metrics: Metrics) -> None:
    threads = {t.name for t in threading.enumerate()}
    async with serve_metrics(load_settings(metrics_port=None), archive, metrics=metrics) as server:
        assert server is None
        assert not metrics.enabled
        metrics.posts_ingested("newsroom", 3)  # a no-op, not an error
    assert {t.name for t in threading.enumerate()} == threads


async def test_serve_metrics_starts_polls_and_stops(
    archive: SqliteArchive, metrics: Metrics, registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prometheus_client, "REGISTRY", registry)  # keep the process's registry clean
    await archive.upsert_channel(CHANNEL, "newsroom", "Newsroom", watched=True)
    port = free_port()
    settings = load_settings(metrics_port=port)
    assert settings.metrics_addr == "127.0.0.1"
    async with serve_metrics(settings, archive, metrics=metrics, every=0.01) as server:
        assert server is not None and server.server_port == port
        for _ in range(100):
            samples = await scrape(port)
            if 'tgmon_channel_lag_seconds{channel="newsroom"}' in samples:
                break
            await asyncio.sleep(0.01)
        assert "tgmon_outbox_pending" in samples
        assert 'tgmon_channel_lag_seconds{channel="newsroom"}' in samples
    with pytest.raises(OSError):
        await scrape(port)


async def test_a_missing_package_or_a_taken_port_is_logged_not_raised(
    archive: SqliteArchive, metrics: Metrics, registry: Any, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    settings = load_settings(metrics_port=free_port())
    with monkeypatch.context() as patch, caplog.at_level(logging.ERROR, "tgmon.metrics"):
        patch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
        async with serve_metrics(settings, archive, metrics=metrics) as server:
            assert server is None
    assert "prometheus_client is not installed" in caplog.text and not metrics.enabled

    with socket.socket() as taken, caplog.at_level(logging.ERROR, "tgmon.metrics"):
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert start_endpoint(taken.getsockname()[1], metrics=metrics, registry=registry) is None
    assert "cannot serve on 127.0.0.1" in caplog.text


class _Stop(Exception):
    pass
