"""Fuzzing hostile and malformed input (issue 7): the query parser, the bot's argument parsers and
handlers, the Desktop-export reader and importer, and full-text search.

Every target runs QUICK cases in the default run and LONG more behind `@pytest.mark.slow` (`.ci/run`
runs both): `pytest tests/test_fuzz.py` is the quick pass, `pytest -m slow tests/test_fuzz.py` the long
one. A case counts once per generated input; each asserts what the user gets back: a clear
message (the right error type, a position inside the query, a refusal the bot can render) and never an
exception of another kind, a traceback, or a changed archive.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.methods import AnswerCallbackQuery, SendMessage
from aiogram.types import CallbackQuery, Chat, Message, MessageEntity, Update, User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from bot.app import ERROR_TEXT, build_dispatcher
from bot.handlers.admin import role_arg
from bot.handlers.export import ExportParseError, parse_export
from bot.handlers.operators import parse_backfill, parse_watch
from bot.handlers.search import SearchSessions
from bot.middlewares import RateLimiter
from bot.parsing import (
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
from bot.render import render_alert, render_folded
from bot.services.subscribers import ServiceError, SubscriberService
from bot.texts import caret_block, translator
from collectors.refs import ChannelRefError, parse_channel_ref
from collectors.tdesktop import ExportFormatError
from core.importer import import_exports, load_exports
from core.models import RawPost
from core.pipeline import Pipeline
from core.query.ast import QuerySyntaxError
from core.query.matcher import Document, compile_query
from core.query.parser import MAX_QUERY_CHARS, looks_for_something, parse
from core.search import search
from core.settings import Settings
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import SubscriptionStore
from core.subscriptions import Subscriber
from tests.conftest import FIXTURES
from tests.fakes.bot_session import FakeBotSession
from tests.fakes.botapi import TEXT_LIMIT, FakeBotAPI, HtmlParseError, parse_html, refusal
from tests.fakes.memory import FixedDetector, RecordingSink
from tests.test_query_parser import ANY_TEXT, CATCH_ALL, SYNTAX, query_text

QUICK = 200
LONG = 10_000
SIZES = [pytest.param(QUICK, id="quick"), pytest.param(LONG, id="long", marks=pytest.mark.slow)]


def fuzz(examples: int, strategy: st.SearchStrategy[Any], check: Callable[[Any], None]) -> int:
    """Run `check` on `examples` generated inputs (more while shrinking a failure); how many it ran."""
    ran = 0

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(strategy)
    def run(value: Any) -> None:
        nonlocal ran
        ran += 1
        check(value)

    run()
    assert ran >= examples
    return ran


def splice(pieces: st.SearchStrategy[str], max_size: int = 30) -> st.SearchStrategy[str]:
    return st.lists(pieces, max_size=max_size).map("".join)


def repeated(pieces: st.SearchStrategy[str], at_least: int, at_most: int) -> st.SearchStrategy[str]:
    """One piece many times over: long inputs without generating every character."""
    return st.tuples(pieces.filter(bool), st.integers(at_least, at_most)).map(
        lambda pair: (pair[0] * (pair[1] // len(pair[0]) + 1))[: pair[1]]
    )


# Characters that break naive code: markup, RTL and zero-width marks, combining marks, an emoji with its
# variation selector, digits that are not ASCII (² passes str.isdigit, ٣ is a decimal digit).
ODD = [
    "<", ">", "&", "<b>", "&amp;", "`", "*", "_", "[", "]", "(", ")", "\\", '"', "'", "\n", "\t", "\r",
    "\u200b", "\u200d", "\u200f", "\u202e", "\u2066", "\ufeff", "\u0301", "🔥", "👩‍👩‍👧", "❤️", "²", "٣",
    "१२", "０", "\x00", "\x1b", "\u2028", "Ω", "ǅ", "ß", "İ",
]  # fmt: skip


# --- the query parser ------------------------------------------------------------------------------

REGEX_PIECES = [
    "(a+)+$", "(a|aa)*b", "(.*a){20}", "(?", "(?P<n>a)(?P=n)", "(?<=a+)b", "(?(1)a|b)", r"\p{L}+",
    r"\N{DASH}", r"\g<1>", "[[:alpha:]]", "a{99999999999999999999}", "a{2,1}", "(?i)", "(?x) a # b", "[^]",
    "\\", "\\/", "(?V1)", "(?r)", "(?|a|b)", "a**", "(?>a+)", "a++", r"\X", "(?#", "[a-\\d]", "{,", "(?P<>)",
    r"\9",
]  # fmt: skip
HOSTILE_QUERY = st.one_of(
    ANY_TEXT,
    splice(st.sampled_from([*SYNTAX, *ODD, "/", "/c", "/i", "lang:", "-", "NOT ", " OR ", "*"])),
    st.tuples(query_text(1), st.integers(0, 100), splice(st.sampled_from(SYNTAX + ODD), 3)).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
    ),
    splice(st.sampled_from([*REGEX_PIECES, "a", "|", "("]), 8).map(lambda p: f"word /{p}/"),
    repeated(st.sampled_from(["a ", "(", "-", '"', "/", "OR ", "lang:ru ", "🔥"]), MAX_QUERY_CHARS - 5, 520),
)
# short enough that a catastrophic pattern fails fast here: the long ones are test_hostile_text's
POSTS = ["", "a" * 12 + "!", "Протест в Алматы 🔥 #протест", "\u202eabc\u200b def", "ab" * 20]


def check_query(text: str) -> None:
    try:
        tree = parse(text)
    except QuerySyntaxError as error:
        assert error.message and error.message != CATCH_ALL, (text, error.message)
        assert 0 <= error.position <= len(text), (text, error.position)
        assert error.query == text
        error.pointer()
        return
    assert looks_for_something(tree)
    query = compile_query(text)
    for post in POSTS:
        query.match(Document.of(post, lang="ru"))


@pytest.mark.parametrize("examples", SIZES)
def test_query_parser_only_raises_query_errors(examples: int) -> None:
    fuzz(examples, HOSTILE_QUERY, check_query)


# --- the bot's argument parsers --------------------------------------------------------------------

ARG_PIECES = [
    "23:00", "7", "24:00", "99:99", "7.30", "-", "–", "..", " ", "utc+5", "UTC-12", "+14:30", "−3", "gmt",
    "Europe/Almaty", "almaty", "Etc/GMT+5", "off", "hourly", "daily", "weekly", "mon", "пн", "среду", "24h",
    "7d", "1w", "12 ч", "0h", "ru", "en", "any", "русский", "#2", "0", "@tengrinews", "t.me/s/x",
    "https://t.me/c/123/4", "t.me/+abc", "-100", "-1001234567890", "backfill", "backfill=", "=", "format=",
    "csv", "parquet", "tdesktop", "channel=", "since=", "until=", "lang=", "query=", "2026-01-31",
    "0001-01-01T00:00+01:00", "9999-12-31T23:59:59-14:00", "2026-02-30", "admin", "analyst", "operator",
]  # fmt: skip
HOSTILE_ARGS = st.one_of(
    st.text(max_size=40),
    splice(st.sampled_from(ARG_PIECES + ODD), 12),
    st.lists(st.sampled_from(ARG_PIECES), max_size=6).map(" ".join),
    st.integers(15, 5000).map(lambda n: "9" * n),
    st.integers(15, 5000).map(lambda n: "-100" + "7" * n),
    repeated(st.sampled_from(ARG_PIECES + ODD), 3000, 4090),
)

ARG_PARSERS: list[tuple[str, Callable[[str], object], tuple[type[Exception], ...]]] = [
    ("remove", parse_query_number, (ParseError,)),
    ("lang", parse_langs, (ParseError,)),
    ("time", parse_time, (ParseError,)),
    ("quiet", parse_quiet, (ParseError,)),
    ("timezone", parse_timezone, (ParseError,)),
    ("digest", parse_digest, (ParseError,)),
    ("summary", parse_period, (ParseError,)),
    ("language", parse_ui_lang, (ParseError,)),
    ("watch", parse_watch, (ServiceError,)),
    ("backfill", parse_backfill, (ServiceError,)),
    ("channel", parse_channel_ref, (ChannelRefError,)),
    ("role", role_arg, (ServiceError,)),
    ("export", parse_export, (ExportParseError, QuerySyntaxError)),
]
SQLITE_INT = 2**63  # what SQLite can store; a parsed number beyond it would crash a handler


def check_refusal_renders(error: Exception) -> None:
    """What the handler would send for this refusal, in both languages, is a message Telegram takes."""
    for lang in ("en", "ru"):
        t = translator(lang)
        if isinstance(error, ParseError | ServiceError):
            message = t.refusal(error)
        elif isinstance(error, QuerySyntaxError):  # as /add and /export show it
            pointer = caret_block(error.query, error.position)
            message = t("query_error", message=error.message, pointer=pointer)
        else:
            message = t("export_bad", problem=str(error))
        try:
            text, _ = parse_html(message)
        except HtmlParseError as bad:
            raise AssertionError(f"{message!r}: {bad}") from None
        assert text.strip() and len(text.encode("utf-16-le")) // 2 <= TEXT_LIMIT, (error, len(text))


def ints_in(value: object) -> Iterator[int]:
    """Every integer in a parsed value (a number, a tuple, a dataclass)."""
    if isinstance(value, int) and not isinstance(value, bool):
        yield int(value)
    elif isinstance(value, tuple | list):
        for item in value:
            yield from ints_in(item)
    elif dataclasses.is_dataclass(value):
        for item in dataclasses.fields(value):
            yield from ints_in(getattr(value, item.name))


def check_args(text: str) -> None:
    for name, parser, refusals in ARG_PARSERS:
        try:
            value = parser(text)
        except refusals as error:
            check_refusal_renders(error)
        else:
            assert all(-SQLITE_INT <= n < SQLITE_INT for n in ints_in(value)), (name, text, value)


@pytest.mark.parametrize("examples", SIZES)
def test_bot_argument_parsers_refuse_clearly(examples: int) -> None:
    fuzz(examples, HOSTILE_ARGS, check_args)


# --- the Desktop-export reader and importer --------------------------------------------------------

EXPORTS = FIXTURES / "tdesktop"
BASE_EXPORTS = [
    json.loads((EXPORTS / "single_chat" / "result.json").read_text(encoding="utf-8")),
    json.loads((EXPORTS / "account.result.json").read_text(encoding="utf-8")),
]
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**20, 253402300800, -62135596801]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    splice(st.sampled_from([*ODD, "a", " "]), 10),
    st.lists(st.one_of(st.text(max_size=3), SURROGATES), max_size=5).map("".join),
    st.sampled_from(["", "message", "service", "unsupported", "bold", "text_link", "plain", "1700000000",
                     "2024-01-01T12:00:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00",
                     "public_channel", "personal_chat", "-5", "1e9", "١٢٣"]),
    repeated(st.sampled_from(["x", "🔥", "Ж "]), 5_000, 20_000),
)  # fmt: skip
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in a JSON document, parents before children."""
    found: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else []
        for key in keys:
            found.append((node, key))
            stack.append(node[key])
    return found


