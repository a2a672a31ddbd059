"""The bot's pure parts: argument parsers and texts."""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.parsing import (
    DigestChoice,
    ParseError,
    parse_digest,
    parse_langs,
    parse_period,
    parse_query_number,
    parse_quiet,
    parse_time,
    parse_timezone,
    parse_ui_lang,
)
from bot.texts import COMMANDS, TEXTS, Html, caret_block, command_menu, help_text, translator
from core.subscriptions import DigestMode

ROOT = Path(__file__).resolve().parents[1]


def refused(parser: object, text: str) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parser(text)  # type: ignore[operator]
    return caught.value


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", 1), (" 2 ", 2), ("#3", 3), ("007", 7), ("0", 0)],
)
def test_query_number(text: str, expected: int) -> None:
    assert parse_query_number(text) == expected


@pytest.mark.parametrize(
    ("text", "key"),
    [("", "remove_usage"), ("  ", "remove_usage"), ("abc", "bad_number"), ("-1", "bad_number"),
     ("1.5", "bad_number"), ("1 2", "bad_number"), ("٣", "bad_number"), ("9999999", "bad_number")],
)  # fmt: skip
def test_query_number_refused(text: str, key: str) -> None:
    assert refused(parse_query_number, text).key == key


@pytest.mark.parametrize(
    ("text", "expected"),
    [("ru", ["ru"]), ("ru en", ["ru", "en"]), ("RU, en;kk", ["ru", "en", "kk"]), ("ru ru", ["ru"]),
     ("any", []), ("ANY", []), ("любой", []), ("yue", ["yue"])],
)  # fmt: skip
def test_langs(text: str, expected: list[str]) -> None:
    assert parse_langs(text) == expected


@pytest.mark.parametrize(
    ("text", "code"), [("russian", "russian"), ("ru 1", "1"), ("ru any", "any"), ("", "")]
)
def test_langs_refused(text: str, code: str) -> None:
    error = refused(parse_langs, text)
    assert error.key == "unknown_lang" and error.args_ == {"code": code}


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("0", 0), ("7", 420), ("07:30", 450), ("7.30", 450), ("23:59", 1439), ("24:00", 0), ("24", 0)],
)
def test_time(text: str, minutes: int) -> None:
    assert parse_time(text) == minutes


@pytest.mark.parametrize("text", ["24:01", "25", "7:60", "7:5", "noon", "", "-1", "123"])
def test_time_refused(text: str) -> None:
    assert refused(parse_time, text).key == "bad_time"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("23:00-07:00", (1380, 420)), ("23-7", (1380, 420)), ("23 - 7", (1380, 420)),
     ("22:30–06:15", (1350, 375)), ("0-8", (0, 480)), ("13:00—14:00", (780, 840)), ("off", None),
     ("OFF", None), ("выкл", None)],
)  # fmt: skip
def test_quiet(text: str, expected: tuple[int, int] | None) -> None:
    assert parse_quiet(text) == expected


@pytest.mark.parametrize(
    ("text", "key"),
    [("23", "bad_quiet"), ("23:00-", "bad_quiet"), ("25-7", "bad_quiet"), ("night", "bad_quiet"),
     ("23:00 07:00", "bad_quiet"), ("7-7", "quiet_same"), ("00:00-24:00", "quiet_same"), ("", "bad_quiet")],
)  # fmt: skip
def test_quiet_refused(text: str, key: str) -> None:
    assert refused(parse_quiet, text).key == key


@pytest.mark.parametrize(
    ("text", "zone"),
    [("Europe/Almaty", None), ("Asia/Almaty", "Asia/Almaty"), ("asia/almaty", "Asia/Almaty"),
     ("  ASIA/ALMATY ", "Asia/Almaty"), ("almaty", "Asia/Almaty"), ("Moscow", "Europe/Moscow"),
     ("new york", "America/New_York"), ("samoa", "Pacific/Samoa"), ("UTC", "UTC"), ("gmt", "UTC"),
     ("UTC+5", "Etc/GMT-5"), ("utc-3", "Etc/GMT+3"), ("GMT+3", "Etc/GMT-3"), ("+05:00", "Etc/GMT-5"),
     ("−5", "Etc/GMT+5"), ("UTC+0", "UTC"), ("UTC+14", "Etc/GMT-14"), ("UTC-12", "Etc/GMT+12"),
     ("etc/gmt-5", "Etc/GMT-5")],
)  # fmt: skip
def test_timezone(text: str, zone: str | None) -> None:
    if zone is None:  # Almaty is in Asia; there is no such zone
        assert refused(parse_timezone, text).key == "unknown_timezone"
        return
    assert parse_timezone(text) == zone
    ZoneInfo(zone)


