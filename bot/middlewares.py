"""The outer middleware for messages and button presses: rate limit, then load the subscriber.

Handlers receive `subscriber` (the caller, created on first contact) and `t` (a Translator in the
subscriber's interface language) by parameter name.

With SUBSCRIBE_MODE=invite a newcomer gets in only with `/start CODE` (a single-use invitation) or a
role. `AuditMiddleware` (inner, on the privileged routers) records every allowed privileged command.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Protocol

from aiogram import BaseMiddleware
from aiogram.filters import CommandObject
from aiogram.types import CallbackQuery, Chat, Message, TelegramObject, User

from bot.services.subscribers import ServiceError, SubscriberService
from bot.texts import Translator, translator
from core.storage.roles import Role
from core.subscriptions import Subscriber

__all__ = ["AuditMiddleware", "Auditor", "Gatekeeper", "RateLimiter", "SubscriberMiddleware", "Verdict"]

log = logging.getLogger("tgmon.bot")

RATE_CAPACITY: Final = 20  # commands in a burst
RATE_PERIOD: Final = 60.0  # seconds to earn the whole burst back
PRUNE_AT: Final = 10_000  # users tracked before idle buckets are dropped
AUDIT_DETAIL_CHARS: Final = 200  # of a command's arguments kept in the audit log

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


class Gatekeeper(Protocol):
    """What the middleware needs of `RoleStore`: roles, invitations and usernames."""

    async def roles_of(self, user_id: int) -> set[Role]: ...
    async def use_invite(self, code: str, user_id: int) -> bool: ...
    async def remember_username(self, user_id: int, username: str | None) -> None: ...


class Auditor(Protocol):
    async def audit(self, user_id: int | None, action: str, detail: str | None, allowed: bool) -> None: ...


def start_code(event: TelegramObject) -> str:
    """The CODE of `/start CODE` (what a t.me/bot?start=CODE link sends), or ""."""
    if not isinstance(event, Message) or not event.text:
        return ""
    parts = event.text.split(maxsplit=1)
    if len(parts) < 2 or parts[0].split("@")[0] != "/start":
        return ""
    return parts[1].strip()


def first_contact_lang(language_code: str | None) -> str:
    """The interface language of someone not stored yet (SubscriberService.hello's rule)."""
    return "ru" if (language_code or "").lower().startswith(("ru", "uk", "be", "kk")) else "en"


class SubscriberMiddleware(BaseMiddleware):
    """Outer middleware on `message` and `callback_query`: only private chats with people get through.

    `gate` (the RoleStore) remembers usernames for `/grant @name` and, when `invite_only`, decides
    whether a newcomer may subscribe.
    """

    def __init__(
        self,
        service: SubscriberService,
        limiter: RateLimiter,
        *,
        gate: Gatekeeper | None = None,
        invite_only: bool = False,
    ) -> None:
        self.service = service
        self.limiter = limiter
        self.gate = gate
        self.invite_only = invite_only
        self._usernames: dict[int, str | None] = {}  # last written, to write only changes

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
        await self._remember(user)
        found = await self._find(user.id)
        if found is None and self.invite_only and not await self._admit(event, user):
            return None
        subscriber = await self._subscriber(user, chat.id if chat is not None else user.id, found)
        data["subscriber"] = subscriber
        data["t"] = translator(subscriber.ui_lang)
        return await handler(event, data)

    async def _find(self, user_id: int) -> Subscriber | None:
        try:
            return await self.service.subscriber(user_id)
        except ServiceError:
            return None

    async def _remember(self, user: User) -> None:
        if self.gate is None or self._usernames.get(user.id, "") == user.username:
            return
        if len(self._usernames) >= PRUNE_AT:
            self._usernames.clear()
        await self.gate.remember_username(user.id, user.username)
        self._usernames[user.id] = user.username

    async def _admit(self, event: TelegramObject, user: User) -> bool:
        """Invite-only: a newcomer with a role, or with an unused invitation code, gets in."""
        if self.gate is not None and await self.gate.roles_of(user.id):
            return True
        code = start_code(event)
        if code and self.gate is not None and await self.gate.use_invite(code, user.id):
            log.info("invite_used user=%s", user.id)
            return True
        log.info("subscribe_refused user=%s reason=%s", user.id, "bad_code" if code else "invite_only")
        t = translator(first_contact_lang(user.language_code))
        if isinstance(event, Message):
            await event.answer(t("invite_bad_code" if code else "invite_only"))
        elif isinstance(event, CallbackQuery):
            await event.answer(t("cb_invite_only"))
        return False

    async def _subscriber(self, user: User, chat_id: int, found: Subscriber | None) -> Subscriber:
        """`hello` (a write) only for a newcomer, a returning blocker or a new chat."""
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


class AuditMiddleware(BaseMiddleware):
    """Inner middleware on a privileged router's messages: runs only once the role filter passed and a
    handler matched, and records the command before the handler acts (a failing handler is audited too)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        command: CommandObject | None = data.get("command")
        roles: Auditor | None = data.get("roles")
        if user is not None and command is not None:
            log.info("command_allowed user=%s command=%s", user.id, command.command)
            if roles is not None:
                await roles.audit(user.id, command.command, audit_detail(command.args), True)
        return await handler(event, data)


def audit_detail(args: str | None) -> str | None:
    if not args:
        return None
    args = " ".join(args.split())
    return args if len(args) <= AUDIT_DETAIL_CHARS else args[: AUDIT_DETAIL_CHARS - 1] + "…"
