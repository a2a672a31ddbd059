"""Delivery through the real aiogram HTTP session against the fake Bot API: limits, faults, folding."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from aiogram import Bot

from bot.delivery import Deliverer, Limits, in_quiet_hours
from core.storage.subscriptions import AlertRecord, SubscriptionStore
from core.subscriptions import Subscriber
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.clock import FakeClock
from tests.fakes.outbox import queue

NOW = datetime.now(UTC)


@pytest.fixture
async def bots() -> AsyncIterator[list[Bot]]:
    made: list[Bot] = []
    yield made
    for bot in made:
        await bot.session.close()


def deliverer(server: FakeBotAPI, store: SubscriptionStore, bots: list[Bot], **limits: float) -> Deliverer:
    bot = server.make_bot(timeout=2)
    bots.append(bot)
    return Deliverer(bot, store, limits=Limits(**({"fold_window": 0.0} | limits)))


async def test_alert_is_sent_as_html_with_highlight(
    server: FakeBotAPI, store: SubscriptionStore, bots: list[Bot]
) -> None:
    await queue(store, 42, "1:1")
    await deliverer(server, store, bots).drain(within=5)
    (call,) = server.sent("sendMessage", chat_id=42)
    assert call.params["parse_mode"] == "HTML" and "<b>Protest</b> in Almaty" in call.text
    assert await store.outbox_counts() == {"sent": 1}


async def test_429_retry_after_is_obeyed(
    server: FakeBotAPI, store: SubscriptionStore, bots: list[Bot]
) -> None:
    await queue(store, 42, "1:1")
    server.fail("sendMessage", status=429, retry_after=3)
    await deliverer(server, store, bots).drain(within=10)
    attempts = [c for c in server.calls if c.method.lower() == "sendmessage"]
    assert [c.status for c in attempts] == [429, 200]
    assert 3.0 <= attempts[1].at - attempts[0].at < 6  # obeyed, and not doubled
    assert await store.outbox_counts() == {"sent": 1}


async def test_403_deactivates_and_the_others_still_get_theirs(
    server: FakeBotAPI, store: SubscriptionStore, bots: list[Bot]
) -> None:
    for chat in (1, 2, 3):
        await queue(store, chat, "1:1")
    await queue(store, 2, "1:2", "Second story")
    server.block(2)
    await deliverer(server, store, bots).drain(within=5)
    assert sorted(c.chat_id for c in server.sent("sendMessage")) == [1, 3]
    blocked = await store.get_subscriber(2)
    assert blocked is not None and not blocked.active and "blocked" in (blocked.inactive_reason or "")
    assert await store.outbox_counts() == {"sent": 2, "dropped": 2}


async def test_5xx_timeouts_and_resets_are_retried_with_backoff(
    server: FakeBotAPI, store: SubscriptionStore, bots: list[Bot]
) -> None:
    await queue(store, 7, "1:1")
    server.fail("sendMessage", status=500, times=1)
    server.reset_connection("sendMessage", times=1)
    await deliverer(server, store, bots, retry_base=0.2).drain(within=10)
    assert len(server.sent("sendMessage", chat_id=7)) == 1
    assert await store.outbox_counts() == {"sent": 1}


async def test_rejected_markup_falls_back_to_plain_text(
    server: FakeBotAPI, store: SubscriptionStore, bots: list[Bot]
) -> None:
    await queue(store, 9, "1:1")
    server.fail("sendMessage", status=400, description="Bad Request: can't parse entities: nope")
    await deliverer(server, store, bots).drain(within=5)
    (call,) = server.sent("sendMessage", chat_id=9)
    assert "parse_mode" not in call.params and "Protest in Almaty" in call.text


async def test_a_burst_folds_into_one_message(
    server: FakeBotAPI, store: SubscriptionStore, bots: list[Bot]
) -> None:
    for n in range(6):
        await queue(store, 5, f"1:{n}", f"Protest number {n}")
    await deliverer(server, store, bots).drain(within=5)
    (call,) = server.sent("sendMessage", chat_id=5)
    assert "6 new matches" in call.text and call.text.count("Protest") == 6


async def test_fan_out_stays_inside_telegram_limits(
    server: FakeBotAPI, store: SubscriptionStore, bots: list[Bot]
) -> None:
    server.enforce_limits = True
    for chat in range(100, 220):
        await queue(store, chat, "1:1")
    await deliverer(server, store, bots, chat_interval=1.0).drain(within=30)
    report = server.rate_violations(global_per_s=30, per_chat_per_s=1)
    assert server.too_many == 0 and report.ok, report
    assert len(server.sent("sendMessage")) == 120  # how close to 30/s it gets: bench/delivery.py


def test_quiet_hours_across_midnight() -> None:
    night = Subscriber(1, 1, quiet_start=23 * 60, quiet_end=7 * 60, timezone="Asia/Almaty")
    at = datetime(2026, 1, 10, 20, 30, tzinfo=UTC)  # 01:30 in Almaty (UTC+5)
    assert in_quiet_hours(night, at) == datetime(2026, 1, 11, 2, 0, tzinfo=UTC)  # 07:00 local
    assert in_quiet_hours(night, datetime(2026, 1, 10, 10, 0, tzinfo=UTC)) is None


async def test_quiet_hours_hold_alerts(server: FakeBotAPI, store: SubscriptionStore, bots: list[Bot]) -> None:
    await queue(store, 8, "1:1")
    local = NOW.astimezone().replace(tzinfo=None)
    minute = local.hour * 60 + local.minute
    await store.update_subscriber(8, quiet_start=(minute - 60) % 1440, quiet_end=(minute + 60) % 1440,
                                  timezone="UTC")  # fmt: skip
    subscriber = await store.get_subscriber(8)
    assert subscriber is not None
    until = in_quiet_hours(subscriber, datetime.now(UTC))
    if until is None:  # the local clock is not UTC: the window above is shifted, nothing to hold
        pytest.skip("machine time zone is not UTC")
    await deliverer(server, store, bots).drain(within=0.5)
    assert server.sent("sendMessage") == []
    (held,) = await store.due(until + timedelta(seconds=1))
    assert held.payload["snippet"] == "Protest in Almaty"


async def test_a_long_burst_keeps_one_message_per_chat_per_second(
    server: FakeBotAPI, store: SubscriptionStore, bots: list[Bot]
) -> None:
    server.enforce_limits = True
    for n in range(25):
        await queue(store, 6, f"1:{n}", f"Protest number {n}")
    await deliverer(server, store, bots).drain(within=10)
    calls = server.sent("sendMessage", chat_id=6)
    assert [c.text.count(" number ") for c in calls] == [10, 10, 5]
    assert server.too_many == 0 and server.rate_violations().ok


def test_an_empty_quiet_window_is_not_the_whole_day() -> None:
    same = Subscriber(1, 1, quiet_start=600, quiet_end=600)
    assert in_quiet_hours(same, datetime(2026, 1, 10, 10, 0, tzinfo=UTC)) is None


async def test_an_unforeseen_error_is_retried_then_given_up(
    server: FakeBotAPI, store: SubscriptionStore, bots: list[Bot]
) -> None:
    await queue(store, 4, "1:1")
    server.fail("sendMessage", status=401, description="Unauthorized", times=None)
    sender = deliverer(server, store, bots, retry_base=0.01, max_attempts=3)
    await sender.drain(within=15)
    assert await store.outbox_counts() == {"failed": 1}
    assert len([c for c in server.calls if c.method.lower() == "sendmessage"]) == 3


async def test_one_chats_backlog_does_not_hold_up_the_others(
    server: FakeBotAPI, store: SubscriptionStore, bots: list[Bot]
) -> None:
    """Chats are picked before their items are read: 600 alerts queued first for one chat leave room
    for the chat queued after them, and the long queue still folds into full messages."""
    await store.upsert_subscriber(7, 7, "en")
    payload = {"channel": "@kz_news", "channel_title": "KZ News", "url": "https://t.me/kz_news/1",
               "date": NOW.isoformat(), "lang": "en", "queries": ["protest"], "snippet": "Protest",
               "spans": [[0, 7]], "edited": False, "also_in": []}  # fmt: skip
    backlog = [AlertRecord(7, 7, 1, n, f"1:{n}", (), payload, True, time.time()) for n in range(600)]
    await store.record_alerts(backlog)
    await queue(store, 8, "2:1")
    soon = datetime.now(UTC) + timedelta(minutes=1)  # NOW is when the module was collected
    assert await store.due_chats(soon) == [7, 8]
    firsts = await store.due_in(soon, [7, 8], per_chat=10)
    assert [i.chat_id for i in firsts] == [7] * 10 + [8]
    sender = deliverer(server, store, bots)
    assert await sender.dispatch_round() == 2
    await sender.drain(within=1)
    assert len(server.sent("sendMessage", chat_id=8)) == 1
    assert "10 new matches" in server.sent("sendMessage", chat_id=7)[0].text


async def test_sends_are_evenly_spaced_and_lateness_does_not_add_up(
    server: FakeBotAPI, store: SubscriptionStore, bots: list[Bot], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()

    async def late_sleep(seconds: float) -> None:  # every wake-up comes 3 ms late
        clock.advance(seconds + 0.003)

    monkeypatch.setattr("bot.delivery.asyncio.sleep", late_sleep)
    sender = Deliverer(server.make_bot(), store, limits=Limits(per_second=28), clock=clock.monotonic)
    bots.append(sender.bot)
    starts = []
    for _ in range(85):
        await sender._slot()
        starts.append(clock.monotonic())
    gaps = [b - a for a, b in pairwise(starts)]
    assert max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts) <= 28
    # spread over the second, not bunched at its start: jitter on the way would bunch them tighter still
    assert max(sum(1 for t in starts if s <= t < s + 0.5) for s in starts) <= 15
    assert min(gaps) >= 0.5 / 28
    assert starts[-1] - starts[0] < 84 / 28 + 0.01  # the 3 ms late wake-ups do not add up
    clock.advance(5.0)  # a stalled loop earns no burst
    await sender._slot()
    stalled = clock.monotonic()
    await sender._slot()
    assert clock.monotonic() - stalled >= 0.5 / 28


async def test_a_send_not_yet_answered_still_counts_against_the_second(
    server: FakeBotAPI, store: SubscriptionStore, bots: list[Bot], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram counts a send when it arrives, up to its answer: 29 unanswered sends hold the 30th
    until a second after they are answered, however slowly they were started."""
    clock = FakeClock()
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await real_sleep(0)

    monkeypatch.setattr("bot.delivery.asyncio.sleep", sleep)
    limits = Limits(per_second=100, in_any_second=29)
    sender = Deliverer(server.make_bot(), store, limits=limits, clock=clock.monotonic)
    bots.append(sender.bot)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(29):
            await stack.enter_async_context(sender._sending())
            clock.advance(0.5)  # slowly started: the per-second pacing alone would let the next go
        waiting = asyncio.create_task(sender._slot())
        for _ in range(100):
            await real_sleep(0)
        assert not waiting.done()
    answered = clock.monotonic()
    await waiting
    assert clock.monotonic() >= answered + 1.0
