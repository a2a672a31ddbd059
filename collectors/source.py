"""The thin Telethon adapter: a TelegramClient (or a fake with the same methods) in, RawPosts out.

Everything Telethon-specific (entities, errors, update types) stops here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from telethon import errors, events
from telethon.tl import types

from collectors.refs import ChannelRef
from collectors.telethon_convert import channel_ref_from_peer, message_to_raw
from core.models import RawPost

log = logging.getLogger("tgmon.source")

HISTORY_PAGE = 100  # messages per history request, Telegram's own page size


class FloodWait(Exception):
    def __init__(self, seconds: int) -> None:
        super().__init__(f"flood wait of {seconds} s")
        self.seconds = seconds


class ChannelUnavailable(Exception):
    """The channel is private, deleted, banned, not a channel, or its username is gone."""


class ChannelMismatch(ChannelUnavailable):
    """Reading one channel gave another's posts, or its @name now names another channel."""


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    id: int
    username: str | None
    title: str
    access_hash: int | None = None


@dataclass(frozen=True, slots=True)
class NewPost:
    post: RawPost


@dataclass(frozen=True, slots=True)
class EditedPost:
    post: RawPost


@dataclass(frozen=True, slots=True)
class DeletedPosts:
    channel_id: int
    message_ids: tuple[int, ...]


SourceEvent = NewPost | EditedPost | DeletedPosts


class TelegramClientLike(Protocol):
    """The slice of telethon.TelegramClient the adapter uses; tests pass a fake with these methods."""

    async def get_entity(self, entity: Any) -> Any: ...
    def iter_messages(self, entity: Any, limit: Any = None, **kwargs: Any) -> Any: ...
    async def get_messages(self, entity: Any, limit: Any = None, **kwargs: Any) -> Any: ...
    def add_event_handler(self, callback: Any, event: Any = None) -> None: ...


_UNAVAILABLE = (
    errors.ChannelPrivateError,
    errors.ChannelInvalidError,
    errors.ChannelBannedError,
    errors.ChatForbiddenError,
    errors.UsernameNotOccupiedError,
    errors.UsernameInvalidError,
    errors.ChannelPublicGroupNaError,
)


def translate_error(exc: BaseException) -> BaseException:
    """Telethon's errors → the adapter's own; anything else passes through."""
    if isinstance(exc, errors.FloodWaitError):
        return FloodWait(int(exc.seconds))
    if isinstance(exc, _UNAVAILABLE):
        return ChannelUnavailable(_describe(exc))
    return exc


def _describe(exc: BaseException) -> str:
    names = {
        errors.ChannelPrivateError: "the channel is private or the account was banned from it",
        errors.ChannelInvalidError: "the channel does not exist or was deleted",
        errors.ChannelBannedError: "the channel is banned",
        errors.ChatForbiddenError: "access to the channel is forbidden",
        errors.UsernameNotOccupiedError: "no channel has this username (deleted or renamed)",
        errors.UsernameInvalidError: "the username is invalid",
        errors.ChannelPublicGroupNaError: "the channel is not available",
    }
    for cls, text in names.items():
        if isinstance(exc, cls):
            return text
    return str(exc)


