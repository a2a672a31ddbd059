"""Digests: build them on each subscriber's schedule (or on /summary) and queue them for delivery."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from core.digest import build_digest, caption_and_rest, render_digest
from core.digest_schedule import digest_period, due, last_slot
from core.storage.subscriptions import SubscriptionStore
from core.subscriptions import Subscriber

log = logging.getLogger("tgmon.digests")


class DigestService:
    def __init__(
        self,
        store: SubscriptionStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.on_queued = on_queued

    async def send_now(self, subscriber: Subscriber, period: timedelta, until: datetime | None = None) -> int:
        """Build the digest of the period ending now (or `until`) and queue it as one outbox item."""
        digest = await build_digest(self.store, subscriber, until or self.clock(), period)
        parts = render_digest(digest, subscriber.ui_lang, subscriber.timezone)
        payload: dict[str, object] = {"parts": parts}
        if digest.chart_png:
            caption, rest = caption_and_rest(parts)
            payload = {
                "caption": caption,
                "parts": rest,
                "photo": base64.b64encode(digest.chart_png).decode(),
            }
        item = await self.store.enqueue(subscriber.id, subscriber.chat_id, "digest", payload)
        log.info("digest_queued subscriber=%s matches=%s item=%s", subscriber.id, digest.total_matches, item)
        if self.on_queued:
            self.on_queued()
        return item

    async def run_due(self) -> int:
        """Queue every scheduled digest that is due now; returns how many."""
        now = self.clock()
        queued = 0
        for subscriber in await self.store.subscribers():
            if subscriber.paused or not due(subscriber, now):
                continue
            until = last_slot(subscriber, now)
            if until is None:
                continue
            # the slot is taken first: a crash between the two lines loses one digest, never sends two
            await self.store.update_subscriber(subscriber.id, last_digest_at=until)
            try:
                await self.send_now(subscriber, digest_period(subscriber.digest), until)
            except Exception:  # one subscriber's bad data must not hold up the others' digests
                log.exception("digest_failed subscriber=%s", subscriber.id)
                continue
            queued += 1
        return queued

    async def run(self, stop: asyncio.Event, *, every: float = 30.0) -> None:
        while not stop.is_set():
            try:
                await self.run_due()
            except Exception:
                log.exception("digest_round_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
