"""normalise → detect language → tag → store → hand over for alerts: the one path every post takes.

The live collector, backfill and `tgmon import` all call `Pipeline.ingest`; nothing here knows Telethon.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import multiprocessing
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine, Hashable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol

from core import heap
from core.langid import ENGINES, Detection, LanguageDetector, detect_all, make_detector
from core.models import ChannelProgress, Post, ProcessedPost, RawPost, SaveResult, bare_channel_id
from core.query.fts import fts_body
from core.query.index import QueryIndex, QueryMatch, new_match
from core.query.matcher import Document, new_span
from core.query.replica import IndexReplica, IndexSync, SnapshotWriter
from core.query.text import tokenize
from core.storage import Archive
from core.storage.rows import entities_json
from core.stories import Key, StoryIndex, is_current_signature, parse_forward_origin
from core.stories import signature as story_signature

log = logging.getLogger("tgmon.pipeline")

UNDETERMINED = Detection("und", 0.0)
_TAG = re.compile(r"(?<![\w@#$])([#@$][^\W\d_][\w]{0,63})")
_TAG_ENTITIES = {"hashtag", "mention", "cashtag"}


@dataclass(frozen=True, slots=True)
class Handover:
    """A post a batch stored or changed, with the queries it matches and where they matched."""

    post: Post
    edited: bool
    matches: tuple[QueryMatch, ...] = ()


class QuerySource(Protocol):
    """Where the pipeline gets the queries to match: fixed, or reloaded when subscribers change them."""

    async def current(self) -> QueryIndex: ...


class StaticQueries:
    def __init__(self, index: QueryIndex) -> None:
        self.index = index

    async def current(self) -> QueryIndex:
        return self.index


class AlertSink(Protocol):
    """Receives what a batch stored; the alert stage decides who is told."""

    async def hand_over(self, items: Sequence[Handover]) -> None: ...


class NullSink:
    async def hand_over(self, items: Sequence[Handover]) -> None:
        return None


def normalise(raw: RawPost) -> RawPost:
    """Canonical form: UTC dates, bare channel id, no empty or negative counters.

    The text itself is never rewritten: entity offsets point into it.
    """
    channel_id = bare_channel_id(raw.channel_id)

    if (
        channel_id == raw.channel_id
        and raw.date.tzinfo is UTC
        and (raw.edit_date is None or raw.edit_date.tzinfo is UTC)
        and "\x00" not in raw.text
        and all(c is None or c >= 0 for c in (raw.views, raw.forwards, raw.replies))
        and raw.reactions != {}
    ):
        return raw  # canonical already, as most are: `replace` would copy every field

    def utc(value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def count(value: int | None) -> int | None:
        return value if value is not None and value >= 0 else None

    date = utc(raw.date)
    assert date is not None
    return replace(
        raw,
        channel_id=channel_id,
        date=date,
        edit_date=utc(raw.edit_date),
        text=raw.text.replace("\x00", "") if "\x00" in raw.text else raw.text,
        views=count(raw.views),
        forwards=count(raw.forwards),
        replies=count(raw.replies),
        reactions=raw.reactions or None,
    )


def content_hash(raw: RawPost) -> str:
    """Identifies one version of a post's content: its text and formatting.

    Not the media kind: a Desktop export omits link previews that the API reports, and the same post
    read both ways must not look edited.
    """
    material = "\x1f".join((raw.text, entities_json(raw.entities) or ""))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def extract_tags(raw: RawPost) -> tuple[str, ...]:
    """Hashtags, @mentions and $cashtags, lower-cased, in order of first appearance."""
    found: dict[str, None] = {}
    if raw.entities:
        utf16 = raw.text.encode("utf-16-le")
        for entity in raw.entities:
            if entity.type in _TAG_ENTITIES:
                piece = utf16[2 * entity.offset : 2 * (entity.offset + entity.length)]
                found[piece.decode("utf-16-le", errors="ignore").casefold()] = None
    for match in _TAG.finditer(raw.text):
        found[match.group(1).casefold()] = None
    return tuple(found)


class Pipeline:
    def __init__(
        self,
        archive: Archive,
        detector: LanguageDetector,
        sink: AlertSink | None = None,
        queries: QueryIndex | QuerySource | None = None,
        stories: StoryIndex | None = None,
        *,
        workers: int = 0,
    ) -> None:
        """`workers` > 0: language detection, story signatures, words and matching of each batch run in
        that many worker processes, each with its own copy of the query index (`core.query.replica`),
        while this one stores and queues alerts (built-in detectors only; see `close`)."""
        self.archive = archive
        self.detector = detector
        self.sink: AlertSink = sink or NullSink()
        # the active subscriptions' queries, matched at the "tag" step
        self.queries: QuerySource | None = (
            StaticQueries(queries) if isinstance(queries, QueryIndex) else queries
        )
        self.stories = stories  # near-duplicates and forwards folded into stories
        self._stories_loaded = False
        # One batch prepares at a time (the workers, the story index); stores follow in the same order.
        self._preparing = asyncio.Lock()
        self._unstored: list[_Turn] = []  # batches prepared and not yet stored, oldest first
        self._stories_lock = threading.Lock()  # the story index is assigned to in a thread
        self.workers = workers if detector.name in ENGINES else 0  # a worker rebuilds the detector by name
        self._pool: ProcessPoolExecutor | None = None
        self._snapshots = SnapshotWriter()  # the workers' copies of the query index come from these

    async def start_workers(self) -> None:
        """Start the worker processes now rather than in the first batch: each loads its model and builds
        its copy of the query index before it answers."""
        if not self.workers:
            return
        index = await self.queries.current() if self.queries is not None else None
        loop = asyncio.get_running_loop()
        pool = self._worker_pool(index if index is not None and len(index) else None)
        answered: set[int] = set()
        deadline = time.monotonic() + WARM_UP_SECONDS
        while len(answered) < self.workers and time.monotonic() < deadline:  # one may take several tasks
            answered.update(
                await asyncio.gather(*(loop.run_in_executor(pool, _answer) for _ in range(self.workers)))
            )

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (for monitoring)."""
        return list(self._pool._processes) if self._pool is not None and self._pool._processes else []

    def close(self) -> None:
        """Stop the worker processes, if any (a pipeline without workers needs no closing)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        self._snapshots.close()

    async def ingest(
        self,
        raws: Sequence[RawPost],
        *,
        progress: ChannelProgress | None = None,
        alerts: bool = True,
    ) -> SaveResult:
        """Process and store one batch in one transaction, with the alerts of its new and edited posts.

        The sink is handed the batch inside the transaction that stores it: a crash keeps the posts and
        their alerts together or loses both (and the batch is read again), never the alerts alone.

        Batches are prepared (language, words, matches) one at a time, then get their stories and are
        stored one at a time, in the order they were prepared; a batch prepares while the ones before it
        get their stories and are stored (both cores busy, when the caller has the next batch in flight)
        unless they share a post, in which case it waits for that store to read what it left.
        """
        posts = [normalise(raw) for raw in raws]
        keys = frozenset((raw.channel_id, raw.message_id) for raw in posts)
        async with self._preparing:
            earlier = list(self._unstored)
            for turn in earlier:
                if turn.keys & keys:
                    await turn.stored.wait()
            index = await self.queries.current() if alerts and self.queries is not None else None
            turn = _Turn(keys)
            self._unstored.append(turn)
            try:
                batch = await self._prepare_batch(posts, index, alerts)
            except BaseException:
                self._unstored.remove(turn)
                turn.done()
                raise
        try:  # the next batch prepares meanwhile: the workers need not wait for these stories
            for previous in earlier:
                await previous.assigned.wait()
            await self._assign_batch(batch)
            turn.assigned.set()
            for previous in earlier:
                await previous.stored.wait()
            return await self._store(batch, progress, index, alerts)
        except BaseException:
            self._forget(posts, batch.known)
            raise
        finally:
            self._unstored.remove(turn)
            turn.done()

    async def _prepare_batch(self, posts: list[RawPost], index: QueryIndex | None, alerts: bool) -> _Batch:
        """Everything a batch needs before its transaction: what is stored already, and the CPU work."""
        hashes = [content_hash(raw) for raw in posts]
        known: dict[int, dict[int, str]] = {}
        for channel_id in {raw.channel_id for raw in posts}:
            ids = [raw.message_id for raw in posts if raw.channel_id == channel_id]
            known[channel_id] = await self.archive.known_hashes(channel_id, ids)
        # Only new or changed text is worth the detector's time; unchanged posts refresh counters only.
        to_detect = [
            i
            for i, raw in enumerate(posts)
            if raw.service_action is None and known[raw.channel_id].get(raw.message_id) != hashes[i]
        ]
        if self.stories is not None and not self._stories_loaded:
            await self._load_stories(self.stories)
        matching = index if alerts and index is not None and len(index) > 0 else None
        usernames: dict[int, str | None] = {}
        if matching is not None:  # for `channel:` filters; matching is done before the write transaction
            for channel_id in known:
                channel = await self.archive.get_channel(channel_id)
                usernames[channel_id] = channel.username if channel is not None else None
        prepared = await self._prepare(posts, to_detect, matching, usernames)  # founds no story yet
        return _Batch(posts, known, hashes, to_detect, prepared)

    async def _assign_batch(self, batch: _Batch) -> None:
        """The batch's stories (in the order batches were handed in), then its posts as stored."""
        posts, prepared = batch.posts, batch.prepared
        if self.stories is not None:
            assigning = asyncio.ensure_future(
                asyncio.to_thread(
                    self._assign_stories, self.stories, posts, batch.known, batch.changed, prepared.signatures
                )
            )
            try:
                prepared.stories = await asyncio.shield(assigning)
            except asyncio.CancelledError:  # the thread runs on: `_forget` must come after it, not before
                with contextlib.suppress(Exception):
                    await assigning
                raise
        for i, raw in enumerate(posts):
            found = prepared.langs.get(i, UNDETERMINED)
            story_id, sig = prepared.stories.get(i, (None, b""))
            batch.processed.append(
                ProcessedPost(
                    raw, found.lang, found.confidence, extract_tags(raw), batch.hashes[i], story_id, sig,
                    prepared.fts.get(i),
                )
            )  # fmt: skip

    async def _store(
        self,
        batch: _Batch,
        progress: ChannelProgress | None,
        index: QueryIndex | None,
        alerts: bool,
    ) -> SaveResult:
        posts, prepared = batch.posts, batch.prepared

        async def hand_over(result: SaveResult) -> None:
            items = [
                self._handover(index, prepared.matches, p, edited=False)
                for p in result.new
                if p.service_action is None
            ]
            items += [
                self._handover(index, prepared.matches, p, edited=True)
                for p in result.edited
                if p.service_action is None
            ]
            if not items:
                return
            try:
                await self.sink.hand_over(items)
            except sqlite3.Error:  # the database refused (locked, full): posts and alerts roll back together
                raise
            except Exception:  # a fault of the alert stage itself must never keep posts out of the archive
                log.exception("alerts_failed posts=%s", len(items))

        result = await self.archive.save_posts(
            batch.processed, progress=progress, then=hand_over if alerts else None
        )
        if self.stories is not None:
            signatures = {
                (posts[i].channel_id, posts[i].message_id): sig for i, (_, sig) in prepared.stories.items()
            }
            with self._stories_lock:  # the next batch may be assigning stories in a thread
                for post in result.edited:  # the story stays; its text, and so its signature, changed
                    key = (post.channel_id, post.message_id)
                    indexed = self.stories.remove(key)  # (one no longer indexed does not come back)
                    if indexed and signatures.get(key) and post.story_id:
                        self.stories.add_existing(key, post.story_id, signatures[key], post.date)
        for post in result.new:
            log.debug("post_saved channel=%s id=%s lang=%s", post.channel_id, post.message_id, post.lang)
        return result

    async def _prepare(
        self,
        posts: list[RawPost],
        changed: list[int],
        matching: QueryIndex | None,
        usernames: dict[int, str | None],
    ) -> _Prepared:
        """The CPU work of a batch, off the event loop: language, words (once, for the full-text index and
        for matching), matches and story signatures; with workers, a chunk of posts per task. Stories are
        assigned after (`_assign_batch`)."""
        prepared = _Prepared()
        if not self.workers:
            await asyncio.to_thread(self._analyse_here, posts, changed, matching, usernames, prepared)
        else:
            loop = asyncio.get_running_loop()
            pool = self._worker_pool(matching)
            chunks = [changed[start : start + WORKER_CHUNK] for start in range(0, len(changed), WORKER_CHUNK)]
            signing = self.stories is not None
            sync = self._snapshots.sync(matching) if matching is not None else None

            def task(chunk: list[int]) -> tuple[list[str], _Matching | None]:
                texts = [posts[i].text for i in chunk]
                if sync is None:
                    return texts, None
                return texts, _Matching(sync, [posts[i].channel_id for i in chunk], usernames)

            futures = [
                loop.run_in_executor(pool, analyse, self.detector.name, texts, signing, chunk_matching)
                for texts, chunk_matching in map(task, chunks)
            ]
            for chunk, future in zip(chunks, futures, strict=True):
                for i, (lang, confidence, blob, fts, found) in zip(chunk, await future, strict=True):
                    raw = posts[i]
                    prepared.langs[i] = Detection(lang, confidence)
                    prepared.signatures[i] = blob
                    if fts is not None:
                        prepared.fts[i] = fts
                    if matching is not None and raw.text:
                        prepared.matches[(raw.channel_id, raw.message_id)] = (
                            raw.text, _matches(matching, found)
                        )  # fmt: skip
        return prepared

    def _analyse_here(
        self,
        posts: list[RawPost],
        changed: list[int],
        matching: QueryIndex | None,
        usernames: dict[int, str | None],
        prepared: _Prepared,
    ) -> None:
        detections = detect_all(self.detector, [posts[i].text for i in changed])
        for i, found in zip(changed, detections, strict=True):
            prepared.langs[i] = found
        self._words(posts, changed, matching, usernames, prepared)

    @staticmethod
    def _words(
        posts: list[RawPost],
        changed: list[int],
        matching: QueryIndex | None,
        usernames: dict[int, str | None],
        prepared: _Prepared,
    ) -> None:
        """Tokenise once, for the full-text index's body and, when queries are live, for matching."""
        for i in changed:
            raw = posts[i]
            if not raw.text:
                continue
            tokens = tokenize(raw.text)
            prepared.fts[i] = fts_body(raw.text, tokens)
            if matching is not None:
                doc = Document.of(
                    raw.text,
                    lang=prepared.langs[i].lang,
                    channel_id=raw.channel_id,
                    channel_username=usernames.get(raw.channel_id),
                    tokens=tokens,
                )
                prepared.matches[(raw.channel_id, raw.message_id)] = (raw.text, tuple(matching.match(doc)))

    def _worker_pool(self, index: QueryIndex | None) -> ProcessPoolExecutor:
        if self._pool is None:
            sync = self._snapshots.sync(index) if index is not None else None
            # spawn: a forked child would inherit the database connection's thread and the event loop
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(os.getpid(), self.detector.name, sync),
            )
        return self._pool

    @staticmethod
    def _handover(
        index: QueryIndex | None,
        matched: dict[Key, tuple[str, tuple[QueryMatch, ...]]],
        post: Post,
        *,
        edited: bool,
    ) -> Handover:
        if index is None or not len(index) or not post.text:
            return Handover(post, edited)
        text, matches = matched.get((post.channel_id, post.message_id), ("", ()))
        if text != post.text:  # not matched beforehand (cannot happen today; never hand over stale matches)
            doc = Document.of(
                post.text, lang=post.lang, channel_id=post.channel_id, channel_username=post.channel_username
            )
            matches = tuple(index.match(doc))
        return Handover(post, edited, matches)

    def _assign_stories(
        self,
        stories: StoryIndex,
        posts: list[RawPost],
        known: dict[int, dict[int, str]],
        changed: list[int],
        signatures: dict[int, bytes],
    ) -> dict[int, tuple[str | None, bytes]]:
        """Story ids of new posts (oldest first: the first seen founds the story); signatures of edits."""
        new = sorted(
            (i for i in changed if posts[i].message_id not in known[posts[i].channel_id]),
            key=lambda i: (posts[i].date, posts[i].channel_id, posts[i].message_id),
        )
        edited = [i for i in changed if posts[i].message_id in known[posts[i].channel_id]]
        found: dict[int, tuple[str | None, bytes]] = {}
        with self._stories_lock:  # the batch before may be updating the index after its store
            for i in new:
                raw = posts[i]
                origin = parse_forward_origin(raw.forwarded_from)
                key = (raw.channel_id, raw.message_id)
                match = stories.assign(key, raw.text, raw.date, origin, blob=signatures.get(i))
                found[i] = (match.story_id, match.signature)
        for i in edited:
            found[i] = (None, signatures[i] if i in signatures else story_signature(posts[i].text))
        return found

    async def _load_stories(self, stories: StoryIndex) -> None:
        """Rebuild the in-memory index from the stored posts of the window before the newest one, once per
        process: the last window for an archive kept up to date, and the window an import of older posts
        had reached when it was stopped (the index keeps the window before the newest date it has seen)."""
        now = datetime.now(UTC)
        newest = await self.archive.newest_story_date()
        end = now if newest is None else min(newest, now)
        for row in await self.archive.story_rows(end - stories.window):
            sig = row.signature if is_current_signature(row.signature) else story_signature(row.text)
            origin = parse_forward_origin(row.forwarded_from)
            stories.add_existing((row.channel_id, row.message_id), row.story_id, sig or b"", row.date, origin)
        self._stories_loaded = True
        heap.settle()

    def _forget(self, posts: list[RawPost], known: dict[int, dict[int, str]]) -> None:
        """A batch that was not stored must not found stories."""
        if self.stories is not None:
            with self._stories_lock:
                for raw in posts:
                    if raw.message_id not in known.get(raw.channel_id, {}):
                        self.stories.remove((raw.channel_id, raw.message_id))


