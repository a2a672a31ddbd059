"""/add, /list (with pause, resume and delete buttons) and /remove N."""

from __future__ import annotations

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.keyboards import QueryAction, QueryOp, query_list_keyboard
from bot.parsing import ParseError, parse_query_number
from bot.services.subscribers import ServiceError, SubscriberService
from bot.texts import Html, Translator, caret_block, query_list_text
from core.query.ast import QuerySyntaxError
from core.subscriptions import Subscriber


async def edit_in_place(message: Message, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Redraw a message after a button. Unchanged is fine (Telegram refuses the no-op edit); one that
    can no longer be edited (too old, deleted) is sent anew."""
    try:
        await message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as error:
        if "message is not modified" in error.message:
            return
        if "can't be edited" not in error.message and "to edit not found" not in error.message:
            raise
        await message.answer(text, reply_markup=markup)


async def render_list(
    service: SubscriberService, subscriber: Subscriber, t: Translator
) -> tuple[Html, InlineKeyboardMarkup | None]:
    queries = await service.queries(subscriber.id)
    text = query_list_text(t, queries, limit=service.max_queries, all_paused=subscriber.paused)
    return text, query_list_keyboard(t, queries)


async def on_add(
    message: Message,
    command: CommandObject,
    subscriber: Subscriber,
    t: Translator,
    service: SubscriberService,
) -> None:
    text = (command.args or "").strip()
    if not text:
        await message.answer(t("add_usage", example=t("example_add")))
        return
    try:
        added = await service.add_query(subscriber.id, text)
    except QuerySyntaxError as error:
        pointer = caret_block(error.query, error.position)
        await message.answer(t("query_error", message=error.message, pointer=pointer))
        return
    except ServiceError as error:
        await message.answer(t.refusal(error))
        return
    queries = await service.queries(subscriber.id)
    number = next((n for n, q in enumerate(queries, 1) if q.id == added.id), len(queries))
    await message.answer(t("added", number=number, query=added.text))


async def on_list(
    message: Message, subscriber: Subscriber, t: Translator, service: SubscriberService
) -> None:
    text, markup = await render_list(service, subscriber, t)
    await message.answer(text, reply_markup=markup)


async def on_query_button(
    callback: CallbackQuery,
    callback_data: QueryAction,
    subscriber: Subscriber,
    t: Translator,
    service: SubscriberService,
) -> None:
    # the caller's own id: a query id from someone else's list is simply not found
    if callback_data.op is QueryOp.DELETE:
        done = await service.remove_query_id(subscriber.id, callback_data.query_id)
        answer = "cb_deleted"
    else:
        pause = callback_data.op is QueryOp.PAUSE
        done = await service.pause_query_id(subscriber.id, callback_data.query_id, pause)
        answer = "cb_paused" if pause else "cb_resumed"
    await callback.answer(t(answer if done else "cb_not_found"))
    if isinstance(callback.message, Message):
        text, markup = await render_list(service, subscriber, t)
        await edit_in_place(callback.message, text, markup)


async def on_remove(
    message: Message,
    command: CommandObject,
    subscriber: Subscriber,
    t: Translator,
    service: SubscriberService,
) -> None:
    try:
        number = parse_query_number(command.args or "")
        removed = await service.remove_query(subscriber.id, number)
    except (ParseError, ServiceError) as error:
        await message.answer(t.refusal(error))
        return
    await message.answer(t("removed", number=number, query=removed.text))


def build_router() -> Router:
    """This file's handlers on a new router (a router joins one dispatcher only: see bot.app)."""
    router = Router(name="queries")
    router.message.register(on_add, Command("add"))
    router.message.register(on_list, Command("list"))
    router.callback_query.register(on_query_button, QueryAction.filter())
    router.message.register(on_remove, Command("remove"))
    return router
