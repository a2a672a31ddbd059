"""The archive's port: the pipeline, the CLI and the bot use only this interface."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol

from core.models import (
    Channel,
    ChannelProgress,
    ChannelStatus,
    Post,
    PostFilter,
    PostVersion,
    ProcessedPost,
    SaveResult,
    StoryRow,
)

__all__ = ["Archive", "open_archive"]


class Archive(Protocol):
    async def close(self) -> None: ...
    async def upsert_channel(
        self,
        channel_id: int,
        username: str | None,
        title: str,
        *,
        access_hash: int | None = None,
        watched: bool | None = None,
    ) -> Channel: ...
    async def unwatch_channel(self, channel_id: int) -> None: ...
    async def get_channel(self, ref: int | str) -> Channel | None: ...
    async def list_channels(self, *, watched_only: bool = True) -> list[Channel]: ...
    async def set_channel_status(
        self,
        channel_id: int,
        status: ChannelStatus,
        *,
        error: str | None = None,
        flood_wait_until: datetime | None = None,
    ) -> None: ...
    async def record_progress(self, progress: ChannelProgress) -> None: ...
    async def known_hashes(self, channel_id: int, message_ids: Sequence[int]) -> dict[int, str]: ...
    async def prepare_bulk_writes(self) -> None: ...
    async def save_posts(
        self,
        posts: Sequence[ProcessedPost],
        *,
        progress: ChannelProgress | None = None,
        then: Callable[[SaveResult], Awaitable[None]] | None = None,
    ) -> SaveResult: ...
    async def mark_deleted(self, channel_id: int, message_ids: Sequence[int], at: datetime) -> int: ...
    async def story_rows(self, since: datetime) -> list[StoryRow]: ...
    async def newest_story_date(self) -> datetime | None: ...
    async def story_channels(self, story_id: str) -> list[Channel]: ...
    async def recent_message_ids(self, channel_id: int, since: datetime) -> list[int]: ...
    async def get_post(self, channel_id: int, message_id: int) -> Post | None: ...
    async def versions(self, channel_id: int, message_id: int) -> list[PostVersion]: ...
    async def count_posts(self, channel_id: int | None = None) -> int: ...
    async def channel_stats(self) -> dict[int, tuple[int, datetime | None]]: ...
    async def search_candidates(
        self,
        fts: str | None,
        *,
        filters: PostFilter | None = None,
        limit: int = 200,
        before: tuple[int, int, int] | None = None,
    ) -> list[Post]: ...
    async def index_terms(self, prefix: str, *, limit: int) -> list[str] | None: ...
    def iter_posts(
        self, filters: PostFilter | None = None, *, batch: int = 1000
    ) -> AsyncGenerator[Post, None]: ...


async def open_archive(database_url: str) -> Archive:
    """Open the archive a DATABASE_URL names (sqlite:///PATH for now)."""
    from pathlib import Path

    from core.storage.sqlite import SqliteArchive

    if not database_url.startswith("sqlite:///"):
        raise ValueError(f"unsupported DATABASE_URL {database_url!r}: use sqlite:///PATH")
    return await SqliteArchive.open(Path(database_url.removeprefix("sqlite:///")))
