"""Batches in flight together: one prepares while the one before it is stored, stores keep their order,
and a batch that shares a post with an earlier one reads what that one stored."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.models import ChannelProgress, ProcessedPost, RawPost, SaveResult
from core.pipeline import Pipeline
from core.storage.sqlite import SqliteArchive
from core.stories import StoryIndex
from tests.fakes.memory import FixedDetector

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
LONG = "the river flooded the old town overnight and the bridge to the market square is closed {}"


class GatedArchive(SqliteArchive):
    """A real archive whose saves wait at a gate, and which logs its reads and saves in order."""

    gate: asyncio.Event
    log: list[str]
    fail_next: bool

    @classmethod
    async def open_gated(cls, path: Path) -> GatedArchive:
        archive = await cls.open(path)
        archive.gate, archive.log, archive.fail_next = asyncio.Event(), [], False
        archive.gate.set()
        return archive  # type: ignore[return-value]

    async def known_hashes(self, channel_id: int, message_ids: Sequence[int]) -> dict[int, str]:
        self.log.append(f"read {channel_id}:{min(message_ids)}")
        return await super().known_hashes(channel_id, message_ids)

    async def save_posts(
        self, posts: Sequence[ProcessedPost], *, progress: ChannelProgress | None = None, then: Any = None
    ) -> SaveResult:
        first = posts[0].raw
        self.log.append(f"save {first.channel_id}:{first.message_id}")
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise sqlite3.OperationalError("database is locked")
        result = await super().save_posts(posts, progress=progress, then=then)
        self.log.append(f"saved {first.channel_id}:{first.message_id}")
        return result


@pytest.fixture
async def gated(tmp_path: Path) -> Any:
    archive = await GatedArchive.open_gated(tmp_path / "gated.db")
    for channel in (7, 8):
        await archive.upsert_channel(channel, None, f"c{channel}")
    yield archive
    await archive.close()


def posts(channel: int, first: int, count: int = 3, text: str = LONG) -> list[RawPost]:
    return [RawPost(channel, n, T0, text.format(n)) for n in range(first, first + count)]


async def until(condition: Any) -> None:
    """Wait for the condition (threads are at work: the database's, the CPU stage's)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("never happened")


async def test_the_next_batch_prepares_while_one_is_stored_and_stores_keep_their_order(
    gated: GatedArchive,
) -> None:
    pipeline = Pipeline(gated, FixedDetector(), stories=StoryIndex())
    gated.gate.clear()
    first = asyncio.create_task(pipeline.ingest(posts(7, 1)))
    second = asyncio.create_task(pipeline.ingest(posts(8, 1)))
    third = asyncio.create_task(pipeline.ingest(posts(7, 4)))
    await until(lambda: "read 7:4" in gated.log and "save 7:1" in gated.log)
    # the others prepared, in turn, while the first is held at its save (they may read before it began)
    assert sorted(gated.log) == ["read 7:1", "read 7:4", "read 8:1", "save 7:1"]
    assert gated.log[0] == "read 7:1" and gated.log.index("read 8:1") < gated.log.index("read 7:4")
    gated.gate.set()
    results = await asyncio.gather(first, second, third)
    assert [len(r.new) for r in results] == [3, 3, 3]
    saves = [line for line in gated.log if line.split()[0] == "save"]
    assert saves == ["save 7:1", "save 8:1", "save 7:4"]  # in the order they were handed in
    assert await gated.count_posts() == 9


