"""Faults from Telegram's user API: real telethon errors raised by the fake client, a fake clock.

Each fault stalls one channel at most, loses nothing, stores nothing twice or under the wrong channel,
and whatever needs an operator produces a notice for them (through the health monitor's outbox rows).
(tests/test_collector.py has the single flood wait, the over-limit one, a private channel and an
interrupted backfill called directly; here they run through the channel loop, beside another channel.)
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from telethon import errors
from telethon.tl import types

from collectors.collector import Collector
from collectors.refs import parse_channel_ref
from collectors.source import ChannelUnavailable, TelethonSource
from core.health import HealthMonitor, HealthRecorder, beat
from core.models import ChannelStatus
from core.pipeline import Pipeline
from core.storage.roles import OperationsStore, WatchStatus
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import SubscriptionStore
from tests.fakes.memory import RecordingSink
from tests.fakes.telethon_client import FakeTelegramClient, serve_cli
from tests.fakes.tl_builders import FIXED_DATE, make_channel, make_message

CHANNEL, OTHER, NEWCOMER = 1001, 2002, 3003
ADMIN, OPERATOR = 10, 20
POLL = 60.0


class Stop(BaseException):
    """Ends a channel loop from inside the fake sleep (a BaseException: the loop's handlers pass it)."""


def history(n: int, channel_id: int, start: int = 1) -> list[types.Message]:
    return [
        make_message(channel_id, i, f"post number {i}", date=FIXED_DATE + timedelta(minutes=i))
        for i in range(start, n + 1)
    ]


class Timeline:
    """The collector's clock and sleep: sleeping moves the clock at once and runs the test's hook."""

    def __init__(self) -> None:
        self.now = FIXED_DATE + timedelta(days=1)
        self.slept: list[float] = []
        self.hook: Callable[[float], Awaitable[None]] | None = None

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.hook is not None:
            await self.hook(seconds)
        self.now += timedelta(seconds=seconds)
        await asyncio.sleep(0)


@pytest.fixture
def client() -> FakeTelegramClient:
    fake = FakeTelegramClient()
    fake.add_channel(make_channel(CHANNEL, "newsroom", "Newsroom"), history(250, CHANNEL))
    fake.add_channel(make_channel(OTHER, "other", "Other"), history(5, OTHER))
    return fake


@pytest.fixture
def timeline() -> Timeline:
    return Timeline()


@pytest.fixture
def collector(
    archive: SqliteArchive, pipeline: Pipeline, client: FakeTelegramClient, timeline: Timeline
) -> Collector:
    return Collector(
        archive,
        TelethonSource(client),
        pipeline,
        poll_interval=POLL,
        batch_size=40,
        max_flood_wait=600,
        sleep=timeline.sleep,
        clock=timeline.clock,
        observer=HealthRecorder(archive),
    )


@pytest.fixture
async def health(archive: SqliteArchive) -> HealthMonitor:
    """Admin 10 (ADMIN_IDS) and operator 20 (a role) have sent /start."""
    store = SubscriptionStore(archive)
    for user in (ADMIN, OPERATOR):
        await store.upsert_subscriber(user, user, "en")
    async with archive._write() as db:
        await db.execute(
            "INSERT INTO roles (user_id, role, granted_at) VALUES (?, 'operator', 0)", (OPERATOR,)
        )
    return HealthMonitor(archive, store, admin_ids=[ADMIN], max_lag=timedelta(hours=6), channel_failures=3)


async def check(health: HealthMonitor, at: datetime) -> list[tuple[str, bool]]:
    """One monitor round with a live collector: (condition, started) of what changed."""
    await beat(health.archive, at)
    return [(c.key, c.started) for c in await health.check(at)]


async def notices(archive: SqliteArchive) -> list[tuple[int, str]]:
    found = await archive._all("SELECT chat_id, payload FROM outbox WHERE kind = 'notice' ORDER BY id")
    return [(int(chat), json.loads(payload)["text"]) for chat, payload in found]


async def stored_ids(archive: SqliteArchive, channel_id: int = CHANNEL) -> list[int]:
    found = await archive._all(
        "SELECT message_id FROM posts WHERE channel_id = ? ORDER BY message_id", (channel_id,)
    )
    return [int(r[0]) for r in found]


async def run_both(collector: Collector) -> None:
    """Both channels' loops side by side, until each stops or is left (a channel in error returns)."""
    results = await asyncio.gather(
        collector.run_channel(CHANNEL), collector.run_channel(OTHER), return_exceptions=True
    )
    for result in results:
        if result is not None and not isinstance(result, Stop):
            raise result


async def test_a_short_flood_wait_pauses_that_channel_while_the_other_reads_on(
    collector: Collector, archive: SqliteArchive, client: FakeTelegramClient, timeline: Timeline,
    health: HealthMonitor,
) -> None:  # fmt: skip
    await collector.add_channel(parse_channel_ref("@newsroom"))
    await collector.add_channel(parse_channel_ref("@other"))
    client.post(make_message(CHANNEL, 251, "after the wait"))
    client.post(make_message(OTHER, 6, "read during the wait"))
    client.faults[CHANNEL] = [errors.FloodWaitError(request=None, capture=5)]
    other_read = asyncio.Event()
    during_wait: list[object] = []

    async def hook(seconds: float) -> None:
        if seconds == 5:  # the flood wait: the other channel is read meanwhile
            channel = await archive.get_channel(CHANNEL)
            during_wait.append(channel.status if channel else None)
            await asyncio.wait_for(other_read.wait(), 5)
            during_wait.append(await archive.get_post(OTHER, 6) is not None)
        elif seconds == POLL:
            other_read.set()
            raise Stop

    timeline.hook = hook
    await run_both(collector)
    assert during_wait == [ChannelStatus.FLOOD_WAIT, True]
    assert timeline.slept.count(5) == 1 and await archive.get_post(CHANNEL, 251) is not None
    channel = await archive.get_channel(CHANNEL)
    assert channel is not None and channel.status == ChannelStatus.ACTIVE
    assert await check(health, timeline.now) == []  # a 5 s wait is no news for the operators
    assert await notices(archive) == []


async def test_a_flood_wait_beyond_the_limit_marks_the_channel_tells_operators_and_the_other_goes_on(
    collector: Collector, archive: SqliteArchive, client: FakeTelegramClient, timeline: Timeline,
    health: HealthMonitor,
) -> None:  # fmt: skip
    await collector.add_channel(parse_channel_ref("@newsroom"))
    await collector.add_channel(parse_channel_ref("@other"))
    client.post(make_message(OTHER, 6, "still read"))
    client.faults[CHANNEL] = [errors.FloodWaitError(request=None, capture=3600)]

    async def hook(seconds: float) -> None:
        assert seconds == POLL, "nothing may sleep through the hour"
        raise Stop

    timeline.hook = hook
    await run_both(collector)
    channel = await archive.get_channel(CHANNEL)
    assert channel is not None and channel.status == ChannelStatus.ERROR
    assert "flood wait of 3600 s, longer than MAX_FLOOD_WAIT (600 s)" in (channel.last_error or "")
    assert await archive.get_post(OTHER, 6) is not None
    assert await check(health, timeline.now) == [(f"channel_failing:{CHANNEL}", True)]
    sent = await notices(archive)
    assert [chat for chat, _ in sent] == [ADMIN, OPERATOR]
    assert "@newsroom is failing" in sent[0][1] and "MAX_FLOOD_WAIT" in sent[0][1]


async def test_disconnects_in_a_backfill_resume_without_gap_or_duplicate_and_operators_hear_of_it(
    collector: Collector, archive: SqliteArchive, client: FakeTelegramClient, timeline: Timeline,
    health: HealthMonitor, sink: RecordingSink,
) -> None:  # fmt: skip
    await collector.add_channel(parse_channel_ref("@newsroom"), backfill=200)
    dropped = ConnectionError("Cannot send requests while disconnected")
    client.break_after[CHANNEL] = (95, dropped)  # mid-batch: two batches of 40 are in, 15 read
    client.faults[CHANNEL] = []
    seen: list[list[tuple[str, bool]]] = []

    async def hook(seconds: float) -> None:
        if seconds == 5:  # the first retry finds the connection still down, and the second
            client.faults[CHANNEL] = [dropped, dropped]
        if seconds == 20:  # three failed rounds in a row
            seen.append(await check(health, timeline.now))
        if seconds == POLL:
            seen.append(await check(health, timeline.now))
            raise Stop

    timeline.hook = hook
    with pytest.raises(Stop):
        await collector.run_channel(CHANNEL)
    assert timeline.slept == [5, 10, 20, POLL]  # backoff doubling, then the normal poll
    assert seen == [[(f"channel_failing:{CHANNEL}", True)], [(f"channel_failing:{CHANNEL}", False)]]
    assert await stored_ids(archive) == list(range(51, 251))
    versions = await archive._one("SELECT COUNT(*), MAX(version) FROM posts")
    assert tuple(versions) == (200, 1)
    assert tuple(await archive._one("SELECT COUNT(*) FROM post_versions")) == (0,)  # no edit replaced any
    assert sorted(p.message_id for p in sink.new) == list(range(51, 251))  # each handed over once
    channel = await archive.get_channel(CHANNEL)
    assert channel is not None and not channel.backfill_active and channel.status == ChannelStatus.ACTIVE
    texts = [text for _, text in await notices(archive)]
    assert len(texts) == 4 and "3 failed rounds" in texts[0] and "disconnected" in texts[0]
    assert "read normally again" in texts[2]


async def test_a_channel_turning_private_mid_backfill_keeps_what_was_read_and_resumes_when_public(
    collector: Collector, archive: SqliteArchive, client: FakeTelegramClient, timeline: Timeline,
    health: HealthMonitor,
) -> None:  # fmt: skip
    await collector.add_channel(parse_channel_ref("@newsroom"), backfill=200)
    await collector.add_channel(parse_channel_ref("@other"))
    client.post(make_message(OTHER, 6, "still read"))
    client.break_after[CHANNEL] = (45, errors.ChannelPrivateError(request=None))

    async def hook(seconds: float) -> None:
        assert seconds == POLL
        raise Stop

    timeline.hook = hook
    await run_both(collector)
    channel = await archive.get_channel(CHANNEL)
    assert channel is not None and channel.status == ChannelStatus.ERROR
    assert "private" in (channel.last_error or "")
    assert await stored_ids(archive) == list(range(211, 251))  # the one whole batch, nothing half
    assert channel.backfill_cursor == 211 and channel.backfill_remaining == 160
    assert await archive.get_post(OTHER, 6) is not None
    assert await check(health, timeline.now) == [(f"channel_failing:{CHANNEL}", True)]
    assert "the channel is private" in (await notices(archive))[0][1]

    client.private.add(CHANNEL)  # still private: adding it again is refused with the reason
    with pytest.raises(ChannelUnavailable, match="private"):
        await collector.add_channel(parse_channel_ref("@newsroom"))
    client.private.clear()  # public again; an operator adds it again and the backfill picks up
    await collector.add_channel(parse_channel_ref("@newsroom"))
    await collector.run_channel_once(CHANNEL)
    assert await stored_ids(archive) == list(range(51, 251))
    assert await check(health, timeline.now) == [(f"channel_failing:{CHANNEL}", False)]


@pytest.fixture
async def taken(collector: Collector, archive: SqliteArchive, client: FakeTelegramClient) -> OperationsStore:
    """@newsroom (1001) is archived and watched; then it is renamed and a newcomer takes the name."""
    await collector.add_channel(parse_channel_ref("@newsroom"), backfill=10)
    await collector.backfill(CHANNEL)
    client.add_channel(make_channel(NEWCOMER, None, "Totally Newsroom"), history(3, NEWCOMER))
    client.give_username("newsroom_archive", CHANNEL)
    client.give_username("newsroom", NEWCOMER)
    collector.watch_requests = OperationsStore(archive)
    return collector.watch_requests


async def test_a_username_that_changed_hands_is_not_watched_in_the_old_channels_place(
    collector: Collector, archive: SqliteArchive, client: FakeTelegramClient, taken: OperationsStore,
) -> None:  # fmt: skip
    request, _ = await taken.request_watch("@newsroom", 50, by=OPERATOR)
    assert await collector.serve_watch_requests() == 0
    (failed,) = await taken.requests([WatchStatus.FAILED])
    assert failed.id == request.id and failed.error is not None
    assert "@newsroom now belongs to another channel, 'Totally Newsroom' (id 3003)" in failed.error
    assert "not the archived @newsroom (id 1001), which is now @newsroom_archive" in failed.error
    assert "add it by id: -1003003" in failed.error
    assert await archive.get_channel(NEWCOMER) is None and await stored_ids(archive, NEWCOMER) == []
    old = await archive.get_channel(CHANNEL)  # renamed, still readable: read on under its new name
    assert old is not None and old.username == "newsroom_archive" and old.status == ChannelStatus.ACTIVE
    client.post(make_message(CHANNEL, 251, "the old channel goes on"))
    await collector.run_channel_once(CHANNEL)
    assert await stored_ids(archive) == list(range(241, 252))
    added = await collector.add_channel(parse_channel_ref("-1003003"))  # on purpose, by id: its own row
    assert added.id == NEWCOMER and added.username == "newsroom"


async def test_a_username_taken_over_from_a_vanished_channel_marks_it_and_tells_operators(
    collector: Collector, archive: SqliteArchive, client: FakeTelegramClient, taken: OperationsStore,
    timeline: Timeline, health: HealthMonitor,
) -> None:  # fmt: skip
    del client.channels[CHANNEL]  # deleted, and its name went to the newcomer
    await taken.request_watch("@newsroom", None, by=OPERATOR)
    assert await collector.serve_watch_requests() == 0
    old = await archive.get_channel(CHANNEL)
    assert old is not None and old.status == ChannelStatus.ERROR
    assert "now belongs to another channel" in (old.last_error or "")
    assert "the old one is gone: the channel does not exist" in (old.last_error or "")
    assert await archive.get_channel(NEWCOMER) is None
    assert await check(health, timeline.now) == [(f"channel_failing:{CHANNEL}", True)]
    assert "@newsroom now belongs to another channel" in (await notices(archive))[0][1]


async def test_reading_that_yields_another_channels_posts_stores_nothing_and_marks_the_channel(
    collector: Collector, archive: SqliteArchive, client: FakeTelegramClient, timeline: Timeline,
    health: HealthMonitor,
) -> None:  # fmt: skip
    await collector.add_channel(parse_channel_ref("@newsroom"))
    client.add_channel(make_channel(NEWCOMER, "impostor", "Impostor"), history(300, NEWCOMER))
    client.redirect[CHANNEL] = NEWCOMER  # the session's entity for 1001 now reaches another channel
    await collector.run_channel(CHANNEL)  # returns: the channel is left in error
    channel = await archive.get_channel(CHANNEL)
    assert channel is not None and channel.status == ChannelStatus.ERROR and channel.last_seen_id == 250
    assert "reading channel 1001 gave posts of channel 3003" in (channel.last_error or "")
    assert await archive.count_posts() == 0
    assert await check(health, timeline.now) == [(f"channel_failing:{CHANNEL}", True)]


@pytest.fixture
def cli_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, client: FakeTelegramClient) -> Iterator[None]:
    serve_cli(monkeypatch, tmp_path, client)
    yield


def test_channels_add_of_a_name_that_changed_hands_is_one_clear_line(
    cli_client: None, client: FakeTelegramClient
) -> None:
    from core.cli import main

    assert main(["channels", "add", "@newsroom"]) == 0
    client.add_channel(make_channel(NEWCOMER, None, "Totally Newsroom"), history(3, NEWCOMER))
    client.give_username("newsroom_archive", CHANNEL)
    client.give_username("newsroom", NEWCOMER)
    err = io.StringIO()
    assert main(["channels", "add", "@newsroom"], stderr=err) == 2
    assert "Traceback" not in err.getvalue()
    (line,) = [line for line in err.getvalue().splitlines() if line.startswith("tgmon:")]  # beside the log
    assert line.startswith("tgmon: cannot watch @newsroom: @newsroom now belongs to another channel")
    assert line.endswith("add it by id: -1003003")