def test_timezone_offset_sign_is_inverted_correctly() -> None:
    from datetime import UTC, datetime

    noon = datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert noon.astimezone(ZoneInfo(parse_timezone("UTC+5"))).hour == 17
    assert noon.astimezone(ZoneInfo(parse_timezone("UTC-3"))).hour == 9


@pytest.mark.parametrize(
    ("text", "key"),
    [("Mars/Base", "unknown_timezone"), ("Europe", "unknown_timezone"), ("Etc", "unknown_timezone"),
     ("../etc/passwd", "unknown_timezone"), ("a" * 300, "unknown_timezone"), ("zone.tab", "unknown_timezone"),
     ("", "unknown_timezone"), ("UTC+15", "tz_offset_range"), ("UTC-13", "tz_offset_range"),
     ("UTC+5:30", "tz_offset_minutes"), ("+0545", "tz_offset_minutes"), ("UTC+5:75", "tz_offset_range")],
)  # fmt: skip
def test_timezone_refused(text: str, key: str) -> None:
    assert refused(parse_timezone, text).key == key


@pytest.mark.parametrize(
    ("text", "expected"),
    [("off", DigestChoice(DigestMode.OFF)), ("hourly", DigestChoice(DigestMode.HOURLY)),
     ("daily", DigestChoice(DigestMode.DAILY, 540)), ("daily 21:30", DigestChoice(DigestMode.DAILY, 1290)),
     ("DAILY 7", DigestChoice(DigestMode.DAILY, 420)), ("weekly", DigestChoice(DigestMode.WEEKLY, 540, 0)),
     ("weekly fri 18:00", DigestChoice(DigestMode.WEEKLY, 1080, 4)),
     ("weekly 18:00 friday", DigestChoice(DigestMode.WEEKLY, 1080, 4)),
     ("weekly вс 10:00", DigestChoice(DigestMode.WEEKLY, 600, 6)),
     ("еженедельно пятницу 9:00", DigestChoice(DigestMode.WEEKLY, 540, 4)),
     ("weekly Пн.", DigestChoice(DigestMode.WEEKLY, 540, 0)),
     ("ежедневно 08:00", DigestChoice(DigestMode.DAILY, 480))],
)  # fmt: skip
def test_digest(text: str, expected: DigestChoice) -> None:
    assert parse_digest(text) == expected


@pytest.mark.parametrize(
    ("text", "key"),
    [("", "bad_digest"), ("sometimes", "bad_digest"), ("off now", "bad_digest"),
     ("hourly 9:00", "bad_digest"),
     ("daily 25:00", "bad_time"), ("daily mon", "bad_time"), ("weekly xyz 9:00", "bad_day"),
     ("weekly mon tue", "bad_digest"), ("weekly 9:00 10:00", "bad_digest"), ("weekly mon 9:77", "bad_time")],
)  # fmt: skip
def test_digest_refused(text: str, key: str) -> None:
    assert refused(parse_digest, text).key == key


@pytest.mark.parametrize(
    ("text", "period"),
    [("24h", timedelta(hours=24)), ("7d", timedelta(days=7)), ("1h", timedelta(hours=1)),
     ("3 d", timedelta(days=3)), ("1w", timedelta(weeks=1)), ("12ч", timedelta(hours=12)),
     ("2 дня", timedelta(days=2)), ("48 hours", timedelta(days=2))],
)  # fmt: skip
def test_period(text: str, period: timedelta) -> None:
    assert parse_period(text) == period


