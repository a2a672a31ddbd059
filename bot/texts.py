"""Everything the bot says, in English and Russian, as Telegram HTML. Pure: no aiogram, no I/O.

`translator(lang)` gives a `Translator`; `t("key", name=value)` fills a template and HTML-escapes
every value unless it is `Html` (text already built from these templates).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Final, Protocol

from bot.render import highlight
from core.models import Channel
from core.query.matcher import spans_within, window
from core.subscriptions import DigestMode, Subscription

if TYPE_CHECKING:
    from core.query.matcher import Span
    from core.search import Hit
    from core.storage.roles import ChannelHealth, Totals, WatchRequest

__all__ = [
    "COMMANDS",
    "LANGS",
    "TEXTS",
    "BotCommandText",
    "Html",
    "Refusal",
    "Translator",
    "caret_block",
    "channels_text",
    "command_menu",
    "digest_text",
    "duration_text",
    "help_text",
    "langs_label",
    "query_list_text",
    "search_results_text",
    "search_snippet",
    "split_message",
    "stats_text",
    "translator",
    "watched_lines",
]

LANGS: Final = ("en", "ru")
LIST_QUERY_CHARS: Final = 60  # a query longer than this is cut in /list, so 50 of them fit one message
LIST_CHANNELS: Final = 20  # chosen channels named in /channels before "and N more"
MESSAGE_CHARS: Final = 3900  # a long listing is split into messages of at most this much HTML
SNIPPET_CHARS: Final = 240  # of a post's text around the first match in /search
SEARCH_QUERY_CHARS: Final = 100  # of the query repeated in the /search header


class Html(str):
    """Text that is already valid Telegram HTML: a `Translator` inserts it as it is."""

    __slots__ = ()


class Refusal(Protocol):
    """ServiceError and ParseError: a text key and the values that fill it."""

    key: str
    args_: dict[str, object]


def escape(text: str) -> str:
    return html.escape(text, quote=False)


TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    # /start, /help, /language
    "greeting": {
        "en": "👋 <b>Hi! I'm tgmon.</b>\n"
        "I watch public Telegram channels (now {channels}) and message you as soon as a new post "
        "matches one of your queries.\n\n"
        "Add your first query, for example:\n<code>{example}</code>\n\n"
        "/help lists every command.",
        "ru": "👋 <b>Привет! Я tgmon.</b>\n"
        "Я слежу за публичными каналами Telegram (сейчас их {channels}) и сразу пишу вам, когда новый "
        "пост подходит под один из ваших запросов.\n\n"
        "Добавьте первый запрос, например:\n<code>{example}</code>\n\n"
        "Все команды: /help.",
    },
    "example_add": {"en": "/add protest Almaty", "ru": "/add протест Алматы"},
    "example_query": {"en": "(protest OR rally) Almaty -ad", "ru": "(протест OR митинг) Алматы -реклама"},
    "help_title": {"en": "<b>Commands</b>", "ru": "<b>Команды</b>"},
    "help_syntax": {
        "en": "<b>Queries</b>: words (all must occur), <code>OR</code>, <code>-word</code> to exclude, "
        '<code>"exact phrase"</code>, <code>word*</code> for a prefix, <code>lang:ru</code>, '
        "<code>channel:@name</code>.\nExample: <code>{example}</code>",
        "ru": "<b>Запросы</b>: слова (нужны все), <code>OR</code>, <code>-слово</code> — исключить, "
        '<code>"точная фраза"</code>, <code>слово*</code> — начало слова, <code>lang:ru</code>, '
        "<code>channel:@name</code>.\nПример: <code>{example}</code>",
    },
    "btn_add": {"en": "➕ Add a query", "ru": "➕ Добавить запрос"},
    "btn_list": {"en": "📋 My queries", "ru": "📋 Мои запросы"},
    "btn_help": {"en": "❓ Help", "ru": "❓ Помощь"},
    "btn_other_language": {"en": "🇷🇺 Русский", "ru": "🇬🇧 English"},
    "language_current": {
        "en": "Interface language: English.\nSwitch: <code>/language ru</code> or the button.",
        "ru": "Язык интерфейса: русский.\nПереключить: <code>/language en</code> или кнопкой.",
    },
    "language_set": {"en": "✅ Interface language: English.", "ru": "✅ Язык интерфейса: русский."},
    "unknown_ui_lang": {
        "en": "There is no interface language “{code}”: use <code>/language en</code> or "
        "<code>/language ru</code>.",
        "ru": "Языка интерфейса «{code}» нет: используйте <code>/language en</code> или "
        "<code>/language ru</code>.",
    },
    # /add, /list, /remove
    "add_usage": {
        "en": "Write the query after the command, for example:\n<code>{example}</code>\n"
        '<code>/add "state of emergency" OR riot</code>\nThe query syntax: /help.',
        "ru": "Напишите запрос после команды, например:\n<code>{example}</code>\n"
        '<code>/add "чрезвычайное положение" OR беспорядки</code>\nСинтаксис запросов: /help.',
    },
    "query_error": {
        "en": "⚠️ I could not read this query: {message}\n<pre>{pointer}</pre>\nThe query syntax: /help.",
        "ru": "⚠️ Не получилось разобрать запрос: {message}\n<pre>{pointer}</pre>\nСинтаксис запросов: /help.",
    },
    "too_many_queries": {
        "en": "You already have {limit} queries, the most allowed. Delete one with /remove or the "
        "buttons in /list, then add the new one.",
        "ru": "У вас уже {limit} запросов — это максимум. Удалите один через /remove или кнопками в "
        "/list и добавьте новый.",
    },
    "added": {
        "en": "✅ Added #{number}: <code>{query}</code>",
        "ru": "✅ Добавлен #{number}: <code>{query}</code>",
    },
    "list_header": {
        "en": "<b>Your queries</b> ({count} of {limit}):",
        "ru": "<b>Ваши запросы</b> ({count} из {limit}):",
    },
    "list_empty": {
        "en": "You have no queries yet. Add one:\n<code>{example}</code>",
        "ru": "Запросов пока нет. Добавьте:\n<code>{example}</code>",
    },
    "list_paused_mark": {"en": " ⏸ <i>paused</i>", "ru": " ⏸ <i>на паузе</i>"},
    "list_all_paused": {
        "en": "⏸ All alerts are paused: /resume turns them back on.",
        "ru": "⏸ Все уведомления на паузе: /resume включит их снова.",
    },
    "list_footer": {
        "en": "⏸/▶️ pause or resume a query, 🗑 delete it.",
        "ru": "⏸/▶️ — пауза или продолжение, 🗑 — удалить.",
    },
    "btn_pause": {"en": "⏸ {number}", "ru": "⏸ {number}"},
    "btn_resume": {"en": "▶️ {number}", "ru": "▶️ {number}"},
    "btn_delete": {"en": "🗑 {number}", "ru": "🗑 {number}"},
    # callback answers are plain text (no HTML)
    "cb_paused": {"en": "Paused", "ru": "На паузе"},
    "cb_resumed": {"en": "Resumed", "ru": "Снова работает"},
    "cb_deleted": {"en": "Deleted", "ru": "Удалён"},
    "cb_not_found": {"en": "Query not found", "ru": "Запрос не найден"},
    "cb_channels_all": {"en": "All channels", "ru": "Все каналы"},
    "cb_channels_saved": {"en": "Saved", "ru": "Сохранено"},
    "cb_stale": {
        "en": "This button is out of date: send the command again.",
        "ru": "Эта кнопка устарела: отправьте команду ещё раз.",
    },
    "removed": {
        "en": "🗑 Deleted #{number}: <code>{query}</code>",
        "ru": "🗑 Удалён #{number}: <code>{query}</code>",
    },
    "remove_usage": {
        "en": "Give the query's number from /list, like <code>/remove 2</code>.",
        "ru": "Укажите номер запроса из /list, например <code>/remove 2</code>.",
    },
    "bad_number": {
        "en": "“{text}” is not a query number. Use a number from /list, like <code>/remove 2</code>.",
        "ru": "«{text}» — не номер запроса. Укажите номер из /list, например <code>/remove 2</code>.",
    },
    "no_such_query": {
        "en": "There is no query #{number}: use a number from 1 to {count} (see /list).",
        "ru": "Запроса #{number} нет: укажите номер от 1 до {count} (см. /list).",
    },
    "no_such_query_empty": {
        "en": "There is no query #{number}: you have no queries yet.",
        "ru": "Запроса #{number} нет: у вас пока нет запросов.",
    },
    # /lang, /channels
    "langs_current": {
        "en": "Posts in: {langs}.\nChange: <code>/lang ru en</code>, or <code>/lang any</code>.",
        "ru": "Посты на языках: {langs}.\nИзменить: <code>/lang ru en</code> или <code>/lang any</code>.",
    },
    "langs_set": {"en": "✅ Posts in: {langs}.", "ru": "✅ Посты на языках: {langs}."},
    "langs_any": {"en": "any language", "ru": "любой язык"},
    "unknown_lang": {
        "en": "Unknown language code “{code}”. Use two-letter codes like <code>/lang ru en kk</code>, "
        "or <code>/lang any</code>.",
        "ru": "Неизвестный код языка «{code}». Используйте двухбуквенные коды, например "
        "<code>/lang ru en kk</code>, или <code>/lang any</code>.",
    },
    "channels_none": {
        "en": "No channels are watched yet: ask the operator to add some.",
        "ru": "Пока ни один канал не отслеживается: попросите администратора добавить каналы.",
    },
    "channels_header": {
        "en": "<b>Channels I watch</b>: {count}.",
        "ru": "<b>Отслеживаемых каналов</b>: {count}.",
    },
    "channels_all": {
        "en": "You get alerts from <b>all</b> of them.",
        "ru": "Уведомления приходят из <b>всех</b>.",
    },
    "channels_some": {
        "en": "You get alerts only from ({chosen}): {labels}",
        "ru": "Уведомления приходят только из ({chosen}): {labels}",
    },
    "channels_more": {"en": " and {more} more", "ru": " и ещё {more}"},
    "channels_hint": {
        "en": "Tap a channel to add it to your choice or take it out.",
        "ru": "Нажмите на канал, чтобы добавить его в выбор или убрать.",
    },
    "btn_all_channels": {"en": "All channels", "ru": "Все каналы"},
    # /pause, /resume, /quiet, /timezone, /digest, /summary
    "paused": {
        "en": "⏸ Alerts are paused. /resume turns them back on.",
        "ru": "⏸ Уведомления на паузе. /resume включит их снова.",
    },
    "resumed": {"en": "▶️ Alerts are on.", "ru": "▶️ Уведомления включены."},
    "quiet_current": {
        "en": "🌙 Quiet hours: {start}–{end} ({tz}).\nChange: <code>/quiet 23:00-07:00</code>; turn off: "
        "<code>/quiet off</code>.",
        "ru": "🌙 Тихие часы: {start}–{end} ({tz}).\nИзменить: <code>/quiet 23:00-07:00</code>; выключить: "
        "<code>/quiet off</code>.",
    },
    "quiet_none": {
        "en": "No quiet hours. Set them like <code>/quiet 23:00-07:00</code> or <code>/quiet 23-7</code>.",
        "ru": "Тихих часов нет. Задайте их так: <code>/quiet 23:00-07:00</code> или "
        "<code>/quiet 23-7</code>.",
    },
    "quiet_set": {
        "en": "🌙 Quiet hours: {start}–{end} ({tz}): no alerts then.",
        "ru": "🌙 Тихие часы: {start}–{end} ({tz}): в это время уведомлений не будет.",
    },
    "quiet_off": {"en": "🔔 Quiet hours are off.", "ru": "🔔 Тихие часы выключены."},
    "bad_quiet": {
        "en": "“{text}” is not a time range. Write it like <code>/quiet 23:00-07:00</code> or "
        "<code>/quiet 23-7</code>, or <code>/quiet off</code>.",
        "ru": "«{text}» — не промежуток времени. Напишите так: <code>/quiet 23:00-07:00</code> или "
        "<code>/quiet 23-7</code>, или <code>/quiet off</code>.",
    },
    "quiet_same": {
        "en": "Quiet hours need different start and end times, like <code>/quiet 23:00-07:00</code>.",
        "ru": "Начало и конец тихих часов должны различаться, например <code>/quiet 23:00-07:00</code>.",
    },
    "tz_current": {
        "en": "🕒 Your time zone: {tz} (now {time} there).\nChange: <code>/timezone Europe/Almaty</code>, "
        "a city like <code>/timezone Almaty</code>, or an offset like <code>/timezone UTC+5</code>.",
        "ru": "🕒 Ваш часовой пояс: {tz} (там сейчас {time}).\nИзменить: "
        "<code>/timezone Europe/Almaty</code>, город, например <code>/timezone Almaty</code>, "
        "или смещение, например <code>/timezone UTC+5</code>.",
    },
    "tz_set": {
        "en": "🕒 Time zone: {tz} (now {time} there).",
        "ru": "🕒 Часовой пояс: {tz} (там сейчас {time}).",
    },
    "unknown_timezone": {
        "en": "Unknown time zone “{name}”. Use a name like <code>Europe/Moscow</code> or "
        "<code>Asia/Almaty</code>, or an offset like <code>UTC+5</code>.",
        "ru": "Неизвестный часовой пояс «{name}». Укажите название, например <code>Europe/Moscow</code> "
        "или <code>Asia/Almaty</code>, или смещение, например <code>UTC+5</code>.",
    },
    "tz_offset_range": {
        "en": "There is no offset {offset}: use one from UTC-12 to UTC+14, like <code>UTC+5</code>.",
        "ru": "Смещения {offset} не бывает: допустимо от UTC-12 до UTC+14, например <code>UTC+5</code>.",
    },
    "tz_offset_minutes": {
        "en": "Only whole-hour offsets work, like <code>UTC+5</code>. For {offset}, give a zone name, "
        "like <code>Asia/Kolkata</code>.",
        "ru": "Работают только смещения на целое число часов, например <code>UTC+5</code>. Для {offset} "
        "укажите название пояса, например <code>Asia/Kolkata</code>.",
    },
    "digest_usage": {
        "en": "Choose one:\n<code>/digest off</code>\n<code>/digest hourly</code>\n"
        "<code>/digest daily 09:00</code>\n<code>/digest weekly mon 09:00</code>",
        "ru": "Выберите:\n<code>/digest off</code>\n<code>/digest hourly</code>\n"
        "<code>/digest daily 09:00</code>\n<code>/digest weekly пн 09:00</code>",
    },
    "digest_current": {"en": "📰 Digest: {schedule}.", "ru": "📰 Дайджест: {schedule}."},
    "digest_next": {"en": "Next one: {when} ({tz}).", "ru": "Следующий: {when} ({tz})."},
    "digest_off": {"en": "off", "ru": "выключен"},
    "digest_hourly": {"en": "every hour", "ru": "каждый час"},
    "digest_daily": {"en": "every day at {time}", "ru": "каждый день в {time}"},
    "digest_weekly": {"en": "every week on {day} at {time}", "ru": "каждую неделю, {day} в {time}"},
    "bad_digest": {
        "en": "“{text}” is not a digest schedule.",
        "ru": "«{text}» — не расписание дайджеста.",
    },
    "bad_day": {
        "en": "“{text}” is not a day of the week: use mon, tue, … sun (or пн, вт, … вс).",
        "ru": "«{text}» — не день недели: используйте пн, вт, … вс (или mon, tue, … sun).",
    },
    "bad_time": {
        "en": "“{text}” is not a time of day: write it like 09:00 or 21:30.",
        "ru": "«{text}» — не время: напишите, например, 09:00 или 21:30.",
    },
    "summary_preparing": {
        "en": "⏳ Preparing a digest of the last {period}…",
        "ru": "⏳ Готовлю дайджест за последние {period}…",
    },
    "bad_period": {
        "en": "“{text}” is not a period: use <code>/summary 24h</code> or <code>/summary 7d</code> "
        "(from 1h to 7d).",
        "ru": "«{text}» — не период: используйте <code>/summary 24h</code> или <code>/summary 7d</code> "
        "(от 1h до 7d).",
    },
    "period_hours": {"en": "{n} h", "ru": "{n} ч"},
    "period_days": {"en": "{n} d", "ru": "{n} дн."},
    # everything else
    "not_started": {"en": "Send /start first.", "ru": "Сначала отправьте /start."},
    "unknown_command": {
        "en": "I don't know this command. /help lists them.",
        "ru": "Такой команды нет. Список команд: /help.",
    },
    "not_a_command": {
        "en": "To watch for something, send /add and a query, like <code>{example}</code>. /help lists "
        "the commands.",
        "ru": "Чтобы следить за темой, отправьте /add и запрос, например <code>{example}</code>. Все "
        "команды: /help.",
    },
    # plain text: also a callback answer
    "slow_down": {
        "en": "🐢 Too many commands at once. Please wait a minute and try again.",
        "ru": "🐢 Слишком много команд подряд. Подождите минуту и попробуйте снова.",
    },
    # access: roles, invitations (callback answers are plain text)
    "not_allowed": {"en": "Not allowed.", "ru": "Нет доступа."},
    "invite_only": {
        "en": "This bot is invite-only: open the invitation link an admin gave you.",
        "ru": "Этот бот только по приглашениям: откройте ссылку-приглашение от администратора.",
    },
    "invite_bad_code": {
        "en": "This invitation is not valid or was already used. This bot is invite-only: ask an admin for "
        "a new link.",
        "ru": "Это приглашение недействительно или уже использовано. Бот только по приглашениям: попросите "
        "у администратора новую ссылку.",
    },
    "cb_invite_only": {
        "en": "This bot is invite-only.",
        "ru": "Этот бот только по приглашениям.",
    },
    "grant_usage": {
        "en": "Write whom and which role: <code>/grant @name analyst</code> or <code>/grant 123456789 "
        "operator</code>. Roles: {roles}.",
        "ru": "Укажите кого и какую роль: <code>/grant @name analyst</code> или <code>/grant 123456789 "
        "operator</code>. Роли: {roles}.",
    },
    "revoke_usage": {
        "en": "Write whom and which role: <code>/revoke @name analyst</code>. Roles: {roles}.",
        "ru": "Укажите кого и какую роль: <code>/revoke @name analyst</code>. Роли: {roles}.",
    },
    "bad_role": {
        "en": "There is no role “{role}”: use {roles}.",
        "ru": "Роли «{role}» нет: используйте {roles}.",
    },
    "role_admin_fixed": {
        "en": "Admins are not granted or revoked here: they are ADMIN_IDS in the settings.",
        "ru": "Администраторов не назначают командой: это ADMIN_IDS в настройках.",
    },
    "unknown_user": {
        "en": "I don't know {user}: they must write to me first (send /start), or give their numeric "
        "Telegram id.",
        "ru": "Я не знаю {user}: пусть сначала напишет мне (отправит /start), или укажите числовой id "
        "в Telegram.",
    },
    "granted": {"en": "✅ {user} is now {role}.", "ru": "✅ {user} теперь {role}."},
    "already_granted": {"en": "{user} already is {role}.", "ru": "{user} уже {role}."},
    "revoked": {"en": "✅ {user} is no longer {role}.", "ru": "✅ {user} больше не {role}."},
    "not_granted": {"en": "{user} is not {role}.", "ru": "{user} — не {role}."},
    "revoke_admin": {
        "en": "{user} is an admin (ADMIN_IDS) and keeps every role.",
        "ru": "{user} — администратор (ADMIN_IDS) и сохраняет все роли.",
    },
    "roles_title": {"en": "<b>Roles</b>", "ru": "<b>Роли</b>"},
    "roles_admins": {"en": "Admins (ADMIN_IDS): {users}", "ru": "Администраторы (ADMIN_IDS): {users}"},
    "roles_operators": {"en": "Operators: {users}", "ru": "Операторы: {users}"},
    "roles_analysts": {"en": "Analysts: {users}", "ru": "Аналитики: {users}"},
    "roles_nobody": {"en": "nobody", "ru": "никого"},
    "invite_created": {
        "en": "🎟 A single-use invitation:\n{link}\nWhoever opens it first can subscribe.",
        "ru": "🎟 Одноразовое приглашение:\n{link}\nПодписаться сможет тот, кто откроет его первым.",
    },
    "invite_open_note": {
        "en": "Note: SUBSCRIBE_MODE is open, so anyone may subscribe without a code for now.",
        "ru": "Сейчас SUBSCRIBE_MODE=open: подписаться может любой и без кода.",
    },
    # operators: /watch, /unwatch, /watched, /stats
    "watch_usage": {
        "en": "Name the channel: <code>/watch @name</code>, <code>/watch https://t.me/name</code>, "
        "optionally with <code>backfill 500</code> to read older posts too.",
        "ru": "Укажите канал: <code>/watch @name</code>, <code>/watch https://t.me/name</code>, "
        "можно с <code>backfill 500</code>, чтобы прочитать и старые посты.",
    },
    "bad_channel": {"en": "⚠️ {message}", "ru": "⚠️ {message}"},
    "bad_backfill": {
        "en": "“{text}” is not a number of posts: write <code>backfill 500</code> (1 to {limit}).",
        "ru": "«{text}» — не число постов: напишите <code>backfill 500</code> (от 1 до {limit}).",
    },
    "watch_requested": {
        "en": "📥 Asked the collector to watch {ref}{backfill}. The bot cannot open channels itself: the "
        "collector resolves the name and starts on its next pass. Follow it in /watched.",
        "ru": "📥 Коллектор получил запрос следить за {ref}{backfill}. Бот сам каналы не открывает: "
        "коллектор найдёт канал и начнёт на следующем проходе. Следите в /watched.",
    },
    "watch_pending": {
        "en": "⏳ {ref} is already waiting for the collector{backfill}. Follow it in /watched.",
        "ru": "⏳ Запрос на {ref} уже ждёт коллектора{backfill}. Следите в /watched.",
    },
    "watch_backfill": {"en": ", with the {n} newest posts", "ru": ", с {n} последними постами"},
    "watch_already": {
        "en": "{ref} is already watched. To read older posts too: <code>/watch {ref} backfill 500</code>.",
        "ru": "{ref} уже отслеживается. Чтобы прочитать и старые посты: "
        "<code>/watch {ref} backfill 500</code>.",
    },
    "unwatch_usage": {
        "en": "Name the channel: <code>/unwatch @name</code> or <code>/unwatch -100…</code> id.",
        "ru": "Укажите канал: <code>/unwatch @name</code> или id <code>/unwatch -100…</code>.",
    },
    "unwatched": {
        "en": "⏹ Stopped watching {channel}; its {posts} posts stay in the archive.",
        "ru": "⏹ {channel} больше не отслеживается; его посты ({posts}) остаются в архиве.",
    },
    "unwatch_not_watched": {"en": "{channel} is not watched.", "ru": "{channel} не отслеживается."},
    "unwatch_cancelled": {
        "en": "⏹ Cancelled the request to watch {ref}.",
        "ru": "⏹ Запрос на {ref} отменён.",
    },
    "unwatch_unknown": {
        "en": "There is no channel {ref} in the archive (see /watched).",
        "ru": "Канала {ref} в архиве нет (см. /watched).",
    },
    "watched_none": {
        "en": "No channels are watched yet: <code>/watch @name</code> adds one.",
        "ru": "Пока ни один канал не отслеживается: <code>/watch @name</code> добавит канал.",
    },
    "watched_header": {
        "en": "<b>Watched channels</b>: {count}",
        "ru": "<b>Отслеживаемые каналы</b>: {count}",
    },
    "watched_line": {
        "en": "• {channel} — {status} · last post {last} · {per_day}/day · {posts} posts",
        "ru": "• {channel} — {status} · последний пост {last} · {per_day} в день · постов: {posts}",
    },
    "watched_backfill": {"en": "  ↻ backfill under way", "ru": "  ↻ идёт чтение старых постов"},
    "watched_error": {"en": "  ⚠️ last error: {error}", "ru": "  ⚠️ последняя ошибка: {error}"},
    "watched_flood": {
        "en": "  ⏳ flood wait until {until} ({left} left)",
        "ru": "  ⏳ ожидание (flood wait) до {until} (ещё {left})",
    },
    "watched_never": {"en": "never", "ru": "не было"},
    "status_active": {"en": "active", "ru": "работает"},
    "status_flood_wait": {"en": "flood wait", "ru": "flood wait"},
    "status_error": {"en": "error", "ru": "ошибка"},
    "status_removed": {"en": "removed", "ru": "удалён"},
    "pending_header": {
        "en": "<b>Waiting for the collector</b>: {count}",
        "ru": "<b>Ждут коллектора</b>: {count}",
    },
    "pending_line": {
        "en": "• {ref}{backfill} — asked {when} by {user}",
        "ru": "• {ref}{backfill} — запрошен {when}, кем: {user}",
    },
    "failed_header": {
        "en": "<b>Failed requests</b> (last {days} days): {count}",
        "ru": "<b>Неудачные запросы</b> (за {days} дн.): {count}",
    },
    "failed_line": {"en": "• {ref} — {error}", "ru": "• {ref} — {error}"},
    "requested_by_cli": {"en": "the CLI", "ru": "CLI"},
    "stats": {
        "en": "<b>tgmon now</b>\n"
        "Posts: {posts} · channels: {watched} watched of {channels}\n"
        "Subscribers: {active} active of {subscribers} · queries: {live} live of {queries}\n"
        "Alerts: {sent} sent, {queued} queued, {failed} failed\n"
        "Delivery failures: {given_up} given up, {retrying} retrying, {dropped} dropped (bot blocked)\n"
        "Collector lag: {lag} · heartbeat: {heartbeat}",
        "ru": "<b>tgmon сейчас</b>\n"
        "Постов: {posts} · каналов: {watched} отслеживается из {channels}\n"
        "Подписчиков: {active} активных из {subscribers} · запросов: {live} работают из {queries}\n"
        "Уведомления: {sent} отправлено, {queued} в очереди, {failed} не доставлено\n"
        "Сбои доставки: {given_up} брошено, {retrying} повторяется, {dropped} отброшено (бот заблокирован)\n"
        "Отставание коллектора: {lag} · сигнал жизни: {heartbeat}",
    },
    "stats_lag": {
        "en": "{lag} (newest post stored {when})",
        "ru": "{lag} (новейший пост сохранён {when})",
    },
    "stats_ago": {"en": "{ago} ago", "ru": "{ago} назад"},
    "unknown": {"en": "unknown", "ru": "неизвестно"},
    "dur_s": {"en": "{n} s", "ru": "{n} с"},
    "dur_m": {"en": "{n} min", "ru": "{n} мин"},
    "dur_h": {"en": "{n} h", "ru": "{n} ч"},
    "dur_d": {"en": "{n} d", "ru": "{n} д"},
    # analysts: /search
    "search_usage": {
        "en": "Write the query after the command, for example:\n<code>/search {example}</code>\n"
        "The query syntax: /help.",
        "ru": "Напишите запрос после команды, например:\n<code>/search {example}</code>\n"
        "Синтаксис запросов: /help.",
    },
    "search_header": {
        "en": "🔎 <code>{query}</code> — newest first, page {page}",
        "ru": "🔎 <code>{query}</code> — сначала новые, страница {page}",
    },
    "search_none": {
        "en": "🔎 Nothing found for <code>{query}</code>.",
        "ru": "🔎 По запросу <code>{query}</code> ничего не нашлось.",
    },
    "search_page_empty": {
        "en": "🔎 <code>{query}</code>: no more matches on page {page}.",
        "ru": "🔎 <code>{query}</code>: на странице {page} совпадений больше нет.",
    },
    "search_partial": {
        "en": "<i>The search stopped after {scanned} posts: add a word to narrow it.</i>",
        "ru": "<i>Поиск остановился после {scanned} постов: добавьте слово, чтобы сузить запрос.</i>",
    },
    "search_open": {"en": "open", "ru": "открыть"},
    "search_no_text": {"en": "<i>(no text)</i>", "ru": "<i>(без текста)</i>"},
    "btn_newer": {"en": "◀ {page}", "ru": "◀ {page}"},
    "btn_older": {"en": "{page} ▶", "ru": "{page} ▶"},
    "search_slow_down": {
        "en": "🐢 Too many searches: up to {limit} a minute. Please wait a little.",
        "ru": "🐢 Слишком много поисков: не больше {limit} в минуту. Подождите немного.",
    },
    "cb_search_expired": {
        "en": "This search has expired: send /search again.",
        "ru": "Этот поиск устарел: отправьте /search ещё раз.",
    },
    "export_usage": {
        "en": "Usage: <code>/export format=csv|jsonl|parquet|tdesktop channel=@name since=2026-01-01 "
        "until=2026-02-01 lang=ru query=протест Алматы</code>\nEvery option may be left out; "
        "<code>query=</code> takes the rest of the line.",
        "ru": "Так: <code>/export format=csv|jsonl|parquet|tdesktop channel=@name since=2026-01-01 "
        "until=2026-02-01 lang=ru query=протест Алматы</code>\nЛюбой параметр можно опустить; "
        "<code>query=</code> забирает остаток строки.",
    },
    "export_bad": {"en": "⚠️ {problem}", "ru": "⚠️ {problem}"},
    "export_empty": {
        "en": "Nothing to export: no post fits.",
        "ru": "Выгружать нечего: ни один пост не подходит.",
    },
    "export_confirm": {
        "en": "This export reads {count} posts. Go ahead?",
        "ru": "Эта выгрузка прочитает постов: {count}. Продолжить?",
    },
    "export_yes": {"en": "Export", "ru": "Выгрузить"},
    "export_no": {"en": "Cancel", "ru": "Отмена"},
    "export_cancelled": {"en": "Export cancelled.", "ru": "Выгрузка отменена."},
    "export_expired": {
        "en": "This export has expired: send /export again.",
        "ru": "Выгрузка устарела: отправьте /export ещё раз.",
    },
    "export_working": {"en": "⏳ Exporting…", "ru": "⏳ Выгружаю…"},
    "export_done": {
        "en": "✅ {rows} posts in {files} file(s), gzip; the manifest lists each file's SHA-256.",
        "ru": "✅ Постов: {rows}, файлов: {files}, gzip; в манифесте SHA-256 каждого файла.",
    },
    "export_rate": {
        "en": "🐢 Up to {limit} exports an hour. Please wait a little.",
        "ru": "🐢 Не больше {limit} выгрузок в час. Подождите немного.",
    },
}

WEEKDAYS: Final[Mapping[str, tuple[str, ...]]] = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "ru": ("пн", "вт", "ср", "чт", "пт", "сб", "вс"),
}
WEEKDAYS_LONG: Final[Mapping[str, tuple[str, ...]]] = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "ru": ("в понедельник", "во вторник", "в среду", "в четверг", "в пятницу", "в субботу", "в воскресенье"),
}
MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class BotCommandText:
    command: str
    args: Mapping[str, str]  # per language; "" when the command takes none
    description: Mapping[str, str]


def _cmd(command: str, args_en: str, args_ru: str, en: str, ru: str) -> BotCommandText:
    return BotCommandText(command, {"en": args_en, "ru": args_ru}, {"en": en, "ru": ru})


COMMANDS: Final = (
    _cmd("start", "", "", "what tgmon does", "что умеет tgmon"),
    _cmd("help", "", "", "every command", "все команды"),
    _cmd("add", "query", "запрос", "add a query to watch for", "добавить запрос"),
    _cmd("list", "", "", "your queries, with pause and delete buttons", "ваши запросы, с паузой и удалением"),
    _cmd("remove", "N", "N", "delete query number N from /list", "удалить запрос номер N из /list"),
    _cmd("lang", "ru en | any", "ru en | any", "languages of the posts you want", "языки нужных постов"),
    _cmd("channels", "", "", "choose the channels to hear from", "выбрать каналы"),
    _cmd("pause", "", "", "pause all alerts", "поставить все уведомления на паузу"),
    _cmd("resume", "", "", "turn alerts back on", "снова включить уведомления"),
    _cmd("quiet", "23:00-07:00 | off", "23:00-07:00 | off", "quiet hours without alerts", "тихие часы"),
    _cmd("timezone", "Europe/Almaty", "Europe/Almaty", "your time zone", "ваш часовой пояс"),
    _cmd(
        "digest",
        "off | hourly | daily 09:00 | weekly mon 09:00",
        "off | hourly | daily 09:00 | weekly пн 09:00",
        "digest schedule",
        "расписание дайджеста",
    ),
    _cmd("summary", "24h | 7d", "24h | 7d", "a digest right now", "дайджест прямо сейчас"),
    _cmd("language", "en | ru", "en | ru", "interface language", "язык интерфейса"),
)


class Translator:
    """The bot's texts in one language; `t(key, **values)` returns Telegram HTML."""

    __slots__ = ("lang",)

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else "en"

    def __call__(self, key: str, **values: object) -> Html:
        template = TEXTS[key][self.lang]
        return Html(template.format(**{name: _safe(value) for name, value in values.items()}))

    def refusal(self, error: Refusal) -> Html:
        """The message for a ServiceError or a ParseError."""
        args = dict(error.args_)
        if error.key == "no_such_query" and args.get("count") == 0:
            return self("no_such_query_empty", **args)
        if error.key in ("add_usage", "list_empty", "not_a_command"):
            args.setdefault("example", self("example_add"))
        text = self(error.key, **args)
        if error.key in ("bad_digest", "bad_day", "bad_time"):
            return Html(f"{text}\n{self('digest_usage')}")
        return text

    def __repr__(self) -> str:
        return f"Translator({self.lang!r})"


