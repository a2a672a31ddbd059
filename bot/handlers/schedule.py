"""/pause, /resume, /quiet, /timezone and /digest: when alerts and digests arrive."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.parsing import ParseError, parse_digest, parse_quiet, parse_timezone
from bot.services.subscribers import ServiceError, SubscriberService
from bot.texts import Html, Translator, clock_time, digest_text, when_text
from core.digest_schedule import next_digest_at
from core.subscriptions import Subscriber

Clock = Callable[[], datetime]


def next_digest(subscriber: Subscriber, now: datetime) -> datetime | None:
    """When the next digest is due, in the subscriber's zone (None: digests are off): the scheduler's
    own rule, so what the user is told is what happens."""
    at = next_digest_at(subscriber, now)
    return None if at is None else at.astimezone(ZoneInfo(subscriber.timezone))


def local_time(subscriber: Subscriber, now: datetime) -> str:
    return f"{now.astimezone(ZoneInfo(subscriber.timezone)):%H:%M}"


async def on_pause(
    message: Message, subscriber: Subscriber, t: Translator, service: SubscriberService
) -> None:
    await service.set_paused(subscriber.id, True)
    await message.answer(t("paused"))


async def on_resume(
    message: Message, subscriber: Subscriber, t: Translator, service: SubscriberService
) -> None:
    await service.set_paused(subscriber.id, False)
    await message.answer(t("resumed"))


async def on_quiet(
    message: Message,
    command: CommandObject,
    subscriber: Subscriber,
    t: Translator,
    service: SubscriberService,
) -> None:
    if not (command.args or "").strip():
        if subscriber.quiet_start is None or subscriber.quiet_end is None:
            await message.answer(t("quiet_none"))
        else:
            start, end = clock_time(subscriber.quiet_start), clock_time(subscriber.quiet_end)
            await message.answer(t("quiet_current", start=start, end=end, tz=subscriber.timezone))
        return
    try:
        hours = parse_quiet(command.args or "")
    except ParseError as error:
        await message.answer(t.refusal(error))
        return
    if hours is None:
        await service.set_quiet(subscriber.id, None, None)
        await message.answer(t("quiet_off"))
        return
    updated = await service.set_quiet(subscriber.id, *hours)
    start, end = clock_time(hours[0]), clock_time(hours[1])
    await message.answer(t("quiet_set", start=start, end=end, tz=updated.timezone))


async def on_timezone(
    message: Message,
    command: CommandObject,
    subscriber: Subscriber,
    t: Translator,
    service: SubscriberService,
    clock: Clock,
) -> None:
    if not (command.args or "").strip():
        await message.answer(t("tz_current", tz=subscriber.timezone, time=local_time(subscriber, clock())))
        return
    try:
        updated = await service.set_timezone(subscriber.id, parse_timezone(command.args or ""))
    except (ParseError, ServiceError) as error:
        await message.answer(t.refusal(error))
        return
    await message.answer(t("tz_set", tz=updated.timezone, time=local_time(updated, clock())))


def digest_reply(t: Translator, subscriber: Subscriber, now: datetime) -> Html:
    schedule = digest_text(t, subscriber.digest, subscriber.digest_at, subscriber.digest_day)
    lines = [t("digest_current", schedule=schedule)]
    upcoming = next_digest(subscriber, now)
    if upcoming is not None:
        lines.append(t("digest_next", when=when_text(t, upcoming), tz=subscriber.timezone))
    else:
        lines.append(t("digest_usage"))
    return Html("\n".join(lines))


async def on_digest(
    message: Message,
    command: CommandObject,
    subscriber: Subscriber,
    t: Translator,
    service: SubscriberService,
    clock: Clock,
) -> None:
    if not (command.args or "").strip():
        await message.answer(digest_reply(t, subscriber, clock()))
        return
    try:
        choice = parse_digest(command.args or "")
    except ParseError as error:
        await message.answer(t.refusal(error))
        return
    updated = await service.set_digest(subscriber.id, choice.mode, choice.at, choice.day)
    await message.answer(digest_reply(t, updated, clock()))


def build_router() -> Router:
    """This file's handlers on a new router (a router joins one dispatcher only: see bot.app)."""
    router = Router(name="schedule")
    router.message.register(on_pause, Command("pause"))
    router.message.register(on_resume, Command("resume"))
    router.message.register(on_quiet, Command("quiet"))
    router.message.register(on_timezone, Command("timezone"))
    router.message.register(on_digest, Command("digest"))
    return router
