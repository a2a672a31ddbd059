"""The outer middleware for messages and button presses: rate limit, then load the subscriber.

Handlers receive `subscriber` (the caller, created on first contact) and `t` (a Translator in the
subscriber's interface language) by parameter name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Chat, Message, TelegramObject, User

from bot.services.subscribers import ServiceError, SubscriberService
from bot.texts import Translator, translator
from core.subscriptions import Subscriber

__all__ = ["RateLimiter", "SubscriberMiddleware", "Verdict"]

log = logging.getLogger("tgmon.bot")

RATE_CAPACITY: Final = 20  # commands in a burst
RATE_PERIOD: Final = 60.0  # seconds to earn the whole burst back
PRUNE_AT: Final = 10_000  # users tracked before idle buckets are dropped

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class Verdict(Enum):
    ALLOW = "allow"
    WARN = "warn"  # the first refusal of a run: say "slow down" once
    DROP = "drop"  # later refusals of the same run: ignore silently


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    warned: bool = False


class RateLimiter:
    """A token bucket per user, in memory: `capacity` at once, refilled evenly over `period` seconds."""

    def __init__(
        self,
        capacity: int = RATE_CAPACITY,
        period: float = RATE_PERIOD,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / period
        self.clock = clock
        self._buckets: dict[int, _Bucket] = {}

    def take(self, user_id: int) -> Verdict:
        now = self.clock()
        bucket = self._buckets.get(user_id)
        if bucket is None:
            if len(self._buckets) >= PRUNE_AT:
                self._prune(now)
            bucket = self._buckets[user_id] = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.warned = False
            return Verdict.ALLOW
        if bucket.warned:
            return Verdict.DROP
        bucket.warned = True
        return Verdict.WARN

    def _prune(self, now: float) -> None:
        """Forget users whose bucket has filled up again: they are as good as new."""
        full = [
            user
            for user, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self.rate >= self.capacity
        ]
        for user in full:
            del self._buckets[user]


class SubscriberMiddleware(BaseMiddleware):
    """Outer middleware on `message` and `callback_query`: only private chats with people get through."""

    def __init__(self, service: SubscriberService, limiter: RateLimiter) -> None:
        self.service = service
        self.limiter = limiter

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        if user is None or user.is_bot or (chat is not None and chat.type != "private"):
            return None
        verdict = self.limiter.take(user.id)
        if verdict is not Verdict.ALLOW:
            log.info("rate_limited user=%s verdict=%s", user.id, verdict.value)
            if verdict is Verdict.WARN:
                await self._slow_down(event, user)
            return None
        subscriber = await self._subscriber(user, chat.id if chat is not None else user.id)
        data["subscriber"] = subscriber
        data["t"] = translator(subscriber.ui_lang)
        return await handler(event, data)

    async def _subscriber(self, user: User, chat_id: int) -> Subscriber:
        """Read first; `hello` (a write) only for a newcomer, a returning blocker or a new chat."""
        try:
            found = await self.service.subscriber(user.id)
        except ServiceError:
            found = None
        if found is not None and found.active and found.chat_id == chat_id:
            return found
        welcome = await self.service.hello(user.id, chat_id, user.language_code)
        if welcome.created:
            log.info("subscriber_created user=%s ui=%s", user.id, welcome.subscriber.ui_lang)
        return welcome.subscriber

    async def _slow_down(self, event: TelegramObject, user: User) -> None:
        t = await self._translator(user)
        if isinstance(event, Message):
            await event.answer(t("slow_down"))
        elif isinstance(event, CallbackQuery):
            await event.answer(t("slow_down"))  # plain text: slow_down has no markup

    async def _translator(self, user: User) -> Translator:
        try:
            return translator((await self.service.subscriber(user.id)).ui_lang)
        except ServiceError:  # not stored yet: every first message creates the subscriber, so rare
            return translator("en")
