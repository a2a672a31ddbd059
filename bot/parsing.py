"""Command arguments → values. Pure; every parser raises only `ParseError` (a text key + values).

Handlers deal with a missing argument themselves (they show the current setting); these parsers
refuse an empty string like any other bad input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Final
from zoneinfo import available_timezones

from core.subscriptions import DigestMode

__all__ = [
    "DigestChoice",
    "ParseError",
    "parse_digest",
    "parse_langs",
    "parse_period",
    "parse_query_number",
    "parse_quiet",
    "parse_time",
    "parse_timezone",
    "parse_ui_lang",
]

SHOWN_CHARS: Final = 40  # user text echoed in a refusal is cut to this
MIN_PERIOD: Final = timedelta(hours=1)
MAX_PERIOD: Final = timedelta(days=7)
DEFAULT_DIGEST_AT: Final = 9 * 60

OFF_WORDS: Final = frozenset({"off", "no", "none", "нет", "выкл", "выключить", "отключить"})
ANY_WORDS: Final = frozenset({"any", "all", "*", "любой", "любые", "все"})
UI_LANGS: Final = {
    **dict.fromkeys(("en", "eng", "english", "английский", "англ"), "en"),
    **dict.fromkeys(("ru", "rus", "russian", "русский", "рус"), "ru"),
}
DIGEST_MODES: Final = {
    **dict.fromkeys(("off", "no", "none", "нет", "выкл"), DigestMode.OFF),
    **dict.fromkeys(("hourly", "hour", "ежечасно", "час"), DigestMode.HOURLY),
    **dict.fromkeys(("daily", "day", "ежедневно", "день"), DigestMode.DAILY),
    **dict.fromkeys(("weekly", "week", "еженедельно", "неделя"), DigestMode.WEEKLY),
}
_DAY_NAMES: Final = (
    ("mon", "monday", "пн", "пон", "понедельник"),
    ("tue", "tues", "tuesday", "вт", "вторник"),
    ("wed", "wednesday", "ср", "среда", "среду"),
    ("thu", "thur", "thurs", "thursday", "чт", "четверг"),
    ("fri", "friday", "пт", "пятница", "пятницу"),
    ("sat", "saturday", "сб", "суббота", "субботу"),
    ("sun", "sunday", "вс", "вск", "воскресенье"),
)
DAYS: Final = {name: number for number, names in enumerate(_DAY_NAMES) for name in names}

_TIME = re.compile(r"([0-9]{1,2})(?:[:.h]([0-9]{2}))?")
_RANGE = re.compile(r"(\S+?)\s*(?:-|–|—|\.\.)\s*(\S+)")
_OFFSET = re.compile(r"(?:utc|gmt)?\s*([+\-−])\s*([0-9]{1,2})(?::?([0-9]{2}))?", re.IGNORECASE)
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-/ ]{0,63}")
_LANG_CODE = re.compile(r"[a-z]{2,3}")
_PERIOD = re.compile(r"([0-9]{1,3})\s*(h|hours?|ч|час|часа|часов|d|days?|д|дн|дня|дней|w|weeks?|н|нед)\.?")
_NUMBER = re.compile(r"#?([0-9]{1,6})")
_REGIONS: Final = (
    "Africa/",
    "America/",
    "Antarctica/",
    "Asia/",
    "Atlantic/",
    "Australia/",
    "Europe/",
    "Indian/",
    "Pacific/",
)


class ParseError(ValueError):
    """Input the user can fix; `key` names the text to show, `args_` fill it in (like ServiceError)."""

    def __init__(self, key: str, **args: object) -> None:
        super().__init__(key)
        self.key = key
        self.args_: dict[str, object] = args


@dataclass(frozen=True, slots=True)
class DigestChoice:
    mode: DigestMode
    at: int = DEFAULT_DIGEST_AT  # minutes after local midnight
    day: int = 0  # Monday


def shown(text: str) -> str:
    """User text as echoed in a refusal: one line, at most SHOWN_CHARS."""
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def parse_query_number(text: str) -> int:
    """`/remove N`: a number as /list shows it (`2` or `#2`); the range is the service's to check."""
    text = text.strip()
    if not text:
        raise ParseError("remove_usage")
    match = _NUMBER.fullmatch(text)
    if match is None:
        raise ParseError("bad_number", text=shown(text))
    return int(match[1])


def parse_langs(text: str) -> list[str]:
    """`/lang ru en` → ["ru", "en"]; `/lang any` → [] (any language). Codes are checked by the service."""
    words = [w for w in re.split(r"[\s,;]+", text.strip().lower()) if w]
    if not words:
        raise ParseError("unknown_lang", code="")
    if len(words) == 1 and words[0] in ANY_WORDS:
        return []
    codes: list[str] = []
    for word in words:
        if _LANG_CODE.fullmatch(word) is None or word in ANY_WORDS:
            raise ParseError("unknown_lang", code=shown(word))
        if word not in codes:
            codes.append(word)
    return codes