JUNK = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\\x1", b"\xef\xbb\xbf", b"}", b'"', b"\\ud800"]


@st.composite
def mutated_export(draw: st.DrawFn) -> bytes:
    """A valid fixture with a few values replaced, removed or nested deep, then maybe its bytes broken."""
    doc = json.loads(json.dumps(draw(st.sampled_from(BASE_EXPORTS))))
    for _ in range(draw(st.integers(0, 3))):
        slots = _slots(doc)
        container, key = slots[draw(st.integers(0, len(slots) - 1))]
        action = draw(st.sampled_from(["replace", "replace", "delete", "nest", "add"]))
        if action == "replace":
            container[key] = draw(JSON_VALUE)
        elif action == "delete":
            del container[key]
        elif action == "nest":
            value = container[key]
            for _ in range(draw(st.integers(1, 2000))):
                value = [value]
            container[key] = value
        elif isinstance(container[key], dict):
            container[key][draw(st.text(max_size=12))] = draw(JSON_VALUE)
    try:
        text = json.dumps(doc, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1])))
    except RecursionError:
        text = json.dumps(BASE_EXPORTS[0])
    raw = text.encode("utf-8", "surrogatepass")
    cut = draw(st.sampled_from(["none", "none", "truncate", "insert", "overwrite"]))
    at = draw(st.integers(0, len(raw)))
    junk = draw(
        st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\\x1", b"\xef\xbb\xbf", b"}", b'"'])
    )
    if cut == "truncate":
        raw = raw[:at]
    elif cut == "insert":
        raw = raw[:at] + junk + raw[at:]
    elif cut == "overwrite":
        raw = raw[:at] + junk + raw[at + len(junk) :]
    return raw


