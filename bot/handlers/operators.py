"""Operators: /watch, /unwatch, /watched, /stats.

The bot has no Telegram user session, so /watch cannot open a channel: it records a watch request
(`OperationsStore.request_watch`) that the collector resolves, and /watched shows what still waits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.filters import HasRole
from bot.middlewares import AuditMiddleware
from bot.parsing import shown
from bot.services.subscribers import ServiceError
from bot.texts import Translator, split_message, stats_text, watched_lines
from collectors.refs import ChannelRef, ChannelRefError, parse_channel_ref
from core.storage.roles import OperationsStore, Role, RoleStore, WatchStatus
from core.subscriptions import Subscriber

log = logging.getLogger("tgmon.bot")

Clock = Callable[[], datetime]

MAX_BACKFILL: Final = 100_000  # posts one /watch may ask for
FAILED_DAYS: Final = 7  # failed requests shown in /watched


def parse_ref(text: str) -> ChannelRef:
    try:
        return parse_channel_ref(text)
    except ChannelRefError as error:
        raise ServiceError("bad_channel", message=str(error)) from None


def parse_backfill(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 6 and 1 <= int(text) <= MAX_BACKFILL):
        raise ServiceError("bad_backfill", text=shown(text), limit=MAX_BACKFILL)
    return int(text)


def parse_watch(args: str) -> tuple[ChannelRef, int | None]:
    """`@name|link [backfill N]` (also `backfill=N` or a bare `N`)."""
    words = args.split()
    if not words:
        raise ServiceError("watch_usage")
    ref = parse_ref(words[0])
    rest = words[1:]
    if not rest:
        return ref, None
    if len(rest) == 1 and rest[0].lower().startswith("backfill="):
        return ref, parse_backfill(rest[0].split("=", 1)[1])
    if len(rest) == 1:
        return ref, parse_backfill(rest[0])
    if len(rest) == 2 and rest[0].lower().lstrip("-") == "backfill":
        return ref, parse_backfill(rest[1])
    raise ServiceError("watch_usage")


def lookup(ref: ChannelRef) -> int | str:
    """What the archive finds a channel by."""
    return ref.username if ref.username else ref.channel_id or 0


async def on_watch(
    message: Message,
    command: CommandObject,
    subscriber: Subscriber,
    t: Translator,
    channels: OperationsStore,
) -> None:
    try:
        ref, backfill = parse_watch(command.args or "")
    except ServiceError as error:
        await message.answer(t.refusal(error))
        return
    existing = await channels.find_channel(lookup(ref))
    if existing is not None and existing.watched and not backfill:
        await message.answer(t("watch_already", ref=existing.label))
        return
    request, created = await channels.request_watch(str(ref), backfill, subscriber.id)
    log.info(
        "watch_requested ref=%s backfill=%s by=%s new=%s",
        request.ref,
        request.backfill,
        subscriber.id,
        created,
    )
    extra = t("watch_backfill", n=request.backfill) if request.backfill else ""
    await message.answer(
        t("watch_requested" if created else "watch_pending", ref=request.ref, backfill=extra)
    )


async def on_unwatch(
    message: Message,
    command: CommandObject,
    subscriber: Subscriber,
    t: Translator,
    channels: OperationsStore,
) -> None:
    words = (command.args or "").split()
    try:
        if len(words) != 1:
            raise ServiceError("unwatch_usage")
        ref = parse_ref(words[0])
    except ServiceError as error:
        await message.answer(t.refusal(error))
        return
    channel = await channels.find_channel(lookup(ref))
    cancelled = await channels.cancel_request(str(ref))
    if channel is not None and channel.username and not cancelled:
        cancelled = await channels.cancel_request(f"@{channel.username}")
    if channel is not None and channel.watched:
        posts = await channels.unwatch(channel.id)
        log.info("channel_unwatched id=%s by=%s", channel.id, subscriber.id)
        await message.answer(t("unwatched", channel=channel.label, posts=posts))
    elif cancelled:
        log.info("watch_cancelled ref=%s by=%s", ref, subscriber.id)
        await message.answer(t("unwatch_cancelled", ref=str(ref)))
    elif channel is not None:
        await message.answer(t("unwatch_not_watched", channel=channel.label))
    else:
        await message.answer(t("unwatch_unknown", ref=str(ref)))


async def on_watched(
    message: Message, t: Translator, channels: OperationsStore, roles: RoleStore, clock: Clock
) -> None:
    now = clock()
    health = await channels.health(now)
    pending = await channels.requests((WatchStatus.PENDING,))
    failed = await channels.requests((WatchStatus.FAILED,), since=now - timedelta(days=FAILED_DAYS))
    users: dict[int, str] = {}
    for request in pending:
        if request.requested_by is not None and request.requested_by not in users:
            username = await roles.username_of(request.requested_by)
            users[request.requested_by] = f"@{username}" if username else str(request.requested_by)
    lines = watched_lines(t, health, pending, failed, now, users=users, failed_days=FAILED_DAYS)
    for part in split_message(lines):
        await message.answer(part)


async def on_stats(message: Message, t: Translator, channels: OperationsStore, clock: Clock) -> None:
    await message.answer(stats_text(t, await channels.totals(), clock()))


def build_router() -> Router:
    """Operators (and admins) only: the role gate sits on the whole router. Its commands are
    bot.filters.PRIVILEGED[Role.OPERATOR]."""
    router = Router(name="operators")
    router.message.filter(HasRole(Role.OPERATOR))
    router.message.middleware(AuditMiddleware())
    router.message.register(on_watch, Command("watch"))
    router.message.register(on_unwatch, Command("unwatch"))
    router.message.register(on_watched, Command("watched"))
    router.message.register(on_stats, Command("stats"))
    return router
