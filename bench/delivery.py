"""Delivery of a fan-out through the real aiogram session against the fake Bot API.

    python -m bench.delivery [--alerts 5000] [--chats 2000]

The fake server enforces Telegram's limits itself (30/s overall, 1/s per chat) and answers 429 when
they are broken. Baseline (same run): Telegram's 30 messages/s ceiling; the figure is messages/s sent
and how close to it we get with zero 429s, plus p50/p95 latency from stored to sent.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bot.delivery import Deliverer, Limits
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import AlertRecord, SubscriptionStore
from tests.fakes.botapi import FakeBotAPI


async def main(alerts: int, chats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        archive = await SqliteArchive.open(Path(tmp) / "bench.db")
        store = SubscriptionStore(archive)
        await archive.upsert_channel(1, "kz_news", "KZ News")
        for chat in range(chats):
            await store.upsert_subscriber(10_000 + chat, 10_000 + chat, "en")
        records = []
        for n in range(alerts):
            chat = 10_000 + n % chats
            payload = {"channel": "@kz_news", "channel_title": "KZ", "url": f"https://t.me/kz_news/{n}",
                       "date": "2026-01-01T00:00:00+00:00", "snippet": f"Protest number {n} in Almaty",
                       "spans": [[0, 7]], "queries": ["protest"], "edited": False, "also_in": []}  # fmt: skip
            records.append(AlertRecord(chat, chat, 1, 1, f"1:{n}", (), payload, True, time.time()))
        await store.record_alerts(records)
        async with FakeBotAPI(poll_wait=0.1) as server:
            server.enforce_limits = True
            bot = server.make_bot(timeout=10)
            deliverer = Deliverer(bot, store, limits=Limits(fold_window=0.0))
            started = time.monotonic()
            await deliverer.drain(within=3600)
            elapsed = time.monotonic() - started
            await bot.session.close()
            sent = server.sent("sendMessage")
            report = server.rate_violations()
        latencies = sorted(await store.latencies())
        await archive.close()
    rate = len(sent) / elapsed
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"{alerts} alerts to {chats} chats: {len(sent)} messages (bursts folded) in {elapsed:.1f} s")
    print(f"{'measure':<34}{'tgmon':>12}{'baseline':>12}{'ratio':>8}")
    print(f"{'messages/s vs Telegram 30/s':<34}{rate:>12.1f}{30:>12}{rate / 30:>8.2f}")
    print(f"{'429 answers':<34}{server.too_many:>12}{0:>12}")
    print(f"{'max sends in any 1 s':<34}{report.max_global_in_1s:>12}{30:>12}")
    print(f"{'max sends to one chat in 1 s':<34}{report.max_per_chat_in_1s:>12}{1:>12}")
    print(f"latency stored→sent: p50 {p50:.1f} s, p95 {p95:.1f} s (all alerts queued at once)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--chats", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.alerts, args.chats))
