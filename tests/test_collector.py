"""The collector against a fake TelegramClient and real telethon.tl.types objects."""

from __future__ import annotations

from datetime import timedelta

import pytest
from telethon import errors
from telethon.tl import types

from collectors.collector import Collector
from collectors.refs import parse_channel_ref
from collectors.source import ChannelUnavailable, TelethonSource
from core.models import ChannelStatus
from core.pipeline import Pipeline
from core.storage.sqlite import SqliteArchive
from tests.fakes.memory import RecordingSink
from tests.fakes.telethon_client import FakeTelegramClient
from tests.fakes.tl_builders import (
    FIXED_DATE,
    delete_messages_update,
    edit_message_update,
    make_channel,
    make_message,
    make_user,
    new_message_update,
)

CHANNEL = 1001


def history(n: int, channel_id: int = CHANNEL) -> list[types.Message]:
    return [
        make_message(channel_id, i, f"post number {i}", date=FIXED_DATE + timedelta(minutes=i), views=i * 10)
        for i in range(1, n + 1)
    ]


class FakeTime:
    """Injected sleep and clock: sleeping advances time instantly, and is recorded."""

    def __init__(self) -> None:
        self.now = FIXED_DATE + timedelta(days=1)
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)

    def clock(self):  # type: ignore[no-untyped-def]
        return self.now


@pytest.fixture
def client() -> FakeTelegramClient:
    fake = FakeTelegramClient()
    fake.add_channel(make_channel(CHANNEL, "newsroom", "Newsroom"), history(250))
    return fake


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def collector(
    archive: SqliteArchive, pipeline: Pipeline, client: FakeTelegramClient, time: FakeTime
) -> Collector:
    return Collector(
        archive, TelethonSource(client), pipeline, batch_size=40, sleep=time.sleep, clock=time.clock
    )


async def stored_ids(archive: SqliteArchive, channel_id: int = CHANNEL) -> list[int]:
    return [p.message_id async for p in archive.iter_posts() if p.channel_id == channel_id]


async def test_add_resolves_every_reference_form(collector: Collector, archive: SqliteArchive) -> None:
    for text in ("@newsroom", "t.me/newsroom", "https://t.me/s/newsroom", "-1001001"):
        channel = await collector.add_channel(parse_channel_ref(text))
        assert (channel.id, channel.username, channel.title) == (CHANNEL, "newsroom", "Newsroom")
    assert channel.last_seen_id == 250  # live starts at the newest post; nothing older without a backfill
    assert await archive.count_posts() == 0


async def test_add_rejects_missing_user_and_unknown(collector: Collector, client: FakeTelegramClient) -> None:
    client.users["someone"] = make_user(5, "someone")
    with pytest.raises(ChannelUnavailable, match="no channel has this username"):
        await collector.add_channel(parse_channel_ref("@nosuchchannel"))
    with pytest.raises(ChannelUnavailable, match="is a user"):
        await collector.add_channel(parse_channel_ref("@someone"))
    with pytest.raises(ChannelUnavailable, match="does not exist"):
        await collector.add_channel(parse_channel_ref("-1009999"))


async def test_backfill_stores_the_newest_n_in_batches(
    collector: Collector, archive: SqliteArchive, sink: RecordingSink
) -> None:
    await collector.add_channel(parse_channel_ref("@newsroom"), backfill=100)
    seen: list[int] = []
    assert await collector.backfill(CHANNEL, seen.append) == 100
    assert seen == [40, 40, 20]
    assert await stored_ids(archive) == list(range(151, 251))
    channel = await archive.get_channel(CHANNEL)
    assert channel is not None and not channel.backfill_active
    assert await collector.backfill(CHANNEL) == 0  # done: a second run reads nothing
    post = await archive.get_post(CHANNEL, 200)
    assert post is not None and post.permalink == "https://t.me/newsroom/200" and post.views == 2000
    assert len(sink.new) == 100


async def test_backfill_since_a_date(collector: Collector, archive: SqliteArchive) -> None:
    await collector.add_channel(parse_channel_ref("@newsroom"), since=FIXED_DATE + timedelta(minutes=201))
    await collector.backfill(CHANNEL)
    assert await stored_ids(archive) == list(range(201, 251))


