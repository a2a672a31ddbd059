"""Deliver the outbox within Telegram's limits, surviving 429s, 5xx, timeouts, blocks and restarts.

Limits: about 30 messages per second overall, one per second per chat (a group: 20 per minute).
A message is marked sent right after Telegram accepts it, so a restart repeats at most the messages
that were in flight when the process died: one per chat, `concurrency` chats at a time
(tests/test_crash.py counts them), plus any the database could not mark sent (kept in memory and
recorded when the database takes writes again).
Every fault ends: 5xx, timeouts, resets and garbled answers are retried with backoff up to
`max_attempts`, 429s are obeyed until the message is `give_up_after` old, then it is `failed` with
the reason in the outbox.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BufferedInputFile, LinkPreviewOptions

from bot.render import FOLD_MAX_ITEMS, fold_first, render_alert
from core.metrics import METRICS
from core.storage.subscriptions import SubscriptionStore
from core.subscriptions import OutboxItem, Subscriber

log = logging.getLogger("tgmon.delivery")

MAX_ATTEMPTS = 10
MAX_REASON = 300  # characters of an error kept in the outbox (a proxy's error page can be long)
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
_TAG = re.compile(r"<[^>]+>")


@dataclass
class Limits:
    per_second: int = 28  # under Telegram's ~30/s, with room for the commands' replies
    # Never more sends than this started in the last second or not yet answered. Telegram counts a send
    # when it arrives, somewhere between our start and its answer: whatever the network's jitter, none
    # of its 1-s windows then holds more than this many of ours.
    in_any_second: int = 29
    chat_interval: float = 1.0
    group_interval: float = 3.0  # 20 per minute in groups
    fold_window: float = 10.0  # after an alert, more alerts to that chat within this wait and fold
    retry_base: float = 2.0  # seconds before the first retry after a 5xx or a timeout; doubles each time
    max_attempts: int = MAX_ATTEMPTS
    give_up_after: float = 86400.0  # seconds since queued: a message still throttled (429) then is failed


@dataclass
class Stats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    blocked: int = 0
    too_many: int = 0
    latencies: list[float] = field(default_factory=list)


def in_quiet_hours(subscriber: Subscriber, now: datetime) -> datetime | None:
    """When quiet hours are on now, the moment they end (UTC); otherwise None."""
    if subscriber.quiet_start is None or subscriber.quiet_end is None:
        return None
    local = now.astimezone(ZoneInfo(subscriber.timezone))
    minute = local.hour * 60 + local.minute
    start, end = subscriber.quiet_start, subscriber.quiet_end
    if start == end:  # an empty window, not the whole day
        return None
    quiet = start <= minute < end if start < end else minute >= start or minute < end
    if not quiet:
        return None
    ends = local.replace(hour=end // 60, minute=end % 60, second=0, microsecond=0)
    if ends <= local:
        ends += timedelta(days=1)
    return ends.astimezone(UTC)


def plain(text: str) -> str:
    """The HTML message as plain text, for a second try when Telegram rejects the markup."""
    return html.unescape(_TAG.sub("", text))[:4000]


class Deliverer:
    def __init__(
        self,
        bot: Bot,
        store: SubscriptionStore,
        *,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        concurrency: int = 8,
        ahead: int = 64,
    ) -> None:
        self.bot = bot
        self.store = store
        self.limits = limits or Limits()
        self.clock = clock
        self.wall = wall
        self.stats = Stats()
        self._slots = asyncio.Semaphore(concurrency)
        self.ahead = ahead  # chats started ahead of their send slot: about two seconds of sends
        self._next_global = 0.0
        self._window: deque[float] = deque()
        self._answered: deque[float] = deque()  # when the sends of the last second were answered
        self._in_flight = 0
        self._chat_ready: dict[int, float] = {}
        self._busy: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._unrecorded: dict[int, float] = {}  # outbox id → sent at: Telegram took it, the database did not

    def wake(self) -> None:
        """Something was queued: look now instead of at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event | None = None, *, poll: float = 0.5) -> None:
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                try:
                    started = await self.dispatch_round()
                except Exception:
                    log.exception("delivery_round_failed")
                    started = 0
                if not started:
                    self._wake.clear()
                    waiter = asyncio.ensure_future(self._wake.wait())
                    stopper = asyncio.ensure_future(stop.wait())
                    await asyncio.wait({waiter, stopper}, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    stopper.cancel()
                else:
                    await asyncio.sleep(0.01)
        finally:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self, within: float = 60.0) -> None:
        """Deliver until nothing is due (for tests and one-off runs)."""
        deadline = self.clock() + within
        while self.clock() < deadline:
            started = await self.dispatch_round()
            if not started and not self._tasks:
                if await self.store.next_due() is None:
                    return
                await asyncio.sleep(0.05)
            else:
                await asyncio.sleep(0.005)

    async def dispatch_round(self) -> int:
        """Start sends for the chats that may receive now, the longest waiting first; returns how many.

        Chats are picked before their items are read, so every due item of a picked chat is seen (and
        folded) however long the queue, and chats still cooling down never fill the round. Chats are
        started `ahead` at a time, refilled once half have gone: a few seconds of sends, not a query
        per message.
        """
        if len(self._busy) > self.ahead // 2:
            return 0
        busy_before = set(self._busy)  # a chat that finishes while we read has a stale row in `due`
        await self._record_unrecorded()
        now = self.clock()
        chats = [
            chat_id
            for chat_id in await self.store.due_chats(self.wall())
            if chat_id not in busy_before and self._chat_ready.get(chat_id, 0.0) <= now
        ][: self.ahead - len(busy_before)]
        by_chat: dict[int, list[OutboxItem]] = {}
        for item in await self.store.due_in(self.wall(), chats, per_chat=FOLD_MAX_ITEMS):
            if item.id not in self._unrecorded:  # sent; only its record is late
                by_chat.setdefault(item.chat_id, []).append(item)
        started = 0
        for chat_id, items in by_chat.items():
            if chat_id in self._busy:
                continue
            self._busy.add(chat_id)
            task = asyncio.create_task(self._deliver_chat(chat_id, items))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def _slot(self) -> None:
        """Wait for a send slot: at most `per_second` sends in flight or finished within the last second.

        Telegram counts a message when it arrives, somewhere between its start and its answer; a send
        holds its slot from start until a second after the answer, so however a stalled loop or a slow
        network bunches arrivals, no 1 s window can hold more than `per_second` of them."""
        while True:
            now = self.clock()
            window = self._window
            while window and window[0] <= now - 1.0:
                window.popleft()
            answered = self._answered
            while answered and answered[0] <= now - 1.0:
                answered.popleft()
            wait = max(self._next_global - now, 0.0)
            if len(window) >= self.limits.per_second:
                wait = max(wait, window[0] + 1.0 - now)
            if len(answered) + self._in_flight >= self.limits.in_any_second:
                wait = max(wait, answered[0] + 1.0 - now if answered else 0.01)
            if wait <= 0:
                window.append(now)
                # Evenly spaced on a schedule (bunched starts reach Telegram bunched tighter still by
                # network jitter); a late start does not delay the next, a stall earns no burst.
                spacing = 1.0 / self.limits.per_second
                self._next_global = max(self._next_global, now - spacing / 2) + spacing
                return
            await asyncio.sleep(wait)

    @contextlib.asynccontextmanager
    async def _sending(self) -> AsyncIterator[None]:
        """A send slot held until Telegram answers (see Limits.in_any_second)."""
        await self._slot()
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self._answered.append(self.clock())

    async def _deliver_chat(self, chat_id: int, items: list[OutboxItem]) -> None:
        try:
            async with self._slots:
                await self._deliver(chat_id, items)
        except Exception:
            log.exception("delivery_failed chat=%s", chat_id)
            self._chat_ready[chat_id] = self.clock() + self.limits.retry_base  # never a hot loop
        finally:
            self._busy.discard(chat_id)

    async def _deliver(self, chat_id: int, items: list[OutboxItem]) -> None:
        subscriber = await self.store.get_subscriber(items[0].subscriber_id)
        if subscriber is None or not subscriber.active:
            await self.store.mark_failed([i.id for i in items], "subscriber inactive")
            return
        quiet_until = in_quiet_hours(subscriber, self.wall())
        alerts = [i for i in items if i.kind == "alert"]
        others = [i for i in items if i.kind != "alert"]
        if quiet_until is not None and alerts:  # hold; they go out folded when the quiet hours end
            await self.store.mark_retry([i.id for i in alerts], quiet_until, "quiet hours", attempt=False)
            alerts = []
        if others:
            await self._send(subscriber, others[:1], kind=others[0].kind)
        elif alerts:
            await self._send(subscriber, alerts, kind="alert")

    async def _send(self, subscriber: Subscriber, items: Sequence[OutboxItem], *, kind: str) -> None:
        chat_id = subscriber.chat_id
        lang, tz = subscriber.ui_lang, subscriber.timezone
        ids = [i.id for i in items]
        try:
            if kind == "alert" and len(items) == 1:
                await self._text(chat_id, render_alert(items[0].payload, lang, tz))
            elif kind == "alert":
                message, used = fold_first([i.payload for i in items], lang, tz)
                items, ids = items[:used], ids[:used]  # the rest go in the chat's next message
                await self._text(chat_id, message)
            elif kind == "digest":
                await self._digest(chat_id, items[0].payload)
            else:
                await self._text(chat_id, str(items[0].payload.get("text", "")))
        except TelegramRetryAfter as exc:
            self.stats.too_many += 1
            wait = float(exc.retry_after)
            oldest = min(i.created_at for i in items)
            if (self.wall() - oldest).total_seconds() + wait > self.limits.give_up_after:
                await self._give_up(items, f"still throttled (429 retry after {wait:g}) after "
                                           f"{self.limits.give_up_after:g} s in the queue")  # fmt: skip
                return
            self._chat_ready[chat_id] = self.clock() + wait
            self._next_global = max(self._next_global, self.clock() + min(wait, 1.0))
            await self.store.mark_retry(
                ids, self.wall() + timedelta(seconds=wait), f"429 retry after {wait:g}", attempt=False
            )
            log.warning("delivery_429 chat=%s retry_after=%s", chat_id, wait)
            return
        except TelegramForbiddenError as exc:
            self.stats.blocked += 1
            dropped = await self.store.deactivate(subscriber.id, exc.message)
            log.info("subscriber_deactivated id=%s reason=%s dropped=%s", subscriber.id, exc.message, dropped)
            return
        except TelegramBadRequest as exc:
            if "chat not found" in exc.message.lower():
                await self.store.deactivate(subscriber.id, exc.message)
                return
            log.warning("delivery_rejected chat=%s error=%s", chat_id, exc.message)
            await self._give_up(items, exc.message)
            return
        except (TelegramServerError, TelegramNetworkError, TimeoutError, OSError) as exc:
            await self._retry_later(items, f"{type(exc).__name__}: {exc}")
            return
        except ClientDecodeError as exc:  # not the Bot API's JSON: a proxy's error page, a cut answer
            await self._retry_later(items, f"not a Bot API answer: {_first_line(exc.data)}")
            return
        except Exception as exc:  # anything unforeseen: retried with backoff, given up after MAX_ATTEMPTS
            log.exception("delivery_error chat=%s", chat_id)
            self._chat_ready[chat_id] = self.clock() + self.limits.retry_base
            await self._retry_later(items, f"{type(exc).__name__}: {exc}")
            return
        sent_at = time.time()
        await self._mark_sent(ids, sent_at)
        self.stats.sent += len(ids)
        latencies = [sent_at - i.stored_at for i in items if i.stored_at]
        self.stats.latencies += latencies
        METRICS.delivered(kind, len(ids), latencies)
        interval = self.limits.chat_interval if chat_id > 0 else self.limits.group_interval
        if kind == "alert":
            interval = max(interval, self.limits.fold_window)
        self._chat_ready[chat_id] = self.clock() + interval

    async def _mark_sent(self, ids: list[int], sent_at: float) -> None:
        """Record a send; when the database refuses (locked, disk full), remember it and try again at
        the next round, so the message is not sent twice."""
        try:
            await self.store.mark_sent(ids, sent_at)
        except Exception as exc:
            log.warning("delivery_unrecorded ids=%s error=%s", ids, exc)
            self._unrecorded.update(dict.fromkeys(ids, sent_at))

    async def _record_unrecorded(self) -> None:
        by_time: dict[float, list[int]] = {}
        for outbox_id, sent_at in self._unrecorded.items():
            by_time.setdefault(sent_at, []).append(outbox_id)
        for sent_at, ids in by_time.items():
            try:
                await self.store.mark_sent(ids, sent_at)
            except Exception as exc:  # still refused: the next round tries again
                log.warning("delivery_unrecorded ids=%s error=%s", ids, exc)
                return
            for outbox_id in ids:
                del self._unrecorded[outbox_id]

    async def _give_up(self, items: Sequence[OutboxItem], error: str) -> None:
        self.stats.failed += len(items)
        METRICS.delivery_failed(items[0].kind, len(items))
        await self.store.mark_failed([i.id for i in items], error[:MAX_REASON])

    async def _retry_later(self, items: Sequence[OutboxItem], error: str) -> None:
        error = error[:MAX_REASON]
        attempts = max(i.attempts for i in items) + 1
        if attempts >= self.limits.max_attempts:
            await self._give_up(items, f"gave up after {attempts} attempts: {error}")
            return
        self.stats.retried += 1
        backoff = min(self.limits.retry_base * 2.0 ** (attempts - 1), 300.0)
        await self.store.mark_retry([i.id for i in items], self.wall() + timedelta(seconds=backoff), error)
        log.warning(
            "delivery_retry chat=%s attempt=%s in=%ss error=%s", items[0].chat_id, attempts, backoff, error
        )

    async def _text(self, chat_id: int, text: str) -> None:
        try:
            async with self._sending():
                await self.bot.send_message(chat_id, text, parse_mode="HTML", link_preview_options=NO_PREVIEW)
        except TelegramBadRequest as exc:  # markup or length rejected: the words still matter
            if "parse entities" not in exc.message and "too long" not in exc.message:
                raise
            async with self._sending():
                await self.bot.send_message(
                    chat_id, plain(text), parse_mode=None, link_preview_options=NO_PREVIEW
                )

    async def _digest(self, chat_id: int, payload: dict[str, object]) -> None:
        """A digest: the chart as a photo with the head as its caption, then the rest as messages."""
        photo = payload.get("photo")
        raw_parts = payload.get("parts")
        parts = [str(p) for p in raw_parts] if isinstance(raw_parts, list) else []
        if isinstance(photo, str) and photo:
            picture = BufferedInputFile(base64.b64decode(photo), filename="matches.png")
            async with self._sending():
                await self.bot.send_photo(
                    chat_id, picture, caption=str(payload.get("caption", ""))[:1024], parse_mode="HTML"
                )
        for part in parts:
            await self._text(chat_id, part)


def _first_line(data: object) -> str:
    """The gist of an answer that was not JSON: an HTML page's title, or its first line."""
    text = str(data).strip()
    if match := re.search(r"<title>(.*?)</title>", text, re.IGNORECASE | re.DOTALL):
        return match.group(1).strip()
    return text.splitlines()[0][:200] if text else "(empty)"