@pytest.mark.parametrize("text", ["", "0h", "8d", "2w", "169h", "week", "24", "-1d", "1y"])
def test_period_refused(text: str) -> None:
    assert refused(parse_period, text).key == "bad_period"


@pytest.mark.parametrize(
    ("text", "lang"), [("en", "en"), ("RU", "ru"), ("English", "en"), ("русский", "ru"), (" ru ", "ru")]
)
def test_ui_lang(text: str, lang: str) -> None:
    assert parse_ui_lang(text) == lang


def test_ui_lang_refused_names_it() -> None:
    error = refused(parse_ui_lang, "de")
    assert error.key == "unknown_ui_lang" and error.args_ == {"code": "de"}


def test_refusals_echo_at_most_a_short_line() -> None:
    error = refused(parse_quiet, "x" * 5000 + "\n<b>")
    assert len(str(error.args_["text"])) <= 40 and "\n" not in str(error.args_["text"])


RELEVANT = st.text(
    alphabet=string.digits + ":-+−–.,# hdwчдutcgmUTCGMafynoffweklyпнвс/Europe_" + "\n\t", max_size=30
)
T = TypeVar("T")


def accepted(parser: Callable[[str], T], text: str) -> T | None:
    """The parser's value, or None when it refused with a ParseError that has a text; nothing else."""
    try:
        return parser(text)
    except ParseError as error:
        assert error.key in TEXTS, error.key
        translator("ru").refusal(error)  # every refusal has a text that fills
        return None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), RELEVANT))
def test_parsers_raise_only_parse_error(text: str) -> None:
    for parser in (parse_query_number, parse_langs, parse_time, parse_period, parse_ui_lang):
        accepted(parser, text)
    zone = accepted(parse_timezone, text)
    if zone is not None:
        ZoneInfo(zone)
    quiet = accepted(parse_quiet, text)
    if quiet is not None:
        assert all(0 <= m < 1440 for m in quiet) and quiet[0] != quiet[1]
    digest = accepted(parse_digest, text)
    if digest is not None:
        assert 0 <= digest.at < 1440 and 0 <= digest.day <= 6


# texts


def test_every_text_has_both_languages_with_the_same_fields() -> None:
    for key, by_lang in TEXTS.items():
        assert set(by_lang) == {"en", "ru"}, key
        fields = {lang: set(re.findall(r"{(\w+)}", text)) for lang, text in by_lang.items()}
        assert fields["en"] == fields["ru"], key


def test_every_service_refusal_has_a_text() -> None:
    source = (ROOT / "bot" / "services" / "subscribers.py").read_text()
    keys = set(re.findall(r'ServiceError\("(\w+)"', source))
    assert keys and keys <= set(TEXTS)


def test_values_are_escaped_unless_already_html() -> None:
    t = translator("en")
    assert t("added", number=1, query="<b>&") == "✅ Added #1: <code>&lt;b&gt;&amp;</code>"
    assert t("langs_set", langs=Html("<i>x</i>")).endswith("<i>x</i>.")
    assert translator("xx").lang == "en"


def test_help_and_menu_name_every_command() -> None:
    for lang in ("en", "ru"):
        text = help_text(translator(lang))
        menu = command_menu(lang)
        assert [c for c, _ in menu] == [c.command for c in COMMANDS]
        for command in COMMANDS:
            assert f"/{command.command}" in text


@pytest.mark.parametrize(
    ("query", "position", "expected"),
    [("a OR", 2, "a OR\n  ^"), ("x <b>", 2, "x &lt;b&gt;\n  ^"), ("one\ntwo three", 8, "two three\n    ^"),
     ("", 0, "\n^"), ("ab", 99, "ab\n  ^")],
)  # fmt: skip
def test_caret_block(query: str, position: int, expected: str) -> None:
    assert caret_block(query, position) == expected


def test_caret_block_windows_a_long_line() -> None:
    query = "a" * 300 + "(" + "b" * 300
    block = caret_block(query, 300, width=60)
    line, caret = block.split("\n")
    assert len(line) <= 62 and line[caret.index("^")] == "("