def _safe(value: object) -> str:
    if isinstance(value, Html):
        return value
    return escape(str(value))


@cache
def translator(lang: str) -> Translator:
    return Translator(lang)


def help_text(t: Translator) -> Html:
    lines: list[str] = [t("help_title")]
    for command in COMMANDS:
        args = command.args[t.lang]
        shown = f" <i>{escape(args)}</i>" if args else ""
        lines.append(f"/{command.command}{shown} — {escape(command.description[t.lang])}")
    lines.append("")
    lines.append(t("help_syntax", example=t("example_query")))
    return Html("\n".join(lines))


def command_menu(lang: str) -> list[tuple[str, str]]:
    """(command, description) pairs for setMyCommands, plain text."""
    lang = lang if lang in LANGS else "en"
    return [(c.command, c.description[lang]) for c in COMMANDS]


def caret_block(query: str, position: int, width: int = 60) -> Html:
    """The line of `query` around `position` with a caret under it, escaped for a <pre> block."""
    position = max(0, min(position, len(query)))
    start = query.rfind("\n", 0, position) + 1
    end = query.find("\n", position)
    line = query[start : end if end >= 0 else len(query)]
    line = line.replace("\t", " ").replace("\r", " ")
    column = position - start
    if len(line) > width:
        left = max(0, min(column - width // 2, len(line) - width))
        shown = line[left : left + width]
        column -= left
        if left > 0:
            shown, column = "…" + shown, column + 1
        if left + width < len(line):
            shown += "…"
        line = shown
    return Html(escape(f"{line}\n{' ' * column}^"))


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def query_list_text(t: Translator, queries: Sequence[Subscription], *, limit: int, all_paused: bool) -> Html:
    if not queries:
        return t("list_empty", example=t("example_add"))
    lines: list[str] = [t("list_header", count=len(queries), limit=limit)]
    for number, query in enumerate(queries, 1):
        mark = t("list_paused_mark") if query.paused else ""
        lines.append(f"{number}. <code>{escape(shorten(query.text, LIST_QUERY_CHARS))}</code>{mark}")
    lines.append("")
    if all_paused:
        lines.append(t("list_all_paused"))
    lines.append(t("list_footer"))
    return Html("\n".join(lines))


def langs_label(t: Translator, langs: Iterable[str]) -> Html:
    codes = list(langs)
    return Html(escape(", ".join(codes))) if codes else t("langs_any")


def channels_text(t: Translator, channels: Sequence[Channel], chosen: Iterable[int]) -> Html:
    if not channels:
        return t("channels_none")
    picked = [c for c in channels if c.id in set(chosen)]
    lines: list[str] = [t("channels_header", count=len(channels))]
    if picked:
        labels = ", ".join(escape(c.label) for c in picked[:LIST_CHANNELS])
        more = t("channels_more", more=len(picked) - LIST_CHANNELS) if len(picked) > LIST_CHANNELS else ""
        lines.append(t("channels_some", chosen=len(picked), labels=Html(labels + more)))
    else:
        lines.append(t("channels_all"))
    lines.append(t("channels_hint"))
    return Html("\n".join(lines))


def clock_time(minutes: int) -> str:
    hours, mins = divmod(minutes % (24 * 60), 60)
    return f"{hours:02d}:{mins:02d}"


def when_text(t: Translator, moment: datetime) -> str:
    """A local date and time: `Mon 12 Mar, 09:00` / `пн 12.03, 09:00`."""
    day = WEEKDAYS[t.lang][moment.weekday()]
    if t.lang == "ru":
        return f"{day} {moment.day:02d}.{moment.month:02d}, {moment:%H:%M}"
    return f"{day} {moment.day} {MONTHS[moment.month - 1]}, {moment:%H:%M}"


def digest_text(t: Translator, mode: DigestMode, at: int, day: int) -> Html:
    if mode is DigestMode.HOURLY:
        return t("digest_hourly")
    if mode is DigestMode.DAILY:
        return t("digest_daily", time=clock_time(at))
    if mode is DigestMode.WEEKLY:
        return t("digest_weekly", day=WEEKDAYS_LONG[t.lang][day % 7], time=clock_time(at))
    return t("digest_off")


def period_text(t: Translator, period: timedelta) -> Html:
    hours = int(period.total_seconds() // 3600)
    if hours >= 48 and hours % 24 == 0:
        return t("period_days", n=hours // 24)
    return t("period_hours", n=hours)


# operators and analysts


def utc_text(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def duration_text(t: Translator, span: timedelta) -> Html:
    """The two largest units: `45 s`, `3 min`, `2 h 5 min`, `3 d 4 h`."""
    seconds = max(int(span.total_seconds()), 0)
    if seconds < 60:
        return t("dur_s", n=seconds)
    minutes, hours, days = seconds // 60 % 60, seconds // 3600 % 24, seconds // 86400
    if days:
        parts = [t("dur_d", n=days)] + ([t("dur_h", n=hours)] if hours else [])
    elif hours:
        parts = [t("dur_h", n=hours)] + ([t("dur_m", n=minutes)] if minutes else [])
    else:
        parts = [t("dur_m", n=minutes)]
    return Html(" ".join(parts))


def split_message(lines: Sequence[str], limit: int = MESSAGE_CHARS) -> list[Html]:
    """Whole lines into as few messages as fit; a line never straddles two (each keeps its tags)."""
    messages: list[Html] = []
    current = ""
    for line in lines:
        if current and len(current) + 1 + len(line) > limit:
            messages.append(Html(current))
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        messages.append(Html(current))
    return messages


def watched_lines(
    t: Translator,
    health: Sequence[ChannelHealth],
    pending: Sequence[WatchRequest],
    failed: Sequence[WatchRequest],
    now: datetime,
    *,
    users: Mapping[int, str],
    failed_days: int,
) -> list[str]:
    """/watched: each channel's state, then the requests the collector has not taken up (or failed)."""
    lines: list[str] = [t("watched_header", count=len(health)) if health else t("watched_none")]
    for item in health:
        channel = item.channel
        last = utc_text(item.last_post) if item.last_post else t("watched_never")
        lines.append(
            t(
                "watched_line",
                channel=channel.label,
                status=t(f"status_{channel.status.value}"),
                last=last,
                per_day=f"{item.per_day:.1f}",
                posts=item.posts,
            )
        )
        if channel.backfill_active:
            lines.append(t("watched_backfill"))
        if channel.last_error:
            lines.append(t("watched_error", error=shorten(channel.last_error, 300)))
        if channel.flood_wait_until and channel.flood_wait_until > now:
            left = duration_text(t, channel.flood_wait_until - now)
            lines.append(t("watched_flood", until=utc_text(channel.flood_wait_until), left=left))
    if pending:
        lines += ["", t("pending_header", count=len(pending))]
        for request in pending:
            who = (
                users.get(request.requested_by, str(request.requested_by))
                if request.requested_by is not None
                else t("requested_by_cli")
            )
            backfill = t("watch_backfill", n=request.backfill) if request.backfill else ""
            when = utc_text(request.requested_at)
            lines.append(t("pending_line", ref=request.ref, backfill=backfill, when=when, user=who))
    if failed:
        lines += ["", t("failed_header", days=failed_days, count=len(failed))]
        for request in failed:
            lines.append(t("failed_line", ref=request.ref, error=shorten(request.error or "?", 300)))
    return lines


def stats_text(t: Translator, totals: Totals, now: datetime) -> Html:
    lag = totals.lag(now)
    lag_text = (
        t("stats_lag", lag=duration_text(t, lag), when=utc_text(totals.newest_collected))
        if lag is not None and totals.newest_collected is not None
        else t("unknown")
    )
    heartbeat = (
        t("stats_ago", ago=duration_text(t, now - totals.heartbeat))
        if totals.heartbeat is not None
        else t("unknown")
    )
    return t(
        "stats",
        posts=totals.posts,
        watched=totals.channels_watched,
        channels=totals.channels_total,
        active=totals.subscribers_active,
        subscribers=totals.subscribers_total,
        live=totals.queries_live,
        queries=totals.queries_total,
        sent=totals.alerts_sent,
        queued=totals.alerts_queued,
        failed=totals.alerts_failed,
        given_up=totals.delivery_failed,
        retrying=totals.delivery_retrying,
        dropped=totals.delivery_dropped,
        lag=lag_text,
        heartbeat=heartbeat,
    )


def search_snippet(text: str, spans: Sequence[Span], width: int = SNIPPET_CHARS) -> Html:
    """About `width` characters around the first match, escaped, the matched words in bold."""
    flat = text.replace("\r", " ").replace("\n", " ")  # same length: the spans' offsets still hold
    first = spans[0].start if spans else 0
    start, _ = window(len(flat), spans, width)
    if start > 0:  # begin at a word
        space = flat.find(" ", start, first)
        if space != -1:
            start = space + 1
    end = min(len(flat), start + width)
    if end < len(flat):  # end at a word, after the first match
        space = flat.rfind(" ", spans[0].end if spans else start, end)
        if space > start:
            end = space
    body = highlight(flat[start:end], spans_within(spans, start, end))
    return Html(("…" if start else "") + body + ("…" if end < len(flat) else ""))


def search_results_text(
    t: Translator, query: str, hits: Sequence[Hit], *, page: int, first: int, partial_after: int | None
) -> Html:
    """One page of /search: numbered from `first`, page shown 1-based; `partial_after`: the scan stopped
    after that many posts."""
    shown = shorten(query, SEARCH_QUERY_CHARS)
    if not hits:
        return t("search_page_empty" if page else "search_none", query=shown, page=page + 1)
    lines: list[str] = [t("search_header", query=shown, page=page + 1)]
    for number, hit in enumerate(hits, first):
        post = hit.post
        channel = (
            f"@{post.channel_username}" if post.channel_username else post.channel_title or post.channel_id
        )
        url = html.escape(post.permalink, quote=True)
        lines.append("")
        lines.append(
            f"<b>{number}.</b> {escape(str(channel))} · {utc_text(post.date)} · "
            f'<a href="{url}">{t("search_open")}</a>'
        )
        lines.append(search_snippet(post.text, hit.spans) if post.text.strip() else t("search_no_text"))
    if partial_after is not None:
        lines += ["", t("search_partial", scanned=partial_after)]
    return Html("\n".join(lines))
