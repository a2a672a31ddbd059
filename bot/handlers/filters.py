"""/lang (languages of the posts wanted) and /channels (which watched channels alert)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.handlers.queries import edit_in_place
from bot.keyboards import ALL_CHANNELS, ChannelAction, channels_keyboard
from bot.parsing import ParseError, parse_langs
from bot.services.subscribers import ServiceError, SubscriberService
from bot.texts import Html, Translator, channels_text, langs_label
from core.subscriptions import Subscriber


async def on_lang(
    message: Message,
    command: CommandObject,
    subscriber: Subscriber,
    t: Translator,
    service: SubscriberService,
) -> None:
    if not (command.args or "").strip():
        await message.answer(t("langs_current", langs=langs_label(t, subscriber.langs)))
        return
    try:
        updated = await service.set_langs(subscriber.id, parse_langs(command.args or ""))
    except (ParseError, ServiceError) as error:
        await message.answer(t.refusal(error))
        return
    await message.answer(t("langs_set", langs=langs_label(t, updated.langs)))


async def render_channels(
    service: SubscriberService, subscriber: Subscriber, t: Translator
) -> tuple[Html, InlineKeyboardMarkup | None]:
    channels = await service.watched_channels()
    return channels_text(t, channels, subscriber.channels), channels_keyboard(
        t, channels, subscriber.channels
    )


async def on_channels(
    message: Message, subscriber: Subscriber, t: Translator, service: SubscriberService
) -> None:
    text, markup = await render_channels(service, subscriber, t)
    await message.answer(text, reply_markup=markup)


async def on_channel_button(
    callback: CallbackQuery,
    callback_data: ChannelAction,
    subscriber: Subscriber,
    t: Translator,
    service: SubscriberService,
) -> None:
    if callback_data.channel_id == ALL_CHANNELS:
        updated = await service.set_channels(subscriber.id, [])
    else:  # an id that is not a watched channel is dropped by the service
        updated = await service.toggle_channel(subscriber.id, callback_data.channel_id)
    await callback.answer(t("cb_channels_all" if not updated.channels else "cb_channels_saved"))
    if isinstance(callback.message, Message):
        text, markup = await render_channels(service, updated, t)
        await edit_in_place(callback.message, text, markup)


def build_router() -> Router:
    """This file's handlers on a new router (a router joins one dispatcher only: see bot.app)."""
    router = Router(name="filters")
    router.message.register(on_lang, Command("lang"))
    router.message.register(on_channels, Command("channels"))
    router.callback_query.register(on_channel_button, ChannelAction.filter())
    return router
