"""Reader for Telegram Desktop's JSON export (`result.json`): one chat, or a whole-account export.

Format notes (as Telegram Desktop writes it):

* `date` is the exporting machine's local time without an offset, so `date_unixtime` (a string holding an
  int) is the real instant. Older exports have no `*_unixtime` fields; their `date` is then read
  as if it were UTC, which is wrong by the exporter's UTC offset (a warning is logged once per chat).
* `text` is a string or a list of strings and entity objects; `text_entities` (newer versions) is always a
  list of `{type, text, ...}` with `plain` pieces. Pieces never overlap (the export keeps one type where
  Telegram had nested entities), so each non-plain piece is one entity; offsets and lengths are counted in
  UTF-16 code units, as Telegram's API does.
* The chat `id` is the bare id (no -100 prefix). Messages Telegram Desktop could not export are written as
  `{"id": N, "type": "unsupported"}` without a date; they are skipped.
* Telegram Desktop writes control characters as `\\xHH`, which is not valid JSON, and 4.1.x wrote custom
  emoji `document_id` values without quotes; both are repaired when the file does not parse as is.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard

from core.models import Entity, RawPost, bare_channel_id

__all__ = ["EXPORT_FILE_NAME", "ExportFormatError", "ExportedChat", "read_export"]

log = logging.getLogger(__name__)

EXPORT_FILE_NAME = "result.json"
_SQLITE_INT = 2**63

_ENTITY_TYPES = {"link": "url", "mention_name": "text_mention", "phone": "phone_number"}
_MEDIA_TYPES = {
    "video_file": "video",
    "voice_message": "voice",
    "audio_file": "audio",
    "video_message": "video_note",
}
# Media that the export marks with a key of its own rather than `media_type`, in precedence order.
_MEDIA_KEYS = (
    ("poll", "poll"),
    ("location_information", "location"),
    ("place_name", "location"),
    ("contact_information", "contact"),
    ("todo_list", "todo"),
    ("invoice_information", "invoice"),
    ("game_title", "game"),
    ("giveaway_information", "giveaway"),
    ("giveaway_results", "giveaway_winners"),
    ("paid_stars_amount", "paid_media"),
)

# `\xHH` escapes preceded by an even number of backslashes (an odd run ends in the escaping backslash).
_HEX_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\x([0-9A-Fa-f]{2})")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_UNQUOTED_DOCUMENT_ID = re.compile(
    r'^(\s*"document_id": )(?!["\[{\d-]|null\b|true\b|false\b)(.*?)(,?)$', re.M
)


@dataclass(frozen=True, slots=True)
class ExportedChat:
    id: int  # bare id, as in the export (no -100 prefix)
    name: str  # "" when the export has none (Saved Messages, deleted accounts)
    type: str  # public_channel, private_channel, public_supergroup, personal_chat, ...
    username: str | None = None  # exports do not carry it


class ExportFormatError(ValueError):
    """The export cannot be read; the message names the file, the problem and the message id if known."""

    def __init__(
        self, path: Path, problem: str, *, message_id: int | None = None, chat_id: int | None = None
    ) -> None:
        self.path = path
        self.problem = problem
        self.message_id = message_id
        self.chat_id = chat_id
        where = [str(path)]
        if chat_id is not None:
            where.append(f"chat {chat_id}")
        if message_id is not None:
            where.append(f"message {message_id}")
        super().__init__(": ".join([*where, problem]))


def read_export(path: Path | str) -> Iterator[tuple[ExportedChat, list[RawPost]]]:
    """Yield each chat of a Telegram Desktop JSON export with its posts, in file order.

    `path` is a `result.json` or a directory holding one. A single-chat export yields one chat; an account
    export yields every chat of `chats.list` and then of `left_chats.list`. Service messages are included
    (with `service_action` set). Everything wrong with the file raises `ExportFormatError`, lazily: a chat
    is only checked when the iteration reaches it, so callers that need all-or-nothing collect first.
    """
    file = _result_file(Path(path))
    document = _load(file)
    if not isinstance(document, dict):
        raise ExportFormatError(file, f"the top level is a JSON {_json_type(document)}, not an object")
    if "messages" in document:
        yield _read_chat(file, document, in_account=False)
        return
    if "chats" not in document and "left_chats" not in document:
        raise ExportFormatError(
            file,
            "neither 'messages' (a chat export) nor 'chats' (an account export) is present;"
            " export chat history as machine-readable JSON",
        )
    for section_key in ("chats", "left_chats"):
        if section_key not in document:
            continue
        section = document[section_key]
        chats = section.get("list") if isinstance(section, dict) else None
        if not isinstance(chats, list):
            raise ExportFormatError(file, f"'{section_key}' has no 'list' of chats")
        for index, chat in enumerate(chats):
            if not isinstance(chat, dict):
                raise ExportFormatError(file, f"{section_key}.list[{index}] is not a JSON object")
            yield _read_chat(file, chat, in_account=True)


def _result_file(path: Path) -> Path:
    if path.is_dir():
        file = path / EXPORT_FILE_NAME
        if not file.is_file():
            raise ExportFormatError(path, f"no {EXPORT_FILE_NAME} in this directory")
        return file
    return path


def _load(file: Path) -> Any:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ExportFormatError(file, f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        if exc.end == len(raw) and exc.reason == "unexpected end of data":
            raise ExportFormatError(
                file, f"the file ends inside a UTF-8 character (truncated?) at line {line}"
            ) from exc
        raise ExportFormatError(
            file, f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} (line {line})"
        ) from exc
    if not text.strip():
        raise ExportFormatError(file, "the file is empty")
    try:
        return _decode(file, text)
    except json.JSONDecodeError as exc:
        first_error = exc
    repaired = _repair(text)
    if repaired != text:
        try:
            return _decode(file, repaired)
        except json.JSONDecodeError as exc:
            first_error = exc
            text = repaired
    raise ExportFormatError(file, _describe_json_error(first_error, text)) from first_error


def _decode(file: Path, text: str) -> Any:
    """The JSON document, with unpaired surrogates (a lone `\\ud83d` escape) replaced by U+FFFD;
    JSONDecodeError for the caller to describe, ExportFormatError for what is valid JSON but no export."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise ExportFormatError(file, "arrays or objects nest too deeply to be an export") from None
    except ValueError:  # a number longer than int() takes (4300 digits)
        raise ExportFormatError(file, "a number in it has thousands of digits") from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            document = _replace_lone_surrogates(document)
        except RecursionError:
            raise ExportFormatError(file, "arrays or objects nest too deeply to be an export") from None
    return document


