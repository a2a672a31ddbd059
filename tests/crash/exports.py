"""Large Telegram Desktop exports for the crash tests, grown from real exports' messages.

Templates come from ../shared/data/exports when present, else from tests/fixtures/tdesktop. Every
generated channel cycles through its template's messages (service messages, entities, forwards,
non-Latin text), giving each copy a new id and a recent date; most copies get a distinct tail so the
texts differ, some stay verbatim so stories fold. A second, newer export edits a seeded tenth of them.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.importer import BATCH
from tests.conftest import FIXTURES, SHARED_DATA

SHARED_EXPORTS = (
    "ru_uk_ukraina24.result.json",
    "ar_en_upon_path_of_salaf.result.json",
    "zh_trantor_library.result.json",
)
FIXTURE_EXPORTS = ("single_chat/result.json", "account.result.json")
FIRST_CHANNEL = 1_900_000_001
TEXT_LIMIT = 600  # characters per template text: the restarts' re-reading stays cheap
SPAN_S = 12 * 3600  # every post within the last 12 hours: fresh for alerts and inside the story window


@dataclass(frozen=True)
class GeneratedExports:
    old: Path  # the first export: every message, as first posted
    new: Path  # a later export of the same channels: the edited messages only
    messages: int
    edits: int
    channel_ids: tuple[int, ...]
    batches: int  # the importer's batches that store something, over both files


def template_chats() -> list[list[dict[str, Any]]]:
    """Message lists to copy from: the real exports when present, else the fixtures."""
    found: list[list[dict[str, Any]]] = []
    if all((SHARED_DATA / "exports" / name).is_file() for name in SHARED_EXPORTS):
        for name in SHARED_EXPORTS:
            document = json.loads((SHARED_DATA / "exports" / name).read_text(encoding="utf-8"))
            found.append(document["messages"])
    else:
        for name in FIXTURE_EXPORTS:
            document = json.loads((FIXTURES / "tdesktop" / name).read_text(encoding="utf-8"))
            chats = [document] if "messages" in document else document["chats"]["list"]
            found += [chat["messages"] for chat in chats if chat.get("messages")]
    chats = [[m for m in messages if m.get("type") in ("message", "service")] for messages in found]
    for messages in chats:
        for message in messages:
            shorten(message)
    return chats


def shorten(message: dict[str, Any], limit: int = TEXT_LIMIT) -> None:
    """Keep the text's first pieces up to about `limit` characters (whole pieces: entities stay intact)."""
    text = message.get("text", "")
    if isinstance(text, str):
        message["text"] = text[:limit]
        message["text_entities"] = [{"type": "plain", "text": text[:limit]}] if text else []
        return
    kept: list[Any] = []
    size = 0
    for piece in text:
        size += len(piece if isinstance(piece, str) else piece.get("text", ""))
        if kept and size > limit:
            break
        kept.append(piece)
    message["text"] = kept
    message["text_entities"] = message.get("text_entities", [])[: len(kept)]


def append_plain(message: dict[str, Any], tail: str) -> None:
    """Add a plain piece to the text, keeping `text` and `text_entities` in step."""
    text = message.get("text", "")
    message["text"] = [*([text] if isinstance(text, str) and text else text or []), tail]
    message["text_entities"] = [*message.get("text_entities", []), {"type": "plain", "text": tail}]


def prepend_bold(message: dict[str, Any], head: str) -> None:
    text = message.get("text", "")
    piece = {"type": "bold", "text": head}
    message["text"] = [piece, *([text] if isinstance(text, str) and text else text or [])]
    message["text_entities"] = [piece, *message.get("text_entities", [])]


def build_exports(
    out: Path, messages: int, *, seed: int, now: float, edit_share: float = 0.1
) -> GeneratedExports:
    """Write `out/old.json` and `out/new.json` (account exports) holding `messages` messages in all."""
    rng = random.Random(seed)
    templates = template_chats()
    per_chat = [messages // len(templates) + (i < messages % len(templates)) for i in range(len(templates))]
    start = int(now) - SPAN_S
    old_chats, new_chats, edits, batches = [], [], 0, 0
    for n, (template, count) in enumerate(zip(templates, per_chat, strict=True)):
        channel_id = FIRST_CHANNEL + n
        gap = SPAN_S / max(count, 1)
        made, edited = [], []
        for i in range(count):
            message = copy.deepcopy(template[i % len(template)])
            message_id = i + 1
            date = start + int(i * gap)
            message.update(id=message_id, date_unixtime=str(date), from_id=f"channel{channel_id}")
            message.pop("reply_to_message_id", None)
            if message.get("edited_unixtime"):
                message["edited_unixtime"] = str(date + 30)
            if message["type"] == "message" and rng.random() < 0.8:  # most copies differ a little
                append_plain(message, f" · {n}-{message_id}")
            made.append(message)
            if message["type"] == "message" and rng.random() < edit_share:
                later = copy.deepcopy(message)
                prepend_bold(later, f"UPDATE {message_id}: ")
                later["edited_unixtime"] = str(date + 600)
                edited.append(later)
        name = f"Crash channel {n}"
        old_chats.append({"name": name, "type": "public_channel", "id": channel_id, "messages": made})
        new_chats.append({"name": name, "type": "public_channel", "id": channel_id, "messages": edited})
        edits += len(edited)
        batches += -(-len(made) // BATCH) + -(-len(edited) // BATCH)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for file, chats in (("old.json", old_chats), ("new.json", new_chats)):
        path = out / file
        path.write_text(json.dumps({"chats": {"list": chats}}, ensure_ascii=False), encoding="utf-8")
        paths.append(path)
    ids = tuple(FIRST_CHANNEL + n for n in range(len(templates)))
    return GeneratedExports(paths[0], paths[1], messages, edits, ids, batches)
