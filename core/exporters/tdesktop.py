"""Telegram Desktop's JSON export format (`result.json`), written: one file per channel.

`collectors.tdesktop.read_export` of what is written here gives back each post's text, entities, dates,
edit date, forward origin, reply, reactions, media kind, signature and service action, so `tgmon import`
of this export rebuilds the archive's posts. What the format has no place for (views, forwards,
replies, album ids, language, edit history, deletion marks, matched queries) is not written; see
docs/export.md.

Messages are written one per line, inside Desktop's own layout (one-space indentation outside them),
streaming: a channel of any size takes the memory of one batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from core.exporters.files import ExportError, FileRecord, OutputFile
from core.models import Entity
from core.storage.rows import entities_from

LAYOUT_VERSION = 1  # how tgmon maps its posts onto the format (the format itself has no version)
FILE_NAME = "result.json"
NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"

# our media kind → Desktop's `media_type` of a file-backed message (None: a plain document)
_FILE_MEDIA: dict[str, str | None] = {
    "video": "video_file",
    "voice": "voice_message",
    "audio": "audio_file",
    "video_note": "video_message",
    "sticker": "sticker",
    "animation": "animation",
    "document": None,
}
# Bot API entity names (ours) → Desktop's, where they differ; the reader maps them back
_ENTITY_NAMES = {"url": "link", "text_mention": "mention_name", "phone_number": "phone"}
_encode = json.JSONEncoder(ensure_ascii=False).encode
_PEER_ID = re.compile(r"^((?:channel|user|chat)\d+)(?:/\d+)?$")


def _entity_piece(entity: Entity, text: str) -> dict[str, Any]:
    if entity.type == "expandable_blockquote":
        return {"type": "blockquote", "text": text, "collapsed": True}
    piece: dict[str, Any] = {"type": _ENTITY_NAMES.get(entity.type, entity.type), "text": text}
    if entity.type == "text_link":
        piece["href"] = entity.url
    elif entity.type == "blockquote":
        piece["collapsed"] = False
    elif entity.type == "pre":
        piece["language"] = ""
    elif entity.type == "custom_emoji":
        piece["document_id"] = NOT_INCLUDED
    return piece


def text_parts(text: str, entities: Sequence[Entity]) -> str | list[str | dict[str, Any]]:
    """Desktop's `text`: the string itself without entities, else plain strings and entity objects.

    Like Desktop, pieces never overlap: an entity that starts inside the previous one (nested
    formatting) is left out, and so is one outside the text or splitting a surrogate pair.
    """
    if not entities:
        return text
    utf16 = text.encode("utf-16-le")
    total = len(utf16) // 2

    def boundary(index: int) -> bool:  # not between the two halves of a surrogate pair
        return (
            index in (0, total)
            or not 0xDC00 <= int.from_bytes(utf16[2 * index : 2 * index + 2], "little") <= 0xDFFF
        )

    parts: list[str | dict[str, Any]] = []
    position = 0
    for entity in sorted(entities, key=lambda e: e.offset):
        start, end = entity.offset, entity.offset + entity.length
        if entity.length <= 0 or start < position or end > total or not (boundary(start) and boundary(end)):
            continue
        if start > position:
            parts.append(utf16[2 * position : 2 * start].decode("utf-16-le"))
        parts.append(_entity_piece(entity, utf16[2 * start : 2 * end].decode("utf-16-le")))
        position = end
    if not parts:
        return text
    if position < total:
        parts.append(utf16[2 * position :].decode("utf-16-le"))
    return parts


def text_entities(text: str | list[str | dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(text, str):
        return [{"type": "plain", "text": text}] if text else []
    return [{"type": "plain", "text": part} if isinstance(part, str) else part for part in text]


def _reactions(reactions: dict[str, int]) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = []
    for key, count in reactions.items():
        if key.startswith("custom:"):
            listed.append(
                {"type": "custom_emoji", "count": count, "document_id": key.removeprefix("custom:")}
            )
        elif key == "paid":
            listed.append({"type": "paid", "count": count})
        else:
            listed.append({"type": "emoji", "count": count, "emoji": key})
    return listed


class DesktopRow(NamedTuple):
    """What a Desktop message is made of, as `ROW_SQL` selects it (dates formatted by SQLite)."""

    channel_id: int
    message_id: int
    date: str  # `2024-01-01T10:00:00`, UTC
    date_unixtime: str
    edited: str | None
    edited_unixtime: str | None
    text: str
    entities: str | None  # JSON, as stored
    reactions: str | None  # JSON, as stored
    media_type: str | None
    forwarded_from: str | None
    reply_to: int | None
    author: str | None
    service_action: str | None
    username: str | None
    title: str
    lang: str  # for a query filter


_DATE = "strftime('%Y-%m-%dT%H:%M:%S', {0}, 'unixepoch'), CAST({0} AS TEXT)"
ROW_SQL = (
    f"p.channel_id, p.message_id, {_DATE.format('p.date')}, {_DATE.format('p.edit_date')}, p.text, "
    "p.entities, p.reactions, p.media_type, p.forwarded_from, p.reply_to, p.author, p.service_action, "
    "c.username, c.title, p.lang"
)


def message(row: DesktopRow, chat_name: str) -> dict[str, Any]:
    """One post as a Desktop message object, keys in Desktop's order."""
    msg: dict[str, Any] = {
        "id": row.message_id,
        "type": "service" if row.service_action else "message",
        "date": row.date,
        "date_unixtime": row.date_unixtime,
    }
    if row.edited is not None:
        msg["edited"], msg["edited_unixtime"] = row.edited, row.edited_unixtime
    peer = f"channel{row.channel_id}"
    if row.service_action:
        msg["actor"] = chat_name
        msg["actor_id"] = peer
        msg["action"] = row.service_action
        if row.text:
            msg["title"] = row.text  # the new title of create_channel, edit_group_title, …
        if row.reply_to is not None:
            msg["message_id"] = row.reply_to  # pin_message: the pinned message
        msg["text"] = ""
        msg["text_entities"] = []
        return msg
    msg["from"] = chat_name
    msg["from_id"] = peer
    if row.author:
        msg["author"] = row.author
    if row.forwarded_from:
        msg["forwarded_from"] = row.forwarded_from
        origin = _PEER_ID.match(row.forwarded_from)
        if origin:
            msg["forwarded_from_id"] = origin[1]
    if row.reply_to is not None:
        msg["reply_to_message_id"] = row.reply_to
    media = row.media_type
    if media == "photo":
        msg["photo"] = NOT_INCLUDED
    elif media in _FILE_MEDIA:
        msg["file"] = NOT_INCLUDED
        kind = _FILE_MEDIA[media]
        if kind is not None:
            msg["media_type"] = kind
    elif media:  # poll, webpage, location, …: Desktop writes their content, which we do not keep
        msg["media_type"] = media
    text = text_parts(row.text, entities_from(row.entities)) if row.entities else row.text
    msg["text"] = text
    msg["text_entities"] = text_entities(text)
    if row.reactions:
        reactions = json.loads(row.reactions)
        if reactions:
            msg["reactions"] = _reactions(reactions)
    return msg


