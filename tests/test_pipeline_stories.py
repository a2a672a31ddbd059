"""Stories through the pipeline: copies and forwards share the first post's story, across restarts."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.models import RawPost
from core.pipeline import Pipeline
from core.storage.sqlite import SqliteArchive
from core.stories import NUM_PERM, SIGNATURE_VERSION, StoryIndex
from tests.fakes.memory import FixedDetector, RecordingSink

T0 = datetime.now(UTC) - timedelta(hours=5)
NEWS = (
    "Protesters gathered in the centre of Almaty on Sunday demanding the release of detained activists, "
    "police blocked the square and several people were detained according to witnesses"
)


async def make(archive: SqliteArchive) -> tuple[Pipeline, RecordingSink]:
    for channel_id, name in ((1, "first_news"), (2, "second_news"), (3, "third_news")):
        await archive.upsert_channel(channel_id, name, name)
    sink = RecordingSink()
    return Pipeline(archive, FixedDetector(), sink, stories=StoryIndex()), sink


async def test_copies_and_forwards_join_the_first_story(archive: SqliteArchive) -> None:
    pipeline, sink = await make(archive)
    await pipeline.ingest([RawPost(1, 10, T0, NEWS)])
    copy = "🔥 " + NEWS + "\n\nПодписаться: t.me/second_news"
    await pipeline.ingest([RawPost(2, 20, T0 + timedelta(minutes=3), copy)])
    forward = RawPost(3, 30, T0 + timedelta(minutes=9), "short comment", forwarded_from="channel1/10")
    await pipeline.ingest(
        [forward, RawPost(3, 31, T0, "Weather: sunny and warm in Astana all week long, no rain")]
    )
    stories = {(i.post.channel_id, i.post.message_id): i.post.story_id for i in sink.items}
    assert stories == {(1, 10): "1:10", (2, 20): "1:10", (3, 30): "1:10", (3, 31): "3:31"}
    assert [c.id for c in await archive.story_channels("1:10")] == [1, 2, 3]
    post = await archive.get_post(2, 20)
    assert post is not None and post.story_id == "1:10"


async def test_the_index_is_rebuilt_after_a_restart(archive: SqliteArchive) -> None:
    pipeline, _ = await make(archive)
    await pipeline.ingest([RawPost(1, 10, T0, NEWS)])
    restarted = Pipeline(archive, FixedDetector(), RecordingSink(), stories=StoryIndex())
    await restarted.ingest([RawPost(2, 20, T0 + timedelta(hours=1), NEWS + " 👍")])
    post = await archive.get_post(2, 20)
    assert post is not None and post.story_id == "1:10"


async def test_a_restart_in_an_import_of_old_posts_keeps_their_stories(archive: SqliteArchive) -> None:
    pipeline, _ = await make(archive)
    old = (T0 - timedelta(days=30)).replace(microsecond=0)  # a month-old export, stopped after its 1st batch
    await pipeline.ingest([RawPost(1, 10, old, NEWS), RawPost(1, 11, old + timedelta(days=2), "Rain " * 9)])
    assert await archive.newest_story_date() == old + timedelta(days=2)
    restarted = Pipeline(archive, FixedDetector(), RecordingSink(), stories=StoryIndex())
    await restarted.ingest([RawPost(2, 20, old + timedelta(hours=1), NEWS + " 👍")])
    post = await archive.get_post(2, 20)
    assert post is not None and post.story_id == "1:10"


async def test_history_imported_into_a_live_archive_folds_into_stories(archive: SqliteArchive) -> None:
    pipeline, _ = await make(archive)
    live = RawPost(3, 1, datetime.now(UTC), "Weather in Astana today: sunny and warm all week long, no rain")
    old = T0 - timedelta(days=30)
    await pipeline.ingest([live])  # the archive is kept up to date: the window is the 72 h before now
    await pipeline.ingest([RawPost(1, 10, old, NEWS)])  # then an export of last month is imported
    await pipeline.ingest([RawPost(2, 20, old + timedelta(minutes=5), NEWS + " 👍")])
    post = await archive.get_post(2, 20)
    assert post is not None and post.story_id == "1:10"  # before, posts older than the window never folded
    edited = NEWS.replace("Sunday", "Monday")
    await pipeline.ingest(
        [RawPost(2, 20, old + timedelta(minutes=5), edited, edit_date=old + timedelta(hours=1))]
    )
    assert pipeline.stories is not None and pipeline.stories.past is not None
    assert (2, 20) in pipeline.stories.past  # re-indexed with its new text where it was
    unknown_channel = RawPost(99, 1, old, NEWS)
    with pytest.raises(LookupError):
        await pipeline.ingest([unknown_channel])
    assert (99, 1) not in pipeline.stories  # a failed batch founds no story there either


async def test_a_stored_signature_of_an_older_version_is_recomputed_at_start_up(
    archive: SqliteArchive, tmp_path: Path
) -> None:
    pipeline, _ = await make(archive)
    await pipeline.ingest([RawPost(1, 10, T0, NEWS)])
    stale = bytes([SIGNATURE_VERSION - 1]) + bytes(4 * NUM_PERM)  # what an older version stored
    with closing(sqlite3.connect(tmp_path / "tgmon.db")) as db:
        db.execute("UPDATE posts SET story_sig = ? WHERE channel_id = 1 AND message_id = 10", (stale,))
        db.commit()
    assert [row.signature for row in await archive.story_rows(T0 - timedelta(days=1))] == [stale]
    restarted = Pipeline(archive, FixedDetector(), RecordingSink(), stories=StoryIndex())
    await restarted.ingest([RawPost(2, 20, T0 + timedelta(hours=1), NEWS + " 👍")])
    post = await archive.get_post(2, 20)
    assert post is not None and post.story_id == "1:10"  # the copy met 1:10's signature, recomputed


async def test_an_edit_keeps_the_story_and_a_failed_batch_founds_none(archive: SqliteArchive) -> None:
    pipeline, _ = await make(archive)
    await pipeline.ingest([RawPost(1, 10, T0, NEWS)])
    await pipeline.ingest([RawPost(2, 20, T0, NEWS)])
    edited = NEWS.replace("Sunday", "Monday") + " (updated)"
    await pipeline.ingest([RawPost(2, 20, T0, edited, edit_date=T0 + timedelta(minutes=30))])
    post = await archive.get_post(2, 20)
    assert post is not None and post.story_id == "1:10" and post.versions == 2
    unknown_channel = RawPost(
        99, 1, T0, "A different long text about elections in another country entirely today"
    )
    with pytest.raises(LookupError):
        await pipeline.ingest([unknown_channel])
    assert pipeline.stories is not None and (99, 1) not in pipeline.stories
