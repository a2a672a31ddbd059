"""The alert stage: matches → subscriber filters → one alert per story → the outbox."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from core.alerts import OutboxSink, SubscriptionQueries, snippet
from core.models import RawPost
from core.pipeline import Handover, Pipeline
from core.query.matcher import Document, Span
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import AlertRecord, SubscriptionStore
from core.stories import StoryIndex
from tests.fakes.memory import FixedDetector

NOW = datetime.now(UTC)
NEWS = (
    "Protesters gathered in the centre of Almaty on Sunday demanding the release of detained activists, "
    "police blocked the square and several people were detained according to witnesses"
)


@pytest.fixture
async def setup(archive: SqliteArchive) -> tuple[Pipeline, SubscriptionStore]:
    store = SubscriptionStore(archive)
    queries = SubscriptionQueries(store)
    pipeline = Pipeline(archive, FixedDetector(), OutboxSink(store, queries), queries, StoryIndex())
    for channel_id, name in ((1, "kz_news"), (2, "other_news")):
        await archive.upsert_channel(channel_id, name, name.upper())
    await store.upsert_subscriber(100, 100, "en")
    await store.upsert_subscriber(200, 200, "ru")
    return pipeline, store


async def outbox(store: SubscriptionStore) -> list[tuple[int, str, dict[str, object]]]:
    return [(i.subscriber_id, i.kind, i.payload) for i in await store.due(NOW + timedelta(days=1))]


async def test_one_alert_per_story_with_highlight_and_also_in(
    setup: tuple[Pipeline, SubscriptionStore],
) -> None:
    pipeline, store = setup
    await store.add_query(100, "protest Almaty")
    await pipeline.ingest([RawPost(1, 10, NOW - timedelta(minutes=5), NEWS)])
    await pipeline.ingest([RawPost(2, 20, NOW - timedelta(minutes=1), NEWS + " 🔥")])  # the same story
    items = await outbox(store)
    assert len(items) == 1
    subscriber_id, kind, payload = items[0]
    assert (subscriber_id, kind) == (100, "alert")
    text = str(payload["snippet"])
    spans = payload["spans"]
    assert isinstance(spans, list) and [text[a:b] for a, b in spans] == ["Protesters", "Almaty"]
    assert payload["url"] == "https://t.me/kz_news/10" and payload["also_in"] == ["@other_news"]
    assert payload["queries"] == ["protest Almaty"]


async def queued(store: SubscriptionStore) -> dict[tuple[int, str | None], dict[str, object]]:
    return {(i.subscriber_id, i.story_id): i.payload for i in await store.due(NOW + timedelta(days=1))}


async def test_old_posts_go_to_digests_not_alerts(setup: tuple[Pipeline, SubscriptionStore]) -> None:
    pipeline, store = setup
    query = await store.add_query(100, "Almaty")
    await pipeline.ingest([RawPost(1, 10, NOW - timedelta(days=3), NEWS)])
    assert await outbox(store) == []
    matched = await store.matches_between(100, NOW - timedelta(days=7), NOW)
    assert [(m.post.message_id, m.query_id) for m in matched] == [(10, query.id)]


async def test_subscriber_filters_pauses_and_live_reload(setup: tuple[Pipeline, SubscriptionStore]) -> None:
    pipeline, store = setup
    await store.add_query(100, "Almaty")
    await store.add_query(200, "Almaty")
    await store.update_subscriber(200, langs=["ru"])  # FixedDetector calls ASCII text "en"
    await pipeline.ingest([RawPost(1, 10, NOW, NEWS)])
    assert [s for s, _, _ in await outbox(store)] == [100]
    await store.update_subscriber(100, paused=True)
    second = await store.add_query(200, "square")  # added after the pipeline loaded its queries
    await store.update_subscriber(200, langs=[])
    await pipeline.ingest(
        [RawPost(2, 20, NOW, "A completely different text about the square in Astana today, long")]
    )
    assert [s for s, _, _ in await outbox(store)] == [100, 200]
    await store.set_query_paused(200, second.id, True)
    await pipeline.ingest(
        [RawPost(2, 21, NOW, "Another story about the square in Shymkent with quite other words")]
    )
    assert len(await outbox(store)) == 2


async def test_an_edit_that_makes_a_post_match_alerts_once(setup: tuple[Pipeline, SubscriptionStore]) -> None:
    pipeline, store = setup
    await store.add_query(100, "detained")
    await pipeline.ingest([RawPost(1, 10, NOW, "Police blocked the square in the city centre this morning")])
    assert await outbox(store) == []
    edited = RawPost(1, 10, NOW, "Police blocked the square; three people detained", edit_date=NOW)
    await pipeline.ingest([edited])
    await pipeline.ingest(
        [RawPost(1, 10, NOW, edited.text + " (update)", edit_date=NOW + timedelta(minutes=1))]
    )
    items = await outbox(store)
    assert len(items) == 1 and items[0][2]["edited"] is True


async def test_no_alerts_import_records_nothing_for_delivery(
    setup: tuple[Pipeline, SubscriptionStore],
) -> None:
    pipeline, store = setup
    await store.add_query(100, "Almaty")
    await pipeline.ingest([RawPost(1, 10, NOW, NEWS)], alerts=False)
    assert await outbox(store) == []


def test_snippet_windows_around_the_first_match() -> None:
    text = "x" * 1000 + " Almaty " + "y" * 1000
    window, spans = snippet(text, [Span(1001, 1007)], limit=100)
    assert len(window) == 100 and [window[a:b] for a, b in spans] == ["Almaty"]


class Crash(BaseException):
    """Stands for the process dying (SIGKILL, power loss) at the injected point."""


class CrashingStore(SubscriptionStore):
    """The real store, failing once around its alert write: before it, or after it but before COMMIT."""

    def __init__(self, archive: SqliteArchive, when: str) -> None:
        super().__init__(archive)
        self.when = when

    async def record_alerts(
        self, records: Sequence[AlertRecord], *, not_before: datetime | None = None
    ) -> int:
        if self.when == "before":
            self.when = ""
            raise Crash
        queued = await super().record_alerts(records, not_before=not_before)
        if self.when == "after":
            self.when = ""
            raise Crash
        return queued


@pytest.mark.parametrize("when", ["before", "after"])
async def test_posts_and_their_alerts_are_stored_together_or_not_at_all(
    archive: SqliteArchive, when: str
) -> None:
    store = CrashingStore(archive, when)
    queries = SubscriptionQueries(store)
    pipeline = Pipeline(archive, FixedDetector(), OutboxSink(store, queries), queries, StoryIndex())
    await archive.upsert_channel(1, "kz_news", "KZ")
    await store.upsert_subscriber(100, 100, "en")
    await store.add_query(100, "Almaty")
    batch = [
        RawPost(1, 10, NOW, NEWS),
        RawPost(1, 11, NOW, "Nothing to see here, just the weather in Astana"),
    ]
    with pytest.raises(Crash):
        await pipeline.ingest(batch)
    assert await archive.count_posts() == 0 and await outbox(store) == []  # neither: the batch is read again
    await pipeline.ingest(batch)
    assert await archive.count_posts() == 2
    assert [(s, k) for s, k, _ in await outbox(store)] == [(100, "alert")]


async def test_a_bug_in_the_alert_stage_never_keeps_posts_out_of_the_archive(
    archive: SqliteArchive, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenSink:
        async def hand_over(self, items: Sequence[Handover]) -> None:
            raise KeyError("a payload field the renderer expected")

    await archive.upsert_channel(1, "kz_news", "KZ")
    with caplog.at_level(logging.ERROR, logger="tgmon.pipeline"):
        result = await Pipeline(archive, FixedDetector(), BrokenSink()).ingest([RawPost(1, 10, NOW, NEWS)])
    assert len(result.new) == 1 and await archive.count_posts() == 1
    assert any(r.getMessage() == "alerts_failed posts=1" and r.exc_info for r in caplog.records)


async def test_another_task_never_joins_a_batch_transaction(archive: SqliteArchive) -> None:
    store = SubscriptionStore(archive)
    await archive.upsert_channel(1, "kz_news", "KZ")
    others: list[asyncio.Task[object]] = []

    class Sink:
        async def hand_over(self, items: Sequence[Handover]) -> None:
            others.append(asyncio.create_task(store.upsert_subscriber(300, 300, "en")))
            await asyncio.sleep(0.01)  # the other task runs now, and must wait for the batch
            raise Crash

    with pytest.raises(Crash):
        await Pipeline(archive, FixedDetector(), Sink()).ingest([RawPost(1, 10, NOW, NEWS)])
    await others[0]
    assert await archive.count_posts() == 0  # the batch rolled back ...
    assert await store.get_subscriber(300) is not None  # ... the other task's write did not go with it


async def test_channel_filters_match_the_stored_username(setup: tuple[Pipeline, SubscriptionStore]) -> None:
    pipeline, store = setup
    await store.add_query(100, "Almaty channel:@kz_news")
    await pipeline.ingest([RawPost(1, 10, NOW, NEWS), RawPost(2, 20, NOW, "Almaty " + NEWS[::-1])])
    assert [p["url"] for _, _, p in await outbox(store)] == ["https://t.me/kz_news/10"]


async def test_a_reload_compiles_only_new_or_changed_queries_and_drops_deleted_ones(
    setup: tuple[Pipeline, SubscriptionStore],
) -> None:
    _, store = setup
    queries = SubscriptionQueries(store)
    kept = await store.add_query(100, "protest")
    changed = await store.add_query(100, "almaty")
    gone = await store.add_query(200, "kazakhstan")
    before = dict((await queries.current()).items())
    assert set(before) == {kept.id, changed.id, gone.id}

    await store.delete_query(200, gone.id)
    await store.delete_query(100, changed.id)
    replaced = await store.add_query(100, "astana -almaty")
    added = await store.add_query(200, "tokayev")
    after = dict((await queries.current()).items())

    assert set(after) == {kept.id, replaced.id, added.id}
    assert after[kept.id] is before[kept.id]  # not compiled again
    assert queries.texts == {kept.id: "protest", replaced.id: "astana -almaty", added.id: "tokayev"}
    found = queries.index.match(Document.of("Protest in Astana, Tokayev said", lang="en"))
    assert {m.query_id for m in found} == {kept.id, replaced.id, added.id}


async def test_shared_payload_parts_are_stored_whole_for_each_subscriber(
    setup: tuple[Pipeline, SubscriptionStore],
) -> None:
    _, store = setup
    shared = {"channel": "@kz_news", "snippet": 'Протест 🔥 "в" Алматы', "spans": [[0, 7]], "edited": False}
    other = {"channel": "@other_news", "snippet": "Протест", "spans": [], "edited": True}
    own = {"queries": ["протест"], "also_in": []}

    def record(subscriber: int, channel: int, part: dict[str, object], story: str) -> AlertRecord:
        return AlertRecord(subscriber, subscriber, channel, 10, story, (), own, True, 0.0, shared=part)

    await store.record_alerts(
        [record(100, 1, shared, "s"), record(200, 1, shared, "s"), record(100, 2, other, "s"),
         record(200, 1, {**shared, "edited": True, "queries": ["x"]}, "t")]
    )  # fmt: skip
    payloads = await queued(store)
    assert payloads[(100, "s")] == {**shared, "queries": ["протест"], "also_in": ["@other_news"]}
    assert payloads[(200, "s")] == {**shared, **own}  # the other channel's record was subscriber 100's
    assert payloads[(200, "t")] == {
        **shared,
        "edited": True,
        "queries": ["протест"],
        "also_in": [],
    }  # own wins
    assert own["also_in"] == []  # the records' own lists are copied, not grown
    await store.record_alerts([record(200, 2, other, "s"), record(200, 2, other, "s")])  # still pending
    again = await queued(store)
    assert again[(200, "s")] == {**shared, "queries": ["протест"], "also_in": ["@other_news"]}
    assert again[(100, "s")] == payloads[(100, "s")]
    bodies = await store.archive._all("SELECT body FROM alert_bodies ORDER BY id")
    assert [json.loads(b) for (b,) in bodies] == [shared, {**shared, "edited": True, "queries": ["x"]}]
