"""Analysts: /search QUERY, the newest matches five to a page, with ◀ ▶ buttons.

A button carries a short key, never the query: the query stays on the server, in the presser's own
saved searches (`SearchSessions`, in memory), so a button crafted with someone else's key finds nothing.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.filters import HasRole
from bot.handlers.queries import edit_in_place
from bot.middlewares import PRUNE_AT, AuditMiddleware, RateLimiter, Verdict
from bot.texts import Html, Translator, caret_block, search_results_text
from core.query.ast import QuerySyntaxError
from core.search import search
from core.storage import Archive
from core.storage.roles import Role
from core.subscriptions import Subscriber

__all__ = ["SearchPage", "SearchSessions", "build_router"]

log = logging.getLogger("tgmon.bot")

PAGE_SIZE: Final = 5
MAX_PAGES: Final = 20  # the 100 newest matches: narrow the query for more
SEARCH_RATE: Final = 10  # searches a user may run per minute; turning a page is one
KEEP_PER_USER: Final = 5  # saved searches per user behind live buttons
KEEP_SECONDS: Final = 3600.0  # a search untouched this long loses its buttons


class SearchPage(CallbackData, prefix="s1"):
    """Page `page` (0-based) of the presser's saved search `key`."""

    key: str
    page: int


@dataclass(slots=True)
class _Saved:
    query: str
    used: float


class SearchSessions:
    """Each user's recent search queries, by a short random key, and a search rate limit per user."""

    def __init__(
        self,
        *,
        rate: int = SEARCH_RATE,
        keep: int = KEEP_PER_USER,
        ttl: float = KEEP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.keep = keep
        self.ttl = ttl
        self.clock = clock
        self.limiter = RateLimiter(rate, 60.0, clock=clock)
        self._saved: dict[int, OrderedDict[str, _Saved]] = {}

    def allow(self, user_id: int) -> bool:
        return self.limiter.take(user_id) is Verdict.ALLOW

    def save(self, user_id: int, query: str) -> str:
        now = self.clock()
        if user_id not in self._saved and len(self._saved) >= PRUNE_AT:
            self._prune(now)
        saved = self._saved.setdefault(user_id, OrderedDict())
        for key, item in saved.items():
            if item.query == query:
                item.used = now
                saved.move_to_end(key)
                return key
        key = secrets.token_hex(4)
        saved[key] = _Saved(query, now)
        while len(saved) > self.keep:
            saved.popitem(last=False)
        return key

    def get(self, user_id: int, key: str) -> str | None:
        """The query behind `key` among this user's own searches only."""
        saved = self._saved.get(user_id)
        item = saved.get(key) if saved is not None else None
        now = self.clock()
        if item is None or now - item.used > self.ttl:
            return None
        item.used = now
        return item.query

    def _prune(self, now: float) -> None:
        idle = [
            user
            for user, saved in self._saved.items()
            if all(now - i.used > self.ttl for i in saved.values())
        ]
        for user_id in idle:
            del self._saved[user_id]


def page_keyboard(t: Translator, key: str, page: int, more: bool) -> InlineKeyboardMarkup | None:
    row = []
    if page > 0:
        data = SearchPage(key=key, page=page - 1).pack()
        row.append(InlineKeyboardButton(text=t("btn_newer", page=page), callback_data=data))
    if more:
        data = SearchPage(key=key, page=page + 1).pack()
        row.append(InlineKeyboardButton(text=t("btn_older", page=page + 2), callback_data=data))
    return InlineKeyboardMarkup(inline_keyboard=[row]) if row else None


async def result_page(archive: Archive, t: Translator, query: str, page: int) -> tuple[Html, bool]:
    """Page `page` of the matches, and whether another follows; QuerySyntaxError for a broken query."""
    start = PAGE_SIZE * page
    result = await search(archive, query, limit=start + PAGE_SIZE + 1)
    hits = result.hits[start : start + PAGE_SIZE]
    more = len(result.hits) > start + PAGE_SIZE and page + 1 < MAX_PAGES
    partial = None if result.exhaustive else result.scanned
    return search_results_text(t, query, hits, page=page, first=start + 1, partial_after=partial), more


async def on_search(
    message: Message,
    command: CommandObject,
    subscriber: Subscriber,
    t: Translator,
    archive: Archive,
    searches: SearchSessions,
) -> None:
    query = (command.args or "").strip()
    if not query:
        await message.answer(t("search_usage", example=t("example_query")))
        return
    if not searches.allow(subscriber.id):
        await message.answer(t("search_slow_down", limit=searches.rate))
        return
    try:
        text, more = await result_page(archive, t, query, 0)
    except QuerySyntaxError as error:
        pointer = caret_block(error.query, error.position)
        await message.answer(t("query_error", message=error.message, pointer=pointer))
        return
    markup = page_keyboard(t, searches.save(subscriber.id, query), 0, more) if more else None
    await message.answer(text, reply_markup=markup)


async def on_search_page(
    callback: CallbackQuery,
    callback_data: SearchPage,
    subscriber: Subscriber,
    t: Translator,
    archive: Archive,
    searches: SearchSessions,
) -> None:
    page = callback_data.page
    query = searches.get(subscriber.id, callback_data.key)  # the presser's own searches only
    if query is None or not 0 <= page < MAX_PAGES:
        log.info("search_page_refused user=%s page=%s", subscriber.id, page)
        await callback.answer(t("cb_search_expired"))
        return
    if not searches.allow(subscriber.id):
        await callback.answer(t("search_slow_down", limit=searches.rate))
        return
    try:
        text, more = await result_page(archive, t, query, page)
    except QuerySyntaxError:  # saved only after it parsed: a newer parser refuses it
        await callback.answer(t("cb_search_expired"))
        return
    await callback.answer()
    if isinstance(callback.message, Message):
        await edit_in_place(callback.message, text, page_keyboard(t, callback_data.key, page, more))


def build_router() -> Router:
    """Analysts (and admins) only: the role gate sits on the whole router, buttons included. Its
    commands are bot.filters.PRIVILEGED[Role.ANALYST]."""
    router = Router(name="search")
    router.message.filter(HasRole(Role.ANALYST))
    router.callback_query.filter(HasRole(Role.ANALYST))
    router.message.middleware(AuditMiddleware())
    router.message.register(on_search, Command("search"))
    router.callback_query.register(on_search_page, SearchPage.filter())
    return router
