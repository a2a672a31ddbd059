"""Hostile post texts (issue 7): markup characters, zero-width and right-to-left marks, emoji with
surrogate pairs, texts of 4,096 characters and more, matches at the end of a text and around emoji.

Every alert, folded burst, /search page and digest rendered from them must be a message Telegram
accepts: the fake Bot API's own checks (`tests.fakes.botapi.refusal`: well-formed HTML with Telegram's
tags only, at most 4,096 UTF-16 units of text after parsing, captions at most 1,024) find no 400, and a
sample goes through the fake server over HTTP. Catastrophic regular expressions are cut off by the
matcher's time limit in the matcher itself, in search and in the pipeline, and treated as no match.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import strategies as st

from bot.render import fold_first, render_alert, render_folded
from bot.texts import search_results_text, translator
from core.alerts import snippet
from core.digest import Digest, TopPost, caption_and_rest, render_digest
from core.models import Post, RawPost
from core.pipeline import Pipeline
from core.query.index import QueryIndex
from core.query.matcher import Document, Span, compile_query
from core.search import Hit, search
from core.storage.sqlite import SqliteArchive
from tests.fakes.botapi import FakeBotAPI, parse_html, refusal
from tests.fakes.memory import FixedDetector, RecordingSink
from tests.test_fuzz import QUICK, fuzz, repeated, splice

HOSTILE_PIECES = [
    "<", ">", "&", "<b>", "</b>", "<i>", "&amp;", "&lt;", "&#0;", "&#x110000;", "&bogus;", "`", "```", "*",
    "**", "_", "__", "~", "|", "||", "[", "]", "(", ")", "[x](http://a)", "<a href=\"x\">", '"', "'", "\\",
    "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202e", "\u2066", "\u2069", "\ufeff",
    "\u0301", "🔥", "👩‍👩‍👧‍👦", "🇰🇿", "❤️", "𝕏", "😀", "Ж", "қ", "中", "ع", " ", "  ", "\n", "\t", "\r",
    "\x00", "\x7f", "протест", "Алматы", "protest", "Almaty",
]  # fmt: skip
HOSTILE_TEXT = st.one_of(
    st.text(max_size=300),
    splice(st.sampled_from(HOSTILE_PIECES), 80),
    repeated(st.sampled_from(HOSTILE_PIECES), 4_000, 9_000),
    repeated(
        st.sampled_from(["🔥", "😀", "𝕏", "👩‍👩‍👧‍👦"]), 2_000, 5_000
    ),  # 4,096+ UTF-16 units in fewer characters
)
SHORT_TEXT = st.one_of(st.text(max_size=40), splice(st.sampled_from(HOSTILE_PIECES), 12))
LABEL = st.one_of(SHORT_TEXT, repeated(st.sampled_from(HOSTILE_PIECES), 100, 255))
# what the matcher finds in a hostile text: words (often glued to emoji and marks) and the last character;
# few enough matches that the regex time limit never decides, so every case replays the same
QUERY = compile_query("протест OR Алматы OR protest OR /.$/")
QUERY_TEXTS = st.one_of(
    st.lists(SHORT_TEXT, max_size=3),
    st.lists(
        repeated(st.sampled_from(HOSTILE_PIECES), 400, 500), max_size=50
    ),  # 50 queries of 500 characters
)


def accepted(message: str, *, caption: bool = False) -> str:
    """The text Telegram shows for this HTML message; fails the test on any 400 it would answer."""
    problem = refusal(message, caption=caption)
    assert problem is None, f"{problem}: {message[:300]!r}"
    return parse_html(message)[0]


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    """An alert payload as core.alerts builds it, from a hostile post and the matcher's real spans (or
    arbitrary ones, some past the end), with hostile channel names and queries."""
    text = draw(HOSTILE_TEXT)
    spans: list[Span] = list(QUERY.match(Document.of(text)) or ())
    if draw(st.booleans()):
        bounds = sorted(draw(st.lists(st.integers(0, len(text) + 5), max_size=12)))
        spans = [Span(a, b) for a, b in zip(bounds[::2], bounds[1::2], strict=False) if a < b]
    shown, inside = snippet(text, spans)
    title = draw(LABEL)
    return {
        "channel": draw(st.sampled_from([f"@{title}", title, ""])),
        "channel_title": title,
        "url": draw(st.sampled_from(["https://t.me/kz_news/1", 'https://t.me/c/1/2?a="><b>&x', ""])),
        "date": draw(
            st.sampled_from(["2026-01-05T10:00:00+00:00", "not a date", "9999-12-31T23:59:59+00:00"])
        ),
        "lang": draw(st.sampled_from(["ru", "und", "<b>", "", "kk"])),
        "queries": draw(QUERY_TEXTS),
        "snippet": shown,
        "spans": inside,
        "truncated": len(shown) < len(text),
        "edited": draw(st.booleans()),
        "also_in": draw(st.lists(LABEL, max_size=30)),
    }


# Rendering cases cost more to generate than the parsers' (texts of up to 9,000 characters)
SIZES = [pytest.param(QUICK, id="quick"), pytest.param(2_000, id="long", marks=pytest.mark.slow)]
UI = st.sampled_from([("en", "UTC"), ("ru", "Asia/Almaty"), ("de", "Pacific/Kiritimati")])


def check_alert(case: tuple[dict[str, Any], tuple[str, str]]) -> None:
    payload, (lang, tz) = case
    shown = accepted(render_alert(payload, lang, tz))
    start = payload["snippet"][:20].strip()
    assert start in shown or not start, (start, shown[:200])  # escaped, not eaten


def check_burst(case: tuple[list[dict[str, Any]], tuple[str, str]]) -> None:
    burst, (lang, tz) = case
    for message in render_folded(burst, lang, tz):
        accepted(message)
    message, used = fold_first(burst, lang, tz)
    accepted(message)
    assert 1 <= used <= len(burst)


@pytest.mark.parametrize("examples", SIZES)
def test_alerts_from_hostile_posts_are_accepted(examples: int) -> None:
    fuzz(examples, st.tuples(payloads(), UI), check_alert)


@pytest.mark.parametrize("examples", SIZES)
def test_folded_bursts_of_hostile_alerts_are_accepted(examples: int) -> None:
    fuzz(examples, st.tuples(st.lists(payloads(), min_size=1, max_size=12), UI), check_burst)


def post(text: str, title: str | None, username: str | None = None) -> Post:
    at = datetime(2026, 1, 5, 10, tzinfo=UTC)
    return Post(
        channel_id=7, message_id=1, date=at, text=text, entities=(), lang="ru", lang_confidence=1.0,
        views=None, forwards=None, replies=None, reactions=None, media_type=None, forwarded_from=None,
        reply_to=None, album_id=None, author=None, service_action=None, tags=(),
        permalink='https://t.me/c/7/1?"<&>', edit_date=None, deleted_at=None, collected_at=at,
        content_hash="", channel_username=username, channel_title=title,
    )  # fmt: skip


def check_search_page(case: tuple[str, list[tuple[str, str]], str]) -> None:
    query, found, lang = case
    hits = [Hit(post(text, title), tuple(QUERY.match(Document.of(text)) or ())) for text, title in found]
    accepted(search_results_text(translator(lang), query, hits, page=0, first=1, partial_after=20_000))


@pytest.mark.parametrize("examples", SIZES)
def test_search_pages_of_hostile_posts_are_accepted(examples: int) -> None:
    page = st.lists(st.tuples(HOSTILE_TEXT, LABEL), max_size=5)
    fuzz(examples, st.tuples(SHORT_TEXT, page, st.sampled_from(["en", "ru"])), check_search_page)


@st.composite
def digests(draw: st.DrawFn) -> Digest:
    until = datetime(2026, 1, 5, 10, tzinfo=UTC)
    counts = st.integers(0, 10**7)
    links = st.sampled_from(["https://t.me/x/1", 'https://t.me/"<&>', ""])
    top = [
        TopPost(draw(LABEL), draw(LABEL), draw(links), draw(st.none() | counts), draw(st.none() | counts),
                draw(st.lists(LABEL, max_size=15)), until, draw(st.none() | st.sampled_from(["photo", "<b>"]))
        )
        for _ in range(draw(st.integers(0, 10)))
    ]  # fmt: skip
    return Digest(
        subscriber_id=1,
        since=until - timedelta(days=draw(st.integers(0, 7)), hours=1),
        until=until,
        total_matches=draw(counts),
        stories=draw(counts),
        per_query=draw(
            st.lists(st.tuples(repeated(st.sampled_from(HOSTILE_PIECES), 1, 500), counts), max_size=50)
        ),
        per_channel=draw(st.lists(st.tuples(LABEL, counts), max_size=30)),
        per_language=draw(
            st.lists(st.tuples(st.sampled_from(["ru", "xx", "<b>", "und"]), counts), max_size=5)
        ),
        top_posts=top,
        trending=draw(st.lists(st.tuples(SHORT_TEXT, counts, counts), max_size=20)),
    )


def check_digest(case: tuple[Digest, tuple[str, str]]) -> None:
    digest, (lang, tz) = case
    parts = render_digest(digest, lang, tz)
    assert parts
    for part in parts:
        accepted(part)
    caption, rest = caption_and_rest(parts)
    accepted(caption, caption=True)
    for part in rest:
        accepted(part)


@pytest.mark.parametrize("examples", SIZES)
def test_digests_of_hostile_posts_are_accepted(examples: int) -> None:
    fuzz(examples, st.tuples(digests(), UI), check_digest)


async def test_hostile_alerts_over_http_get_no_400() -> None:
    """A sample through the fake server over HTTP, as the bot's delivery sends them."""
    async with FakeBotAPI() as server:
        bot = server.make_bot()
        messages: list[str] = []
        fuzz(
            QUICK // 4,
            st.tuples(payloads(), UI),
            lambda case: messages.append(render_alert(case[0], *case[1])),
        )
        try:
            for message in messages:
                await bot.send_message(42, message, parse_mode="HTML")
        finally:
            await bot.session.close()
    calls = server.sent("sendMessage")
    assert len(calls) == len(messages) and all(call.ok for call in calls)


