"""Domain dataclasses shared by the pipeline, the storage and the bot."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class ChannelStatus(StrEnum):
    ACTIVE = "active"
    FLOOD_WAIT = "flood_wait"
    ERROR = "error"  # private, deleted, renamed: skipped until an operator acts
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class Entity:
    """A formatting entity; offsets and lengths are in UTF-16 code units, as Telegram sends them."""

    type: str  # bold, italic, text_link, url, mention, hashtag, code, pre, custom_emoji, ...
    offset: int
    length: int
    url: str | None = None


@dataclass(frozen=True, slots=True)
class RawPost:
    """One channel message as a source (Telethon, a Desktop export) delivers it, before the pipeline.

    `channel_id` is the bare positive channel id (no -100 prefix). Dates are timezone-aware UTC.
    """

    channel_id: int
    message_id: int
    date: datetime
    text: str = ""
    entities: tuple[Entity, ...] = ()
    edit_date: datetime | None = None
    views: int | None = None
    forwards: int | None = None
    replies: int | None = None
    reactions: dict[str, int] | None = None
    media_type: str | None = None  # photo, video, document, audio, voice, sticker, poll, webpage, ...
    forwarded_from: str | None = None  # channel/user name or "channel123" id of the origin
    reply_to: int | None = None
    album_id: int | None = None  # Telegram's grouped_id
    author: str | None = None  # post signature
    service_action: str | None = None  # create_channel, pin_message, ...: a service message


@dataclass(frozen=True, slots=True)
class Channel:
    id: int
    username: str | None
    title: str
    status: ChannelStatus = ChannelStatus.ACTIVE
    last_error: str | None = None
    last_seen_id: int = 0
    backfill_cursor: int | None = None  # lowest message id fetched by an unfinished backfill
    backfill_remaining: int | None = None  # posts still wanted by that backfill (None: until `since`)
    backfill_since: datetime | None = None
    backfill_active: bool = False
    flood_wait_until: datetime | None = None
    added_at: datetime | None = None
    access_hash: int | None = None
    watched: bool = True  # False: known from an import only, not collected

    @property
    def label(self) -> str:
        return f"@{self.username}" if self.username else self.title or str(self.id)


@dataclass(frozen=True, slots=True)
class Post:
    """A stored post, as the archive returns it."""

    channel_id: int
    message_id: int
    date: datetime
    text: str
    entities: tuple[Entity, ...]
    lang: str
    lang_confidence: float
    views: int | None
    forwards: int | None
    replies: int | None
    reactions: dict[str, int] | None
    media_type: str | None
    forwarded_from: str | None
    reply_to: int | None
    album_id: int | None
    author: str | None
    service_action: str | None
    tags: tuple[str, ...]
    permalink: str
    edit_date: datetime | None
    deleted_at: datetime | None
    collected_at: datetime
    content_hash: str
    channel_username: str | None = None
    channel_title: str | None = None
    versions: int = 1
    story_id: str | None = None  # "channel:message" of the story's first post (see docs/stories.md)


@dataclass(frozen=True, slots=True)
class PostVersion:
    channel_id: int
    message_id: int
    version: int
    text: str
    edit_date: datetime | None
    recorded_at: datetime


@dataclass(slots=True)
class SaveResult:
    """What one batch write changed: the pipeline hands `new` and `edited` over for alerts."""

    new: list[Post] = field(default_factory=list)
    edited: list[Post] = field(default_factory=list)
    unchanged: int = 0


@dataclass(frozen=True, slots=True)
class ProcessedPost:
    """A RawPost after the pipeline's language and tag steps: what the archive stores."""

    raw: RawPost
    lang: str
    lang_confidence: float
    tags: tuple[str, ...]
    content_hash: str
    story_id: str | None = None
    story_signature: bytes = b""
    fts_body: str | None = None  # what the full-text index stores; None: the archive computes it


@dataclass(frozen=True, slots=True)
class StoryRow:
    """What rebuilding the story index at start-up needs of a stored post."""

    channel_id: int
    message_id: int
    story_id: str
    signature: bytes | None
    date: datetime
    forwarded_from: str | None
    text: str


@dataclass(frozen=True, slots=True)
class BackfillState:
    """An unfinished backfill: continue below `cursor` until `remaining` posts or `since` is reached."""

    cursor: int | None
    remaining: int | None
    since: datetime | None


@dataclass(frozen=True, slots=True)
class ChannelProgress:
    """Where a channel's reading stands; written in the same transaction as the posts it covers."""

    channel_id: int
    last_seen_id: int | None = None
    backfill: BackfillState | None = None
    backfill_done: bool = False


@dataclass(frozen=True, slots=True)
class PostFilter:
    channel_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    lang: str | None = None
    include_deleted: bool = True


def bare_channel_id(channel_id: int) -> int:
    """A channel's id without the Bot API's "-100" prefix or a minus sign: -1001234567890 → 1234567890."""
    if channel_id >= 0:
        return channel_id
    digits = str(-channel_id)
    return int(digits[3:] if digits.startswith("100") and len(digits) > 3 else digits)
