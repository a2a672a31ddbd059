"""The collector: backfill, catch-up, live updates and counter refresh for every watched channel.

Each channel runs in its own task, so a flood wait or a vanished channel stalls only that channel.
Progress (last seen id, backfill cursor) is stored in the same transaction as the posts it covers:
a crash at any point resumes with no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from collectors.refs import ChannelRef, ChannelRefError, parse_channel_ref
from collectors.source import (
    ChannelInfo,
    ChannelMismatch,
    ChannelUnavailable,
    DeletedPosts,
    EditedPost,
    FloodWait,
    NewPost,
    SourceEvent,
    TelethonSource,
)
from core.models import BackfillState, Channel, ChannelProgress, ChannelStatus, RawPost
from core.pipeline import Pipeline
from core.storage import Archive

log = logging.getLogger("tgmon.collector")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], datetime]
ProgressCallback = Callable[[int], None]

MAX_BACKOFF = 300.0
# Channels read at once. Every read holds a batch of posts (and Telethon a page of messages) until the
# pipeline, which stores one batch at a time, takes it: 1,000 channels reading at once held ~100 MB.
MAX_READS = 8


class CollectorObserver(Protocol):
    """Told of the collector's rounds (core.health.HealthRecorder: heartbeat, channel marks, metrics).
    Its failures are logged and never disturb collecting."""

    async def round_done(self, at: datetime) -> None: ...
    async def channel_read(self, channel_id: int, at: datetime, posts: int) -> None: ...
    async def channel_failed(
        self, channel_id: int, at: datetime, error: str, flood_wait: float = 0.0
    ) -> None: ...


class NoObserver:
    async def round_done(self, at: datetime) -> None:
        pass

    async def channel_read(self, channel_id: int, at: datetime, posts: int) -> None:
        pass

    async def channel_failed(
        self, channel_id: int, at: datetime, error: str, flood_wait: float = 0.0
    ) -> None:
        pass


def utcnow() -> datetime:
    return datetime.now(UTC)


class PendingWatch(Protocol):
    id: int
    ref: str
    backfill: int | None


class WatchRequests(Protocol):
    """Operators' /watch requests (core.storage.roles.OperationsStore)."""

    async def requests(self) -> Sequence[PendingWatch]: ...
    async def resolve_request(self, request_id: int, channel_id: int) -> None: ...
    async def fail_request(self, request_id: int, error: str) -> None: ...


