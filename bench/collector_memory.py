"""Peak memory of the collector watching 1,000 channels, against its own fixed cost in the same run.

    python -m bench.collector_memory [--channels 1000] [--hours 72] [--rate 0.5] [--live 20] [--trace]

Each run is a fresh child process holding the real thing: `collectors.collector.Collector` with the
real Pipeline (fastText lid.176, the StoryIndex, the subscribers' queries in the QueryIndex, the
alert outbox), a SqliteArchive on disk and the health observer, reading through `TelethonSource`
from the fake Telethon client (tests/fakes), which serves real `telethon.tl.types.Message` objects.

1. Set-up: imports, the text corpus, the archive with 500 subscribers × 4 queries, the detector's
   model and the query index loaded. RSS here is the **fixed cost** (baseline).
2. Backfill: every channel is added as an operator does (`add_channel(since=now - 72 h)`) and the
   collector runs: 1,000 channel tasks backfill 72 h of posts at `rate` posts/hour/channel on
   average (0.5/h = 12 a day, spread ×0.2-×1.8 between channels: 36,000 posts for 1,000
   channels), so the story index holds a full window, then refresh the last 48 h of counters.
3. Live: one hour of new posts, edits and deletions (same rate) pushed as raw updates over `live`
   seconds while the channels keep polling (`poll_interval` 10 s instead of 60 s: more rounds).

The fake keeps no message objects: each is built when asked for, from (channel, id), so the fake's
own memory stays out of the figure. Texts come from ../shared/data (the test fixtures when absent).
Figures: peak RSS (VmHWM over the whole run), steady RSS (VmRSS after the live hour), and MB per
channel: (steady RSS − the 10-channel run's steady RSS) / 990, so fixed costs cancel out.
`--trace` prints tracemalloc's top files at the end (slow; for finding what holds memory).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import json
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
import types
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import FIXTURES, ROOT, SHARED_DATA, Figure, rss_mb

SECTION = "collector"
TARGET_MB = 300.0
RATE = 0.5  # posts per hour per channel, on average: 12 a day
SUBSCRIBERS = 500
QUERIES_EACH = 4


# the text corpus


def corpus() -> list[str]:
    """Post texts: the shared Desktop exports and news dumps, or the test fixtures when absent."""
    from collectors.tdesktop import read_export

    texts: list[str] = []
    exports = sorted((SHARED_DATA / "exports").glob("*.result.json"))
    if not exports:
        exports = [p for p in sorted((FIXTURES / "tdesktop").glob("*.json")) if "bad_" not in p.name]
        exports.append(FIXTURES / "tdesktop" / "single_chat")
    for path in exports:
        texts += [raw.text for _, raws in read_export(path) for raw in raws if raw.text]
    for path in sorted((SHARED_DATA / "dumps" / "ria_and_other_ru").glob("*.json")):
        texts += [item["text"] for item in json.loads(path.read_text("utf-8")) if item.get("text")]
    official = SHARED_DATA / "dumps" / "ru_official" / "tg_news.json"
    if official.exists():
        for items in json.loads(official.read_text("utf-8")).values():
            texts += [item["message"] for item in items if item.get("message")]
    persian = SHARED_DATA / "dumps" / "persian"
    for path in sorted(persian.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            texts += [row["raw_text"] for row in csv.DictReader(handle) if row.get("raw_text")]
    return [sys.intern(t) for t in texts if len(t.strip()) > 3]


def query_texts(texts: list[str], count: int, rng: random.Random) -> list[str]:
    """Subscribers' queries: one or two words of the real posts, a few with an exclusion."""
    from core.query.text import tokenize

    vocab = sorted({t.norm for text in texts[::25] for t in tokenize(text) if len(t.norm) > 4})
    queries = []
    for n in range(count):
        words = rng.sample(vocab, rng.choice((1, 1, 2)))
        queries.append(" ".join(words) + (f" -{rng.choice(vocab)}" if n % 10 == 1 else ""))
    return queries


# the fake Telegram side: messages built on demand