@dataclass(slots=True)
class _Prepared:
    """What `Pipeline._prepare` computed for a batch, by post position (matches: by post key)."""

    langs: dict[int, Detection] = field(default_factory=dict)
    signatures: dict[int, bytes] = field(default_factory=dict)  # story signatures a worker computed
    fts: dict[int, str] = field(default_factory=dict)
    matches: dict[Key, tuple[str, tuple[QueryMatch, ...]]] = field(default_factory=dict)  # (text, matches)
    stories: dict[int, tuple[str | None, bytes]] = field(default_factory=dict)


class InFlight:
    """Keeps one `Pipeline.ingest` in flight while the caller makes the next batch (`tgmon import`, the
    ingest bench): the pipeline prepares it while the one before is stored, and keeps the stores in
    order. `stored(result, rows)` is called for each batch once stored; after a failed batch, the caller
    `cancel`s the next one before its store."""

    def __init__(self, stored: Callable[[SaveResult, int], None]) -> None:
        self.stored = stored
        self._pending: tuple[asyncio.Task[SaveResult], int] | None = None

    async def add(self, ingest: Coroutine[Any, Any, SaveResult], rows: int) -> None:
        """Start this batch, then wait for the one before it."""
        task = asyncio.ensure_future(ingest)
        try:
            await self.finish()
        finally:
            self._pending = (task, rows)

    async def finish(self) -> None:
        """Wait for the batch in flight, if any."""
        if self._pending is None:
            return
        task, rows = self._pending
        self._pending = None
        self.stored(await task, rows)

    async def cancel(self) -> None:
        """Cancel the batch in flight, if any (its error, or its cancellation, is not raised)."""
        if self._pending is not None:
            task, _ = self._pending
            self._pending = None
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