def test_the_fake_refuses_what_telegram_refuses() -> None:
    assert (
        refusal("<b>x")
        == "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\""
    )
    assert refusal("<script>x</script>", parse_mode="HTML") is not None
    assert refusal("<script>x</script>", parse_mode=None) is None
    assert refusal("😀" * 2048) is None
    assert refusal("😀" * 2049) == "Bad Request: message is too long"  # 4,098 UTF-16 units
    assert refusal("<b>" + "a" * 4096 + "</b>") is None  # tags are not text
    assert refusal("&amp;" * 4096) is None and refusal("&amp;" * 4097) == "Bad Request: message is too long"
    assert refusal("a" * 1025, caption=True) == "Bad Request: message caption is too long"
    assert refusal("", caption=True) is None and refusal(" ") == "Bad Request: message text is empty"


# --- catastrophic regular expressions --------------------------------------------------------------

# each pattern against a text it backtracks on for seconds (or forever) without the time limit
CATASTROPHIC = [
    ("/(a+)+$/", "a" * 5_000 + "!"),
    ("/(a|aa)*c/", "a" * 100 + "bc"),
    ("/(.*a){20}/", ("a" + "b" * 200) * 19),
    ("/(x+x+)+y/", "x" * 5_000),
]
BOUND = 5.0  # CPU seconds: not a speed check (the load of the machine does not count), only that a
# bad pattern cannot hang the caller: unchecked, these patterns would run for ages