async def test_backfill_resumes_after_an_interruption_without_gap_or_duplicate(
    collector: Collector, archive: SqliteArchive, client: FakeTelegramClient
) -> None:
    await collector.add_channel(parse_channel_ref("@newsroom"), backfill=200)
    client.break_after[CHANNEL] = (95, ConnectionError("connection reset"))
    with pytest.raises(ConnectionError):
        await collector.backfill(CHANNEL)
    assert await stored_ids(archive) == list(range(171, 251))  # two whole batches committed
    channel = await archive.get_channel(CHANNEL)
    assert channel is not None and channel.backfill_cursor == 171 and channel.backfill_remaining == 120
    assert await collector.backfill(CHANNEL) == 120
    assert await stored_ids(archive) == list(range(51, 251))
    assert client.calls[-1][2]["offset_id"] == 171


async def test_catch_up_reads_everything_after_last_seen_in_order(
    collector: Collector, archive: SqliteArchive, client: FakeTelegramClient
) -> None:
    await collector.add_channel(parse_channel_ref("@newsroom"))
    for message in history(330)[250:]:
        client.post(message)
    client.break_after[CHANNEL] = (50, ConnectionError("dropped"))
    with pytest.raises(ConnectionError):
        await collector.catch_up(CHANNEL)
    channel = await archive.get_channel(CHANNEL)
    assert channel is not None and channel.last_seen_id == 290
    assert await collector.catch_up(CHANNEL) == 40
    assert await stored_ids(archive) == list(range(251, 331))
    assert await collector.catch_up(CHANNEL) == 0


async def test_live_new_edit_delete(
    collector: Collector, archive: SqliteArchive, client: FakeTelegramClient, sink: RecordingSink
) -> None:
    await collector.add_channel(parse_channel_ref("@newsroom"))
    collector.source.subscribe(collector.handle_event)
    collector._watched.add(CHANNEL)
    message = make_message(CHANNEL, 251, "Protest in Almaty", date=FIXED_DATE)
    await client.push(new_message_update(message))
    edited = make_message(
        CHANNEL,
        251,
        "Protest in Almaty, updated",
        date=FIXED_DATE,
        edit_date=FIXED_DATE + timedelta(minutes=5),
    )
    await client.push(edit_message_update(edited))
    await client.push(edit_message_update(edited))  # a repeated update is not a new version
    await client.push(delete_messages_update(CHANNEL, [251]))
    await client.push(new_message_update(make_message(4242, 1, "not watched")))

    post = await archive.get_post(CHANNEL, 251)
    assert post is not None and post.text == "Protest in Almaty, updated" and post.deleted_at is not None
    versions = await archive.versions(CHANNEL, 251)
    assert [v.text for v in versions] == ["Protest in Almaty", "Protest in Almaty, updated"]
    assert versions[1].edit_date == FIXED_DATE + timedelta(minutes=5)
    assert [p.message_id for p in sink.new] == [251] and [p.versions for p in sink.edited] == [2]
    assert await archive.count_posts() == 1


async def test_refresh_updates_counters_edits_and_marks_deletions(
    collector: Collector, archive: SqliteArchive, client: FakeTelegramClient, time: FakeTime
) -> None:
    await collector.add_channel(parse_channel_ref("@newsroom"), backfill=10)
    await collector.backfill(CHANNEL)
    channel = client.channels[CHANNEL]
    del channel.messages[245]
    channel.messages[246] = make_message(CHANNEL, 246, "post number 246", views=99999, reactions={"👍": 7})
    channel.messages[247] = make_message(
        CHANNEL, 247, "post number 247 (corrected)", edit_date=FIXED_DATE + timedelta(hours=3)
    )
    refreshed, deleted = await collector.refresh(CHANNEL)
    assert (refreshed, deleted) == (9, 1)
    gone = await archive.get_post(CHANNEL, 245)
    assert gone is not None and gone.deleted_at == time.now  # kept and flagged, never removed
    counted = await archive.get_post(CHANNEL, 246)
    assert counted is not None and counted.views == 99999 and counted.reactions == {"👍": 7}
    assert counted.versions == 1
    assert [v.text for v in await archive.versions(CHANNEL, 247)][-1] == "post number 247 (corrected)"