def parse_time(text: str) -> int:
    """`23:00`, `7`, `7.30`, `24:00` → minutes after midnight (24:00 is 0)."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise ParseError("bad_time", text=shown(text))
    hours, minutes = int(match[1]), int(match[2] or 0)
    if hours == 24 and minutes == 0:
        hours = 0
    if hours > 23 or minutes > 59:
        raise ParseError("bad_time", text=shown(text))
    return hours * 60 + minutes


def parse_quiet(text: str) -> tuple[int, int] | None:
    """`23:00-07:00` or `23-7` → (start, end) in minutes; `off` → None."""
    cleaned = text.strip().lower()
    if cleaned in OFF_WORDS:
        return None
    match = _RANGE.fullmatch(cleaned)
    if match is None:
        raise ParseError("bad_quiet", text=shown(text))
    try:
        start, end = parse_time(match[1]), parse_time(match[2])
    except ParseError:
        raise ParseError("bad_quiet", text=shown(text)) from None
    if start == end:
        raise ParseError("quiet_same")
    return start, end


@cache
def _zones() -> dict[str, str]:
    """Lower-cased names → IANA names; a bare city (`almaty`) too when that is unambiguous enough."""
    zones = sorted(available_timezones())
    by_name = {zone.lower(): zone for zone in zones}
    cities: dict[str, str] = {}
    # regions first, so `samoa` is Pacific/Samoa and not the old US/Samoa alias
    for zone in sorted(zones, key=lambda z: (not z.startswith(_REGIONS), z)):
        if "/" in zone:
            cities.setdefault(zone.rsplit("/", 1)[1].lower(), zone)
    return {**cities, **by_name}


def parse_timezone(text: str) -> str:
    """An IANA zone (any case), a city (`almaty`), `UTC`, or a whole-hour offset (`UTC+5`, `+05:00`).

    Offsets become `Etc/GMT-5` and the like: POSIX inverts the sign, so UTC+5 is `Etc/GMT-5`.
    """
    cleaned = text.strip()
    offset = _OFFSET.fullmatch(cleaned)
    if offset is not None:
        sign = -1 if offset[1] in "-−" else 1
        hours, minutes = int(offset[2]), int(offset[3] or 0)
        label = shown(cleaned)
        if minutes:
            if minutes > 59 or hours > 14:
                raise ParseError("tz_offset_range", offset=label)
            raise ParseError("tz_offset_minutes", offset=label)
        total = sign * hours
        if not -12 <= total <= 14:
            raise ParseError("tz_offset_range", offset=label)
        if total == 0:
            return "UTC"
        return f"Etc/GMT{-total:+d}"
    if _ZONE_NAME.fullmatch(cleaned) is None:
        raise ParseError("unknown_timezone", name=shown(cleaned))
    key = "_".join(cleaned.split()).lower()
    if key in ("utc", "gmt", "z", "utc0", "gmt0"):
        return "UTC"
    zone = _zones().get(key)
    if zone is None:
        raise ParseError("unknown_timezone", name=shown(cleaned))
    return zone


def parse_digest(text: str) -> DigestChoice:
    """`off`, `hourly`, `daily [HH:MM]`, `weekly [DAY] [HH:MM]` (DAY: mon…sun, пн…вс, full names)."""
    words = text.strip().lower().split()
    if not words or words[0] not in DIGEST_MODES:
        raise ParseError("bad_digest", text=shown(text))
    mode, rest = DIGEST_MODES[words[0]], words[1:]
    if mode in (DigestMode.OFF, DigestMode.HOURLY):
        if rest:
            raise ParseError("bad_digest", text=shown(text))
        return DigestChoice(mode)
    at: int | None = None
    day: int | None = None
    for word in rest:
        if word[0].isdigit():
            if at is not None:
                raise ParseError("bad_digest", text=shown(text))
            at = parse_time(word)
        elif mode is DigestMode.WEEKLY and day is None:
            day = DAYS.get(word.rstrip("."))
            if day is None:
                raise ParseError("bad_day", text=shown(word))
        else:
            raise ParseError("bad_time" if mode is DigestMode.DAILY else "bad_digest", text=shown(word))
    return DigestChoice(mode, DEFAULT_DIGEST_AT if at is None else at, day or 0)


def parse_period(text: str) -> timedelta:
    """`24h`, `7d`, `1w`, `12 ч`: from 1 hour to 7 days."""
    match = _PERIOD.fullmatch(text.strip().lower())
    if match is None:
        raise ParseError("bad_period", text=shown(text))
    count, unit = int(match[1]), match[2]
    if unit[0] in "hч":
        period = timedelta(hours=count)
    elif unit[0] in "dд":
        period = timedelta(days=count)
    else:
        period = timedelta(weeks=count)
    if not MIN_PERIOD <= period <= MAX_PERIOD:
        raise ParseError("bad_period", text=shown(text))
    return period


def parse_ui_lang(text: str) -> str:
    """`en`, `ru`, `english`, `русский`, … → "en" | "ru"."""
    lang = UI_LANGS.get(text.strip().lower())
    if lang is None:
        raise ParseError("unknown_ui_lang", code=shown(text))
    return lang