def _replace_lone_surrogates(value: Any) -> Any:
    """The document with every string that holds an unpaired surrogate repaired (SQLite stores UTF-8,
    which has no surrogates); U+FFFD takes one UTF-16 unit too, so entity offsets stay right."""
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return value
    if isinstance(value, list):
        return [_replace_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_replace_lone_surrogates(k): _replace_lone_surrogates(v) for k, v in value.items()}
    return value


def _repair(text: str) -> str:
    """Fix the two ways Telegram Desktop writes invalid JSON (see the module docstring)."""
    text = _HEX_ESCAPE.sub(r"\1\\u00\2", text)
    return _UNQUOTED_DOCUMENT_ID.sub(lambda m: m[1] + json.dumps(m[2], ensure_ascii=False) + m[3], text)


def _describe_json_error(exc: json.JSONDecodeError, text: str) -> str:
    if exc.msg.startswith("Unterminated string") or not text[exc.pos :].strip():
        return f"the JSON ends early (truncated?): {exc.msg} at line {exc.lineno} column {exc.colno}"
    return f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class _ChatReader:
    """Converts the messages of one chat; holds what error messages and the date fallback need."""

    __slots__ = ("chat_id", "error_chat_id", "file", "iso_dates", "peer_suffix")

    def __init__(self, file: Path, chat_id: int, *, in_account: bool) -> None:
        self.file = file
        self.chat_id = chat_id
        self.error_chat_id = chat_id if in_account else None
        self.peer_suffix = str(bare_channel_id(chat_id))  # reply_to_peer_id names it bare
        self.iso_dates = 0  # messages dated from the local-time `date` (no `date_unixtime`)

    def error(self, problem: str, message_id: int | None = None) -> ExportFormatError:
        return ExportFormatError(self.file, problem, message_id=message_id, chat_id=self.error_chat_id)

    def post(self, msg: dict[str, Any], mid: int) -> RawPost | None:
        kind = msg.get("type", "message")
        if kind == "unsupported":
            return None
        if not isinstance(kind, str):
            raise self.error("'type' is not a string", mid)
        date = self.timestamp(msg, mid, "date_unixtime", "date")
        if date is None:
            raise self.error("'date_unixtime' and 'date' are missing", mid)
        edit_date = self.timestamp(msg, mid, "edited_unixtime", "edited")
        if kind == "service":
            action = msg.get("action")
            if action is None:  # Telegram Desktop writes custom actions as `information_text` only
                action = "custom_action"
            elif not isinstance(action, str):
                raise self.error("'action' is not a string", mid)
            title = msg.get("title")
            return RawPost(
                channel_id=self.chat_id,
                message_id=mid,
                date=date,
                text=title if isinstance(title, str) else "",
                edit_date=edit_date,
                service_action=action,
            )
        text, entities = self.text(msg, mid)
        return RawPost(
            channel_id=self.chat_id,
            message_id=mid,
            date=date,
            text=text,
            entities=entities,
            edit_date=edit_date,
            reactions=self.reactions(msg, mid),
            media_type=self.media_type(msg, mid),
            forwarded_from=self.forwarded_from(msg, mid),
            reply_to=self.reply_to(msg, mid),
            author=self.optional_str(msg, mid, "author"),
        )

    def timestamp(self, msg: dict[str, Any], mid: int, unix_key: str, local_key: str) -> datetime | None:
        unix = msg.get(unix_key)
        if unix is not None:
            if isinstance(unix, str) and unix.isascii() and unix.isdigit():
                seconds = int(unix) if len(unix) <= 20 else _SQLITE_INT  # past int()'s 4,300 digits
            elif isinstance(unix, int) and not isinstance(unix, bool):
                seconds = unix
            else:
                raise self.error(f"'{unix_key}' is not a number: {_shown(unix)}", mid)
            try:
                return datetime.fromtimestamp(seconds, UTC)
            except (OverflowError, OSError, ValueError) as exc:
                raise self.error(f"'{unix_key}' is out of range: {_shown(unix)}", mid) from exc
        local = msg.get(local_key)
        if local is None:
            return None
        if not isinstance(local, str):
            raise self.error(f"'{local_key}' is not a string", mid)
        try:
            parsed = datetime.fromisoformat(local)
        except ValueError as exc:
            raise self.error(f"'{local_key}' is not an ISO date: {_shown(local)}", mid) from exc
        self.iso_dates += 1
        try:
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except OverflowError as exc:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
            raise self.error(f"'{local_key}' is out of range: {_shown(local)}", mid) from exc

    def text(self, msg: dict[str, Any], mid: int) -> tuple[str, tuple[Entity, ...]]:
        source_key = "text_entities" if "text_entities" in msg else "text"
        source = msg.get(source_key, "")
        if isinstance(source, str):
            return source, ()
        if not isinstance(source, list):
            raise self.error(f"'{source_key}' is neither a string nor a list", mid)
        parts: list[str] = []
        entities: list[Entity] = []
        offset = 0
        for piece in source:
            if isinstance(piece, str):
                parts.append(piece)
                offset += _utf16_len(piece)
                continue
            if not isinstance(piece, dict):
                raise self.error(f"'{source_key}' holds a {_json_type(piece)}, not a string or object", mid)
            piece_type = piece.get("type")
            piece_text = piece.get("text")
            if not isinstance(piece_type, str) or not isinstance(piece_text, str):
                raise self.error(f"an entry of '{source_key}' lacks a string 'type' or 'text'", mid)
            parts.append(piece_text)
            length = _utf16_len(piece_text)
            if piece_type != "plain" and length:
                entities.append(_entity(piece_type, piece, offset, length))
            offset += length
        return "".join(parts), tuple(entities)

    def media_type(self, msg: dict[str, Any], mid: int) -> str | None:
        if "photo" in msg:
            return "photo"
        media = msg.get("media_type")
        if media is not None:
            if not isinstance(media, str):
                raise self.error("'media_type' is not a string", mid)
            return _MEDIA_TYPES.get(media, media)
        if "file" in msg:
            return "document"
        for key, media_type in _MEDIA_KEYS:
            if key in msg:
                return media_type
        return None

    def forwarded_from(self, msg: dict[str, Any], mid: int) -> str | None:
        """The origin's name; when the export has it as null (a hidden or deleted origin), its "user1" id."""
        name = self.optional_str(msg, mid, "forwarded_from")
        return name or self.optional_str(msg, mid, "forwarded_from_id") or None

    def reply_to(self, msg: dict[str, Any], mid: int) -> int | None:
        reply_to = msg.get("reply_to_message_id")
        if reply_to is None:
            return None
        if not _is_id(reply_to):
            raise self.error("'reply_to_message_id' is not an integer (or out of range)", mid)
        peer = msg.get("reply_to_peer_id")  # only present for a reply to a message in another chat
        if isinstance(peer, str) and peer.lstrip("abcdefghijklmnopqrstuvwxyz") != self.peer_suffix:
            return None
        return reply_to

    def reactions(self, msg: dict[str, Any], mid: int) -> dict[str, int] | None:
        listed = msg.get("reactions")
        if not listed:
            return None
        if not isinstance(listed, list):
            raise self.error("'reactions' is not a list", mid)
        counts: dict[str, int] = {}
        for reaction in listed:
            count = reaction.get("count") if isinstance(reaction, dict) else None
            if not isinstance(count, int) or isinstance(count, bool):
                raise self.error("a reaction lacks an integer 'count'", mid)
            kind = reaction.get("type", "emoji")
            if kind == "emoji":
                key = reaction.get("emoji")
            elif kind == "custom_emoji":
                document = reaction.get("document_id")
                key = f"custom:{document}" if isinstance(document, str | int) else None
            else:
                key = kind  # "paid", and whatever later versions add
            if not isinstance(key, str):
                raise self.error(f"a {_shown(kind)} reaction lacks its emoji or document_id", mid)
            counts[key] = counts.get(key, 0) + count
        return counts

    def optional_str(self, msg: dict[str, Any], mid: int, key: str) -> str | None:
        value = msg.get(key)
        if value is None or isinstance(value, str):
            return value
        raise self.error(f"'{key}' is not a string", mid)


