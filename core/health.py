"""Collector health: a heartbeat and per-channel marks written by the collector, watched by the bot.

The collector (through `HealthRecorder`, its observer) writes to `meta`:

    collector_heartbeat      ISO UTC time of the supervisor's last round (every POLL_INTERVAL)
    collector_started        ISO UTC time the running collector made its first round
    channel_ok:<id>          ISO UTC time the channel was last read in full (backfill + catch-up)
    channel_failures:<id>    failed rounds in a row (flood waits and errors); gone after a good round

`HealthMonitor`, in the bot's process, turns these into conditions:

    collector_down           no heartbeat, or none for HEARTBEAT_TIMEOUT_MINUTES
    channel_behind:<id>      not read in full for MAX_LAG_MINUTES (a channel still backfilling is
                             exempt; the lag counts from the collector's start at the earliest)
    channel_failing:<id>     status error, or CHANNEL_FAILURES failed rounds in a row

and keeps the ongoing ones in `meta.health_state` (JSON). Operators (ADMIN_IDS and users with the
operator or admin role) get one notice when a condition starts and one when it ends, across restarts,
written in the same transaction as the state. While the collector is down nothing is said about its
channels; while a channel is failing its lag is not reported separately.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.metrics import METRICS, Metrics, metric_label
from core.models import Channel, ChannelStatus
from core.storage import Archive
from core.storage.sqlite import SqliteArchive

if TYPE_CHECKING:
    from core.settings import Settings
    from core.storage.subscriptions import SubscriptionStore

log = logging.getLogger("tgmon.health")

HEARTBEAT = "collector_heartbeat"
STARTED = "collector_started"
CHANNEL_OK = "channel_ok:"
CHANNEL_FAILURES = "channel_failures:"
STATE = "health_state"

DOWN = "collector_down"
BEHIND = "channel_behind:"
FAILING = "channel_failing:"

MAX_NOTICE = 3500  # characters per notice; Telegram's limit is 4096


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds")


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite(archive: Archive) -> SqliteArchive:
    if not isinstance(archive, SqliteArchive):
        raise TypeError(f"health needs the SQLite archive, not {type(archive).__name__}")
    return archive


async def _set_meta(archive: SqliteArchive, values: dict[str, str], delete: Iterable[str] = ()) -> None:
    async with archive._write() as db:
        await db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )
        await db.executemany("DELETE FROM meta WHERE key = ?", [(key,) for key in delete])


# the collector's side


async def beat(archive: Archive, at: datetime) -> None:
    """The collector is alive at `at`."""
    await _set_meta(_sqlite(archive), {HEARTBEAT: iso(at)})


class HealthRecorder:
    """The collector's observer: heartbeat, per-channel marks, and the collector's metrics."""

    def __init__(self, archive: Archive, metrics: Metrics = METRICS) -> None:
        self.archive = _sqlite(archive)
        self.metrics = metrics
        self._started = False
        self._labels: dict[int, str] = {}

    async def round_done(self, at: datetime) -> None:
        values = {HEARTBEAT: iso(at)}
        if not self._started:
            values[STARTED] = iso(at)
        await _set_meta(self.archive, values)
        self._started = True

    async def channel_read(self, channel_id: int, at: datetime, posts: int) -> None:
        await _set_meta(
            self.archive, {f"{CHANNEL_OK}{channel_id}": iso(at)}, [f"{CHANNEL_FAILURES}{channel_id}"]
        )
        if self.metrics.enabled:
            self.metrics.posts_ingested(await self._label(channel_id), posts)

    async def channel_failed(
        self, channel_id: int, at: datetime, error: str, flood_wait: float = 0.0
    ) -> None:
        async with self.archive._write() as db:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, '1') "
                "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                (f"{CHANNEL_FAILURES}{channel_id}",),
            )
        if self.metrics.enabled:
            self.metrics.flood_wait(await self._label(channel_id), flood_wait)

    async def _label(self, channel_id: int) -> str:
        if channel_id not in self._labels:
            channel = await self.archive.get_channel(channel_id)
            self._labels[channel_id] = metric_label(channel) if channel else str(channel_id)
        return self._labels[channel_id]


def collector_observer(archive: Archive) -> HealthRecorder | None:
    """The observer `tgmon collect` gives its collector (None for an archive without `meta`)."""
    return HealthRecorder(archive) if isinstance(archive, SqliteArchive) else None


# reading the marks


@dataclass
class Snapshot:
    heartbeat: datetime | None
    started: datetime | None
    ok: dict[int, datetime] = field(default_factory=dict)
    failures: dict[int, int] = field(default_factory=dict)
    state: dict[str, dict[str, Any]] = field(default_factory=dict)

    def lag(self, channel: Channel, now: datetime) -> float:
        """Seconds since the channel was last read in full, counted from the collector's start at the
        earliest (a restarted collector gets a fresh MAX_LAG before its channels count as behind)."""
        since = self.ok.get(channel.id) or channel.added_at or now
        if self.started is not None:
            since = max(since, self.started)
        return max((now - since).total_seconds(), 0.0)


async def snapshot(archive: Archive) -> Snapshot:
    db = _sqlite(archive)
    found = await db._all(
        "SELECT key, value FROM meta WHERE key IN (?, ?, ?) OR key LIKE 'channel_ok:%' "
        "OR key LIKE 'channel_failures:%'",
        (HEARTBEAT, STARTED, STATE),
    )
    meta: dict[str, str] = dict(found)
    snap = Snapshot(parse_iso(meta.get(HEARTBEAT)), parse_iso(meta.get(STARTED)))
    for key, value in meta.items():
        prefix, _, ident = key.partition(":")
        if not ident.lstrip("-").isdigit():
            continue
        if prefix + ":" == CHANNEL_OK and (at := parse_iso(value)) is not None:
            snap.ok[int(ident)] = at
        elif prefix + ":" == CHANNEL_FAILURES and value.isdigit():
            snap.failures[int(ident)] = int(value)
    with contextlib.suppress(ValueError, TypeError):
        state = json.loads(meta.get(STATE) or "{}")
        if isinstance(state, dict):
            snap.state = {k: v for k, v in state.items() if isinstance(v, dict)}
    return snap


def _collected(channel: Channel) -> bool:
    return channel.watched and channel.status in (ChannelStatus.ACTIVE, ChannelStatus.FLOOD_WAIT)


async def channel_lags(archive: Archive, now: datetime) -> dict[int, float]:
    """Seconds behind, per channel the collector reads (watched, not in error)."""
    snap = await snapshot(archive)
    return {c.id: snap.lag(c, now) for c in await archive.list_channels() if _collected(c)}


# texts: English and Russian in one message (operators may read either)


def _minutes(seconds: float) -> str:
    minutes = max(round(seconds / 60), 1)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _minutes_ru(seconds: float) -> str:
    minutes = max(round(seconds / 60), 1)
    if minutes < 120:
        return f"{minutes} мин"
    return f"{minutes // 60} ч {minutes % 60:02d} мин"


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at else "never / никогда"


def text_down(last: datetime | None, now: datetime) -> str:
    if last is None:
        return (
            "🔴 <b>tgmon: the collector is not running</b> — it has never written a heartbeat.\n"
            "🔴 <b>tgmon: коллектор не работает</b> — он ещё ни разу не отметился."
        )
    gone = (now - last).total_seconds()
    return (
        f"🔴 <b>tgmon: the collector is down</b> — no heartbeat for {_minutes(gone)} (last {_when(last)}).\n"
        f"🔴 <b>tgmon: коллектор не работает</b> — нет отметки {_minutes_ru(gone)} (последняя {_when(last)})."
    )


def text_up(duration: float) -> str:
    return (
        f"🟢 <b>tgmon: the collector is running again</b> (down for {_minutes(duration)}).\n"
        f"🟢 <b>tgmon: коллектор снова работает</b> (простой {_minutes_ru(duration)})."
    )


def text_behind(label: str, lag: float) -> str:
    name = html.escape(label)
    return (
        f"🟠 <b>tgmon: {name} is behind</b> — not read in full for {_minutes(lag)}.\n"
        f"🟠 <b>tgmon: {name} отстаёт</b> — не дочитан уже {_minutes_ru(lag)}."
    )


def text_caught_up(label: str, duration: float) -> str:
    name = html.escape(label)
    return (
        f"🟢 <b>tgmon: {name} has caught up</b> (was behind for {_minutes(duration)}).\n"
        f"🟢 <b>tgmon: {name} снова в актуальном состоянии</b> (отставал {_minutes_ru(duration)})."
    )


def text_failing(label: str, error: str | None, rounds: int, in_error: bool) -> str:
    name = html.escape(label)
    reason = f": <code>{html.escape(error[:300])}</code>" if error else ""
    if in_error:
        en = "skipped until an operator acts (<code>tgmon channels add</code> again)"
        ru = "пропускается, пока оператор не вмешается (снова <code>tgmon channels add</code>)"
    else:
        en = f"{rounds} failed rounds in a row"
        ru = f"{rounds} неудачных попыток подряд"
    return (
        f"🔴 <b>tgmon: {name} is failing</b> — {en}{reason}\n"
        f"🔴 <b>tgmon: {name} не читается</b> — {ru}{reason}"
    )


def text_recovered(label: str, duration: float) -> str:
    name = html.escape(label)
    return (
        f"🟢 <b>tgmon: {name} is read normally again</b> (failing for {_minutes(duration)}).\n"
        f"🟢 <b>tgmon: {name} снова читается</b> (сбой длился {_minutes_ru(duration)})."
    )


# the monitor


@dataclass(frozen=True, slots=True)
class Change:
    key: str  # collector_down | channel_behind:<id> | channel_failing:<id>
    started: bool  # True: the condition began; False: it ended
    text: str  # the notice, Telegram HTML


@dataclass(frozen=True, slots=True)
class _Condition:
    text: str
    label: str
    since: datetime  # when it really began (the last heartbeat, the last full read), for "down for …"


class HealthMonitor:
    def __init__(
        self,
        archive: Archive,
        store: SubscriptionStore,
        *,
        admin_ids: Iterable[int] = (),
        max_lag: timedelta = timedelta(minutes=15),
        heartbeat_timeout: timedelta = timedelta(minutes=5),
        channel_failures: int = 3,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.archive = _sqlite(archive)
        self.store = store
        self.admin_ids = tuple(admin_ids)
        self.max_lag = max_lag
        self.heartbeat_timeout = heartbeat_timeout
        self.channel_failures = channel_failures
        self.clock = clock

    @classmethod
    def from_settings(cls, archive: Archive, store: SubscriptionStore, settings: Settings) -> HealthMonitor:
        # the heartbeat comes once per POLL_INTERVAL: a timeout shorter than two of those would cry wolf
        timeout = max(settings.heartbeat_timeout_minutes * 60, 2 * settings.poll_interval)
        return cls(
            archive,
            store,
            admin_ids=settings.admin_ids,
            max_lag=timedelta(minutes=settings.max_lag_minutes),
            heartbeat_timeout=timedelta(seconds=timeout),
            channel_failures=settings.channel_failures,
        )

    async def run(self, stop: asyncio.Event, every: float = 60.0) -> None:
        """Check every `every` seconds until `stop`; the first check after one period, so a collector
        started alongside has written its heartbeat."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
            if stop.is_set():
                return
            try:
                await self.check(self.clock())
            except Exception:  # a locked database: the next check tries again
                log.exception("health_check_failed")

    async def evaluate(self, now: datetime) -> tuple[dict[str, _Condition], set[str], set[int], Snapshot]:
        """Conditions on now, keys whose state cannot be told now (kept as they are), watched channels."""
        snap = await snapshot(self.archive)
        channels = [c for c in await self.archive.list_channels() if c.watched]
        watched = {c.id for c in channels}
        active: dict[str, _Condition] = {}
        unknown: set[str] = set()
        if snap.heartbeat is None or now - snap.heartbeat > self.heartbeat_timeout:
            active[DOWN] = _Condition(text_down(snap.heartbeat, now), "collector", snap.heartbeat or now)
            unknown |= {k for k in snap.state if k.startswith((BEHIND, FAILING))}
            return active, unknown, watched, snap
        for channel in channels:
            failing_key, behind_key = f"{FAILING}{channel.id}", f"{BEHIND}{channel.id}"
            rounds = snap.failures.get(channel.id, 0)
            in_error = channel.status == ChannelStatus.ERROR
            if in_error or rounds >= self.channel_failures:
                text = text_failing(channel.label, channel.last_error, rounds, in_error)
                active[failing_key] = _Condition(text, channel.label, now)
                unknown.add(behind_key)  # failing says it already; its lag is told when it reads again
                continue
            if channel.backfill_active or not _collected(channel):
                unknown.add(behind_key)
                continue
            lag = snap.lag(channel, now)
            if lag > self.max_lag.total_seconds():
                since = now - timedelta(seconds=lag)
                active[behind_key] = _Condition(text_behind(channel.label, lag), channel.label, since)
        return active, unknown, watched, snap

    async def check(self, now: datetime) -> list[Change]:
        """Compare conditions with the stored state; notify operators of what started or ended."""
        active, unknown, watched, snap = await self.evaluate(now)
        state = snap.state
        new_state: dict[str, dict[str, Any]] = {}
        changes: list[Change] = []
        for key, condition in active.items():
            if key in state:
                new_state[key] = state[key]
            else:
                new_state[key] = {"since": iso(condition.since), "label": condition.label}
                changes.append(Change(key, True, condition.text))
        for key, info in state.items():
            if key in active:
                continue
            if key in unknown:
                new_state[key] = info
                continue
            if key != DOWN and _channel_id(key) not in watched:
                log.info("health_condition_dropped key=%s reason=channel no longer watched", key)
                continue
            since = parse_iso(info.get("since")) or now
            changes.append(Change(key, False, _recovery_text(key, str(info.get("label", "")), now - since)))
        if not changes and new_state == state:
            return []
        recipients = await self._recipients() if changes else []
        await self._save(new_state, changes, recipients)
        for change in changes:
            log.warning(
                "health_%s key=%s notified=%s",
                "alert" if change.started else "recovered",
                change.key,
                len(recipients),
            )
        return changes

    async def operators(self) -> list[int]:
        """ADMIN_IDS and everyone with the operator or admin role."""
        found = await self.archive._all(
            "SELECT DISTINCT user_id FROM roles WHERE role IN ('operator', 'admin') ORDER BY user_id"
        )
        ids = dict.fromkeys(self.admin_ids)
        ids.update(dict.fromkeys(int(r[0]) for r in found))
        return list(ids)

    async def _recipients(self) -> list[tuple[int, int]]:
        """(subscriber id, chat id) of every operator who can receive a message from the bot."""
        out = []
        for user_id in await self.operators():
            subscriber = await self.store.get_subscriber(user_id)
            if subscriber is None:
                log.warning("health_notice_skipped user=%s reason=no subscriber row (send /start)", user_id)
            elif not subscriber.active:
                log.warning("health_notice_skipped user=%s reason=inactive (%s)", user_id,
                            subscriber.inactive_reason)  # fmt: skip
            else:
                out.append((subscriber.id, subscriber.chat_id))
        return out

    async def _save(
        self, state: dict[str, dict[str, Any]], changes: list[Change], recipients: list[tuple[int, int]]
    ) -> None:
        """The new state and its notices in one transaction: a crash sends neither twice nor never."""
        stamp = int(self.clock().timestamp())
        notices = _split([c.text for c in changes])
        async with self.archive._write() as db:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (STATE, json.dumps(state, ensure_ascii=False, sort_keys=True)),
            )
            await db.executemany(
                "INSERT INTO outbox (subscriber_id, chat_id, kind, payload, not_before, created_at) "
                "VALUES (?, ?, 'notice', ?, ?, ?)",
                [
                    (subscriber_id, chat_id, json.dumps({"text": text}, ensure_ascii=False), stamp, stamp)
                    for subscriber_id, chat_id in recipients
                    for text in notices
                ],
            )


def _channel_id(key: str) -> int | None:
    _, _, ident = key.partition(":")
    return int(ident) if ident.lstrip("-").isdigit() else None


def _recovery_text(key: str, label: str, duration: timedelta) -> str:
    seconds = duration.total_seconds()
    if key == DOWN:
        return text_up(seconds)
    if key.startswith(BEHIND):
        return text_caught_up(label, seconds)
    return text_recovered(label, seconds)


def _split(texts: list[str]) -> list[str]:
    """Join the changes of one check into as few notices as fit Telegram's length limit."""
    notices: list[str] = []
    for text in texts:
        if notices and len(notices[-1]) + 2 + len(text) <= MAX_NOTICE:
            notices[-1] += "\n\n" + text
        else:
            notices.append(text)
    return notices
