"""Fuzzing hostile and malformed input (issue 7): the query parser, the bot's argument parsers and
handlers, the Desktop-export reader and importer, and full-text search.

Every target runs QUICK cases in the default run and LONG more behind `@pytest.mark.slow` (`.ci/run`
runs both): `pytest -m "not slow" tests/test_fuzz.py` is the quick pass, `pytest tests/test_fuzz.py`
the long one. A case counts once per generated input; each asserts what the user gets back: a clear
message (the right error type, a position inside the query, a refusal the bot can render) and never an
exception of another kind, a traceback, or a changed archive.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.handlers.admin import role_arg
from bot.handlers.export import ExportParseError, parse_export
from bot.handlers.operators import parse_backfill, parse_watch
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
from bot.services.subscribers import ServiceError
from bot.texts import caret_block, translator
from collectors.refs import ChannelRefError, parse_channel_ref
from collectors.tdesktop import ExportFormatError
from core.importer import import_exports
from core.pipeline import Pipeline
from core.query.ast import QuerySyntaxError
from core.query.matcher import Document, compile_query
from core.query.parser import MAX_QUERY_CHARS, looks_for_something, parse
from core.storage.sqlite import SqliteArchive
from tests.conftest import FIXTURES
from tests.fakes.botapi import TEXT_LIMIT, HtmlParseError, parse_html
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
