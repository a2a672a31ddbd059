"""normalise → detect language → tag → store → hand over for alerts: the one path every post takes.

The live collector, backfill and `tgmon import` all call `Pipeline.ingest`; nothing here knows Telethon.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from core.langid import Detection, LanguageDetector
from core.models import ChannelProgress, Post, ProcessedPost, RawPost, SaveResult
from core.query.index import QueryIndex, QueryMatch
from core.query.matcher import Document
from core.storage import Archive
from core.storage.rows import entities_json

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
    channel_id = raw.channel_id
    if channel_id < 0:  # -100… Bot API style ids
        channel_id = int(str(channel_id).removeprefix("-100").removeprefix("-"))

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
        queries: QueryIndex | None = None,
    ) -> None:
        self.archive = archive
        self.detector = detector
        self.sink: AlertSink = sink or NullSink()
        self.queries = queries  # the active subscriptions' queries, matched at the "tag" step
        # One batch at a time: the stored hashes read below must not race another batch of this process.
        self._lock = asyncio.Lock()

    async def ingest(
        self,
        raws: Sequence[RawPost],
        *,
        progress: ChannelProgress | None = None,
        alerts: bool = True,
    ) -> SaveResult:
        """Process and store one batch in one transaction; hand new and edited posts over for alerts."""
        async with self._lock:
            result = await self._store([normalise(raw) for raw in raws], progress)
        if alerts and (result.new or result.edited):
            items = [self._handover(p, edited=False) for p in result.new if p.service_action is None]
            items += [self._handover(p, edited=True) for p in result.edited if p.service_action is None]
            if items:
                await self.sink.hand_over(items)
        return result

    def _handover(self, post: Post, *, edited: bool) -> Handover:
        if self.queries is None or not len(self.queries) or not post.text:
            return Handover(post, edited)
        doc = Document.of(
            post.text, lang=post.lang, channel_id=post.channel_id, channel_username=post.channel_username
        )
        return Handover(post, edited, tuple(self.queries.match(doc)))

    async def _store(self, posts: list[RawPost], progress: ChannelProgress | None) -> SaveResult:
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
        detections = (
            await asyncio.to_thread(self._detect, [posts[i].text for i in to_detect]) if to_detect else []
        )
        langs = dict(zip(to_detect, detections, strict=True))
        processed = []
        for i, raw in enumerate(posts):
            found = langs.get(i, UNDETERMINED)
            processed.append(ProcessedPost(raw, found.lang, found.confidence, extract_tags(raw), hashes[i]))
        result = await self.archive.save_posts(processed, progress=progress)
        for post in result.new:
            log.debug("post_saved channel=%s id=%s lang=%s", post.channel_id, post.message_id, post.lang)
        return result

    def _detect(self, texts: list[str]) -> list[Detection]:
        return [self.detector.detect(text) for text in texts]