@dataclass
class Feed:
    """One channel's posts: ids 1..top, dated `start + id × gap`; nothing stored per post."""

    channel_id: int
    start: float  # unix time of post 0
    gap: float  # seconds between posts
    texts: list[str]
    top: int
    edited: dict[int, int]  # id → times edited
    deleted: set[int]
    live: dict[int, float]  # id → unix date of the posts pushed live

    def date(self, message_id: int) -> datetime:
        return datetime.fromtimestamp(self.live.get(message_id, self.start + message_id * self.gap), UTC)

    def message(self, message_id: int) -> Any:
        from tests.fakes.tl_builders import make_message

        rng = random.Random(self.channel_id * 1_000_003 + message_id)
        text = self.texts[rng.randrange(len(self.texts))].encode().decode()  # its own copy, as Telethon's
        edits = self.edited.get(message_id, 0)
        if edits:
            text = f"{text}\n\nUPD {edits}"
        forward = rng.randrange(100_000) if rng.random() < 0.05 else None
        age = max(time.time() - self.date(message_id).timestamp(), 60.0)
        return make_message(
            self.channel_id,
            message_id,
            text,
            date=self.date(message_id),
            edit_date=self.date(message_id) + timedelta(minutes=5) if edits else None,
            views=int(age / 10) + rng.randrange(500),
            forwards=rng.randrange(20),
            reactions={"👍": rng.randrange(1, 50)} if rng.random() < 0.3 else None,
            fwd_from_channel=(forward, rng.randrange(1, 5000)) if forward is not None else None,
        )