@dataclass(slots=True)
class _Batch:
    """A prepared batch, waiting for its turn to be stored."""

    posts: list[RawPost]
    known: dict[int, dict[int, str]]  # stored content hashes by channel and message id
    hashes: list[str]  # each post's content hash
    changed: list[int]  # positions of the posts with new or changed text
    prepared: _Prepared
    processed: list[ProcessedPost] = field(default_factory=list)  # filled once its stories are assigned


@dataclass(slots=True)
class _Turn:
    """A batch between its preparation and the end of its store."""

    keys: frozenset[Key]
    assigned: asyncio.Event = field(default_factory=asyncio.Event)  # its stories are (or will never be)
    stored: asyncio.Event = field(default_factory=asyncio.Event)

    def done(self) -> None:
        """Stored, failed or cancelled: nothing waits on it any more."""
        self.assigned.set()
        self.stored.set()


WORKER_CHUNK = 250  # posts per worker task: small enough to overlap, large enough to pay the pickling
WARM_UP_SECONDS = 120.0  # for every worker to be ready in `start_workers`


def _start_worker(parent: int, engine: str, sync: IndexSync | None) -> None:
    """A worker loads its language model and its copy of the query index first. It outlives a killed
    parent (SIGKILL closes none of its pipes): it watches and follows. Its garbage collector runs as
    the main process's does (`heap.relax`)."""
    heap.relax()
    _detector(engine)
    if sync is not None:
        with contextlib.suppress(OSError):  # replaced already: the first task brings the current one
            _replica.catch_up(sync)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


