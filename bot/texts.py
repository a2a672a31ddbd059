"""Everything the bot says, in English and Russian, as Telegram HTML. Pure: no aiogram, no I/O.

`translator(lang)` gives a `Translator`; `t("key", name=value)` fills a template and HTML-escapes
every value unless it is `Html` (text already built from these templates).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Final, Protocol

from core.models import Channel
from core.subscriptions import DigestMode, Subscription

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
    "help_text",
    "langs_label",
    "query_list_text",
    "translator",
]

LANGS: Final = ("en", "ru")
LIST_QUERY_CHARS: Final = 60  # a query longer than this is cut in /list, so 50 of them fit one message
LIST_CHANNELS: Final = 20  # chosen channels named in /channels before "and N more"


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
