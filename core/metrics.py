"""An optional Prometheus endpoint (METRICS_PORT), with prometheus_client imported only when it is on.

`METRICS` is the process's one set of metrics: every call is a no-op until `enable()` gives it a
registry, so the collector and the delivery feed it unconditionally and pay nothing when it is off.

    tgmon_posts_ingested_total{channel}       posts read by backfill and catch-up
    tgmon_channel_lag_seconds{channel}        time since the channel was last read in full (polled)
    tgmon_flood_wait_seconds_total{channel}   seconds Telegram told the collector to wait
    tgmon_alerts_queued_total                 alerts put in the outbox (polled from the database)
    tgmon_alerts_sent_total                   alerts Telegram accepted
    tgmon_alerts_failed_total                 alerts given up on
    tgmon_delivery_latency_seconds            post stored → alert sent (histogram)
    tgmon_outbox_pending                      messages of any kind waiting in the outbox (polled)

The database-polled ones (lag, queued, pending) are right in any process; posts and flood waits are
counted by the collector's process, sent/failed/latency by the bot's. Run as `tgmon collect` and
`tgmon bot` separately, give each process its own METRICS_PORT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from core.settings import Settings
    from core.storage import Archive

log = logging.getLogger("tgmon.metrics")

# seconds from post stored to alert sent: real-time alerts are seconds, quiet hours and folding hours
LATENCY_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 6 * 3600.0)
POLL_EVERY = 15.0


class Server(Protocol):
    server_port: int

    def shutdown(self) -> None: ...
    def server_close(self) -> None: ...


class Metrics:
    """tgmon's metrics; silent until `enable`."""

    def __init__(self) -> None:
        self._m: dict[str, Any] | None = None
        self._last_outbox_id: int | None = None

    @property
    def enabled(self) -> bool:
        return self._m is not None

    def enable(self, registry: Any = None) -> None:
        """Create the metrics in `registry` (the default one when None); raises ImportError without
        prometheus_client. Enabling twice keeps the first set."""
        if self._m is not None:
            return
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        reg = REGISTRY if registry is None else registry
        self._m = {
            "posts": Counter(
                "tgmon_posts_ingested", "Posts read by backfill and catch-up", ["channel"], registry=reg
            ),
            "lag": Gauge(
                "tgmon_channel_lag_seconds",
                "Seconds since the channel was last read in full",
                ["channel"],
                registry=reg,
            ),
            "flood": Counter(
                "tgmon_flood_wait_seconds",
                "Seconds of flood wait imposed by Telegram",
                ["channel"],
                registry=reg,
            ),
            "queued": Counter("tgmon_alerts_queued", "Alerts put in the outbox", registry=reg),
            "sent": Counter("tgmon_alerts_sent", "Alerts Telegram accepted", registry=reg),
            "failed": Counter("tgmon_alerts_failed", "Alerts given up on", registry=reg),
            "latency": Histogram(
                "tgmon_delivery_latency_seconds",
                "Seconds from post stored to alert sent",
                buckets=LATENCY_BUCKETS,
                registry=reg,
            ),
            "pending": Gauge("tgmon_outbox_pending", "Messages waiting in the outbox", registry=reg),
        }
        self._last_outbox_id = None

    def disable(self) -> None:
        """Back to no-ops (the metrics stay in their registry); for tests."""
        self._m = None
        self._last_outbox_id = None

    # collector

    def posts_ingested(self, channel: str, count: int) -> None:
        if self._m is not None and count > 0:
            self._m["posts"].labels(channel=channel).inc(count)

    def flood_wait(self, channel: str, seconds: float) -> None:
        if self._m is not None and seconds > 0:
            self._m["flood"].labels(channel=channel).inc(seconds)

    # delivery: only alerts count (notices and digests are not alerts)

    def delivered(self, kind: str, count: int, latencies: Sequence[float] = ()) -> None:
        if self._m is None or kind != "alert":
            return
        self._m["sent"].inc(count)
        for seconds in latencies:
            self._m["latency"].observe(max(seconds, 0.0))

    def delivery_failed(self, kind: str, count: int) -> None:
        if self._m is not None and kind == "alert" and count > 0:
            self._m["failed"].inc(count)

    # polled from the database

    def alerts_queued(self, count: int) -> None:
        if self._m is not None and count > 0:
            self._m["queued"].inc(count)

    def set_channel_lags(self, lags: dict[str, float]) -> None:
        if self._m is None:
            return
        gauge = self._m["lag"]
        gauge.clear()  # channels no longer watched disappear
        for channel, seconds in lags.items():
            gauge.labels(channel=channel).set(seconds)

    def set_outbox_pending(self, count: int) -> None:
        if self._m is not None:
            self._m["pending"].set(count)

    async def poll(self, archive: Archive, now: datetime | None = None) -> None:
        """Read the database-backed metrics once: channel lag, alerts queued since the last poll,
        outbox pending. The first poll only sets where counting of queued alerts starts."""
        if self._m is None:
            return
        from core.health import channel_lags
        from core.storage.sqlite import SqliteArchive

        now = now or datetime.now(UTC)
        channels = {c.id: c for c in await archive.list_channels()}
        lags = await channel_lags(archive, now)
        self.set_channel_lags({metric_label(channels[cid]): s for cid, s in lags.items() if cid in channels})
        if not isinstance(archive, SqliteArchive):
            return
        row = await archive._one("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
        self.set_outbox_pending(int(row[0]))
        if self._last_outbox_id is None:
            row = await archive._one("SELECT COALESCE(MAX(id), 0) FROM outbox")
            self._last_outbox_id = int(row[0])
            return
        row = await archive._one(
            "SELECT MAX(id), COALESCE(SUM(kind = 'alert'), 0) FROM outbox WHERE id > ?",
            (self._last_outbox_id,),
        )
        if row[0] is not None:  # ids grow in commit order: SQLite has one writer at a time
            self._last_outbox_id = int(row[0])
            self.alerts_queued(int(row[1]))


METRICS = Metrics()


def metric_label(channel: Any) -> str:
    """A channel's `channel` label: its username, or its id when it has none."""
    return str(channel.username or channel.id)


def start_endpoint(
    port: int, addr: str = "127.0.0.1", *, metrics: Metrics = METRICS, registry: Any = None
) -> Server | None:
    """Enable `metrics` and serve them over HTTP on addr:port from a daemon thread.

    Never raises: without prometheus_client, or when the port is taken, it logs why and returns None.
    """
    try:
        from prometheus_client import REGISTRY, start_http_server
    except ImportError:
        log.error(
            "metrics_disabled reason=METRICS_PORT is set but prometheus_client is not installed: "
            "pip install 'tgmon[metrics]' (or prometheus-client)"
        )
        return None
    reg = REGISTRY if registry is None else registry
    try:
        metrics.enable(reg)
        server, _thread = start_http_server(port, addr=addr, registry=reg)
    except (OSError, ValueError) as exc:
        log.error("metrics_disabled reason=cannot serve on %s:%s: %s", addr, port, exc)
        metrics.disable()
        return None
    log.info("metrics_serving addr=%s port=%s", addr, server.server_port)
    return server


async def poll_forever(archive: Archive, metrics: Metrics = METRICS, every: float = POLL_EVERY) -> None:
    while True:
        try:
            await metrics.poll(archive)
        except Exception:  # a locked database: the next poll tries again
            log.warning("metrics_poll_failed", exc_info=True)
        await asyncio.sleep(every)


@asynccontextmanager
async def serve_metrics(
    settings: Settings, archive: Archive, *, metrics: Metrics = METRICS, every: float = POLL_EVERY
) -> AsyncIterator[Server | None]:
    """While inside: the endpoint when METRICS_PORT is set (None otherwise), and its database poll."""
    if settings.metrics_port is None:
        yield None
        return
    server = start_endpoint(settings.metrics_port, settings.metrics_addr, metrics=metrics)
    if server is None:
        yield None
        return
    poller = asyncio.create_task(poll_forever(archive, metrics, every), name="metrics-poll")
    try:
        yield server
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        await asyncio.to_thread(server.shutdown)
        server.server_close()
