"""Delivery of a fan-out through the real aiogram session against the fake Bot API.

    python -m bench.delivery [--alerts 5000] [--chats 2000] [--fold-window 10]

5,000 alerts to 2,000 chats are queued at once (a story that matched many subscribers), then the
real `Deliverer` with the product's limits (28 sends/s, 1 s per chat, alerts to one chat within the
10 s fold window folded into one message) drains them. The fake server enforces Telegram's limits
itself (30/s overall, 1/s per chat) and answers 429 when they are broken.

Baseline (same run): Telegram's 30 messages/s ceiling. Figures: messages/s against it with zero 429s,
alerts/s (folding delivers several alerts per message), the most sends the server saw in any 1 s,
and p50/p95 latency from stored to sent (all alerts queued at once: latency is the queue's length).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import Figure, percentile
from bot.delivery import Deliverer, Limits
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import AlertRecord, SubscriptionStore
from tests.fakes.botapi import FakeBotAPI

SECTION = "delivery"
TELEGRAM_PER_S = 30


@dataclass
class Result:
    alerts: int
    chats: int
    messages: int
    seconds: float
    too_many: int
    max_in_1s: int
    max_chat_in_1s: int
    latencies: list[float]


async def measure(alerts: int, chats: int, fold_window: float) -> Result:
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
            records.append(AlertRecord(chat, chat, 1, n, f"1:{n}", (), payload, True, time.time()))
        await store.record_alerts(records)
        async with FakeBotAPI(poll_wait=0.1) as server:
            server.enforce_limits = True
            bot = server.make_bot(timeout=10)
            deliverer = Deliverer(bot, store, limits=Limits(fold_window=fold_window))
            started = time.monotonic()
            await deliverer.drain(within=3600)
            elapsed = time.monotonic() - started
            await bot.session.close()
            sent = server.sent("sendMessage")
            report = server.rate_violations()
        latencies = await store.latencies()
        await archive.close()
    return Result(
        len(latencies), chats, len(sent), elapsed, server.too_many, report.max_global_in_1s,
        report.max_per_chat_in_1s, latencies,
    )  # fmt: skip


def figures(r: Result) -> list[Figure]:
    setting = f"{r.alerts:,} alerts to {r.chats:,} chats in {r.messages:,} messages"
    return [
        Figure(
            SECTION, f"messages/s, 0 × 429 wanted ({setting})", r.messages / r.seconds, "msg/s",
            "Telegram's limit", TELEGRAM_PER_S, target=27.0,
        ),
        Figure(
            SECTION, "alerts/s (folded)", r.alerts / r.seconds, "alerts/s", "unfolded at Telegram's limit",
            TELEGRAM_PER_S,
        ),
        Figure(SECTION, "429 answers", r.too_many, "", target=0, higher_is_better=False),
        Figure(
            SECTION, "most sends in any 1 s", r.max_in_1s, "msg", "Telegram's limit", TELEGRAM_PER_S,
            target=TELEGRAM_PER_S, higher_is_better=False,
            note=f"most to one chat: {r.max_chat_in_1s}",
        ),
        Figure(
            SECTION, "latency stored → sent, p50 (all queued at once)", percentile(r.latencies, 50), "s",
            higher_is_better=False,
        ),
        Figure(
            SECTION, "latency stored → sent, p95", percentile(r.latencies, 95), "s", higher_is_better=False,
        ),
    ]  # fmt: skip


def run(quick: bool) -> list[Figure]:
    alerts, chats = (60, 24) if quick else (5000, 2000)
    return figures(asyncio.run(measure(alerts, chats, Limits().fold_window)))


def main() -> None:
    from bench.common import table

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--chats", type=int, default=2000)
    parser.add_argument("--fold-window", type=float, default=Limits().fold_window, help="0: no folding wait")
    args = parser.parse_args()
    result = asyncio.run(measure(args.alerts, args.chats, args.fold_window))
    r = result
    print(f"{r.alerts} alerts to {r.chats} chats: {r.messages} messages in {r.seconds:.1f} s")
    print(table(figures(result)))


if __name__ == "__main__":
    main()