def _chat_header(row: DesktopRow) -> str:
    chat = {
        "name": row.title or row.username or "",
        "type": "public_channel" if row.username else "private_channel",
        "id": row.channel_id,
    }
    lines = [f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}," for key, value in chat.items()]
    return "{\n" + "\n".join(lines) + '\n "messages": [\n'


class TdesktopWriter:
    """`DIR/<channel id>/result.json` per channel; rows must come channel by channel."""

    format = "tdesktop"
    schema = LAYOUT_VERSION

    def __init__(self, directory: Path, *, compress: bool = False) -> None:
        self.directory = directory
        self.compress = compress
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot write {directory}: {exc.strerror or exc}") from None
        if not directory.is_dir():
            raise ExportError(f"cannot write {directory}: not a directory")
        self._file: OutputFile | None = None
        self._channel: int | None = None
        self._name = ""
        self._done: list[tuple[OutputFile, int, str, int]] = []

    def _path(self, channel_id: int) -> Path:
        return self.directory / str(channel_id) / (FILE_NAME + (".gz" if self.compress else ""))

    def _start(self, post: DesktopRow) -> OutputFile:
        path = self._path(post.channel_id)
        try:
            path.parent.mkdir(exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot write {path.parent}: {exc.strerror or exc}") from None
        self._file = OutputFile(path, compress=self.compress)
        self._channel = post.channel_id
        self._name = post.title or post.username or ""
        self._file.write(_chat_header(post).encode("utf-8"))
        return self._file

    def _finish(self) -> None:
        if self._file is None or self._channel is None:
            return
        self._file.write(b"\n ]\n}\n")
        size, sha = self._file.close()
        self._done.append((self._file, size, sha, self._channel))
        self._file, self._channel = None, None

    def write_batch(self, rows: Sequence[DesktopRow]) -> None:
        for post in rows:
            out = self._file
            if out is None or post.channel_id != self._channel:
                self._finish()
                out = self._start(post)
            line = _encode(message(post, self._name))
            out.write(((",\n  " if out.rows else "  ") + line).encode("utf-8"))
            out.rows += 1

    def close(self) -> list[FileRecord]:
        self._finish()
        records = []
        for out, size, sha, channel_id in self._done:
            assert out.target is not None
            out.commit(out.target)
            name = out.target.relative_to(self.directory).as_posix()
            records.append(FileRecord(name, out.target, size, sha, out.rows, channel_id))
        return records

    def discard(self) -> None:
        for out, _, _, _ in self._done:
            out.discard()
        if self._file is not None:
            self._file.discard()
        self._done, self._file = [], None
