"""Alerts put straight into the outbox, as the alert stage queues them, for the delivery tests."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from core.storage.subscriptions import AlertRecord, SubscriptionStore

NOW = datetime.now(UTC)


async def queue(
    store: SubscriptionStore,
    chat_id: int,
    story: str = "1:1",
    text: str = "Protest in Almaty",
    **extra: object,
) -> None:
    """One alert from @kz_news (channel 1) to `chat_id`, its subscriber created if need be; `extra`
    payload fields replace the defaults."""
    await store.upsert_subscriber(chat_id, chat_id, "en")
    payload = {"channel": "@kz_news", "channel_title": "KZ News", "url": "https://t.me/kz_news/1",
               "date": NOW.isoformat(), "lang": "en", "queries": ["protest"], "snippet": text,
               "spans": [[0, 7]], "edited": False, "also_in": []} | extra  # fmt: skip
    record = AlertRecord(chat_id, chat_id, 1, 1, story, (), payload, alert=True, stored_at=time.time())
    await store.record_alerts([record])
