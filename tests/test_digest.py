"""Digests: building from recorded matches, rendering to Telegram HTML, the chart and the schedule."""

from __future__ import annotations

import itertools
import re
import struct
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from core.digest import (
    CAPTION_LIMIT,
    MESSAGE_LIMIT,
    Digest,
    TopPost,
    build_digest,
    caption_and_rest,
    render_digest,
    snippet,
    utf16_len,
)
from core.digest_chart import bins, matches_chart
from core.digest_schedule import digest_period, due, last_slot, next_digest_at, zone
from core.models import ProcessedPost, RawPost
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import AlertRecord, SubscriptionStore
from core.subscriptions import DigestMode, Subscriber

UNTIL = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SINCE = UNTIL - DAY
SUB = 42
NEWS = "Protest in Almaty: police blockade on the square\nthousands came, see t.me/alpha_news"


_TAGS = re.compile(r'</?[bi]>|<a href="[^"<>]*">|</a>')
_BARE_AMP = re.compile(r"&(?!(?:amp|lt|gt|quot|#x27);)")


class _Html(HTMLParser):
    """Checks Telegram HTML: only <b>, <i>, <a href>, balanced; collects the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in {"b", "i", "a"}:
            self.errors.append(f"tag {tag}")
        if tag == "a" and [name for name, _ in attrs] != ["href"]:
            self.errors.append(f"a attrs {attrs}")
        if tag != "a" and attrs:
            self.errors.append(f"{tag} attrs {attrs}")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_html(part: str) -> str:
    parser = _Html()
    parser.feed(part)
    parser.close()
    assert not parser.errors and not parser.stack, (parser.errors, parser.stack, part[:300])
    bare = _TAGS.sub("", part)  # outside the tags: only escaped text
    assert "<" not in bare and ">" not in bare and not _BARE_AMP.search(bare), bare[:300]
    return "".join(parser.text)


async def save(
    archive: SqliteArchive,
    channel: int,
    message: int,
    date: datetime,
    text: str,
    *,
    lang: str = "en",
    story: str | None = None,
    views: int | None = None,
    forwards: int | None = None,
) -> None:
    raw = RawPost(channel, message, date, text, views=views, forwards=forwards)
    await archive.save_posts([ProcessedPost(raw, lang, 0.9, (), f"h{channel}:{message}", story)])


@pytest.fixture
async def store(archive: SqliteArchive) -> SubscriptionStore:
    """Two queries; five posts matched in the period (one story in two channels), two before, one after."""
    await archive.upsert_channel(1, "alpha_news", "Alpha")
    await archive.upsert_channel(2, "beta_news", "Beta")
    await archive.upsert_channel(3, None, "Gamma & <Co>")
    s = SubscriptionStore(archive)
    await s.upsert_subscriber(SUB, SUB, "en")
    await s.update_subscriber(SUB, timezone="Asia/Almaty", digest=DigestMode.DAILY)
    protest = (await s.add_query(SUB, "protest")).id
    almaty = (await s.add_query(SUB, "almaty")).id
    await s.add_query(SUB, "metro")  # no matches: its word still is no trend
    posts = [  # channel, message, hours after SINCE, text, lang, story, views, forwards, queries
        (1, 10, 1, NEWS, "en", "1:10", 1000, 10, (protest, almaty)),
        (2, 20, 2, NEWS, "en", "1:10", 5000, 3, (protest, almaty)),
        (
            3,
            30,
            3,
            "Протест у акимата, blockade и protests продолжаются",
            "ru",
            "3:30",
            300,
            None,
            (protest,),
        ),
        (1, 11, 5, "Almaty metro blockade announced, protests spread", "en", "1:11", 50, None, (almaty,)),
        (2, 21, 6, "Almaty rally: protests and a blockade", "en", "2:21", 50, 7, (almaty,)),
        (1, 5, -3, "Blockade talk in Almaty", "en", "1:5", 10, None, (almaty,)),  # previous period
        (1, 4, -49, "Almaty blockade blockade", "en", "1:4", 10, None, (almaty,)),  # before both
        (1, 12, 24.1, "Almaty blockade later", "en", "1:12", 10, None, (almaty,)),  # after `until`
    ]
    for channel, message, hours, text, lang, story, views, forwards, _ in posts:
        date = SINCE + timedelta(hours=hours)
        await save(
            archive, channel, message, date, text, lang=lang, story=story, views=views, forwards=forwards
        )
    await s.record_alerts([AlertRecord(SUB, SUB, p[0], p[1], p[5], p[8], {}, False, 0.0) for p in posts])
    return s


async def subscriber(store: SubscriptionStore) -> Subscriber:
    found = await store.get_subscriber(SUB)
    assert found is not None
    return found


async def test_counts_top_posts_and_trending(store: SubscriptionStore) -> None:
    digest = await build_digest(store, await subscriber(store), UNTIL, DAY, chart=False)
    assert (digest.since, digest.until) == (SINCE, UNTIL)
    assert (digest.total_matches, digest.stories) == (5, 4)
    assert digest.per_query == [("almaty", 4), ("protest", 3)]
    assert digest.per_channel == [("@alpha_news", 2), ("@beta_news", 2), ("Gamma & <Co>", 1)]
    assert digest.per_language == [("en", 4), ("ru", 1)]
    assert digest.chart_png is None and len(digest.times) == 5

    top = digest.top_posts
    assert [(p.channel, p.views) for p in top] == [
        ("@beta_news", 5000), ("Gamma & <Co>", 300), ("@beta_news", 50), ("@alpha_news", 50)
    ]  # fmt: skip
    assert top[0].also_in == ["@alpha_news"] and all(not p.also_in for p in top[1:])
    assert top[0].permalink == "https://t.me/beta_news/20" and top[0].date == SINCE + timedelta(hours=2)
    assert top[0].title == "Protest in Almaty: police blockade on the square"
    assert top[1].permalink == "https://t.me/c/3/30"

    # "blockade" rose from 1 story to 3; query words (and "protests", a form of one) and stop-words never
    assert digest.trending == [("blockade", 4, 1)]

    assert (
        len((await build_digest(store, await subscriber(store), UNTIL, DAY, top=2, chart=False)).top_posts)
        == 2
    )


async def test_render_en_and_ru(store: SubscriptionStore) -> None:
    digest = await build_digest(store, await subscriber(store), UNTIL, DAY, chart=False)
    en = render_digest(digest, "en", "Asia/Almaty")
    ru = render_digest(digest, "ru", "Asia/Almaty")
    for parts in (en, ru):
        assert len(parts) == 1 and all(utf16_len(p) <= MESSAGE_LIMIT for p in parts)
        for part in parts:
            check_html(part)
    text = en[0]
    assert text.startswith("🗞 <b>Digest</b> · 9 Mar 17:00 – 10 Mar 17:00 (Asia/Almaty)")
    for heading in ("By query", "By channel", "By language", "Top posts", "Trending words"):
        assert f"<b>{heading}</b>" in text
    assert "Matching posts: <b>5</b> · stories: <b>4</b>" in text
    assert "• <i>almaty</i> — 4" in text and "Gamma &amp; &lt;Co&gt; — 1" in text
    assert "English (en) — 4" in text
    assert (
        '1. <a href="https://t.me/beta_news/20">Protest in Almaty: police blockade on the square</a>' in text
    )
    assert "<i>also in: @alpha_news</i>" in text and "👁 5K · ↗ 3" in text
    assert "• <b>blockade</b> — 4 (was 1)" in text
    assert "9 Mar 19:00" in text  # the top post's date, local
    assert ru[0].startswith("🗞 <b>Дайджест</b> · 9 мар 17:00 – 10 мар 17:00 (Asia/Almaty)")
    for heading in ("По запросам", "По каналам", "По языкам", "Главное", "Растущие слова"):
        assert f"<b>{heading}</b>" in ru[0]
    assert "также в: @alpha_news" in ru[0] and "русский (ru) — 1" in ru[0] and "(было 1)" in ru[0]
    assert render_digest(digest, "de", "Nowhere/Invalid")[0].startswith("🗞 <b>Digest</b> · 9 Mar 12:00")

    caption, rest = caption_and_rest(en)
    assert utf16_len(caption) <= CAPTION_LIMIT and caption.startswith("🗞 <b>Digest</b>")
    assert "Matching posts" in caption
    check_html(caption)
    assert "\n\n".join([caption, *rest]) == en[0]


def big_digest(queries: int) -> Digest:
    return Digest(
        subscriber_id=1,
        since=SINCE,
        until=UNTIL,
        total_matches=10_000,
        stories=9_000,
        per_query=[
            (f'query {i} <with> some & longer words to fill a line: "x" AND y', i) for i in range(queries)
        ],
        per_channel=[(f"@channel_{i}", 5) for i in range(60)],
        per_language=[("en", 10_000)],
        top_posts=[
            TopPost("t" * 100, "@c", f"https://t.me/c/{i}", 10**6, 10, [f"@o{j}" for j in range(12)], UNTIL)
            for i in range(5)
        ],
        trending=[("word", 5, 1)],
    )


def test_a_huge_digest_splits_at_line_boundaries() -> None:
    digest = big_digest(400)
    parts = render_digest(digest, "en", "UTC")
    assert len(parts) >= 3
    lines = []
    for part in parts:
        assert utf16_len(part) <= MESSAGE_LIMIT
        check_html(part)
        lines += part.split("\n")
    query_lines = [line for line in lines if line.startswith("• <i>query ")]
    assert len(query_lines) == 400  # every query line intact, once, in order
    assert [int(line.split()[2]) for line in query_lines] == list(range(400))
    assert (
        query_lines[0]
        == "• <i>query 0 &lt;with&gt; some &amp; longer words to fill a line: &quot;x&quot; AND y</i> — 0"
    )
    assert "<b>By query</b> <i>(cont.)</i>" in parts[1]
    assert sum("<b>By channel</b>" in p for p in parts) == 1  # a section that fits is never cut
    assert "<i>also in: @o0, @o1, @o2, @o3, @o4, @o5, @o6, @o7, @o8, @o9 +2</i>" in parts[-1]
    assert "👁 1M · ↗ 10" in parts[-1]

    caption, rest = caption_and_rest(parts)
    assert utf16_len(caption) <= CAPTION_LIMIT and "Matching posts" in caption
    assert all(utf16_len(p) <= MESSAGE_LIMIT for p in rest) and len(rest) == len(parts)
    for part in [caption, *rest]:
        check_html(part)
    assert "\n\n".join([caption, rest[0]]) == parts[0] and rest[1:] == parts[1:]


async def test_an_empty_period(store: SubscriptionStore) -> None:
    sub = await subscriber(store)
    digest = await build_digest(store, sub, UNTIL - 10 * DAY, DAY)  # chart=True, yet nothing to draw
    assert digest.total_matches == digest.stories == 0 and digest.chart_png is None
    assert digest.per_query == digest.top_posts == digest.trending == []
    en, ru = render_digest(digest, "en", sub.timezone), render_digest(digest, "ru", sub.timezone)
    assert en == ["🗞 <b>Digest</b> · 27 Feb 17:00 – 28 Feb 17:00 (Asia/Almaty)\n\n"
                  "No matches for your queries in this period."]  # fmt: skip
    assert len(ru) == 1 and "совпадений по вашим запросам нет" in ru[0]
    assert caption_and_rest(en) == (en[0], [])
    hourly = render_digest(await build_digest(store, sub, UNTIL, timedelta(hours=1)), "en", "UTC")
    assert hourly[0].startswith("🗞 <b>Digest</b> · 10 Mar 11:00 – 12:00 (UTC)")


def test_snippet() -> None:
    assert snippet("\n\n  First   line \nsecond") == "First line"
    long = "word " * 50
    cut = snippet(long)
    assert len(cut) <= 100 and cut.endswith("word…")
    assert snippet("") == ""


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


async def test_chart(store: SubscriptionStore) -> None:  # the only test that imports matplotlib
    digest = await build_digest(store, await subscriber(store), UNTIL, DAY)
    assert digest.chart_png is not None and len(digest.chart_png) > 1024
    assert png_size(digest.chart_png) == (800, 300)
    week = matches_chart(
        [UNTIL - timedelta(hours=5 * i) for i in range(30)], UNTIL - 7 * DAY, UNTIL, "Europe/Berlin", "Дни"
    )
    assert len(week) > 1024 and png_size(week) == (800, 300)
    assert png_size(matches_chart([], UNTIL - DAY, UNTIL, "UTC", "empty")) == (800, 300)


def test_chart_bins_are_local() -> None:
    edges, hourly = bins(SINCE, UNTIL, zone("Asia/Kolkata"))  # +05:30: local full hours are hh:30 UTC
    assert hourly and edges[0] == SINCE - timedelta(minutes=30) and edges[-1] >= UNTIL
    assert all(e.minute == 30 for e in edges) and len(edges) == 26
    berlin = zone("Europe/Berlin")
    start = datetime(2026, 3, 27, 12, tzinfo=UTC)
    edges, hourly = bins(start, start + 4 * DAY, berlin)
    assert not hourly and [e.astimezone(berlin).hour for e in edges] == [0] * len(edges)
    lengths = [(b - a) / timedelta(hours=1) for a, b in itertools.pairwise(edges)]
    assert lengths == [24, 24, 23, 24, 24]  # 2026-03-29 is 23 hours long


# --- schedule ----------------------------------------------------------------------------------------


def sub(mode: DigestMode, tz: str = "UTC", at: int = 9 * 60, day: int = 0, **kw: object) -> Subscriber:
    return Subscriber(1, 1, timezone=tz, digest=mode, digest_at=at, digest_day=day, **kw)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_periods_and_off() -> None:
    assert digest_period(DigestMode.HOURLY) == timedelta(hours=1)
    assert digest_period("daily") == DAY and digest_period(DigestMode.WEEKLY) == 7 * DAY
    with pytest.raises(ValueError):
        digest_period(DigestMode.OFF)
    off = sub(DigestMode.OFF)
    assert next_digest_at(off, UNTIL) is None and not due(off, UNTIL) and last_slot(off, UNTIL) is None


def test_hourly() -> None:
    hourly = sub(DigestMode.HOURLY, "Asia/Almaty")
    assert next_digest_at(hourly, utc(2026, 3, 10, 10, 17)) == utc(2026, 3, 10, 11)
    assert next_digest_at(hourly, utc(2026, 3, 10, 11)) == utc(2026, 3, 10, 12)  # strictly after
    assert next_digest_at(hourly, datetime(2026, 3, 10, 10, 17)) == utc(2026, 3, 10, 11)  # naive = UTC
    kolkata = sub(DigestMode.HOURLY, "Asia/Kolkata")
    assert next_digest_at(kolkata, utc(2026, 3, 10, 10, 17)) == utc(2026, 3, 10, 10, 30)
    berlin = sub(DigestMode.HOURLY, "Europe/Berlin")  # hours go on through both DST switches
    assert next_digest_at(berlin, utc(2026, 3, 29, 0, 59)) == utc(2026, 3, 29, 1)
    assert next_digest_at(berlin, utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 25, 1)
    assert next_digest_at(berlin, utc(2026, 10, 25, 1, 0)) == utc(2026, 10, 25, 2)


def test_daily_across_timezones() -> None:
    almaty = sub(DigestMode.DAILY, "Asia/Almaty", 9 * 60)  # UTC+5: 09:00 is 04:00 UTC
    assert next_digest_at(almaty, utc(2026, 3, 10, 3, 59)) == utc(2026, 3, 10, 4)
    assert next_digest_at(almaty, utc(2026, 3, 10, 4)) == utc(2026, 3, 11, 4)
    assert next_digest_at(almaty, utc(2026, 3, 10, 20)) == utc(2026, 3, 11, 4)  # 01:00 local next day
    late = sub(DigestMode.DAILY, "Asia/Almaty", 23 * 60 + 30)  # 18:30 UTC
    assert next_digest_at(late, utc(2026, 3, 10, 19)) == utc(2026, 3, 11, 18, 30)
    la = sub(DigestMode.DAILY, "America/Los_Angeles", 8 * 60)
    assert next_digest_at(la, utc(2026, 3, 10, 12)) == utc(2026, 3, 10, 15)  # PDT since 2026-03-08
    assert next_digest_at(sub(DigestMode.DAILY, "Bad/Zone"), utc(2026, 3, 10, 12)) == utc(2026, 3, 11, 9)


def test_daily_across_berlin_dst() -> None:
    nine = sub(DigestMode.DAILY, "Europe/Berlin", 9 * 60)
    assert next_digest_at(nine, utc(2026, 3, 28, 8)) == utc(2026, 3, 29, 7)  # 09:00 CET, then CEST
    assert next_digest_at(nine, utc(2026, 10, 24, 7)) == utc(2026, 10, 25, 8)  # 09:00 CEST, then CET
    gap = sub(DigestMode.DAILY, "Europe/Berlin", 2 * 60 + 30)  # 02:30 does not exist on 2026-03-29
    slots = [utc(2026, 3, 28, 0)]
    for _ in range(3):
        found = next_digest_at(gap, slots[-1])
        assert found is not None
        slots.append(found)
    # 02:30 CET; the gap day at 03:30 CEST (gap length later), once; then 02:30 CEST
    assert slots[1:] == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]
    fold = sub(DigestMode.DAILY, "Europe/Berlin", 2 * 60 + 30)  # 02:30 happens twice on 2026-10-25
    first = next_digest_at(fold, utc(2026, 10, 24, 12))
    assert first == utc(2026, 10, 25, 0, 30)  # the first 02:30 (CEST) only
    assert next_digest_at(fold, first) == utc(2026, 10, 26, 1, 30)
    assert next_digest_at(fold, utc(2026, 10, 25, 0, 45)) == utc(2026, 10, 26, 1, 30)


def test_weekly() -> None:
    monday = sub(DigestMode.WEEKLY, "Europe/Berlin", 9 * 60, day=0)
    assert next_digest_at(monday, utc(2026, 3, 11, 12)) == utc(2026, 3, 16, 8)  # Wed → Mon 09:00 CET
    assert next_digest_at(monday, utc(2026, 3, 16, 8)) == utc(2026, 3, 23, 8)  # a week later
    assert next_digest_at(monday, utc(2026, 3, 16, 7, 59)) == utc(2026, 3, 16, 8)  # that same day
    assert next_digest_at(monday, utc(2026, 3, 23, 8)) == utc(2026, 3, 30, 7)  # CEST from 03-29
    sunday = sub(DigestMode.WEEKLY, "Europe/Berlin", 9 * 60, day=6)
    assert next_digest_at(sunday, utc(2026, 10, 18, 7)) == utc(2026, 10, 25, 8)  # the switch day, CET
    almaty = sub(DigestMode.WEEKLY, "Asia/Almaty", 60, day=4)  # Friday 01:00 local = Thursday 20:00 UTC
    assert next_digest_at(almaty, utc(2026, 3, 12, 19)) == utc(2026, 3, 12, 20)
    assert next_digest_at(almaty, utc(2026, 3, 12, 21)) == utc(2026, 3, 19, 20)


def test_due_and_last_slot() -> None:
    daily = sub(DigestMode.DAILY, "Asia/Almaty", last_digest_at=utc(2026, 3, 9, 4))
    assert not due(daily, utc(2026, 3, 10, 3, 59)) and due(daily, utc(2026, 3, 10, 4))
    assert due(daily, utc(2026, 3, 13))  # missed slots: still due once
    assert last_slot(daily, utc(2026, 3, 13)) == utc(2026, 3, 12, 4)  # the latest one is the `until`
    assert last_slot(daily, utc(2026, 3, 12, 4)) == utc(2026, 3, 12, 4)
    new = sub(DigestMode.DAILY, "Asia/Almaty", created_at=utc(2026, 3, 10, 3))
    assert not due(new, utc(2026, 3, 10, 3, 30)) and due(new, utc(2026, 3, 10, 4))
    assert due(sub(DigestMode.DAILY, "Asia/Almaty"), utc(2026, 3, 10, 3))  # no history: the last slot
    hourly = sub(DigestMode.HOURLY, last_digest_at=utc(2026, 3, 10, 10))
    assert not due(hourly, utc(2026, 3, 10, 10, 59)) and due(hourly, utc(2026, 3, 10, 11))
    assert last_slot(hourly, utc(2026, 3, 10, 11, 20)) == utc(2026, 3, 10, 11)
    weekly = sub(DigestMode.WEEKLY, "Europe/Berlin", day=6, last_digest_at=utc(2026, 10, 18, 7))
    assert not due(weekly, utc(2026, 10, 25, 7, 59)) and due(weekly, utc(2026, 10, 25, 8))
    assert last_slot(weekly, utc(2026, 10, 30)) == utc(2026, 10, 25, 8)
