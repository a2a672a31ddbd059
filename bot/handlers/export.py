"""Analysts: /export with filters, sent back as gzip documents under the Bot API upload limit.

A large export asks first (its row count on a button); the request waits on the server under a short
key, never in the button. Each user has a few exports an hour.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, FSInputFile, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.filters import HasRole
from bot.middlewares import AuditMiddleware
from bot.parsing import shown
from bot.texts import Translator, caret_block
from collectors.refs import ChannelRefError, parse_channel_ref
from core.exporters import FORMATS, ExportError, ExportRequest, check_request, count_posts, run_export
from core.models import PostFilter
from core.query.ast import QuerySyntaxError
from core.query.matcher import compile_query
from core.storage import Archive
from core.storage.roles import Role
from core.storage.sqlite import SqliteArchive
from core.subscriptions import Subscriber

CONFIRM_ABOVE: Final = 10_000  # rows: ask before exporting more
UPLOAD_LIMIT: Final = 45_000_000  # bytes per document, under the Bot API's 50 MB
EXPORTS_PER_HOUR: Final = 3  # the default of Settings.exports_per_hour
_OPTION = re.compile(r"(\w+)=")


class ExportParseError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ExportAsk:
    format: str = "csv"
    channel: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    lang: str | None = None
    query: str | None = None


def _date(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ExportParseError(f"“{shown(text)}” is not a date: write it like 2026-01-31") from None


def parse_export(args: str) -> ExportAsk:
    """`format=csv channel=@x since=… until=… lang=ru query=the rest of the line`."""
    text = args.strip()
    values: dict[str, str] = {}
    while text:
        match = _OPTION.match(text)
        if not match:
            raise ExportParseError(f"“{shown(text.split()[0])}” is not an option like format=csv")
        key = match.group(1).lower()
        rest = text[match.end() :]
        if key == "query":
            values[key], text = rest.strip(), ""
            break
        value, _, text = rest.partition(" ")
        text = text.strip()
        if key not in ("format", "channel", "since", "until", "lang") or not value:
            raise ExportParseError(
                f"“{shown(key)}=” is not an export option (format, channel, since, until, lang, query)"
            )
        values[key] = value
    fmt = values.get("format", "csv").lower()
    if fmt not in FORMATS:
        raise ExportParseError(f"format must be one of {', '.join(FORMATS)}")
    query = values.get("query") or None
    if query:
        compile_query(query)  # QuerySyntaxError for the caller
    return ExportAsk(
        fmt,
        values.get("channel"),
        _date(values["since"]) if "since" in values else None,
        _date(values["until"]) if "until" in values else None,
        values["lang"].lower() if "lang" in values else None,
        query,
    )


@dataclass
class ExportSessions:
    """Pending confirmations by short key, and each user's export times in the last hour."""

    clock: Callable[[], float] = time.monotonic
    per_hour: int = EXPORTS_PER_HOUR
    pending: dict[str, tuple[int, ExportAsk]] = field(default_factory=dict)
    recent: dict[int, list[float]] = field(default_factory=dict)

    def allow(self, user_id: int) -> bool:
        now = self.clock()
        times = [t for t in self.recent.get(user_id, []) if now - t < 3600]
        self.recent[user_id] = times
        if len(times) >= self.per_hour:
            return False
        times.append(now)
        return True

    def hold(self, user_id: int, ask: ExportAsk) -> str:
        """Only the user's newest confirmation stays live: an older button says "expired"."""
        for old in [k for k, (owner, _) in self.pending.items() if owner == user_id]:
            del self.pending[old]
        key = secrets.token_hex(4)
        self.pending[key] = (user_id, ask)
        return key

    def take(self, user_id: int, key: str) -> ExportAsk | None:
        found = self.pending.get(key)
        if found is None or found[0] != user_id:  # someone else's key finds nothing
            return None
        del self.pending[key]
        return found[1]


class ExportConfirm(CallbackData, prefix="x1"):
    key: str
    go: bool


async def _filters(archive: Archive, ask: ExportAsk) -> PostFilter:
    channel_id = None
    if ask.channel:
        try:
            ref = parse_channel_ref(ask.channel)
        except ChannelRefError as exc:
            raise ExportParseError(str(exc)) from None
        channel = await archive.get_channel(ref.username or ref.channel_id or 0)
        if channel is None:
            raise ExportParseError(f"no channel {shown(ask.channel)} in the archive")
        channel_id = channel.id
    return PostFilter(channel_id=channel_id, since=ask.since, until=ask.until, lang=ask.lang)


