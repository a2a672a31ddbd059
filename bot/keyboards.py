"""Inline keyboards and their typed callback data. Pure: builds markup, sends nothing.

Every prefix carries a version digit (`q1`, `c1`, `m1`, `l1`): when a button's data changes shape,
bump it, and old buttons in chat history stop matching and get "this button is out of date".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Annotated, Final

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from pydantic import Field

from bot.texts import Translator
from core.models import Channel
from core.subscriptions import Subscription

__all__ = [
    "ChannelAction",
    "LanguageAction",
    "MenuAction",
    "MenuItem",
    "QueryAction",
    "QueryOp",
    "channels_keyboard",
    "language_keyboard",
    "query_list_keyboard",
    "start_keyboard",
]

MAX_CHANNEL_BUTTONS: Final = 99  # Telegram allows 100 buttons; one is "all channels"
ALL_CHANNELS: Final = 0
# an id a forged button may carry: SQLite's integer range (a larger one would fail in the query, not
# be refused), so anything else does not match the button and gets "out of date"
RowId = Annotated[int, Field(ge=0, le=2**63 - 1)]


class QueryOp(StrEnum):
    PAUSE = "p"
    RESUME = "r"
    DELETE = "d"


class QueryAction(CallbackData, prefix="q1"):
    """A button under /list; the handler acts as the pressing user, never as the query's id says."""

    op: QueryOp
    query_id: RowId


class ChannelAction(CallbackData, prefix="c1"):
    channel_id: RowId  # ALL_CHANNELS (0): every watched channel


class MenuItem(StrEnum):
    ADD = "add"
    LIST = "list"
    HELP = "help"


class MenuAction(CallbackData, prefix="m1"):
    item: MenuItem


class LanguageAction(CallbackData, prefix="l1"):
    lang: str
    on_start: bool  # the button sits under the /start greeting, which is redrawn in the new language


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def _other_lang(t: Translator) -> str:
    return "en" if t.lang == "ru" else "ru"


def start_keyboard(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(t("btn_add"), MenuAction(item=MenuItem.ADD))],
            [
                _button(t("btn_list"), MenuAction(item=MenuItem.LIST)),
                _button(t("btn_help"), MenuAction(item=MenuItem.HELP)),
            ],
            [_button(t("btn_other_language"), LanguageAction(lang=_other_lang(t), on_start=True))],
        ]
    )


def language_keyboard(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(t("btn_other_language"), LanguageAction(lang=_other_lang(t), on_start=False))]
        ]
    )


def query_list_keyboard(t: Translator, queries: Sequence[Subscription]) -> InlineKeyboardMarkup | None:
    """One row per query, numbered as in the list: pause or resume, delete."""
    if not queries:
        return None
    rows = []
    for number, query in enumerate(queries, 1):
        toggle = (
            _button(t("btn_resume", number=number), QueryAction(op=QueryOp.RESUME, query_id=query.id))
            if query.paused
            else _button(t("btn_pause", number=number), QueryAction(op=QueryOp.PAUSE, query_id=query.id))
        )
        rows.append(
            [
                toggle,
                _button(t("btn_delete", number=number), QueryAction(op=QueryOp.DELETE, query_id=query.id)),
            ]
        )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def channels_keyboard(
    t: Translator, channels: Sequence[Channel], chosen: Iterable[int]
) -> InlineKeyboardMarkup | None:
    """ "All channels" on top, then a toggle per channel; ✅ marks the current choice."""
    if not channels:
        return None
    picked = set(chosen) & {c.id for c in channels}
    mark_all = "✅ " if not picked else ""
    rows = [[_button(mark_all + t("btn_all_channels"), ChannelAction(channel_id=ALL_CHANNELS))]]
    for channel in channels[:MAX_CHANNEL_BUTTONS]:
        mark = "✅" if channel.id in picked else "▫️"
        rows.append([_button(f"{mark} {channel.label}", ChannelAction(channel_id=channel.id))])
    return InlineKeyboardMarkup(inline_keyboard=rows)