class LazyMessages(Mapping[int, Any]):
    """The fake channel's `messages` mapping, generated from its Feed instead of stored."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed

    def __getitem__(self, message_id: int) -> Any:
        if not 1 <= message_id <= self.feed.top or message_id in self.feed.deleted:
            raise KeyError(message_id)
        return self.feed.message(message_id)

    def __iter__(self) -> Iterator[int]:
        deleted = self.feed.deleted
        return (i for i in range(1, self.feed.top + 1) if i not in deleted)

    def __len__(self) -> int:
        return self.feed.top - len(self.feed.deleted)


def make_client(
    channels: int, hours: float, rate: float, texts: list[str], now: float
) -> tuple[Any, list[Feed]]:
    """The fake client serving `channels` channels whose history ends an hour before `now`."""
    from tests.fakes.telethon_client import FakeChannel, FakeTelegramClient
    from tests.fakes.tl_builders import make_channel

    client = FakeTelegramClient()
    client.calls = deque(maxlen=100)  # type: ignore[assignment]  # the fake's call log, bounded
    feeds = []
    rng = random.Random(1)
    for n in range(channels):
        channel_id = 1_000_000 + n
        per_hour = rate * (0.2 + 1.6 * rng.random())
        gap = 3600.0 / per_hour
        posts = max(int(hours * per_hour), 1)
        feed = Feed(channel_id, now - 3600.0 - posts * gap, gap, texts, posts, {}, set(), {})
        entity = make_channel(channel_id, f"bench_channel_{n}", f"Bench channel {n}")
        client.channels[channel_id] = FakeChannel(entity, LazyMessages(feed))  # type: ignore[arg-type]
        feeds.append(feed)
    return client, feeds


# the collector under test


def deep_mb(*roots: object) -> float:
    """About how much the objects reachable from `roots` take (types, functions and modules not followed)."""
    skip = (type, types.FunctionType, types.BuiltinFunctionType, types.ModuleType)
    seen: set[int] = set()
    stack = list(roots)
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total / 2**20


def text_caches() -> list[Any]:
    """The query language's word caches (folded forms, stems, stem keys), filled by every post matched:
    functools' caches (`cache_clear`, `cache_info`) and core.query.text's BoundedCaches (`data`)."""
    from core.query import text

    functions = [text.fold_word, text.stem, text.doc_stem_keys, text.query_stem_keys]
    return [*functions, text._NORMS, *{id(c): c for c in text._DOC_KEYS.values()}.values()]


def clear_text_caches() -> None:
    for cache in text_caches():
        if hasattr(cache, "cache_clear"):
            cache.cache_clear()
        else:
            cache.data.clear()


def cached_words() -> int:
    """Distinct post words remembered (the largest cache: written form → folded form)."""
    from core.query import text

    return len(text._NORMS)


def cache_bound() -> int:
    from core.query import text

    return text.WORD_CACHE_SIZE


class Rounds:
    """The real health observer, also counting channels that finished their first round."""

    def __init__(self, inner: Any, channels: int) -> None:
        self.inner = inner
        self.channels = channels
        self.all_read = asyncio.Event()
        self.read: set[int] = set()
        self.posts = 0
        self.failures = 0

    async def round_done(self, at: datetime) -> None:
        await self.inner.round_done(at)

    async def channel_read(self, channel_id: int, at: datetime, posts: int) -> None:
        self.read.add(channel_id)
        self.posts += posts
        if len(self.read) >= self.channels:
            self.all_read.set()
        await self.inner.channel_read(channel_id, at, posts)

    async def channel_failed(
        self, channel_id: int, at: datetime, error: str, flood_wait: float = 0.0
    ) -> None:
        self.failures += 1
        await self.inner.channel_failed(channel_id, at, error, flood_wait)


async def measure(channels: int, hours: float, rate: float, live: float, trace: str) -> dict[str, Any]:
    from collectors.collector import Collector
    from collectors.refs import parse_channel_ref
    from collectors.source import TelethonSource
    from core.alerts import OutboxSink, SubscriptionQueries
    from core.health import HealthRecorder
    from core.langid import make_detector
    from core.pipeline import Pipeline
    from core.storage.sqlite import SqliteArchive
    from core.storage.subscriptions import SubscriptionStore
    from core.stories import StoryIndex
    from tests.fakes.tl_builders import delete_messages_update, edit_message_update, new_message_update

    if trace:
        tracemalloc.start(1)
    out: dict[str, Any] = {"channels": channels}
    texts = corpus()
    rng = random.Random(7)
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        archive = await SqliteArchive.open(Path(tmp) / "collector.db")
        store = SubscriptionStore(archive)
        wanted = query_texts(texts, SUBSCRIBERS * QUERIES_EACH, rng)
        clear_text_caches()  # as a fresh process has them; the queries refill what they need
        for n, query in enumerate(wanted):
            subscriber = 500_000 + n // QUERIES_EACH
            if n % QUERIES_EACH == 0:
                await store.upsert_subscriber(subscriber, subscriber, "en")
            await store.add_query(subscriber, query)
        queries = SubscriptionQueries(store)
        pipeline = Pipeline(
            archive, make_detector("fasttext"), OutboxSink(store, queries), queries, StoryIndex()
        )
        pipeline.detector.detect(texts[0])  # the model, loaded on first use
        await queries.current()
        client, feeds = make_client(channels, hours, rate, texts, now)
        gc.collect()
        out["fixed_mb"] = rss_mb("VmRSS")
        before = tracemalloc.take_snapshot() if trace else None
        out["texts"] = len(texts)

        rounds = Rounds(HealthRecorder(archive), channels)
        collector = Collector(archive, TelethonSource(client), pipeline, poll_interval=10.0, observer=rounds)
        started = time.perf_counter()
        since = datetime.fromtimestamp(now - 3600.0 - hours * 3600.0, UTC)
        for feed in feeds:
            await collector.add_channel(
                parse_channel_ref(f"@bench_channel_{feed.channel_id - 1_000_000}"), since=since
            )
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        await asyncio.wait(
            [task, asyncio.ensure_future(rounds.all_read.wait())], return_when="FIRST_COMPLETED"
        )
        if task.done():
            task.result()  # the collector stopped: say why
        out["backfill_s"] = time.perf_counter() - started
        out["backfilled"] = rounds.posts
        out["stories"] = len(pipeline.stories or ())
        out["backfill_mb"] = rss_mb("VmRSS")

        # one hour of live posting, pushed over `live` seconds
        events = int(channels * rate)
        started = time.perf_counter()
        for n in range(events):
            feed = feeds[rng.randrange(len(feeds))]
            if n % 20 == 19 and feed.top > 1:  # an edit
                target = feed.top - rng.randrange(min(feed.top, 10))
                feed.edited[target] = feed.edited.get(target, 0) + 1
                await client.push(edit_message_update(feed.message(target)))
            elif n % 50 == 49:  # a deletion
                feed.deleted.add(feed.top)
                await client.push(delete_messages_update(feed.channel_id, [feed.top]))
            else:
                feed.top += 1
                feed.live[feed.top] = now - 3600.0 + 3600.0 * n / events  # the simulated hour
                await client.push(new_message_update(feed.message(feed.top)))
            await asyncio.sleep(max(0.0, started + live * (n + 1) / events - time.perf_counter()))
        out["live_events"] = events
        out["live_s"] = time.perf_counter() - started
        stop.set()
        await task
        gc.collect()
        out["steady_mb"] = rss_mb("VmRSS")
        out["peak_mb"] = rss_mb("VmHWM")
        out["posts"] = await archive.count_posts()
        out["stories_mb"] = deep_mb(pipeline.stories)
        out["caches_mb"] = deep_mb(*text_caches())
        out["cached_words"] = cached_words()
        out["failures"] = rounds.failures
        if before is not None:  # what grew since the set-up
            top = tracemalloc.take_snapshot().compare_to(before, trace)[:25]
            out["trace"] = [f"{s.size_diff / 2**20:7.1f} MB {s.count_diff:>8} {s.traceback[0]}" for s in top]
        await archive.close()
    return out


# the section


def run_child(channels: int, hours: float, rate: float, live: float, trace: str = "") -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.collector_memory", "--child", "--channels", str(channels)]
    argv += ["--hours", str(hours), "--rate", str(rate), "--live", str(live)] + (
        ["--trace", trace] if trace else []
    )
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def figures(big: dict[str, Any], small: dict[str, Any], rate: float, hours: float = 72) -> list[Figure]:
    channels = big["channels"]
    per_channel = (big["steady_mb"] - small["steady_mb"]) / max(channels - small["channels"], 1)
    setting = (
        f"{channels:,} channels, {hours:g} h at {rate:g} posts/h each: "
        f"{big['backfilled']:,} posts backfilled, then {big['live_events']} live updates"
    )
    per_word = big["caches_mb"] / max(big["cached_words"], 1)
    return [
        Figure(
            SECTION, f"peak RSS ({setting})", big["peak_mb"], "MB", "fixed cost (set-up, no channel)",
            big["fixed_mb"], target=TARGET_MB, higher_is_better=False,
        ),
        Figure(
            SECTION, "steady RSS after the live hour", big["steady_mb"], "MB",
            f"{small['channels']} channels", small["steady_mb"], higher_is_better=False,
        ),
        Figure(
            SECTION, "RSS per channel (steady, above the small run)", per_channel, "MB",
            higher_is_better=False,
        ),
        Figure(
            SECTION, "of which the story index", big["stories_mb"], "MB", higher_is_better=False,
            note=f"{big['stories']:,} posts in its window",
        ),
        Figure(
            SECTION, "of which the query language's word caches", big["caches_mb"], "MB",
            higher_is_better=False,
            note=f"{big['cached_words']:,} words; ~{per_word * cache_bound():,.0f} MB at their bound",
        ),
    ]  # fmt: skip


def run(quick: bool) -> list[Figure]:
    channels, live = (30, 0.5) if quick else (1000, 10.0)
    small = run_child(3 if quick else 10, 72, RATE, 0.5)
    big = run_child(channels, 72, RATE, live)
    print(json.dumps({"small": small, "big": big}), file=sys.stderr)
    return figures(big, small, RATE)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=72.0, help="backfilled history")
    parser.add_argument("--rate", type=float, default=RATE, help="posts per hour per channel, on average")
    parser.add_argument("--live", type=float, default=10.0, help="seconds over which the live hour is pushed")
    parser.add_argument(
        "--trace",
        nargs="?",
        const="filename",
        default="",
        choices=("filename", "lineno"),
        help="tracemalloc's top files (or lines) at the end",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(measure(args.channels, args.hours, args.rate, args.live, args.trace))))
        return
    big = run_child(args.channels, args.hours, args.rate, args.live, args.trace)
    for line in big.pop("trace", []):
        print(line)
    print(json.dumps(big, indent=1))
    small = run_child(10, args.hours, args.rate, 1.0)
    from bench.common import table

    print(table(figures(big, small, args.rate, args.hours)))


if __name__ == "__main__":
    main()