@dataclass(frozen=True, slots=True)
class _Matching:
    """What a worker needs to match a chunk of posts: its copy of the index, and each post's channel."""

    sync: IndexSync
    channel_ids: list[int]
    usernames: dict[int, str | None]


Pair = tuple[int, int]
Analysis = tuple[str, float, bytes, str | None, list[tuple[Hashable, tuple[Pair, ...]]]]


def _matches(index: QueryIndex, found: list[tuple[Hashable, tuple[Pair, ...]]]) -> tuple[QueryMatch, ...]:
    """A worker's matches as the main process's own (its copy had the same queries); spans travel as
    plain (start, end) pairs, which pickle far faster than Span objects."""
    matches = []
    for query_id, pairs in found:
        query = index.get(query_id)
        if query is not None:
            matches.append(new_match((query_id, query, tuple(map(new_span, pairs)))))
    return tuple(matches)


def _answer() -> int:
    """A warm-up task: which worker took it (it waits a little, so that each worker takes one)."""
    time.sleep(0.05)
    return os.getpid()


@cache
def _detector(engine: str) -> LanguageDetector:
    return make_detector(engine)


_replica = IndexReplica()  # a worker process's copy of the query index


def analyse(engine: str, texts: list[str], sign: bool, matching: _Matching | None) -> list[Analysis]:
    """A worker process's share of a batch: for each text, (language, confidence, story signature or
    b"", the full-text index's body or None, the queries it matches with their spans).

    One stage at a time over the whole chunk, not one post at a time through every stage: each stage's
    tables (the language model, the word caches, the query index) stay in the CPU's caches, which takes
    a fifth off the workers' CPU per post."""
    detector = _detector(engine)
    index = _replica.catch_up(matching.sync) if matching is not None else None
    detections = detect_all(detector, texts)
    signatures = [story_signature(text) if sign else b"" for text in texts]
    if index is None or matching is None:
        return [
            (found.lang, found.confidence, signature, fts_body(text) if text else None, [])
            for text, found, signature in zip(texts, detections, signatures, strict=True)
        ]
    usernames = matching.usernames
    docs = [
        Document.of(text, lang=found.lang, channel_id=channel_id, channel_username=usernames.get(channel_id))
        if text
        else None
        for text, found, channel_id in zip(texts, detections, matching.channel_ids, strict=True)
    ]
    return [
        (found.lang, found.confidence, signature, None, [])
        if doc is None
        else (found.lang, found.confidence, signature, " ".join(doc.norms), _found(index, doc))
        for doc, found, signature in zip(docs, detections, signatures, strict=True)
    ]


def _found(index: QueryIndex, doc: Document) -> list[tuple[Hashable, tuple[Pair, ...]]]:
    return [(m.query_id, tuple((start, end) for start, end in m.spans)) for m in index.match(doc)]