HOSTILE_EXPORT = st.one_of(
    mutated_export(),
    st.integers(1, 5_000).map(lambda n: ("[" * n + "]" * n).encode()),
    st.integers(1, 5_000).map(lambda n: ('{"messages": ' + "[" * n).encode()),
    st.integers(4_290, 4_310).map(lambda n: b'{"id": ' + b"9" * n + b', "messages": []}'),
    st.binary(max_size=200),
)


def archive_digest(db: Path) -> tuple[dict[str, int], str]:
    """Row counts per table and a hash of every row: equal before and after means nothing changed."""
    with closing(sqlite3.connect(db)) as conn:
        tables = [
            name
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        ]
        counts: dict[str, int] = {}
        digest = hashlib.sha256()
        for table in tables:
            rows = sorted(repr(row) for row in conn.execute(f'SELECT * FROM "{table}"'))
            counts[table] = len(rows)
            digest.update(f"{table}:{rows}".encode("utf-8", "surrogatepass"))
    return counts, digest.hexdigest()


@pytest.mark.parametrize("examples", SIZES)
def test_importer_refuses_malformed_exports_and_changes_nothing(examples: int, tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    db = tmp_path / "tgmon.db"
    export = tmp_path / "result.json"
    archive = loop.run_until_complete(SqliteArchive.open(db))
    pipeline = Pipeline(archive, FixedDetector(), RecordingSink())
    state = {"imported": 0, "refused": 0}
    digest = archive_digest(db)

    def check(raw: bytes) -> None:
        nonlocal digest
        export.write_bytes(raw)
        try:
            loop.run_until_complete(import_exports(pipeline, [export], alerts=False))
        except ExportFormatError as error:
            assert str(error).startswith(str(export)) and error.problem, error
            assert len(str(error)) < 1000, str(error)[:200]  # names the problem; never echoes a huge value
            assert archive_digest(db) == digest, str(error)
            state["refused"] += 1
        else:
            digest = archive_digest(db)
            state["imported"] += 1

    try:
        loop.run_until_complete(import_exports(pipeline, [EXPORTS / "single_chat"]))
        digest = archive_digest(db)
        fuzz(examples, HOSTILE_EXPORT, check)
        assert loop.run_until_complete(archive.fts_consistent())
        assert loop.run_until_complete(archive.integrity_ok())
    finally:
        loop.run_until_complete(archive.close())
        loop.close()
    assert state["refused"] and state["imported"]  # both paths were exercised


# --- full-text search --------------------------------------------------------------------------------

FTS_PIECES = [
    '"', "*", "NEAR(", "NEAR", "^", ":", "AND", "OR", "NOT", "body:", "posts_fts:", "{body}", "{body text}:",
    "-", "+", "(", ")", "'", "''", "\x00", ",", "a", "пост", "протест*", "Алматы", "lang:ru", "channel:@x",
    "rank", "MATCH", ";", "--", "/*", "*/", "%", "_", "\\", "$", "?", "@", "x*y", "\"\"", "🔥", "中文",
]  # fmt: skip
HOSTILE_SEARCH = st.one_of(
    ANY_TEXT,
    splice(st.sampled_from([*FTS_PIECES, " "]), 16),
    st.lists(st.sampled_from(FTS_PIECES), min_size=1, max_size=10).map(" ".join),
    query_text(0),
)
SEARCH_POSTS = [
    'Протест в Алматы: NEAR(пост) "кавычки" и body:колонка',
    "a" * 3000 + "!",
    "🔥" * 500 + " протест",
    "\u202eперевёрнутый\u200b текст ^ * ( ) AND OR NOT",
    "中文 文本 抗议 哈萨克斯坦",
    "x*y 'quote' \x00 nul",
]


def check_search(loop: asyncio.AbstractEventLoop, archive: SqliteArchive, text: str) -> None:
    try:
        result = loop.run_until_complete(search(archive, text, limit=5))
    except QuerySyntaxError as error:
        assert error.message != CATCH_ALL and 0 <= error.position <= len(text), error
        return
    assert result.scanned >= len(result.hits)


@pytest.mark.parametrize("examples", SIZES)
def test_search_never_hands_sqlite_raw_input(examples: int, tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    archive = loop.run_until_complete(SqliteArchive.open(tmp_path / "tgmon.db"))
    try:
        pipeline = Pipeline(archive, FixedDetector(), RecordingSink())
        loop.run_until_complete(import_exports(pipeline, [EXPORTS / "single_chat"]))
        loop.run_until_complete(archive.upsert_channel(77, "hostile", "Hostile <b>&</b>"))
        when = datetime(2026, 1, 1, tzinfo=UTC)
        raws = [RawPost(77, n, when, text) for n, text in enumerate(SEARCH_POSTS, 1)]
        loop.run_until_complete(pipeline.ingest(raws, alerts=False))
        fuzz(examples, HOSTILE_SEARCH, lambda text: check_search(loop, archive, text))
    finally:
        loop.run_until_complete(archive.close())
        loop.close()


# --- bot commands and buttons through the real dispatcher ----------------------------------------------

ADMIN, BOT_ID = 111, 42
COMMAND_NAMES = [
    "start", "help", "add", "list", "remove", "lang", "channels", "pause", "resume", "quiet", "timezone",
    "digest", "summary", "language", "grant", "revoke", "roles", "invite", "watch", "unwatch", "watched",
    "stats", "search", "export", "nosuchcommand",
]  # fmt: skip
COMMAND_ARGS = st.one_of(
    HOSTILE_ARGS.map(lambda args: args[:4000]),
    HOSTILE_QUERY,
    st.tuples(st.sampled_from(["@someone", "123", "²", "9" * 30]), st.sampled_from(ARG_PIECES)).map(" ".join),
)
COMMAND_TEXT = st.tuples(
    st.sampled_from(COMMAND_NAMES), st.sampled_from(["", "@tgmon_test_bot"]), COMMAND_ARGS
).map(lambda c: f"/{c[0]}{c[1]} {c[2]}"[:4096])
CALLBACK_DATA = st.tuples(
    st.sampled_from(["q1", "c1", "m1", "l1", "s1", "x1", "zz", ""]),
    st.lists(st.one_of(st.sampled_from(["p", "r", "d", "0", "1", "-1", "add", "list", "ru", "en", "true"]),
                       st.integers(-(2**70), 2**70).map(str), st.text(max_size=6)), max_size=3),
).map(lambda c: ":".join([c[0], *c[1]]).encode()[:64].decode(errors="ignore"))  # fmt: skip
UPDATES = st.one_of(
    COMMAND_TEXT.map(lambda text: ("message", text)),
    HOSTILE_ARGS.map(lambda text: ("message", text[:4096] or "x")),
    CALLBACK_DATA.map(lambda data: ("callback", data)),
)


class NoDigests:
    async def send_now(self, subscriber: Subscriber, period: timedelta, until: datetime | None = None) -> int:
        return 0


class Failures(logging.Handler):
    """The dispatcher's error handler logs `handler_failed` for every exception a handler lets out."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def bot_under_test(archive: SqliteArchive, bot: Bot) -> Iterator[tuple[Dispatcher, Failures]]:
    settings = Settings(_env_file=None, bot_token=SecretStr(f"{BOT_ID}:TEST"), admin_ids=[ADMIN])  # type: ignore[call-arg]
    service = SubscriberService(archive, SubscriptionStore(archive), max_queries=5)
    unlimited = 10**9
    dp = build_dispatcher(
        archive, settings, service=service, digests=NoDigests(), limiter=RateLimiter(unlimited),
        searches=SearchSessions(rate=unlimited),
    )  # fmt: skip
    failures = Failures()
    logging.getLogger("tgmon.bot").addHandler(failures)
    try:
        yield dp, failures
    finally:
        logging.getLogger("tgmon.bot").removeHandler(failures)


def make_update(n: int, kind: str, value: str) -> Update:
    user = User(id=ADMIN, is_bot=False, first_name="Ann", language_code="ru" if n % 2 else "en")
    chat = Chat(id=ADMIN, type="private")
    when = datetime(2026, 1, 5, tzinfo=UTC)
    if kind == "callback":
        me = User(id=BOT_ID, is_bot=True, first_name="b")
        shown = Message(message_id=1, date=when, chat=chat, from_user=me, text="…")
        return Update(update_id=n, callback_query=CallbackQuery(
            id=str(n), from_user=user, chat_instance="ci", data=value, message=shown))  # fmt: skip
    command = value.split(maxsplit=1)[0] if value.startswith("/") else ""
    entities = [MessageEntity(type="bot_command", offset=0, length=len(command))] if command else None
    return Update(update_id=n, message=Message(message_id=n, date=when, chat=chat, from_user=user, text=value,
                                               entities=entities))  # fmt: skip


async def feed(dp: Dispatcher, bot: Bot, n: int, kind: str, value: str) -> None:
    await dp.feed_update(bot, make_update(n, kind, value))


@pytest.mark.parametrize("examples", SIZES)
def test_bot_commands_and_buttons_always_answer_clearly(examples: int, tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    archive = loop.run_until_complete(SqliteArchive.open(tmp_path / "tgmon.db"))
    session = FakeBotSession()
    bot = Bot(f"{BOT_ID}:TEST", session=session, default=DefaultBotProperties(parse_mode="HTML"))
    counter = iter(range(1, 10**9))
    try:
        with bot_under_test(archive, bot) as (dp, failures):

            def check(update: tuple[str, str]) -> None:
                kind, value = update
                before, refused = len(session.calls), len(session.refused)
                loop.run_until_complete(feed(dp, bot, next(counter), kind, value))
                calls = session.calls[before:]
                assert not failures.records, (value, failures.records[0].exc_info)
                # a button under a message the fake never sent is redrawn as a new message: that 400 is fine
                refusals = [r for r in session.refused[refused:] if "message to edit not found" not in r]
                assert refusals == [], (value, refusals)
                if kind == "callback":
                    assert any(isinstance(c, AnswerCallbackQuery) for c in calls), value
                else:  # a message, never silence
                    replies = [c.text for c in calls if isinstance(c, SendMessage)]
                    assert replies and ERROR_TEXT not in replies, (value, replies)

            fuzz(examples, UPDATES, check)
    finally:
        loop.run_until_complete(archive.close())
        loop.close()


async def test_hostile_commands_over_http_get_a_reply(archive: SqliteArchive) -> None:
    """A sample through the real dispatcher, the updates shaped by the fake Bot API server and every
    answer going to it over aiogram's HTTP session."""
    async with FakeBotAPI() as server:
        bot = server.make_bot(f"{BOT_ID}:TEST")
        samples: list[tuple[str, str]] = []
        fuzz(QUICK // 4, UPDATES, samples.append)
        try:
            with bot_under_test(archive, bot) as (dp, failures):
                for kind, value in samples:
                    before = len(server.calls)
                    if kind == "callback":
                        update = server.push_callback(ADMIN, value, message_id=1)
                    else:
                        update = server.push_message(ADMIN, value)
                    server.updates.clear()  # fed here, not polled
                    await dp.feed_update(bot, Update.model_validate(update, context={"bot": bot}))
                    calls = server.calls[before:]
                    assert calls and all(call.ok for call in calls), (value, [c.response for c in calls])
                    expected = "answerCallbackQuery" if kind == "callback" else "sendMessage"
                    assert any(call.method == expected for call in calls), (value, calls)
                assert not failures.records
        finally:
            await bot.session.close()


# --- regressions: what the fuzzers found, one case each --------------------------------------------


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("9223372036854775808", "too large"),  # past SQLite's integer: /watch would have crashed
        ("-100" + "7" * 5000, "too large"),  # past int()'s 4,300 digits: a ValueError escaped
        ("t.me/c/²/1", "is not a channel"),  # "²".isdigit() but int("²") fails
        ("0", "too small"),
        ("\u200b" * 3000, "is not a channel"),
    ],
)
def test_channel_refs_refuse_impossible_ids_briefly(text: str, phrase: str) -> None:
    with pytest.raises(ChannelRefError, match=phrase) as caught:
        parse_channel_ref(text)
    assert len(str(caught.value)) < 200  # the whole text was echoed: a refusal Telegram would reject


@pytest.mark.parametrize("text", ["²", "9" * 4301, "9" * 4000, "0"])
def test_backfill_refuses_odd_digits_briefly(text: str) -> None:
    with pytest.raises(ServiceError) as caught:
        parse_backfill(text)
    assert len(str(caught.value.args_["text"])) <= 40


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        ("since=0001-01-01T00:00+01:00", "is not a date"),  # OverflowError in astimezone
        ("since=" + "9" * 4000, "is not a date"),
        ("x" * 4000 + "=1", "is not an export option"),
    ],
)
def test_export_args_refuse_briefly(args: str, phrase: str) -> None:
    with pytest.raises(ExportParseError, match=phrase) as caught:
        parse_export(args)
    assert len(str(caught.value)) < 200


