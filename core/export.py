"""The JSONL record of a post (schema 1 fields), as docs/export.md defines it.

`core.exporters.records` writes the same bytes from SQL for speed; tests/test_exporters.py checks
them against this definition.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.models import Post

JSONL_SCHEMA_VERSION = 1


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def post_record(post: Post) -> dict[str, Any]:
    """One post as the documented, stable JSONL record (see docs/export.md)."""
    return {
        "schema": JSONL_SCHEMA_VERSION,
        "channel_id": post.channel_id,
        "channel": post.channel_username or post.channel_title,
        "channel_title": post.channel_title,
        "message_id": post.message_id,
        "date": iso(post.date),
        "text": post.text,
        "entities": [
            {"type": e.type, "offset": e.offset, "length": e.length} | ({"url": e.url} if e.url else {})
            for e in post.entities
        ],
        "lang": post.lang,
        "lang_confidence": round(post.lang_confidence, 4),
        "url": post.permalink,
        "views": post.views,
        "forwards": post.forwards,
        "replies": post.replies,
        "reactions": post.reactions,
        "media_type": post.media_type,
        "forwarded_from": post.forwarded_from,
        "reply_to": post.reply_to,
        "album_id": post.album_id,
        "author": post.author,
        "service_action": post.service_action,
        "tags": list(post.tags),
        "story_id": post.story_id,
        "edited": iso(post.edit_date),
        "versions": post.versions,
        "deleted": post.deleted_at is not None,
        "deleted_at": iso(post.deleted_at),
        "collected_at": iso(post.collected_at),
        "content_hash": post.content_hash,
    }
