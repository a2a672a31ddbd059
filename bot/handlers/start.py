"""/start, /help, /language, the /start buttons, and the fallbacks: include this router last."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import CallbackQuery, Message

from bot.handlers.queries import edit_in_place, render_list
from bot.keyboards import LanguageAction, MenuAction, MenuItem, language_keyboard, start_keyboard
from bot.parsing import ParseError, parse_ui_lang
from bot.services.subscribers import ServiceError, SubscriberService
from bot.texts import Html, Translator, help_text, translator
from core.subscriptions import Subscriber


async def greeting(t: Translator, service: SubscriberService) -> Html:
    channels = await service.watched_channels()
    return t("greeting", channels=len(channels), example=t("example_add"))


async def on_start(message: Message, t: Translator, service: SubscriberService) -> None:
    await message.answer(await greeting(t, service), reply_markup=start_keyboard(t))


async def on_help(message: Message, t: Translator) -> None:
    await message.answer(help_text(t))


async def on_language(
    message: Message,
    command: CommandObject,
    subscriber: Subscriber,
    t: Translator,
    service: SubscriberService,
) -> None:
    if not (command.args or "").strip():
        await message.answer(t("language_current"), reply_markup=language_keyboard(t))
        return
    try:
        updated = await service.set_ui_lang(subscriber.id, parse_ui_lang(command.args or ""))
    except (ParseError, ServiceError) as error:
        await message.answer(t.refusal(error))
        return
    await message.answer(translator(updated.ui_lang)("language_set"))


async def on_language_button(
    callback: CallbackQuery,
    callback_data: LanguageAction,
    subscriber: Subscriber,
    t: Translator,
    service: SubscriberService,
) -> None:
    try:
        updated = await service.set_ui_lang(subscriber.id, callback_data.lang)
    except ServiceError:  # a crafted button
        await callback.answer(t("cb_stale"))
        return
    new = translator(updated.ui_lang)
    await callback.answer(new("language_set"))
    if isinstance(callback.message, Message):
        if callback_data.on_start:
            await edit_in_place(callback.message, await greeting(new, service), start_keyboard(new))
        else:
            await edit_in_place(callback.message, new("language_current"), language_keyboard(new))


async def on_menu_button(
    callback: CallbackQuery,
    callback_data: MenuAction,
    subscriber: Subscriber,
    t: Translator,
    service: SubscriberService,
) -> None:
    await callback.answer()
    if not isinstance(callback.message, Message):
        return
    if callback_data.item is MenuItem.ADD:
        await callback.message.answer(t("add_usage", example=t("example_add")))
    elif callback_data.item is MenuItem.LIST:
        text, markup = await render_list(service, subscriber, t)
        await callback.message.answer(text, reply_markup=markup)
    else:
        await callback.message.answer(help_text(t))


async def on_unknown_command(message: Message, t: Translator) -> None:
    await message.answer(t("unknown_command"))


async def on_other_message(message: Message, t: Translator) -> None:
    await message.answer(t("not_a_command", example=t("example_add")))


async def on_stale_button(callback: CallbackQuery, t: Translator) -> None:
    await callback.answer(t("cb_stale"))


def build_router() -> Router:
    """This file's handlers on a new router (a router joins one dispatcher only: see bot.app)."""
    router = Router(name="start")
    router.message.register(on_start, CommandStart())
    router.message.register(on_help, Command("help"))
    router.message.register(on_language, Command("language"))
    router.callback_query.register(on_language_button, LanguageAction.filter())
    router.callback_query.register(on_menu_button, MenuAction.filter())
    # fallbacks: this router is included last, so these see only what no other handler took
    router.message.register(on_unknown_command, F.text.startswith("/"))
    router.message.register(on_other_message)
    router.callback_query.register(on_stale_button)
    return router