async def test_export_query_error_fits_a_message(tmp_path: Path) -> None:
    """/export query=<4,000 characters>: the error quoted the whole query, a message Telegram rejects."""
    loop_archive = await SqliteArchive.open(tmp_path / "tgmon.db")
    session = FakeBotSession()
    bot = Bot(f"{BOT_ID}:TEST", session=session, default=DefaultBotProperties(parse_mode="HTML"))
    try:
        with bot_under_test(loop_archive, bot) as (dp, failures):
            await feed(dp, bot, 1, "message", "/export query=" + "протест " * 500)
            await feed(dp, bot, 2, "message", "/grant ² analyst")  # int("²") escaped as a ValueError
            await feed(dp, bot, 3, "message", "/grant 99999999999999999999999 analyst")  # SQLite overflow
            await feed(dp, bot, 4, "message", "/watch @tengrinews backfill=" + "9" * 4301)
        assert not failures.records and session.refused == []
        replies = session.texts()
        assert len(replies) == 4 and "too long" in replies[0] and "^" in replies[0]
        assert all("²" in r or "9999" in r for r in replies[1:])
    finally:
        await loop_archive.close()


def write_export(path: Path, chats: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"chats": {"list": chats}}), encoding="utf-8")
    return path


def channel(chat_id: Any, *messages: dict[str, Any]) -> dict[str, Any]:
    return {"name": "C", "type": "public_channel", "id": chat_id, "messages": list(messages)}


