"""Subscribers and their queries: the dataclasses the bot, the alert stage and digests share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class DigestMode(StrEnum):
    OFF = "off"
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: int  # Telegram user id
    chat_id: int
    ui_lang: str = "en"
    active: bool = True
    paused: bool = False
    langs: tuple[str, ...] = ()  # empty: any language
    channels: tuple[int, ...] = ()  # empty: every watched channel
    quiet_start: int | None = None  # minutes after local midnight
    quiet_end: int | None = None
    timezone: str = "UTC"
    digest: DigestMode = DigestMode.OFF
    digest_at: int = 9 * 60
    digest_day: int = 0  # Monday
    last_digest_at: datetime | None = None
    inactive_reason: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    """One query of one subscriber."""

    id: int
    subscriber_id: int
    text: str
    paused: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    subscriber_id: int
    chat_id: int
    kind: str  # alert | digest | notice
    story_id: str | None
    payload: dict[str, object]
    attempts: int
    not_before: datetime
    created_at: datetime
    stored_at: float | None
