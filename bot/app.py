"""The bot's entry point: assembles routers and runs polling against BOT_API_URL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeDefault, ErrorEvent

from bot.delivery import Deliverer, Limits
from bot.handlers import admin, export, filters, operators, queries, schedule, search, start, summary
from bot.handlers.export import ExportSessions
from bot.handlers.search import SearchSessions
from bot.handlers.summary import DigestSender
from bot.middlewares import RateLimiter, SubscriberMiddleware
from bot.services.digests import DigestService
from bot.services.subscribers import SubscriberService
from bot.session import RedactingSession
from bot.texts import command_menu
from core.health import HealthMonitor
from core.settings import Settings
from core.storage import Archive
from core.storage.roles import OperationsStore, RoleStore
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import SubscriptionStore

log = logging.getLogger("tgmon.bot")

# every text is Telegram HTML (user text escaped in bot.texts); links in alerts must not unfurl
DEFAULTS = DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True)
# the command menu in Russian for those whose Telegram speaks these (as SubscriberService.hello decides)
MENU_LANGUAGES = {"ru": "ru", "uk": "ru", "be": "ru", "kk": "ru"}
ERROR_TEXT = (
    "Something went wrong on my side; please try again later.\n"
    "Что-то пошло не так с моей стороны; попробуйте позже."
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_bot(settings: Settings, session: BaseSession | None = None) -> Bot:
    if session is None:
        session = RedactingSession(api=TelegramAPIServer.from_base(settings.bot_api_url))
    return Bot(settings.require_bot_token(), session=session, default=DEFAULTS)


def build_dispatcher(
    archive: Archive,
    settings: Settings,
    *,
    service: SubscriberService,
    digests: DigestSender,
    limiter: RateLimiter | None = None,
    clock: Callable[[], datetime] = utc_now,
    roles: RoleStore | None = None,
    channels: OperationsStore | None = None,
    searches: SearchSessions | None = None,
    exports: ExportSessions | None = None,
) -> Dispatcher:
    """Handlers get `service`, `digests`, `settings`, `archive`, `clock`, `roles`, `channels` and
    `searches` by name; the middleware adds `subscriber` and `t`. `roles` and `channels` default to
    stores on the archive (which must then be the SQLite one), with ADMIN_IDS as the admins."""
    if roles is None or channels is None:
        if not isinstance(archive, SqliteArchive):
            raise TypeError(f"roles and channels need the SQLite archive, not {type(archive).__name__}")
        roles = roles or RoleStore(archive, settings.admin_ids)
        channels = channels or OperationsStore(archive)
    dispatcher = Dispatcher(
        archive=archive,
        settings=settings,
        service=service,
        digests=digests,
        clock=clock,
        roles=roles,
        channels=channels,
        searches=searches or SearchSessions(rate=settings.searches_per_minute),
        exports=exports or ExportSessions(per_hour=settings.exports_per_hour),
    )
    limiter = limiter or RateLimiter(settings.commands_per_minute, 60.0)
    middleware = SubscriberMiddleware(
        service, limiter, gate=roles, invite_only=settings.subscribe_mode == "invite"
    )
    dispatcher.message.outer_middleware(middleware)
    dispatcher.callback_query.outer_middleware(middleware)
    dispatcher.errors.register(on_error)
    # new routers per dispatcher: a router joins one dispatcher only, and `tgmon run` restarts a failed
    # bot in the same process. The role routers (each gated as a whole) come after the subscribers' own,
    # then the refusal of privileged commands for everyone else; start goes last: it holds the fallbacks
    # for unknown commands and buttons
    dispatcher.include_routers(
        *(module.build_router() for module in (queries, filters, schedule, summary)),
        *(module.build_router() for module in (admin, operators, search, export)),
        admin.build_denied_router(),
        start.build_router(),
    )
    return dispatcher


async def on_error(event: ErrorEvent) -> bool:
    """Log it, tell the user something short, never show a traceback."""
    update = event.update
    log.error(
        "handler_failed update=%s error=%s", update.update_id, type(event.exception).__name__,
        exc_info=event.exception,
    )  # fmt: skip
    try:
        if update.message is not None:
            await update.message.answer(ERROR_TEXT)
        elif update.callback_query is not None:
            await update.callback_query.answer(ERROR_TEXT[: ERROR_TEXT.index("\n")])
    except (TelegramAPIError, ClientDecodeError) as error:
        log.warning("error_reply_failed update=%s error=%s", update.update_id, error)
    return True


async def set_commands(bot: Bot) -> None:
    """The command menu: English by default, Russian for ru/uk/be/kk clients."""
    menus: list[tuple[str | None, str]] = [(None, "en"), *MENU_LANGUAGES.items()]
    for language_code, lang in menus:
        commands = [BotCommand(command=c, description=d) for c, d in command_menu(lang)]
        await bot.set_my_commands(commands, scope=BotCommandScopeDefault(), language_code=language_code)


async def run_bot(settings: Settings, archive: Archive, digests: DigestSender | None = None) -> None:
    """Polling for commands, delivery of the outbox and the digest schedule, until cancelled."""
    if not isinstance(archive, SqliteArchive):
        raise TypeError(f"the bot needs the SQLite archive, not {type(archive).__name__}")
    store = SubscriptionStore(archive)
    service = SubscriberService(archive, store, max_queries=settings.max_queries)
    roles = RoleStore(archive, settings.admin_ids)
    bot = build_bot(settings)
    deliverer = Deliverer(bot, store, limits=Limits(fold_window=settings.fold_window))
    scheduled = DigestService(store, on_queued=deliverer.wake)
    stop = asyncio.Event()
    background = [
        asyncio.create_task(deliverer.run(stop), name="delivery"),
        asyncio.create_task(scheduled.run(stop), name="digests"),
        asyncio.create_task(HealthMonitor.from_settings(archive, store, settings).run(stop), name="health"),
    ]
    try:
        try:
            await set_commands(bot)
        except (TelegramAPIError, ClientDecodeError) as error:  # a menu is nice to have, not a need
            log.warning("set_commands_failed error=%s", error)
        dispatcher = build_dispatcher(
            archive,
            settings,
            service=service,
            digests=digests or scheduled,
            roles=roles,
            channels=OperationsStore(archive),
        )
        log.info(
            "bot_started api=%s subscribe_mode=%s admins=%s",
            settings.bot_api_url, settings.subscribe_mode, len(settings.admin_ids),
        )  # fmt: skip
        await dispatcher.start_polling(
            bot, handle_signals=False, allowed_updates=dispatcher.resolve_used_update_types()
        )
    finally:
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
        await bot.session.close()