class TelethonSource:
    def __init__(self, client: TelegramClientLike) -> None:
        self.client = client
        self._entities: dict[int, Any] = {}

    async def resolve(self, ref: ChannelRef) -> ChannelInfo:
        target: Any = ref.username if ref.username else self._peer(ref.channel_id or 0)
        try:
            entity = await self.client.get_entity(target)
        except ValueError as exc:  # Telethon: "No user has … as username" / not in the session cache
            raise ChannelUnavailable(f"{ref}: {exc}") from None
        except Exception as exc:
            raise translate_error(exc) from None
        if isinstance(entity, list):
            entity = entity[0] if entity else None
        if not isinstance(entity, types.Channel):
            kind = "a user" if isinstance(entity, types.User) else "not a channel"
            raise ChannelUnavailable(f"{ref} is {kind}")
        if entity.megagroup:
            log.info("resolve_group ref=%s: a public group, read like a channel", ref)
        self._entities[entity.id] = entity
        return ChannelInfo(entity.id, entity.username, entity.title or "", entity.access_hash)

    def remember(self, channel_id: int, access_hash: int | None) -> None:
        """Use a stored access hash, so a restart needs no new username look-up."""
        if access_hash is not None and channel_id not in self._entities:
            self._entities[channel_id] = types.InputPeerChannel(channel_id, access_hash)

    def _peer(self, channel_id: int) -> Any:
        return self._entities.get(channel_id) or types.PeerChannel(channel_id)

    async def history(
        self,
        channel_id: int,
        *,
        min_id: int = 0,
        offset_id: int = 0,
        limit: int | None = None,
        reverse: bool = False,
    ) -> AsyncIterator[RawPost]:
        """Messages above `min_id` (oldest first with reverse) or below `offset_id` (newest first)."""
        try:
            async for message in self.client.iter_messages(
                self._peer(channel_id), limit=limit, min_id=min_id, offset_id=offset_id, reverse=reverse
            ):
                raw = message_to_raw(message)
                if raw is not None:
                    _check_channel(channel_id, raw)
                    yield raw
        except ChannelMismatch:
            raise
        except Exception as exc:
            raise translate_error(exc) from None

    async def newest_id(self, channel_id: int) -> int:
        async for raw in self.history(channel_id, limit=1):
            return raw.message_id
        return 0

    async def fetch(self, channel_id: int, ids: Sequence[int]) -> dict[int, RawPost | None]:
        """Current state of the given posts; None marks a post that no longer exists."""
        try:
            found = await self.client.get_messages(self._peer(channel_id), ids=list(ids))
        except Exception as exc:
            raise translate_error(exc) from None
        result: dict[int, RawPost | None] = {}
        for wanted, message in zip(ids, found or [], strict=False):
            if message is None or isinstance(message, types.MessageEmpty):
                result[wanted] = None  # Telegram says it is gone
            elif (raw := message_to_raw(message)) is not None:
                _check_channel(channel_id, raw)
                result[raw.message_id] = raw
        return result

    def subscribe(self, callback: Callable[[SourceEvent], Awaitable[None]]) -> None:
        """Deliver live channel updates (for joined channels) as adapter events."""

        async def on_raw(update: Any) -> None:
            event = update_to_event(update)
            if event is not None:
                await callback(event)

        self.client.add_event_handler(on_raw, events.Raw)


def _check_channel(channel_id: int, raw: RawPost) -> None:
    """Never file one channel's posts under another's id (a stale entity, a name that changed hands)."""
    if raw.channel_id != channel_id:
        raise ChannelMismatch(
            f"reading channel {channel_id} gave posts of channel {raw.channel_id}: "
            "Telegram now knows this channel as another one; nothing was stored"
        )


def update_to_event(update: Any) -> SourceEvent | None:
    """Pure: one raw Telethon update → NewPost, EditedPost, DeletedPosts, or None."""
    if isinstance(update, types.UpdateNewChannelMessage | types.UpdateNewMessage):
        raw = message_to_raw(update.message)
        return NewPost(raw) if raw is not None else None
    if isinstance(update, types.UpdateEditChannelMessage | types.UpdateEditMessage):
        raw = message_to_raw(update.message)
        return EditedPost(raw) if raw is not None else None
    if isinstance(update, types.UpdateDeleteChannelMessages):
        return DeletedPosts(int(update.channel_id), tuple(int(i) for i in update.messages))
    return None


__all__ = [
    "ChannelInfo",
    "ChannelMismatch",
    "ChannelUnavailable",
    "DeletedPosts",
    "EditedPost",
    "FloodWait",
    "NewPost",
    "SourceEvent",
    "TelethonSource",
    "channel_ref_from_peer",
    "update_to_event",
]