def message(mid: Any, text: Any = "пост", **extra: Any) -> dict[str, Any]:
    return {"id": mid, "type": "message", "date_unixtime": "1700000000", "text": text, **extra}


@pytest.mark.parametrize(
    ("bad", "phrase"),
    [
        (channel(2**63, message(1)), "the chat 'id' is out of range"),
        (channel(7, message(2**63)), "has no integer 'id'"),
        (channel(7, message(1, reply_to_message_id=-(2**63) - 1)), "'reply_to_message_id' is not an integer"),
        (channel(7, {"id": 1, "date": "0001-01-01T00:00:00+01:00"}), "'date' is out of range"),
        (channel(7, message(1, date_unixtime="9" * 5000)), "'date_unixtime' is out of range: '9999"),
    ],
)
async def test_import_refuses_values_sqlite_cannot_store_and_writes_nothing(
    archive: SqliteArchive, pipeline: Pipeline, tmp_path: Path, bad: dict[str, Any], phrase: str
) -> None:
    """The second chat used to fail only when written (OverflowError): the first was already stored."""
    export = write_export(tmp_path / "result.json", [channel(5, message(1)), bad])
    with pytest.raises(ExportFormatError, match=phrase) as caught:
        await import_exports(pipeline, [export])
    assert len(str(caught.value)) < 300
    assert await archive.count_posts() == 0