class Collector:
    def __init__(
        self,
        archive: Archive,
        source: TelethonSource,
        pipeline: Pipeline,
        *,
        poll_interval: float = 60.0,
        refresh_hours: float = 48.0,
        refresh_interval: float = 1800.0,
        batch_size: int = 100,
        max_flood_wait: float = 86400.0,
        max_reads: int = MAX_READS,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = utcnow,
        observer: CollectorObserver | None = None,
        watch_requests: WatchRequests | None = None,
    ) -> None:
        self.archive = archive
        self.source = source
        self.pipeline = pipeline
        self.poll_interval = poll_interval
        self.refresh_window = timedelta(hours=refresh_hours)
        self.refresh_interval = refresh_interval
        self.batch_size = batch_size
        self.max_flood_wait = max_flood_wait
        self.sleep = sleep
        self.clock = clock
        self.observer: CollectorObserver = observer or NoObserver()
        self.watch_requests = watch_requests  # operators' /watch, written by the bot process
        self._reads = asyncio.Semaphore(max_reads)
        self._watched: set[int] = set()
        self._last_refresh: dict[int, datetime] = {}

    # operator actions

    async def add_channel(
        self, ref: ChannelRef, *, backfill: int | None = None, since: datetime | None = None
    ) -> Channel:
        """Resolve and watch a channel; raises ChannelUnavailable with a clear reason."""
        info = await self.source.resolve(ref)
        if ref.username:
            named = await self.archive.get_channel(ref.username)
            if named is not None and named.id != info.id:
                await self._name_changed_hands(ref.username, named, info)
        existing = await self.archive.get_channel(info.id)
        await self.archive.upsert_channel(
            info.id, info.username, info.title, access_hash=info.access_hash, watched=True
        )
        top = await self.source.newest_id(info.id)
        first_time = existing is None or (existing.last_seen_id == 0 and not existing.watched)
        wants_backfill = bool(backfill) or since is not None
        await self.archive.record_progress(
            ChannelProgress(
                info.id,
                # new channels start live from the newest post; older ones are the backfill's job
                last_seen_id=top if first_time else None,
                backfill=BackfillState(cursor=top + 1, remaining=backfill, since=since)
                if wants_backfill
                else None,
            )
        )
        channel = await self.archive.get_channel(info.id)
        assert channel is not None
        log.info("channel_added id=%s ref=%s backfill=%s since=%s", info.id, ref, backfill, since)
        return channel

    async def _name_changed_hands(self, name: str, old: Channel, new: ChannelInfo) -> None:
        """@name now names another channel than the archived one: never watch it in the old one's place.
        The old channel is looked up by id: renamed, it keeps being read under its new name; gone, it
        is marked (operators are told by the health monitor). Always raises ChannelMismatch."""
        reason = (
            f"@{name} now belongs to another channel, {new.title!r} (id {new.id}), "
            f"not the archived @{name} (id {old.id})"
        )
        self.source.remember(old.id, old.access_hash)
        try:
            current = await self.source.resolve(ChannelRef(channel_id=old.id))
        except ChannelUnavailable as exc:
            status = ChannelStatus.ERROR if old.watched else old.status
            error = f"{reason}; the old one is gone: {exc}"
            await self.archive.set_channel_status(old.id, status, error=error)
        else:
            await self.archive.upsert_channel(
                old.id, current.username, current.title, access_hash=current.access_hash
            )
            if current.username:
                reason += f", which is now @{current.username}"
        log.warning("channel_name_changed_hands name=%s old=%s new=%s", name, old.id, new.id)
        raise ChannelMismatch(f"{reason}; not watched. To watch the new channel, add it by id: -100{new.id}")

    # reading

    async def backfill(self, channel_id: int, on_progress: ProgressCallback | None = None) -> int:
        """Read older posts below the stored cursor, newest first; resumable at every batch."""
        channel = await self._channel(channel_id)
        if not channel.backfill_active:
            return 0
        cursor, remaining, since = channel.backfill_cursor, channel.backfill_remaining, channel.backfill_since
        stored = 0
        batch: list[RawPost] = []

        async def flush(done: bool) -> None:
            nonlocal cursor, remaining, stored, batch
            if batch:
                cursor = min(raw.message_id for raw in batch)
                remaining = None if remaining is None else max(remaining - len(batch), 0)
            state = BackfillState(cursor, remaining, since)
            await self.pipeline.ingest(
                batch,
                progress=ChannelProgress(channel_id, backfill=state, backfill_done=done or remaining == 0),
            )
            stored += len(batch)
            if on_progress and batch:
                on_progress(len(batch))
            batch = []

        if remaining == 0:
            await flush(done=True)
            return 0
        async for raw in self.source.history(channel_id, offset_id=cursor or 0, limit=remaining):
            if since is not None and raw.date < since:
                break
            batch.append(raw)
            if len(batch) >= self.batch_size:
                await flush(done=False)
        await flush(done=True)
        log.info("backfill_done channel=%s posts=%s", channel_id, stored)
        return stored

    async def catch_up(self, channel_id: int) -> int:
        """Read every post above the last seen id, oldest first, advancing the mark batch by batch."""
        channel = await self._channel(channel_id)
        batch: list[RawPost] = []
        stored = 0
        async for raw in self.source.history(channel_id, min_id=channel.last_seen_id, reverse=True):
            batch.append(raw)
            if len(batch) >= self.batch_size:
                stored += await self._ingest_seen(channel_id, batch)
                batch = []
        if batch:
            stored += await self._ingest_seen(channel_id, batch)
        return stored

    async def _ingest_seen(self, channel_id: int, batch: list[RawPost]) -> int:
        top = max(raw.message_id for raw in batch)
        await self.pipeline.ingest(batch, progress=ChannelProgress(channel_id, last_seen_id=top))
        return len(batch)

    async def refresh(self, channel_id: int) -> tuple[int, int]:
        """Re-read recent posts: counters and edits refreshed, vanished posts marked deleted."""
        ids = await self.archive.recent_message_ids(channel_id, self.clock() - self.refresh_window)
        refreshed = deleted = 0
        for start in range(0, len(ids), self.batch_size):
            found = await self.source.fetch(channel_id, ids[start : start + self.batch_size])
            gone = [mid for mid, raw in found.items() if raw is None]
            if gone:
                deleted += await self.archive.mark_deleted(channel_id, gone, self.clock())
            present = [raw for raw in found.values() if raw is not None]
            if present:
                await self.pipeline.ingest(present)
                refreshed += len(present)
        self._last_refresh[channel_id] = self.clock()
        return refreshed, deleted

    async def handle_event(self, event: SourceEvent) -> None:
        """A live update; channels not watched are ignored."""
        if isinstance(event, NewPost | EditedPost):
            if event.post.channel_id in self._watched:
                await self.pipeline.ingest([event.post])
        elif isinstance(event, DeletedPosts) and event.channel_id in self._watched:
            count = await self.archive.mark_deleted(event.channel_id, event.message_ids, self.clock())
            log.info("posts_deleted channel=%s count=%s", event.channel_id, count)

    # running

    async def run_channel_once(self, channel_id: int) -> int:
        """One round for one channel: finish a backfill, catch up, refresh counters when due.
        Returns how many posts the backfill and the catch-up read."""
        posts = await self.backfill(channel_id)
        posts += await self.catch_up(channel_id)
        last = self._last_refresh.get(channel_id)
        if last is None or (self.clock() - last).total_seconds() >= self.refresh_interval:
            await self.refresh(channel_id)
        return posts

    async def run_channel(self, channel_id: int) -> None:
        """Rounds forever; flood waits pause this channel only, a vanished channel is marked and left."""
        backoff = 5.0
        while True:
            try:
                async with self._reads:
                    posts = await self.run_channel_once(channel_id)
                channel = await self._channel(channel_id)
                if channel.status != ChannelStatus.ACTIVE:
                    await self.archive.set_channel_status(channel_id, ChannelStatus.ACTIVE)
                backoff = 5.0
                await self._observe(self.observer.channel_read(channel_id, self.clock(), posts))
                await self.sleep(self.poll_interval)
            except FloodWait as wait:
                await self._observe(
                    self.observer.channel_failed(channel_id, self.clock(), str(wait), flood_wait=wait.seconds)
                )
                if wait.seconds > self.max_flood_wait:
                    error = f"{wait}, longer than MAX_FLOOD_WAIT ({self.max_flood_wait:.0f} s)"
                    await self.archive.set_channel_status(channel_id, ChannelStatus.ERROR, error=error)
                    self._watched.discard(channel_id)
                    return
                until = self.clock() + timedelta(seconds=wait.seconds)
                log.warning("flood_wait channel=%s seconds=%s", channel_id, wait.seconds)
                await self.archive.set_channel_status(
                    channel_id, ChannelStatus.FLOOD_WAIT, error=str(wait), flood_wait_until=until
                )
                await self.sleep(wait.seconds)
            except ChannelUnavailable as exc:
                log.error("channel_unavailable channel=%s error=%s", channel_id, exc)
                await self._observe(self.observer.channel_failed(channel_id, self.clock(), str(exc)))
                await self.archive.set_channel_status(channel_id, ChannelStatus.ERROR, error=str(exc))
                self._watched.discard(channel_id)
                return
            except Exception as exc:  # a dropped connection, a locked database, an unexpected RPC error
                log.warning(
                    "channel_retry channel=%s error=%r in=%ss", channel_id, exc, backoff, exc_info=True
                )
                error = f"{type(exc).__name__}: {exc}"
                with contextlib.suppress(Exception):  # the database itself may be what failed
                    await self.archive.set_channel_status(channel_id, ChannelStatus.ACTIVE, error=error)
                await self._observe(self.observer.channel_failed(channel_id, self.clock(), error))
                await self.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Watch every channel marked watched, picking up channels added or removed meanwhile."""
        stop = stop or asyncio.Event()
        self.source.subscribe(self.handle_event)
        tasks: dict[int, asyncio.Task[None]] = {}
        try:
            while not stop.is_set():
                try:
                    await self.serve_watch_requests()
                    await self._supervise(tasks)
                except Exception:  # e.g. the database locked beyond the busy timeout: try next round
                    log.exception("collector_round_failed")
                else:
                    await self._observe(self.observer.round_done(self.clock()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_interval)
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    async def serve_watch_requests(self) -> int:
        """Resolve the operators' pending /watch requests; returns how many channels were added."""
        if self.watch_requests is None:
            return 0
        added = 0
        for request in await self.watch_requests.requests():
            try:
                channel = await self.add_channel(parse_channel_ref(request.ref), backfill=request.backfill)
            except (ChannelRefError, ChannelUnavailable) as exc:
                await self.watch_requests.fail_request(request.id, str(exc))
                continue
            except FloodWait as wait:  # the request stays pending; the next round tries again
                log.warning("watch_request_flood_wait ref=%s seconds=%s", request.ref, wait.seconds)
                break
            await self.watch_requests.resolve_request(request.id, channel.id)
            added += 1
        return added

    async def _supervise(self, tasks: dict[int, asyncio.Task[None]]) -> None:
        """Start a task per watched channel, stop those no longer watched, restart failed ones."""
        channels = {c.id: c for c in await self.archive.list_channels() if c.status != ChannelStatus.ERROR}
        for channel_id in set(tasks) - set(channels):
            tasks.pop(channel_id).cancel()
            self._watched.discard(channel_id)
        for channel_id, channel in channels.items():
            previous = tasks.get(channel_id)
            if previous is None or previous.done():
                self.source.remember(channel_id, channel.access_hash)
                self._watched.add(channel_id)
                tasks[channel_id] = asyncio.create_task(
                    self.run_channel(channel_id), name=f"channel-{channel_id}"
                )

    async def _observe(self, event: Awaitable[None]) -> None:
        try:
            await event
        except Exception:  # the heartbeat or a metric: never worth stopping a channel for
            log.warning("collector_observer_failed", exc_info=True)

    async def _channel(self, channel_id: int) -> Channel:
        channel = await self.archive.get_channel(channel_id)
        if channel is None:
            raise ChannelUnavailable(f"channel {channel_id} is not in the archive")
        return channel
