"""Conversions between rows and dataclasses: the only place that knows the column encodings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from core.models import Channel, ChannelStatus, Entity, Post


def now_ts() -> int:
    """Now, as the integer UTC timestamp the tables store."""
    return int(datetime.now(UTC).timestamp())


def ts(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def dt(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def entities_json(entities: tuple[Entity, ...]) -> str | None:
    if not entities:
        return None
    return json.dumps(
        [
            {"type": e.type, "offset": e.offset, "length": e.length} | ({"url": e.url} if e.url else {})
            for e in entities
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def entities_from(value: str | None) -> tuple[Entity, ...]:
    if not value:
        return ()
    return tuple(Entity(e["type"], e["offset"], e["length"], e.get("url")) for e in json.loads(value))


def json_or_none(value: Any) -> str | None:
    if not value:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def permalink(channel_id: int, username: str | None, message_id: int) -> str:
    if username:
        return f"https://t.me/{username}/{message_id}"
    return f"https://t.me/c/{channel_id}/{message_id}"


CHANNEL_COLUMNS = (
    "id, username, title, status, last_error, last_seen_id, backfill_cursor, backfill_remaining, "
    "backfill_since, backfill_active, flood_wait_until, added_at, access_hash, watched"
)


def channel_from(row: Any) -> Channel:
    return Channel(
        id=row[0],
        username=row[1],
        title=row[2],
        status=ChannelStatus(row[3]),
        last_error=row[4],
        last_seen_id=row[5],
        backfill_cursor=row[6],
        backfill_remaining=row[7] if row[9] else None,
        backfill_since=dt(row[8]),
        backfill_active=bool(row[9]),
        flood_wait_until=dt(row[10]),
        added_at=dt(row[11]),
        access_hash=row[12],
        watched=bool(row[13]),
    )


POST_COLUMNS = (
    "p.channel_id, p.message_id, p.date, p.text, p.entities, p.lang, p.lang_confidence, p.views, "
    "p.forwards, p.replies, p.reactions, p.media_type, p.forwarded_from, p.reply_to, p.album_id, "
    "p.author, p.service_action, p.tags, p.permalink, p.edit_date, p.deleted_at, p.collected_at, "
    "p.content_hash, c.username, c.title, p.version, p.story_id"
)


def post_from(row: Any) -> Post:
    date = dt(row[2])
    collected = dt(row[21])
    assert date is not None and collected is not None
    return Post(
        channel_id=row[0],
        message_id=row[1],
        date=date,
        text=row[3],
        entities=entities_from(row[4]),
        lang=row[5],
        lang_confidence=row[6],
        views=row[7],
        forwards=row[8],
        replies=row[9],
        reactions=json.loads(row[10]) if row[10] else None,
        media_type=row[11],
        forwarded_from=row[12],
        reply_to=row[13],
        album_id=row[14],
        author=row[15],
        service_action=row[16],
        tags=tuple(json.loads(row[17])) if row[17] else (),
        permalink=row[18],
        edit_date=dt(row[19]),
        deleted_at=dt(row[20]),
        collected_at=collected,
        content_hash=row[22],
        channel_username=row[23],
        channel_title=row[24],
        versions=row[25],
        story_id=row[26] or f"{row[0]}:{row[1]}",
    )