async def deliver_export(
    bot: Bot, chat_id: int, archive: SqliteArchive, ask: ExportAsk, t: Translator
) -> None:
    """Run the export into a temporary folder, send every file and the manifest, clean up."""
    folder = Path(tempfile.mkdtemp(prefix="tgmon-export-"))
    try:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        target = folder / (f"tgmon-{stamp}" if ask.format == "tdesktop" else f"tgmon-{stamp}.{ask.format}")
        request = ExportRequest(
            ask.format, target, await _filters(archive, ask), query=ask.query,
            compress=ask.format != "parquet", max_bytes=UPLOAD_LIMIT if ask.format != "tdesktop" else None,
            channel_ref=ask.channel,
        )  # fmt: skip
        check_request(request)
        result = await run_export(archive, request)
        if result.rows == 0:
            await bot.send_message(chat_id, t("export_empty"))
            return
        for record in result.files:
            if record.path is not None:
                await bot.send_document(chat_id, FSInputFile(record.path, filename=record.path.name))
        if result.manifest is not None:
            await bot.send_document(chat_id, FSInputFile(result.manifest, filename=result.manifest.name))
        await bot.send_message(chat_id, t("export_done", rows=result.rows, files=len(result.files)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def on_export(
    message: Message,
    command: CommandObject,
    subscriber: Subscriber,
    t: Translator,
    archive: Archive,
    exports: ExportSessions,
    bot: Bot,
) -> None:
    if not (command.args or "").strip():
        await message.answer(t("export_usage"))
        return
    try:
        ask = parse_export(command.args or "")
        filters = await _filters(archive, ask)
    except QuerySyntaxError as exc:  # as /add shows it: the query may be longer than a message
        await message.answer(
            t("query_error", message=exc.message, pointer=caret_block(exc.query, exc.position))
        )
        return
    except ExportParseError as exc:
        await message.answer(t("export_bad", problem=str(exc)))
        return
    if not isinstance(archive, SqliteArchive):
        return
    count = await count_posts(archive, filters)
    if count == 0:
        await message.answer(t("export_empty"))
        return
    if count > CONFIRM_ABOVE:
        key = exports.hold(subscriber.id, ask)
        buttons = [
            InlineKeyboardButton(text=t("export_yes"), callback_data=ExportConfirm(key=key, go=True).pack()),
            InlineKeyboardButton(text=t("export_no"), callback_data=ExportConfirm(key=key, go=False).pack()),
        ]
        await message.answer(
            t("export_confirm", count=count), reply_markup=InlineKeyboardMarkup(inline_keyboard=[buttons])
        )
        return
    await _start(message.chat.id, subscriber, ask, t, archive, exports, bot, message)


async def _start(
    chat_id: int, subscriber: Subscriber, ask: ExportAsk, t: Translator, archive: SqliteArchive,
    exports: ExportSessions, bot: Bot, message: Message | None,
) -> None:  # fmt: skip
    if not exports.allow(subscriber.id):
        await bot.send_message(chat_id, t("export_rate", limit=exports.per_hour))
        return
    await bot.send_message(chat_id, t("export_working"))
    try:
        await deliver_export(bot, chat_id, archive, ask, t)
    except (ExportError, ExportParseError) as exc:
        await bot.send_message(chat_id, t("export_bad", problem=str(exc)))


async def on_confirm(
    callback: CallbackQuery,
    callback_data: ExportConfirm,
    subscriber: Subscriber,
    t: Translator,
    archive: Archive,
    exports: ExportSessions,
    bot: Bot,
) -> None:
    ask = exports.take(subscriber.id, callback_data.key)
    if ask is None:
        await callback.answer(t("export_expired"))
        return
    await callback.answer()
    if not callback_data.go:
        await bot.send_message(subscriber.chat_id, t("export_cancelled"))
        return
    if isinstance(archive, SqliteArchive):
        await _start(subscriber.chat_id, subscriber, ask, t, archive, exports, bot, None)


def build_router() -> Router:
    """Analysts (and admins) only, buttons included."""
    router = Router(name="export")
    router.message.filter(HasRole(Role.ANALYST))
    router.callback_query.filter(HasRole(Role.ANALYST))
    router.message.middleware(AuditMiddleware())
    router.message.register(on_export, Command("export"))
    router.callback_query.register(on_confirm, ExportConfirm.filter())
    return router