@pytest.mark.parametrize(("query", "text"), CATASTROPHIC)
def test_matcher_cuts_off_a_catastrophic_regex(
    query: str, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    compiled = compile_query(query)
    started = time.process_time()
    with caplog.at_level(logging.WARNING, logger="tgmon.query"):
        assert compiled.match(Document.of(text)) is None
    assert time.process_time() - started < BOUND
    assert any("regex_timeout" in r.getMessage() for r in caplog.records)


async def test_search_cuts_off_a_catastrophic_regex(
    archive: SqliteArchive, caplog: pytest.LogCaptureFixture
) -> None:
    await archive.upsert_channel(7, "kz", "KZ")
    when = datetime(2026, 1, 5, tzinfo=UTC)
    texts = ["a" * 5_000 + "!", "a" * 3_000 + "?", "aaa"]
    await Pipeline(archive, FixedDetector()).ingest([RawPost(7, n, when, t) for n, t in enumerate(texts, 1)])
    started = time.process_time()
    with caplog.at_level(logging.WARNING, logger="tgmon.query"):
        result = await search(archive, "/(a+)+$/")
    assert time.process_time() - started < BOUND * len(texts)
    assert [hit.post.text for hit in result.hits] == ["aaa"]  # the cut-off posts count as no match
    assert result.scanned == len(texts)
    assert sum("regex_timeout" in r.getMessage() for r in caplog.records) >= 2


async def test_pipeline_cuts_off_a_catastrophic_regex(
    archive: SqliteArchive, sink: RecordingSink, caplog: pytest.LogCaptureFixture
) -> None:
    index = QueryIndex()
    index.add(1, compile_query("/(a+)+$/"))
    index.add(2, compile_query("протест"))
    pipeline = Pipeline(archive, FixedDetector(), sink, queries=index)
    await archive.upsert_channel(7, "kz", "KZ")
    when = datetime(2026, 1, 5, tzinfo=UTC)
    raws = [RawPost(7, 1, when, "a" * 5_000 + "!"), RawPost(7, 2, when, "протест " + "a" * 5_000 + "!")]
    started = time.process_time()
    with caplog.at_level(logging.WARNING, logger="tgmon.query"):
        result = await pipeline.ingest(raws)
    assert time.process_time() - started < BOUND
    assert len(result.new) == 2 and await archive.count_posts() == 2  # stored all the same
    matched = {item.post.message_id: [m.query_id for m in item.matches] for item in sink.items}
    assert matched == {1: [], 2: [2]}
    assert any("regex_timeout" in r.getMessage() for r in caplog.records)


def test_hostile_text_strategies_reach_the_limits() -> None:
    """The strategies above do produce what this file promises (a check on the generators)."""
    seen: list[str] = []
    fuzz(QUICK, HOSTILE_TEXT, seen.append)
    assert any(len(t.encode("utf-16-le")) // 2 > 4_096 for t in seen)
    assert any("\u202e" in t or "\u200f" in t for t in seen) and any("<" in t for t in seen)
