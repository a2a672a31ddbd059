"""A fake TelegramClient: the methods the adapter calls, over real TL objects, with injectable faults."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from telethon import errors
from telethon.tl import types


@dataclass
class FakeChannel:
    entity: types.Channel
    messages: dict[int, types.Message] = field(default_factory=dict)


class FakeTelegramClient:
    def __init__(self) -> None:
        self.channels: dict[int, FakeChannel] = {}
        self.users: dict[str, types.User] = {}
        self.handlers: list[Callable[[Any], Awaitable[None]]] = []
        # channel id → exceptions raised by the next history/get_messages calls, in order
        self.faults: dict[int, list[BaseException]] = {}
        # channel id → (messages to yield, then this exception), once
        self.break_after: dict[int, tuple[int, BaseException]] = {}
        self.calls: list[tuple[str, int, dict[str, Any]]] = []
        self.disconnected = False
        self.private: set[int] = set()  # channels that turned private: every call about them fails
        # channel id → another channel's id: reading the first gives the second's messages (a stale
        # entity in the session cache, a name that now resolves elsewhere)
        self.redirect: dict[int, int] = {}

    # test setup

    def add_channel(self, entity: types.Channel, messages: list[types.Message] = ()) -> FakeChannel:  # type: ignore[assignment]
        channel = FakeChannel(entity, {m.id: m for m in messages})
        self.channels[entity.id] = channel
        return channel

    def give_username(self, username: str | None, channel_id: int) -> None:
        """Telegram moves @username to `channel_id` (None: takes it away): the old holder loses it."""
        for channel in self.channels.values():
            if username and (channel.entity.username or "").lower() == username.lower():
                channel.entity.username = None
        if channel_id in self.channels:
            self.channels[channel_id].entity.username = username

    def post(self, message: types.Message) -> None:
        self.channels[message.peer_id.channel_id].messages[message.id] = message

    async def push(self, update: Any) -> None:
        """Deliver a raw update to every registered handler, as Telethon's update loop would."""
        for handler in self.handlers:
            await handler(update)

    # the TelegramClient surface

    def add_event_handler(self, callback: Callable[[Any], Awaitable[None]], event: Any = None) -> None:
        self.handlers.append(callback)

    async def get_entity(self, entity: Any) -> Any:
        if isinstance(entity, str):
            name = entity.lstrip("@").lower()
            for channel in self.channels.values():
                if (channel.entity.username or "").lower() == name:
                    if channel.entity.id in self.private:
                        raise errors.ChannelPrivateError(request=None)
                    return channel.entity
            if name in self.users:
                return self.users[name]
            raise errors.UsernameNotOccupiedError(request=None)
        channel = self.channels.get(self._id(entity))
        if channel is None:
            raise errors.ChannelInvalidError(request=None)
        if channel.entity.id in self.private:
            raise errors.ChannelPrivateError(request=None)
        return channel.entity

    def _id(self, entity: Any) -> int:
        for attr in ("channel_id", "id"):
            if hasattr(entity, attr):
                return int(getattr(entity, attr))
        raise ValueError(f"cannot find the entity for {entity!r}")

    def _channel(self, entity: Any, call: str, kwargs: dict[str, Any]) -> FakeChannel:
        channel_id = self._id(entity)
        self.calls.append((call, channel_id, kwargs))
        queue = self.faults.get(channel_id)
        if queue:
            raise queue.pop(0)
        if channel_id in self.private:
            raise errors.ChannelPrivateError(request=None)
        channel_id = self.redirect.get(channel_id, channel_id)
        if channel_id not in self.channels:
            raise errors.ChannelInvalidError(request=None)
        return self.channels[channel_id]

    def iter_messages(
        self,
        entity: Any,
        limit: int | None = None,
        *,
        min_id: int = 0,
        offset_id: int = 0,
        reverse: bool = False,
        **_: Any,
    ) -> AsyncIterator[types.Message]:
        kwargs = {"limit": limit, "min_id": min_id, "offset_id": offset_id, "reverse": reverse}

        async def generate() -> AsyncIterator[types.Message]:
            channel = self._channel(entity, "iter_messages", kwargs)
            ids = sorted(channel.messages, reverse=not reverse)
            ids = [i for i in ids if i > min_id and (not offset_id or i < offset_id)]
            if limit is not None:
                ids = ids[:limit]
            brk = self.break_after.get(channel.entity.id)
            for n, message_id in enumerate(ids):
                if brk is not None and n == brk[0]:
                    del self.break_after[channel.entity.id]
                    raise brk[1]
                yield channel.messages[message_id]

        return generate()

    async def get_messages(self, entity: Any, limit: Any = None, *, ids: Any = None, **_: Any) -> Any:
        channel = self._channel(entity, "get_messages", {"ids": ids})
        return [channel.messages.get(i) for i in ids]

    async def disconnect(self) -> None:
        self.disconnected = True


def serve_cli(monkeypatch: Any, where: Any, client: FakeTelegramClient) -> None:
    """`tgmon` commands run in `where` (a pytest MonkeyPatch and tmp_path) talk to `client`, on a
    fresh archive there, with placeholder API credentials."""

    async def connect(settings: object) -> FakeTelegramClient:
        return client

    monkeypatch.chdir(where)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///tgmon.db")
    monkeypatch.setenv("TG_API_ID", "1")
    monkeypatch.setenv("TG_API_HASH", "x")
    monkeypatch.setattr("collectors.telegram.connect_authorized", connect)
