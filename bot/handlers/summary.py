"""/summary [24h|7d]: a digest of the recent past, now. The digest itself is the `digests` service's."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.parsing import ParseError, parse_period
from bot.texts import Translator, period_text
from core.subscriptions import Subscriber

DEFAULT_PERIOD = timedelta(hours=24)


class DigestSender(Protocol):
    """Builds and sends one subscriber a digest of the posts that matched in the last `period`."""

    async def send_now(self, subscriber: Subscriber, period: timedelta) -> object: ...


async def on_summary(
    message: Message, command: CommandObject, subscriber: Subscriber, t: Translator, digests: DigestSender
) -> None:
    args = (command.args or "").strip()
    try:
        period = parse_period(args) if args else DEFAULT_PERIOD
    except ParseError as error:
        await message.answer(t.refusal(error))
        return
    await message.answer(t("summary_preparing", period=period_text(t, period)))
    await digests.send_now(subscriber, period)


def build_router() -> Router:
    """This file's handlers on a new router (a router joins one dispatcher only: see bot.app)."""
    router = Router(name="summary")
    router.message.register(on_summary, Command("summary"))
    return router
