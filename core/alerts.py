"""The alert stage: matched posts → per-subscriber filters → one alert per story → the outbox.

Runs wherever posts are ingested (collector, import); the bot process delivers the outbox.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from core import heap
from core.pipeline import Handover
from core.query.index import QueryIndex
from core.query.matcher import Query, Span, compile_query, spans_within, window
from core.storage.subscriptions import AlertRecord, SubscriptionStore
from core.subscriptions import Subscriber

log = logging.getLogger("tgmon.alerts")

MAX_ALERT_AGE = timedelta(hours=24)
SNIPPET_CHARS = 600  # of post text around the first match; the rest is behind the link


class SubscriptionQueries:
    """The live queries of every subscriber, reloaded when `queries_version` moves (any process)."""

    def __init__(self, store: SubscriptionStore) -> None:
        self.store = store
        self.index = QueryIndex()
        self.owners: dict[int, Subscriber] = {}
        self.texts: dict[int, str] = {}
        self._version: int | None = None

    async def current(self) -> QueryIndex:
        version = await self.store.queries_version()
        if version != self._version:
            await self._reload()
            self._version = version
        return self.index

    async def _reload(self) -> None:
        """Bring the index in line with the stored queries: compile only new or changed ones, drop the
        gone ones (a new subscriber's query must not cost a rebuild of 100,000 others)."""
        owners: dict[int, Subscriber] = {}
        texts: dict[int, str] = {}
        fresh: list[tuple[int, Query]] = []
        for query, subscriber in await self.store.live_queries():
            if self.texts.get(query.id) != query.text:
                try:
                    fresh.append((query.id, compile_query(query.text)))
                except ValueError:  # stored before a stricter parser: skip it, never stop the pipeline
                    log.warning("query_skipped id=%s", query.id)
                    continue
            owners[query.id] = subscriber
            texts[query.id] = query.text
        gone = self.texts.keys() - texts.keys()
        for query_id in gone:
            self.index.remove(query_id)
        self.index.add_many(fresh)
        self.owners, self.texts = owners, texts
        if fresh or gone:
            heap.settle()  # the index is long-lived: keep the garbage collector from walking it again
        log.info("queries_loaded count=%s compiled=%s", len(self.index), len(fresh))


def snippet(
    text: str, spans: Sequence[Span], limit: int = SNIPPET_CHARS
) -> tuple[str, list[tuple[int, int]]]:
    """A window of the text around the first match, with the spans inside it (relative offsets)."""
    start, end = window(len(text), spans, limit)
    return text[start:end], spans_within(spans, start, end)


class OutboxSink:
    """An AlertSink: records every match, queues the alerts that should go out now."""

    def __init__(
        self,
        store: SubscriptionStore,
        queries: SubscriptionQueries,
        *,
        max_age: timedelta = MAX_ALERT_AGE,
        clock: Any = None,
    ) -> None:
        self.store = store
        self.queries = queries
        self.max_age = max_age
        self.clock = clock or (lambda: datetime.now(UTC))

    async def hand_over(self, items: Sequence[Handover]) -> None:
        now = self.clock()
        stored_at = time.time()
        records: list[AlertRecord] = []
        for item in items:
            by_subscriber: dict[int, list[int]] = {}
            spans: list[Span] = []
            for match in item.matches:
                query_id = match.query_id
                if not isinstance(query_id, int):
                    continue
                subscriber = self.queries.owners.get(query_id)
                if subscriber is None or not wants(subscriber, item.post.lang, item.post.channel_id):
                    continue
                by_subscriber.setdefault(subscriber.id, []).append(query_id)
                spans.extend(match.spans)
            if not by_subscriber:
                continue
            post = item.post
            fresh = now - post.date <= self.max_age
            text, inside = snippet(post.text, sorted(set(spans)))  # (start, end) order
            shown = {  # the same for every subscriber of this post, encoded once
                "channel": f"@{post.channel_username}" if post.channel_username else post.channel_title,
                "channel_title": post.channel_title,
                "url": post.permalink,
                "date": post.date.isoformat(),
                "lang": post.lang,
                "snippet": text,
                "spans": inside,
                "truncated": len(text) < len(post.text),
                "edited": item.edited,
            }
            story_id = post.story_id or f"{post.channel_id}:{post.message_id}"
            for subscriber_id, query_ids in by_subscriber.items():
                subscriber = self.queries.owners[query_ids[0]]
                own = {"queries": [self.queries.texts[q] for q in query_ids], "also_in": []}
                records.append(
                    AlertRecord(
                        subscriber_id, subscriber.chat_id, post.channel_id, post.message_id, story_id,
                        tuple(query_ids), own, alert=fresh, stored_at=stored_at, shared=shown,
                    )
                )  # fmt: skip
        if records:
            queued = await self.store.record_alerts(records)
            log.info("alerts_queued matches=%s queued=%s", len(records), queued)


def wants(subscriber: Subscriber, lang: str, channel_id: int) -> bool:
    """The subscriber's own language and channel filters (queries may add their own)."""
    if subscriber.langs and lang not in subscriber.langs:
        return False
    return not subscriber.channels or channel_id in subscriber.channels
