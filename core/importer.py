"""`tgmon import`: Telegram Desktop exports through the same pipeline as live posts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from collectors.tdesktop import ExportedChat, read_export
from core.models import ChannelProgress, RawPost, SaveResult, bare_channel_id
from core.pipeline import InFlight, Pipeline

BATCH = 500
# Chats whose ids are channel ids; personal chats and basic groups are not ours to archive.
CHANNEL_TYPES = {"public_channel", "private_channel", "public_supergroup", "private_supergroup"}


@dataclass
class ImportReport:
    chats: int = 0
    messages: int = 0
    service: int = 0
    skipped_chats: list[str] = field(default_factory=list)
    new: int = 0
    edited: int = 0
    unchanged: int = 0
    per_chat: dict[int, int] = field(default_factory=dict)


def load_exports(paths: Sequence[Path]) -> list[tuple[ExportedChat, list[RawPost]]]:
    """Read and validate every file before anything is written: a bad file changes nothing."""
    return [chat for path in paths for chat in read_export(path)]


async def import_exports(
    pipeline: Pipeline,
    paths: Sequence[Path],
    *,
    alerts: bool = True,
    on_start: Callable[[int], None] | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> ImportReport:
    report = ImportReport()
    chats = []
    for chat, posts in await asyncio.to_thread(load_exports, paths):
        if chat.type in CHANNEL_TYPES:
            chats.append((chat, posts))
        else:
            report.skipped_chats.append(f"{chat.name or chat.id} ({chat.type or 'unknown type'})")
    if on_start:
        on_start(sum(len(posts) for _, posts in chats))
    archive = pipeline.archive
    await archive.prepare_bulk_writes()

    def stored(result: SaveResult, rows: int) -> None:
        report.new += len(result.new)
        report.edited += len(result.edited)
        report.unchanged += result.unchanged
        if on_rows:
            on_rows(rows)

    in_flight = InFlight(stored)
    try:
        for chat, posts in chats:
            channel_id = bare_channel_id(chat.id)  # as the pipeline stores its posts
            existing = await archive.get_channel(channel_id)
            # an imported channel is archived, not watched, until an operator adds it
            watched = None if existing else False
            await archive.upsert_channel(channel_id, chat.username, chat.name, watched=watched)
            report.chats += 1
            report.per_chat[channel_id] = len(posts)
            ordered = sorted(posts, key=lambda raw: raw.message_id)
            for start in range(0, len(ordered), BATCH):
                batch = ordered[start : start + BATCH]
                progress = None
                if existing is None or not existing.watched:  # a watched channel keeps its own reading mark
                    progress = ChannelProgress(channel_id, last_seen_id=batch[-1].message_id)
                await in_flight.add(pipeline.ingest(batch, progress=progress, alerts=alerts), len(batch))
            report.messages += len(posts)
            report.service += sum(1 for raw in posts if raw.service_action)
        await in_flight.finish()
    finally:
        await in_flight.cancel()
    return report
