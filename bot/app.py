"""The bot's entry point: assembles routers and runs polling against BOT_API_URL."""

from __future__ import annotations

import logging

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.handlers import start
from core.settings import Settings
from core.storage import Archive

log = logging.getLogger("tgmon.bot")


def build_bot(settings: Settings) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.bot_api_url))
    return Bot(settings.require_bot_token(), session=session)


def build_dispatcher(archive: Archive, settings: Settings) -> Dispatcher:
    dispatcher = Dispatcher(archive=archive, settings=settings)
    dispatcher.include_routers(start.router)
    return dispatcher


async def run_bot(settings: Settings, archive: Archive) -> None:
    bot = build_bot(settings)
    try:
        log.info("bot_started api=%s", settings.bot_api_url)
        await build_dispatcher(archive, settings).start_polling(bot, handle_signals=False)
    finally:
        await bot.session.close()