def _read_chat(file: Path, chat: dict[str, Any], *, in_account: bool) -> tuple[ExportedChat, list[RawPost]]:
    chat_id = chat.get("id")
    if not _is_id(chat_id):
        shown = (
            "missing"
            if chat_id is None
            else f"out of range: {_shown(chat_id)}"
            if isinstance(chat_id, int) and not isinstance(chat_id, bool)
            else f"not an integer: {_shown(chat_id)}"
        )
        raise ExportFormatError(file, f"the chat 'id' is {shown}")
    name = chat.get("name")
    chat_type = chat.get("type")
    reader = _ChatReader(file, chat_id, in_account=in_account)
    if name is not None and not isinstance(name, str):
        raise reader.error("the chat 'name' is not a string")
    if chat_type is not None and not isinstance(chat_type, str):
        raise reader.error("the chat 'type' is not a string")
    messages = chat.get("messages")
    if not isinstance(messages, list):
        shown = "missing" if "messages" not in chat else f"a JSON {_json_type(messages)}, not an array"
        raise reader.error(f"'messages' is {shown}")
    posts: list[RawPost] = []
    for index, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise reader.error(f"messages[{index}] is a JSON {_json_type(msg)}, not an object")
        mid = msg.get("id")
        if not _is_id(mid):
            raise reader.error(f"messages[{index}] has no integer 'id' (or it is out of range)")
        try:
            post = reader.post(msg, mid)
        except ExportFormatError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a shape the checks above missed
            raise reader.error(f"unexpected content ({type(exc).__name__}: {str(exc)[:200]})", mid) from exc
        if post is not None:
            posts.append(post)
    if reader.iso_dates:
        log.warning(
            "%s: chat %d: %d messages have no 'date_unixtime' (an old export); their local-time 'date' "
            "was read as UTC",
            file,
            chat_id,
            reader.iso_dates,
        )
    exported = ExportedChat(id=chat_id, name=name or "", type=chat_type or "", username=None)
    return exported, posts


def _is_id(value: Any) -> TypeGuard[int]:
    """An integer SQLite can store (ids are 64-bit in Telegram too)."""
    return isinstance(value, int) and not isinstance(value, bool) and -_SQLITE_INT <= value < _SQLITE_INT


def _shown(value: Any, limit: int = 60) -> str:
    """A value as an error message quotes it: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _entity(piece_type: str, piece: dict[str, Any], offset: int, length: int) -> Entity:
    if piece_type == "text_link":
        href = piece.get("href")
        return Entity("text_link", offset, length, href if isinstance(href, str) else None)
    if piece_type == "blockquote" and piece.get("collapsed") is True:
        return Entity("expandable_blockquote", offset, length)
    return Entity(_ENTITY_TYPES.get(piece_type, piece_type), offset, length)


def _utf16_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2