@pytest.mark.parametrize(
    ("raw", "phrase"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nest too deeply"),  # RecursionError
        (b'{"id": ' + b"9" * 4301 + b', "messages": []}', "thousands of digits"),  # ValueError from int()
    ],
)
def test_reader_refuses_json_python_cannot_hold(tmp_path: Path, raw: bytes, phrase: str) -> None:
    export = tmp_path / "result.json"
    export.write_bytes(raw)
    with pytest.raises(ExportFormatError, match=phrase):
        load_exports([export])


async def test_import_repairs_lone_surrogates(
    archive: SqliteArchive, pipeline: Pipeline, tmp_path: Path
) -> None:
    """A lone `\\ud83d` escape is valid JSON but no UTF-8: SQLite refused it after the first chat was
    stored. Now it is U+FFFD (one UTF-16 unit, like the surrogate: entity offsets still hold)."""
    pieces = [{"type": "bold", "text": "\ud83d"}, " пост ", {"type": "italic", "text": "x"}]
    chats = [channel(5, message(1)), channel(6, message(1, pieces, author="\udc00"))]
    export = tmp_path / "result.json"
    export.write_text(json.dumps({"chats": {"list": chats}}), encoding="ascii")  # escapes, as JSON allows
    report = await import_exports(pipeline, [export])
    assert report.new == 2
    stored = await archive.get_post(6, 1)
    assert stored is not None and stored.text == "\ufffd пост x" and stored.author == "\ufffd"
    assert [(e.type, e.offset, e.length) for e in stored.entities] == [("bold", 0, 1), ("italic", 7, 1)]


def test_alert_with_a_far_future_date_and_many_long_queries_is_accepted() -> None:
    """Year 9999 in a zone east of UTC raised OverflowError; 50 queries of 500 characters (or 30 long
    "also in" labels) made a message Telegram refuses, and the alert was lost."""
    payload = {
        "channel_title": "🔥" * 300, "date": "9999-12-31T23:59:59+00:00", "url": "https://t.me/x/1",
        "queries": ["протест " * 62] * 50, "snippet": "протест", "spans": [[0, 7]],
        "also_in": ["@x" * 40] * 30,
    }  # fmt: skip
    message = render_alert(payload, "ru", "Asia/Almaty")
    assert refusal(message) is None and "<b>протест</b>" in message and "+45" in message and "+20" in message


def test_folded_alerts_count_utf16_units() -> None:
    """Ten entries of 160 emoji each: 1,600 characters but 3,200 UTF-16 units of snippets."""
    payload = {"channel_title": "😀" * 100, "snippet": "😀" * 400, "spans": [], "queries": ["😀" * 90] * 5}
    messages = render_folded([payload] * 10)
    assert all(refusal(m) is None for m in messages) and len(messages) > 1
