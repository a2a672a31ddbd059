"""End-to-end ingest: posts/s from raw post to queued alert, with 100,000 active query terms.

    python -m bench.ingest [--quick] [--posts N] [--terms N] [--subscribers N] [--profile FILE]

tgmon: the real path — `Pipeline` with the fastText detector, `SubscriptionQueries` + `OutboxSink` over
`SubscriptionStore`, `StoryIndex`, `SqliteArchive` (full-text index, edit history, outbox), fed in
batches of `importer.BATCH` posts of one channel, the way `tgmon import` and backfill feed it.

Posts are synthetic but made of real texts (../shared/data dumps and exports, or the test fixtures):
the first pass uses each text as it is, later passes splice two texts of one source (first half of
one, second half of another), and one post in ten copies a recent post of another channel (a story
crossing channels). They are spread over 100 channels with rising message ids and dates within the last
day, so matches are fresh and become alerts. Subscribers' queries come from `bench.matching.make_queries`
(1-3 words, phrases, exclusions, real words plus invented ones) until they hold the wanted number of
terms (the words of the query text); the few that match more than 0.5 % of posts are left out.
The tgmon run stops after `TGMON_SECONDS` if the posts are not all in by then (the note says how many
were), so the section keeps to its time share on a slow or busy machine. The note also gives posts per
CPU-second of this process (all threads) and its workers (from their /proc counters, start-up excluded),
which neighbours on a shared machine disturb less, and how that CPU splits between them.

Baseline (same run): the "naive pipeline" of existing monitors — langdetect per post, a Python loop
evaluating every compiled query against every post (the same matcher, without the index), and one
INSERT + COMMIT per post (and per alert) into a table with an FTS5 index. It runs at a few posts/s at
100k terms, so it is measured on the first posts for a fixed time budget; the note says how many.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import matching
from bench.common import SHARED_DATA, Figure, have_shared_data, reset_peak_rss, rss_mb
from core import importer
from core.alerts import OutboxSink, SubscriptionQueries
from core.langid import FastTextDetector, LangdetectDetector
from core.models import RawPost
from core.pipeline import InFlight, Pipeline
from core.query.index import QueryIndex
from core.query.matcher import Document, Query, compile_query
from core.query.text import tokenize
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import SubscriptionStore
from core.stories import StoryIndex

SECTION = "ingest"
CHANNELS = 100
COPY_EVERY = 10  # one post in ten repeats a recent post of another channel
SPAN = timedelta(hours=20)  # post dates: the last 20 hours, so every match is fresh enough to alert
TGMON_SECONDS = 150.0  # all 200,000 posts here (~120 s); a slower machine stops early (the note says so)
NAIVE_SECONDS = 15.0
# language, story signatures, words and matching beside the main process (which stores, queues alerts and
# assigns stories, and keeps a core busy doing so): one per other core (bench/RESULTS.md: on 2 cores, one
# worker ingests about 5 % more than two, which contend with the main process for the cores)
WORKERS = min((os.cpu_count() or 1) - 1, 4)
BROAD = 0.005  # queries matching more than this share of posts are dropped as unrealistic


@dataclass(frozen=True, slots=True)
class Sizes:
    posts: int
    terms: int
    subscribers: int
    naive_seconds: float
    tgmon_seconds: float
    workers: int | None = None


DEFAULT = Sizes(200_000, 100_000, 10_000, NAIVE_SECONDS, TGMON_SECONDS)
QUICK = Sizes(2_000, 1_000, 100, 2.0, 30.0)


def corpus() -> list[list[str]]:
    """Real texts grouped by source file (a splice stays within one source, so within one language)."""
    if not have_shared_data():
        return [matching.texts()]
    from bench.stories_eval import load_items

    groups: dict[str, list[str]] = {}
    for item in load_items(SHARED_DATA):
        if len(item.text) > 20:
            groups.setdefault(item.ref[0], []).append(item.text)
    return list(groups.values())


class SyntheticPosts:
    """`count` posts over CHANNELS channels, ids and dates rising in each, each made on demand from its
    number (so 200,000 of them need not sit in memory beside the pipeline being measured)."""

    def __init__(self, groups: list[list[str]], count: int, now: datetime, seed: int = 6) -> None:
        self.groups = groups
        self.count = count
        self.originals = [(g, t) for g, texts in enumerate(groups) for t in texts]
        random.Random(seed).shuffle(self.originals)
        self.seed = seed
        self.start, self.step = now - SPAN, SPAN / max(count, 1)

    def text(self, n: int) -> str:
        draw = _mix(self.seed * 1_000_003 + n)  # seeding a Random per post cost the measured loop ~5 µs
        if n % COPY_EVERY == COPY_EVERY - 1 and n > CHANNELS:
            return self.text(n - 1 - draw % (CHANNELS - 1))  # another channel's recent post
        if n < len(self.originals):
            return self.originals[n][1]
        group, first = self.originals[n % len(self.originals)]
        texts = self.groups[group]
        a, b = first.split(), texts[(draw >> 24) % len(texts)].split()
        return " ".join(a[: len(a) // 2] + b[len(b) // 2 :])

    def post(self, n: int) -> RawPost:
        return RawPost(
            n % CHANNELS + 1, n // CHANNELS + 1, self.start + self.step * n, self.text(n), views=n % 1000
        )

    def first(self, count: int) -> list[RawPost]:
        return [self.post(n) for n in range(min(count, self.count))]

    def batches(self) -> Iterator[list[RawPost]]:
        """Per channel, `importer.BATCH` posts at a time, channels taking turns (ids rise in each)."""
        per_channel = -(-self.count // CHANNELS)
        for start in range(0, per_channel, importer.BATCH):
            for channel in range(CHANNELS):
                numbers = range(channel + start * CHANNELS, self.count, CHANNELS)[: importer.BATCH]
                if numbers:
                    yield [self.post(n) for n in numbers]


def _mix(n: int) -> int:
    """A well-spread 64-bit number for each n (splitmix64's finaliser): the bench's per-post dice."""
    n = (n + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    n = ((n ^ (n >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    n = ((n ^ (n >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return n ^ (n >> 31)


def generated_queries(sample: list[str], terms: int, rng: random.Random) -> Iterator[Query]:
    """`bench.matching`'s query generator (words of real posts plus invented ones), compiled."""
    if hasattr(matching, "vocabulary"):  # its newer form: texts, from a vocabulary
        yield from (
            compile_query(text) for text in matching.make_queries(matching.vocabulary(sample), terms, rng)
        )
    else:
        yield from matching.make_queries(sample, terms, rng)


def subscriptions(groups: list[list[str]], terms: int, rng: random.Random) -> list[Query]:
    """Queries until their words add up to `terms`, without the few that match most posts.

    A random real word is sometimes "that" or "года"; nobody subscribes to those, and a query matching
    more than BROAD of the posts is dropped (measured on a sample of posts, with the index).
    """
    sample = [t for g in groups for t in g]
    candidates = list(itertools.islice(generated_queries(sample, terms, rng), terms * 2 // 3 + 10))
    index = QueryIndex()
    for n, query in enumerate(candidates):
        index.add(n, query)
    probe = rng.sample(sample, min(len(sample), 2_000))
    hits: Counter[Hashable] = Counter()
    for text in probe:
        hits.update(match.query_id for match in index.match(Document.of(text)))
    found, total = [], 0
    for n, query in enumerate(candidates):
        if hits[n] > BROAD * len(probe):
            continue
        found.append(query)
        total += len(tokenize(query.text))
        if total >= terms:
            break
    return found


async def _subscribe(store: SubscriptionStore, texts: list[str], subscribers: int) -> None:
    """Subscribers and their queries, written in bulk (setup, not measured)."""
    async with store.archive._write() as db:
        now = int(time.time())
        await db.executemany(
            "INSERT INTO subscribers (id, chat_id, ui_lang, created_at) VALUES (?, ?, 'en', ?)",
            [(1000 + s, 1000 + s, now) for s in range(subscribers)],
        )
        await db.executemany(
            "INSERT INTO queries (subscriber_id, text, created_at) VALUES (?, ?, ?)",
            [(1000 + n % subscribers, text, now) for n, text in enumerate(texts)],
        )
        await db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'queries_version'")


@dataclass(frozen=True, slots=True)
class Run:
    posts: int
    seconds: float
    cpu_seconds: float  # this process (all threads) and its workers: steadier than wall time when shared
    alerts: int
    matches: int
    peak_rss_mb: float
    worker_peak_rss_mb: float
    start_rss_mb: float = 0.0  # before the first post: the bench's own data, compiled queries, models
    main_cpu_seconds: float = 0.0  # the pipeline's own process alone (its threads included)


def _worker_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds each running worker has used so far (its start-up and model loading included)."""
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return found


def _peak_rss_mb(pid: int) -> float:
    """VmHWM of another process (ru_maxrss of children counts the parent's pages copied at fork)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def run_tgmon(
    posts: SyntheticPosts,
    texts: list[str],
    subscribers: int,
    budget: float,
    workers: int,
    profile: Path | None,
) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        archive = await SqliteArchive.open(Path(tmp) / "ingest.db")
        pipeline: Pipeline | None = None
        try:
            store = SubscriptionStore(archive)
            await _subscribe(store, texts, subscribers)
            for channel in range(1, CHANNELS + 1):
                await archive.upsert_channel(channel, f"chan{channel}", f"Channel {channel}")
            queries = SubscriptionQueries(store)
            await queries.current()  # compile the queries once, as a running collector has
            await archive.prepare_bulk_writes()  # as `tgmon import` does
            detector = FastTextDetector()
            detector.detect("warm up the model")
            sink = OutboxSink(store, queries)
            # as `tgmon import` / `collect` run with PIPELINE_WORKERS=workers
            pipeline = Pipeline(archive, detector, sink, queries, StoryIndex(), workers=workers)
            await pipeline.start_workers()
            reset_peak_rss()
            start_rss = rss_mb("VmRSS")
            profiler = _profiler(profile)
            main_cpu, workers_before = time.process_time(), _worker_cpu(pipeline.worker_pids())
            started = time.perf_counter()
            stored: list[int] = []
            in_flight = InFlight(lambda _, rows: stored.append(rows))  # as `tgmon import` feeds it
            try:
                for batch in posts.batches():
                    await in_flight.add(pipeline.ingest(batch), len(batch))
                    if time.perf_counter() - started >= budget:
                        break
                await in_flight.finish()
            finally:
                await in_flight.cancel()
            done = sum(stored)
            seconds = time.perf_counter() - started
            main_cpu = time.process_time() - main_cpu
            workers_after = _worker_cpu(pipeline.worker_pids())  # not their start-up: it was before
            cpu = main_cpu + sum(t - workers_before.get(pid, 0.0) for pid, t in workers_after.items())
            peak = rss_mb()
            worker_peak = sum(_peak_rss_mb(pid) for pid in pipeline.worker_pids())
            pipeline.close()
            if profiler is not None:
                profiler.stop()
                assert profile is not None
                report = profiler.output_text(unicode=True, color=False, show_all=False)
                await asyncio.to_thread(profile.write_text, report)
            alerts = (await archive._one("SELECT COUNT(*) FROM outbox WHERE kind = 'alert'"))[0]
            matches = (await archive._one("SELECT COUNT(*) FROM post_matches"))[0]
        finally:
            if pipeline is not None:
                pipeline.close()  # closed already on success; a failed run must not leave workers behind
            await archive.close()
    return Run(done, seconds, cpu, alerts, matches, peak, worker_peak, start_rss, main_cpu)


def _profiler(path: Path | None):  # type: ignore[no-untyped-def]
    if path is None:
        return None
    from pyinstrument import Profiler

    profiler = Profiler(async_mode="disabled")
    profiler.start()
    return profiler


NAIVE_SCHEMA = """
CREATE TABLE posts (id INTEGER PRIMARY KEY, channel_id INTEGER, message_id INTEGER, date INTEGER,
                    text TEXT, lang TEXT, UNIQUE (channel_id, message_id));
CREATE VIRTUAL TABLE posts_fts USING fts5(text, content='posts', content_rowid='id');
CREATE TABLE outbox (id INTEGER PRIMARY KEY, subscriber_id INTEGER, post_id INTEGER, payload TEXT);
"""


def run_naive(posts: list[RawPost], compiled: list[Query], subscribers: int, budget: float) -> Run:
    """langdetect, every query against every post, one commit per post: until `budget` seconds pass."""
    queries = [(n % subscribers, query) for n, query in enumerate(compiled)]
    detector = LangdetectDetector()
    detector.detect("warm up the profiles")
    done = alerts = 0
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "naive.db", isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(NAIVE_SCHEMA)
        cpu = time.process_time()
        started = time.perf_counter()
        for raw in posts:
            lang = detector.detect(raw.text).lang
            doc = Document.of(raw.text, lang=lang, channel_id=raw.channel_id)
            hits = [(sub, q.text) for sub, q in queries if q.match(doc) is not None]
            db.execute("BEGIN")
            cur = db.execute(
                "INSERT INTO posts (channel_id, message_id, date, text, lang) VALUES (?, ?, ?, ?, ?)",
                (raw.channel_id, raw.message_id, int(raw.date.timestamp()), raw.text, lang),
            )
            db.execute("INSERT INTO posts_fts (rowid, text) VALUES (?, ?)", (cur.lastrowid, raw.text))
            for sub, text in hits:
                db.execute(
                    "INSERT INTO outbox (subscriber_id, post_id, payload) VALUES (?, ?, ?)",
                    (sub, cur.lastrowid, text),
                )
            db.execute("COMMIT")
            done += 1
            alerts += len(hits)
            if time.perf_counter() - started >= budget:
                break
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        db.close()
    return Run(done, seconds, cpu, alerts, alerts, rss_mb(), 0.0)


def measure(sizes: Sizes, profile: Path | None = None) -> list[Figure]:
    rng = random.Random(6)
    groups = corpus()
    now = datetime.now(UTC)
    posts = SyntheticPosts(groups, sizes.posts, now)
    compiled = subscriptions(groups, sizes.terms, rng)
    texts = [query.text for query in compiled]
    terms = sum(len(tokenize(t)) for t in texts)
    workers = WORKERS if sizes.workers is None else sizes.workers
    tgmon = asyncio.run(run_tgmon(posts, texts, sizes.subscribers, sizes.tgmon_seconds, workers, profile))
    naive = run_naive(posts.first(2_000), compiled, sizes.subscribers, sizes.naive_seconds)
    rate, naive_rate = tgmon.posts / tgmon.seconds, naive.posts / naive.seconds
    setting = (
        f"{tgmon.posts:,} posts of {sizes.posts:,} in {tgmon.seconds:.0f} s, {workers} worker process(es), "
        f"{len(texts):,} queries / "
        f"{terms:,} terms of {sizes.subscribers:,} subscribers, "
        f"{tgmon.matches / tgmon.posts:.2f} matches/post; per CPU-second "
        f"{tgmon.posts / tgmon.cpu_seconds:,.0f} vs naive {naive.posts / naive.cpu_seconds:,.1f}; "
        "CPU per post: "
        f"{1e6 * tgmon.main_cpu_seconds / tgmon.posts:,.0f} µs in the main process (all its threads), "
        f"{1e6 * (tgmon.cpu_seconds - tgmon.main_cpu_seconds) / tgmon.posts:,.0f} µs in the workers"
    )
    naive_note = (
        f"naive: langdetect, every compiled query, commit per post, on the first {naive.posts:,} posts"
    )
    return [
        Figure(
            SECTION, "posts/s end to end", rate, "posts/s", "naive pipeline", naive_rate,
            target=5_000, ratio_target=30, note=f"{setting}; {naive_note}",
        ),
        Figure(
            SECTION, "alerts queued/s", tgmon.alerts / tgmon.seconds, "alerts/s",
            note=f"{tgmon.alerts:,} alerts, {tgmon.matches:,} matches recorded",
        ),
        Figure(SECTION, "peak RSS during ingest", tgmon.peak_rss_mb, "MB", higher_is_better=False,
               note=f"main process, {tgmon.start_rss_mb:.0f} MB of it before the first post (compiled "
                    f"queries, models, the bench's texts); story index of {tgmon.posts:,} posts (all within "
                    f"72 h); {workers} worker process(es): {tgmon.worker_peak_rss_mb:.0f} MB more"),
    ]  # fmt: skip


def run(quick: bool) -> list[Figure]:
    return measure(QUICK if quick else DEFAULT)


def main() -> None:
    from bench.common import table

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--posts", type=int)
    parser.add_argument("--terms", type=int)
    parser.add_argument("--subscribers", type=int)
    parser.add_argument("--naive-seconds", type=float)
    parser.add_argument("--seconds", type=float, help="stop the tgmon run after this long")
    parser.add_argument("--workers", type=int, help=f"worker processes of the pipeline (default {WORKERS})")
    parser.add_argument("--profile", type=Path, help="write a pyinstrument profile of the tgmon run here")
    args = parser.parse_args()
    base = QUICK if args.quick else DEFAULT
    sizes = Sizes(
        args.posts or base.posts,
        args.terms or base.terms,
        args.subscribers or base.subscribers,
        base.naive_seconds if args.naive_seconds is None else args.naive_seconds,
        args.seconds or base.tgmon_seconds,
        args.workers,
    )
    print(table(measure(sizes, args.profile)))


if __name__ == "__main__":
    main()