async def test_flood_wait_pauses_only_that_channel(
    collector: Collector, archive: SqliteArchive, client: FakeTelegramClient, time: FakeTime
) -> None:
    client.add_channel(make_channel(2002, "other", "Other"), history(5, 2002))
    await collector.add_channel(parse_channel_ref("@newsroom"))
    await collector.add_channel(parse_channel_ref("@other"))
    client.post(make_message(CHANNEL, 251, "after the wait"))
    client.post(make_message(2002, 6, "other channel goes on"))
    client.faults[CHANNEL] = [errors.FloodWaitError(request=None, capture=3600)]

    statuses: list[ChannelStatus] = []
    original_sleep = time.sleep

    async def sleep(seconds: float) -> None:
        channel = await archive.get_channel(CHANNEL)
        assert channel is not None
        statuses.append(channel.status)
        await original_sleep(seconds)
        if len(time.slept) >= 2:
            raise _Stop

    collector.sleep = sleep
    await collector.run_channel_once(2002)  # the other channel is not held up
    assert await archive.get_post(2002, 6) is not None
    with pytest.raises(_Stop):
        await collector.run_channel(CHANNEL)
    assert time.slept[0] == 3600 and statuses[0] == ChannelStatus.FLOOD_WAIT
    assert await archive.get_post(CHANNEL, 251) is not None  # resumed after the wait
    channel = await archive.get_channel(CHANNEL)
    assert channel is not None and channel.status == ChannelStatus.ACTIVE


async def test_vanished_channel_is_marked_and_skipped(
    collector: Collector, archive: SqliteArchive, client: FakeTelegramClient
) -> None:
    await collector.add_channel(parse_channel_ref("@newsroom"))
    client.faults[CHANNEL] = [errors.ChannelPrivateError(request=None)]
    await collector.run_channel(CHANNEL)  # returns instead of looping or raising
    channel = await archive.get_channel(CHANNEL)
    assert channel is not None and channel.status == ChannelStatus.ERROR
    assert channel.last_error is not None and "private" in channel.last_error


async def test_albums_keep_their_messages_and_group(collector: Collector, archive: SqliteArchive) -> None:
    await collector.add_channel(parse_channel_ref("@newsroom"))
    client = collector.source.client
    assert isinstance(client, FakeTelegramClient)
    for i in (251, 252, 253):
        client.post(make_message(CHANNEL, i, "album caption" if i == 251 else "", grouped_id=777))
    await collector.catch_up(CHANNEL)
    posts = [await archive.get_post(CHANNEL, i) for i in (251, 252, 253)]
    assert [p.album_id for p in posts if p] == [777, 777, 777]


async def test_run_loop_picks_up_channels_and_stops(
    archive: SqliteArchive, pipeline: Pipeline, client: FakeTelegramClient
) -> None:
    import asyncio

    collector = Collector(archive, TelethonSource(client), pipeline, poll_interval=0.01)
    await collector.add_channel(parse_channel_ref("@newsroom"), backfill=30)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if await archive.count_posts() == 30:
            break
    client.post(make_message(CHANNEL, 251, "fresh"))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if await archive.get_post(CHANNEL, 251):
            break
    stop.set()
    await asyncio.wait_for(task, 5)
    assert await archive.count_posts() == 31


class _Stop(Exception):
    pass


async def test_flood_wait_beyond_the_limit_marks_the_channel(
    archive: SqliteArchive, pipeline: Pipeline, client: FakeTelegramClient, time: FakeTime
) -> None:
    collector = Collector(
        archive, TelethonSource(client), pipeline, max_flood_wait=600, sleep=time.sleep, clock=time.clock
    )
    await collector.add_channel(parse_channel_ref("@newsroom"))
    client.faults[CHANNEL] = [errors.FloodWaitError(request=None, capture=3600)]
    await collector.run_channel(CHANNEL)
    channel = await archive.get_channel(CHANNEL)
    assert channel is not None and channel.status == ChannelStatus.ERROR
    assert channel.last_error is not None and "MAX_FLOOD_WAIT" in channel.last_error
    assert time.slept == []


