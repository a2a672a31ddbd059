"""The collector-memory benchmark's own machinery: the on-demand fake channels and one tiny run."""

from __future__ import annotations

import time

import pytest

from bench.collector_memory import make_client, measure
from collectors.source import TelethonSource

TEXTS = ["Protest in Almaty near the akimat today", "Курс тенге снова упал к доллару"]


async def test_channels_built_on_demand_serve_history_and_deletions() -> None:
    now = time.time()
    client, feeds = make_client(2, hours=72, rate=0.5, texts=TEXTS, now=now)
    feed = feeds[0]
    source = TelethonSource(client)
    newest = [raw async for raw in source.history(feed.channel_id, limit=3)]
    assert [r.message_id for r in newest] == [feed.top, feed.top - 1, feed.top - 2]
    assert newest[0].text in TEXTS and newest[0].date.timestamp() == pytest.approx(now - 3600, abs=1)
    assert newest[0].text is not TEXTS[TEXTS.index(newest[0].text)]  # its own copy, as Telethon's
    feed.deleted.add(feed.top)
    found = await source.fetch(feed.channel_id, [feed.top, feed.top - 1])
    assert found[feed.top] is None and found[feed.top - 1] is not None
    above = [raw async for raw in source.history(feed.channel_id, min_id=feed.top - 3, reverse=True)]
    assert [r.message_id for r in above] == [feed.top - 2, feed.top - 1]


@pytest.mark.slow
async def test_a_tiny_run_stores_every_post_it_served() -> None:
    out = await measure(3, hours=12, rate=2.0, live=0.2, trace="")
    assert out["live_events"] == 6  # an hour at 2 posts/h on 3 channels: all new posts
    assert out["failures"] == 0 and out["backfilled"] > 0
    assert out["posts"] == out["backfilled"] + 6
    assert out["stories"] == out["backfilled"]  # the story index holds the whole backfilled window
    assert out["fixed_mb"] < out["steady_mb"] <= out["peak_mb"]
    assert out["cached_words"] > 0 and out["caches_mb"] > 0