async def test_a_batch_sharing_a_post_waits_for_the_earlier_store_and_sees_it(gated: GatedArchive) -> None:
    pipeline = Pipeline(gated, FixedDetector(), stories=StoryIndex())
    gated.gate.clear()
    first = asyncio.create_task(pipeline.ingest(posts(7, 1)))
    same = asyncio.create_task(pipeline.ingest(posts(7, 3, count=1)))  # post 3 again, unchanged
    edit = asyncio.create_task(pipeline.ingest(posts(7, 2, count=1, text="corrected {}")))
    await until(lambda: "save 7:1" in gated.log)
    await asyncio.sleep(0.2)  # time enough for the others to read, if they did not wait
    assert gated.log == ["read 7:1", "save 7:1"]  # neither read before the first batch was stored
    gated.gate.set()
    stored, again, edited = await asyncio.gather(first, same, edit)
    assert len(stored.new) == 3
    assert again.unchanged == 1 and not again.new  # it read the first batch's hash
    assert len(edited.edited) == 1 and not edited.new
    assert gated.log.index("saved 7:1") < gated.log.index("read 7:3")
    post = await gated.get_post(7, 2)
    assert post is not None and post.text == "corrected 2" and post.versions == 2


async def test_a_failed_store_forgets_its_stories_and_the_next_batch_is_still_stored(
    gated: GatedArchive,
) -> None:
    stories = StoryIndex()
    pipeline = Pipeline(gated, FixedDetector(), stories=stories)
    gated.gate.clear()
    gated.fail_next = True
    failing = asyncio.create_task(pipeline.ingest(posts(7, 1)))
    other = posts(8, 1, text="a wholly different report about {} trains")
    after = asyncio.create_task(pipeline.ingest(other))
    await until(lambda: "read 8:1" in gated.log)
    gated.gate.set()
    with pytest.raises(sqlite3.OperationalError):
        await failing
    result = await after
    assert len(result.new) == 3 and await gated.count_posts() == 3
    again = await pipeline.ingest(posts(7, 1))  # read again: its posts found their stories anew
    assert [p.story_id for p in again.new] == ["7:1", "7:1", "7:1"]


class HeldPipeline(Pipeline):
    """Assigns the stories of a batch of channel `held` only once `release` is set (it runs in a thread)."""

    held = 7
    release: threading.Event
    entered: threading.Event

    def _assign_stories(self, stories: StoryIndex, posts: list[RawPost], *args: Any) -> Any:
        if posts[0].channel_id == self.held:
            self.entered.set()
            assert self.release.wait(10)
        return super()._assign_stories(stories, posts, *args)


def held_pipeline(archive: SqliteArchive) -> HeldPipeline:
    pipeline = HeldPipeline(archive, FixedDetector(), stories=StoryIndex())
    pipeline.release, pipeline.entered = threading.Event(), threading.Event()
    return pipeline


async def test_stories_are_assigned_in_the_order_batches_were_handed_in(gated: GatedArchive) -> None:
    pipeline = held_pipeline(gated)
    first = asyncio.create_task(pipeline.ingest(posts(7, 1)))  # its stories are held
    dropped = asyncio.create_task(pipeline.ingest(posts(7, 10, text="a wholly different report {}")))
    copies = asyncio.create_task(pipeline.ingest(posts(8, 1)))  # the same texts in another channel
    await until(lambda: "read 8:1" in gated.log)  # the copies are prepared, and wait for both before them
    dropped.cancel()
    await asyncio.sleep(0.1)  # the copies would assign their stories now if they waited for the last only
    pipeline.release.set()
    stored, again = await first, await copies
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert [p.story_id for p in stored.new] == ["7:1"] * 3  # the first batch founded the story
    assert [p.story_id for p in again.new] == ["7:1"] * 3  # and its copies joined it
    assert await gated.count_posts() == 6


async def test_a_batch_cancelled_while_its_stories_are_assigned_founds_none(gated: GatedArchive) -> None:
    pipeline = held_pipeline(gated)
    held = asyncio.create_task(pipeline.ingest(posts(7, 1)))
    await until(pipeline.entered.is_set)  # its stories are being assigned, in a thread
    held.cancel()
    await asyncio.sleep(0.05)
    assert not held.done()  # it waits for the thread before it forgets what the thread did
    pipeline.release.set()
    with pytest.raises(asyncio.CancelledError):
        await held
    assert await gated.count_posts() == 0
    copies = await pipeline.ingest(posts(8, 1))  # the same texts: nothing of the cancelled batch to join
    assert [p.story_id for p in copies.new] == ["8:1"] * 3