async def test_an_unexpected_error_is_recorded_and_retried(
    collector: Collector, archive: SqliteArchive, client: FakeTelegramClient, time: FakeTime
) -> None:
    await collector.add_channel(parse_channel_ref("@newsroom"))
    client.post(make_message(CHANNEL, 251, "arrives after the error"))
    client.faults[CHANNEL] = [errors.RPCError(request=None, message="INTERNAL_SERVER_ERROR", code=500)]
    original = time.sleep
    errors_seen: list[str | None] = []

    async def sleep(seconds: float) -> None:
        channel = await archive.get_channel(CHANNEL)
        errors_seen.append(channel.last_error if channel else None)
        await original(seconds)
        if len(time.slept) >= 2:
            raise _Stop

    collector.sleep = sleep
    with pytest.raises(_Stop):
        await collector.run_channel(CHANNEL)
    assert errors_seen[0] is not None and "INTERNAL_SERVER_ERROR" in errors_seen[0]
    assert time.slept[0] == 5.0  # backoff, then the next round reads the post
    assert await archive.get_post(CHANNEL, 251) is not None


async def test_refresh_marks_only_what_telegram_reports_gone(
    collector: Collector, archive: SqliteArchive, client: FakeTelegramClient
) -> None:
    await collector.add_channel(parse_channel_ref("@newsroom"), backfill=3)
    await collector.backfill(CHANNEL)
    client.channels[CHANNEL].messages[249] = types.MessageEmpty(id=249, peer_id=types.PeerChannel(CHANNEL))
    _, deleted = await collector.refresh(CHANNEL)
    assert deleted == 1
    flags = {i: (await archive.get_post(CHANNEL, i)).deleted_at is not None for i in (248, 249, 250)}  # type: ignore[union-attr]
    assert flags == {248: False, 249: True, 250: False}


async def test_operators_watch_requests_are_served(
    archive: SqliteArchive, pipeline: Pipeline, client: FakeTelegramClient
) -> None:
    from core.storage.roles import OperationsStore, WatchStatus

    operations = OperationsStore(archive)
    collector = Collector(archive, TelethonSource(client), pipeline, watch_requests=operations)
    good, _ = await operations.request_watch("@newsroom", 20, by=1)
    bad, _ = await operations.request_watch("@nosuchchannel", None, by=1)
    assert await collector.serve_watch_requests() == 1
    channel = await archive.get_channel(CHANNEL)
    assert channel is not None and channel.watched and channel.backfill_remaining == 20
    closed = {r.id: r for r in await operations.requests([WatchStatus.DONE, WatchStatus.FAILED])}
    assert closed[good.id].status == WatchStatus.DONE and closed[good.id].channel_id == CHANNEL
    assert closed[bad.id].status == WatchStatus.FAILED and "no channel" in (closed[bad.id].error or "")
    assert await collector.serve_watch_requests() == 0


class CountingClient(FakeTelegramClient):
    """Counts the history reads in progress at once; each read takes a while (2 ms a message), so the
    channels' reads overlap as far as the collector lets them."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = 0
        self.most = 0

    def iter_messages(self, entity, limit=None, **kwargs):  # type: ignore[no-untyped-def]
        import asyncio

        inner = super().iter_messages(entity, limit, **kwargs)

        async def counted():  # type: ignore[no-untyped-def]
            self.reading += 1
            self.most = max(self.most, self.reading)
            try:
                async for message in inner:
                    await asyncio.sleep(0.002)
                    yield message
            finally:
                self.reading -= 1

        return counted()


async def test_at_most_max_reads_channels_are_read_at_once(
    archive: SqliteArchive, pipeline: Pipeline
) -> None:
    """Every read holds a batch until the pipeline takes it: 1,000 channels at once held ~60 MB."""
    import asyncio

    client = CountingClient()
    channels = range(2001, 2013)
    for channel_id in channels:
        client.add_channel(make_channel(channel_id, f"c{channel_id}", "C"), history(30, channel_id))
    collector = Collector(archive, TelethonSource(client), pipeline, poll_interval=60, max_reads=3)
    for channel_id in channels:
        await collector.add_channel(parse_channel_ref(f"@c{channel_id}"), backfill=30)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    for _ in range(500):
        await asyncio.sleep(0.01)
        if await archive.count_posts() == 30 * len(channels):
            break
    stop.set()
    await asyncio.wait_for(task, 5)
    assert await archive.count_posts() == 30 * len(channels)  # every channel read in full
    assert client.most == 3
