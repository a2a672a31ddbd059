"""The fake Telegram the crash runners' collectors read: seeded channels of real TL messages.

Texts and entities come from the same templates as the exports (real channels' messages). A spec is a
small JSON file, so the test and every restarted child build the very same client. Backfill restarts
may edit or delete posts the backfill has not reached yet; each change is appended to a log, and a later
client (the uninterrupted reference run) replays the whole log.
"""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from telethon.tl import types

from tests.crash.exports import template_chats
from tests.fakes.telethon_client import FakeTelegramClient
from tests.fakes.tl_builders import make_channel, make_message, make_service

FIRST_CHANNEL = 1_800_000_001
_ENTITIES: dict[str, Any] = {
    "bold": types.MessageEntityBold,
    "italic": types.MessageEntityItalic,
    "underline": types.MessageEntityUnderline,
    "strikethrough": types.MessageEntityStrike,
    "code": types.MessageEntityCode,
    "hashtag": types.MessageEntityHashtag,
    "mention": types.MessageEntityMention,
    "link": types.MessageEntityUrl,
    "email": types.MessageEntityEmail,
    "cashtag": types.MessageEntityCashtag,
}


@dataclass(frozen=True)
class Spec:
    seed: int
    channels: int
    posts: int  # per channel
    start: float  # unix time of the oldest post; the newest is 12 hours later
    tag: str = ""  # appended to every text: tells two fake Telegrams' posts apart
    log: str | None = None  # the mutation log (JSON lines)
    first_id: int = 1  # message id of each channel's oldest post

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> Spec:
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def channel_ids(self) -> list[int]:
        return [FIRST_CHANNEL + n for n in range(self.channels)]

    def username(self, channel_id: int) -> str:
        return f"crash_{channel_id - FIRST_CHANNEL}"


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def text_and_entities(message: dict[str, Any]) -> tuple[str, list[Any]]:
    """A Desktop-export message's text as Telegram sends it: the text and its TL entities."""
    pieces = message.get("text_entities") or []
    text, entities, offset = [], [], 0
    for piece in pieces:
        part = piece.get("text", "")
        kind = piece.get("type")
        if part and kind == "text_link":
            entities.append(types.MessageEntityTextUrl(offset, utf16_len(part), url=piece.get("href", "")))
        elif part and kind in _ENTITIES:
            entities.append(_ENTITIES[kind](offset, utf16_len(part)))
        text.append(part)
        offset += utf16_len(part)
    return "".join(text), entities


def shifted(entities: list[Any], by: int) -> list[Any]:
    moved = []
    for entity in entities:  # TL objects have no copy(): rebuild each from its fields
        fields = entity.to_dict()
        fields.pop("_")
        fields["offset"] += by
        moved.append(type(entity)(**fields))
    return moved


def build_client(spec: Spec) -> FakeTelegramClient:
    """Every channel of the spec, with the logged edits and deletions applied."""
    rng = random.Random(spec.seed)
    templates = [m for chat in template_chats() for m in chat]
    client = FakeTelegramClient()
    start = datetime.fromtimestamp(spec.start, UTC)
    gap = timedelta(hours=12) / max(spec.posts, 1)
    for n, channel_id in enumerate(spec.channel_ids()):
        messages: list[Any] = []
        for i in range(spec.posts):
            message_id = spec.first_id + i
            date = start + gap * i
            template = templates[rng.randrange(len(templates))]
            if template["type"] == "service":
                action = types.MessageActionPinMessage() if i else types.MessageActionChannelCreate("x")
                messages.append(make_service(channel_id, message_id, action, date=date))
                continue
            text, entities = text_and_entities(template)
            if rng.random() < 0.8 or spec.tag:  # most copies differ; the rest fold into stories
                text += f" · {n}-{message_id}{spec.tag}"
            messages.append(
                make_message(channel_id, message_id, text, date=date, entities=entities, views=i % 1000)
            )
        client.add_channel(make_channel(channel_id, spec.username(channel_id), f"Crash {n}"), messages)
    log = Path(spec.log) if spec.log else None
    if log is not None and log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            apply(client, json.loads(line))
    return client


def apply(client: FakeTelegramClient, change: dict[str, Any]) -> None:
    messages = client.channels[change["channel"]].messages
    if change["id"] not in messages:
        return
    if change["kind"] == "delete":
        del messages[change["id"]]
        return
    old = messages[change["id"]]
    if not isinstance(old, types.Message):
        return
    head = f"EDITED {change['generation']}: "
    messages[change["id"]] = make_message(
        old.peer_id.channel_id, old.id, head + old.message, date=old.date,
        edit_date=old.date + timedelta(minutes=change["generation"]),
        entities=shifted(list(old.entities or []), utf16_len(head)), views=old.views,
    )  # fmt: skip


def mutate_unread(spec: Spec, database: Path, generation: int) -> int:
    """Between two runs: edit and delete a few posts below each channel's backfill cursor (posts the
    backfill has yet to read), and log the changes. Returns how many were made."""
    assert spec.log is not None
    log = Path(spec.log)
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    logged = [json.loads(line) for line in lines]
    deleted = {(c["channel"], c["id"]) for c in logged if c["kind"] == "delete"}
    with sqlite3.connect(database) as db:
        cursors = dict(
            db.execute("SELECT id, backfill_cursor FROM channels WHERE backfill_active = 1").fetchall()
        )
    rng = random.Random(spec.seed * 1000 + generation)
    changes = []
    for channel_id, cursor in sorted(cursors.items()):
        ids = range(spec.first_id, min(spec.first_id + spec.posts, cursor or 0))
        unread = [i for i in ids if (channel_id, i) not in deleted]
        for message_id in rng.sample(unread, min(len(unread), 6)):
            kind = "delete" if rng.random() < 0.3 else "edit"
            changes.append({"channel": channel_id, "id": message_id, "kind": kind, "generation": generation})
    with log.open("a", encoding="utf-8") as out:
        out.writelines(json.dumps(change) + "\n" for change in changes)
    return len(changes)
