"""normalise → language → tag → store → hand over, with no Telethon in sight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.langid import make_detector
from core.models import Entity, RawPost, bare_channel_id
from core.pipeline import Pipeline, content_hash, extract_tags, normalise
from core.query.index import QueryIndex
from core.query.matcher import compile_query
from core.storage.sqlite import SqliteArchive
from core.stories import StoryIndex
from tests.fakes.memory import FixedDetector, RecordingSink

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "bare"),
    [
        (1234567890, 1234567890),
        (-1001234567890, 1234567890),
        (-62135596801, 62135596801),
        (-1001, 1),
        (-100, 100),
    ],
)
def test_bare_channel_id(given: int, bare: int) -> None:
    assert bare_channel_id(given) == bare


def test_normalise_canonical_form() -> None:
    local = timezone(timedelta(hours=5))
    post = normalise(
        RawPost(
            channel_id=-1001234,
            message_id=1,
            date=datetime(2024, 3, 1, 14, 0, tzinfo=local),
            edit_date=datetime(2024, 3, 1, 9, 30),
            text="a\x00b",
            views=-1,
            reactions={},
        )
    )
    assert post.channel_id == 1234
    assert post.date == T0 and post.date.tzinfo == UTC
    assert post.edit_date == T0 + timedelta(minutes=30)
    assert post.text == "ab" and post.views is None and post.reactions is None


@pytest.mark.parametrize(
    ("flaw", "fixed"),
    [
        ({"channel_id": -1001234}, {}),
        ({"date": datetime(2024, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=5)))}, {}),
        ({"date": datetime(2024, 3, 1, 9, 0)}, {}),
        ({"edit_date": datetime(2024, 3, 1, 9, 0)}, {}),
        ({"text": "a\x00b"}, {}),
        ({"views": -1}, {"views": None}),
        ({"forwards": -2}, {"forwards": None}),
        ({"replies": -3}, {"replies": None}),
        ({"reactions": {}}, {"reactions": None}),
    ],
)
def test_normalise_fixes_each_flaw_alone_and_keeps_canonical_posts(
    flaw: dict[str, object], fixed: dict[str, object]
) -> None:
    canonical = RawPost(1234, 1, T0, "ab", edit_date=T0, views=5, forwards=1, reactions={"👍": 2})
    assert normalise(canonical) is canonical
    post = normalise(replace(canonical, **flaw))  # type: ignore[arg-type]
    assert post == replace(canonical, **fixed)  # type: ignore[arg-type]
    assert post.date.tzinfo is UTC and post.edit_date is not None and post.edit_date.tzinfo is UTC


def test_tags_from_entities_and_text() -> None:
    text = "🇰🇿 #Казахстан news via @KZ_News and $KZT, not an e-mail@example.com"
    utf16_offset = len("🇰🇿 ".encode("utf-16-le")) // 2
    post = RawPost(7, 1, T0, text, entities=(Entity("hashtag", utf16_offset, 10),))
    assert extract_tags(post) == ("#казахстан", "@kz_news", "$kzt")


def test_content_hash_tracks_text_and_entities_only() -> None:
    base = RawPost(7, 1, T0, "same")
    assert content_hash(base) == content_hash(RawPost(7, 1, T0, "same", views=10))
    assert content_hash(base) != content_hash(RawPost(7, 1, T0, "same", entities=(Entity("bold", 0, 4),)))
    # a Desktop export has no link previews: the same post read via the API must not look edited
    assert content_hash(base) == content_hash(RawPost(7, 1, T0, "same", media_type="webpage"))


async def test_language_is_detected_once_per_version(archive: SqliteArchive) -> None:
    detector, sink = FixedDetector(), RecordingSink()
    pipeline = Pipeline(archive, detector, sink)
    await archive.upsert_channel(7, None, "c")
    posts = [
        RawPost(7, 1, T0, "hello"),
        RawPost(7, 2, T0, "привет"),
        RawPost(7, 3, T0, service_action="pin_message"),
    ]
    result = await pipeline.ingest(posts)
    assert [(p.message_id, p.lang) for p in result.new] == [(1, "en"), (2, "ru"), (3, "und")]
    assert detector.calls == 2  # service messages are not judged
    await pipeline.ingest([RawPost(7, 1, T0, "hello", views=3)])
    assert detector.calls == 2  # unchanged text: counters refreshed, no detection
    await pipeline.ingest([RawPost(7, 1, T0, "привет всем", edit_date=T0 + timedelta(hours=1))])
    assert detector.calls == 3
    post = await archive.get_post(7, 1)
    assert post is not None and post.lang == "ru" and post.views == 3
    # alerts see real posts only, and edits separately
    assert [p.message_id for p in sink.new] == [1, 2] and [p.message_id for p in sink.edited] == [1]


async def test_no_alerts_stores_without_handing_over(archive: SqliteArchive) -> None:
    sink = RecordingSink()
    pipeline = Pipeline(archive, FixedDetector(), sink)
    await archive.upsert_channel(7, None, "c")
    result = await pipeline.ingest([RawPost(7, 1, T0, "quiet")], alerts=False)
    assert len(result.new) == 1 and sink.new == []


async def test_one_batch_with_two_copies_of_a_post_keeps_the_last(archive: SqliteArchive) -> None:
    pipeline = Pipeline(archive, FixedDetector())
    await archive.upsert_channel(7, None, "c")
    await pipeline.ingest([RawPost(7, 1, T0, "draft"), RawPost(7, 1, T0, "final", edit_date=T0)])
    post = await archive.get_post(7, 1)
    assert post is not None and post.text == "final" and await archive.count_posts() == 1


async def test_matches_are_handed_over_with_spans(archive: SqliteArchive) -> None:
    from core.query.index import QueryIndex
    from core.query.matcher import compile_query

    index = QueryIndex()
    index.add("kz", compile_query("Kazakhstan protest"))
    index.add("other", compile_query("weather"))
    sink = RecordingSink()
    pipeline = Pipeline(archive, FixedDetector(), sink, index)
    await archive.upsert_channel(7, "kz_news", "KZ")
    text = "Protesters gathered across Kazakhstan"
    await pipeline.ingest([RawPost(7, 1, T0, text), RawPost(7, 2, T0, "sunny")])
    await pipeline.ingest([RawPost(7, 2, T0, "weather: sunny", edit_date=T0 + timedelta(hours=1))])
    first, second, edit = sink.items
    assert [m.query_id for m in first.matches] == ["kz"]
    assert [text[s.start : s.end] for s in first.matches[0].spans] == ["Protesters", "Kazakhstan"]
    assert second.matches == ()
    assert edit.edited and [m.query_id for m in edit.matches] == ["other"]


@pytest.mark.slow
async def test_worker_processes_give_the_same_posts_stories_and_matches(tmp_path: Path) -> None:
    texts = [
        "Протестующие собрались в центре Алматы в воскресенье, требуя освободить задержанных активистов",
        "Protesters gathered in the centre of Almaty on Sunday demanding the release of detained activists",
        "Протестующие собрались в центре Алматы в воскресенье, требуя освободить задержанных активистов 🔥",
        "Мітингувальники зібралися в центрі Алмати в неділю, вимагаючи звільнити затриманих активістів",
        "短", "",
    ]  # fmt: skip
    batch = [RawPost(7 + n % 2, 100 + n, T0 + timedelta(minutes=n), text) for n, text in enumerate(texts)]
    index = QueryIndex()
    index.add(1, compile_query("Алматы"))
    index.add(2, compile_query("protest*"))
    index.add(3, compile_query('"освободить задержанного" OR звільнити'))  # stems of both languages
    seen = []
    for workers in (0, 1):
        archive = await SqliteArchive.open(tmp_path / f"w{workers}.db")
        sink = RecordingSink()
        pipeline = Pipeline(archive, make_detector("fasttext"), sink, index, StoryIndex(), workers=workers)
        try:
            await archive.upsert_channel(7, "a", "A")
            await archive.upsert_channel(8, "b", "B")
            result = await pipeline.ingest(batch)
            edited = await pipeline.ingest([RawPost(7, 100, T0, texts[1], edit_date=T0 + timedelta(hours=1))])
            rows = await archive.story_rows(T0 - timedelta(days=1))
            found = await archive.search_candidates('"алматы" OR "activists" OR "затриманих"')
        finally:
            pipeline.close()
            await archive.close()
        assert pipeline.workers == workers
        seen.append(
            (
                [(p.message_id, p.lang, p.lang_confidence, p.story_id) for p in result.new],
                [(i.post.message_id, [(m.query_id, m.spans) for m in i.matches]) for i in sink.items],
                [(r.message_id, r.story_id, r.signature) for r in rows],
                [p.message_id for p in found],
                [p.versions for p in edited.edited],
            )
        )
    assert seen[0] == seen[1]
    assert {qid for _, found in seen[0][1] for qid, _ in found} == {1, 2, 3}  # every kind of word matched
    assert len(seen[0][3]) >= 3  # the full-text index found posts of all three languages
    stories = {message_id: story for message_id, _, _, story in seen[0][0]}
    assert stories[102] == stories[100] == "7:100"  # the copy joined the first post's story


@pytest.mark.slow
async def test_worker_processes_match_the_queries_as_they_change(tmp_path: Path) -> None:
    """Each worker matches with its own copy of the index: added, replaced and removed queries reach it
    between batches, through the journal and, past MAX_CHANGES, a new snapshot."""
    from core.query import replica

    index = QueryIndex()
    index.add(1, compile_query("Алматы"))
    sink = RecordingSink()
    archive = await SqliteArchive.open(tmp_path / "w.db")
    pipeline = Pipeline(archive, make_detector("fasttext"), sink, index, workers=2)
    text = "Протестующие собрались в центре Алматы в воскресенье, требуя освободить задержанных"
    seen: list[set[object]] = []
    try:
        await archive.upsert_channel(7, "kz", "KZ")
        await pipeline.start_workers()
        changes: list[Callable[[], None]] = [
            lambda: index.add(2, compile_query("освободить задержанного")),  # a stem of Russian
            lambda: (index.add(1, compile_query("Астана")), index.remove(2)),  # replaced, removed
            lambda: [
                index.add(100 + n, compile_query(f"слово{n} OR центре")) for n in range(replica.MAX_CHANGES)
            ],
        ]
        for n, change in enumerate([lambda: None, *changes]):
            change()
            batch = [RawPost(7, 1000 * n + m, T0, f"{text} {m}") for m in range(250)]  # a chunk for each
            await pipeline.ingest(batch)
            assert len(sink.items) == len(batch)
            seen.append({m.query_id for item in sink.items for m in item.matches})
            sink.items.clear()
    finally:
        pipeline.close()
        await archive.close()
    assert seen[:3] == [{1}, {1, 2}, set()]
    assert seen[3] == {100 + n for n in range(replica.MAX_CHANGES)}  # from a new snapshot


WORKER_HOST = """
import asyncio, sys
from pathlib import Path
from core.langid import make_detector
from core.pipeline import Pipeline
from core.storage.sqlite import SqliteArchive

async def main() -> None:
    archive = await SqliteArchive.open(Path(sys.argv[1]))
    pipeline = Pipeline(archive, make_detector("fasttext"), workers=1)
    await pipeline.start_workers()
    print("ready", flush=True)
    await asyncio.sleep(120)

if __name__ == "__main__":
    asyncio.run(main())
"""


@pytest.mark.slow
def test_worker_processes_exit_when_the_pipeline_process_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "host.py"
    script.write_text(WORKER_HOST)
    root = Path(__file__).resolve().parents[1]
    host = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "db.sqlite")],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE,
        text=True,
    )
    children: list[int] = []
    try:
        assert host.stdout is not None and host.stdout.readline().strip() == "ready"
        children = [
            int(pid) for pid in Path(f"/proc/{host.pid}/task/{host.pid}/children").read_text().split()
        ]
        assert children
    finally:
        host.kill()
        host.wait()
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    for pid in alive:  # never leave them behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not alive
