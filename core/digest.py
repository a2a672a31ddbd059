"""Digests: what a subscriber's queries matched over a period, folded into stories, as Telegram HTML.

`build_digest` reads the recorded matches (`SubscriptionStore.matches_between`) of the period and of the
period before it (for trending words) and computes everything; `render_digest` turns a `Digest` into
message texts in the subscriber's language and timezone, split so that each fits one Telegram message;
`caption_and_rest` takes the head of those texts as the caption of the chart photo.

Counting rules
    * `total_matches` and the per query / channel / language counts count posts (a post that matched two
      queries counts once in the total and once for each query); `stories` counts distinct story ids.
    * Top posts are one per story: the most viewed copy (not deleted, if any copy is not), ranked by
      views then forwards; "also in" names the story's other channels (its matched copies and every
      channel the archive saw carry it, within the subscriber's channel filter if one is set).
    * Trending words are folded words (`core.query.text.tokenize`) of the matched posts, counted once per
      story; stop-words, words shorter than 3 characters, words without letters and words of the
      subscriber's own queries (also their stems) are left out. A word trends when it is in at least
      `MIN_TRENDING` stories now and in more than in the previous period; ranked by (now+1)/(prev+1).

Matches are taken as recorded: the alert stage decides which posts count for a subscriber (language and
channel filters), the digest does not filter again.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from core.digest_chart import HOURLY_UP_TO, matches_chart
from core.digest_schedule import zone
from core.models import Post
from core.query.text import doc_stem_keys, query_stem_keys, tokenize
from core.storage.subscriptions import MatchedPost, SubscriptionStore
from core.subscriptions import Subscriber

__all__ = [
    "CAPTION_LIMIT",
    "MESSAGE_LIMIT",
    "Digest",
    "TopPost",
    "build_digest",
    "caption_and_rest",
    "render_digest",
    "utf16_len",
]

MESSAGE_LIMIT = 4096  # Telegram: one text message
CAPTION_LIMIT = 1024  # Telegram: one media caption
TITLE_CHARS = 100
MIN_TRENDING = 3
MIN_WORD = 3

# Folded forms (lower case, ё → е, apostrophes → '): short on purpose, the ratio does the rest.
_STOP_WORDS = """
    the and for are but not you all any can her his its was were one our out has have had how now who
    why will with this that these those from they them their there what when where which been would
    into more than then also just after over only some such about said says new via
    http https www com org html
    что это как так все всех для его она они оно при уже или был была были быть есть чтобы если когда
    также только этот эта эти того тем чем под над без про после еще очень может более через между
    который которые которая которое них ним нет вот даже где там тут сейчас сегодня
    від або вже які який яка яке буде було були його вона вони але цей щоб коли також тільки після між
    під над без про має може тому цього якщо зараз сьогодні
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())

_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Digest",
        "totals": "📊 Matching posts: <b>{posts}</b> · stories: <b>{stories}</b>",
        "query": "🔎 <b>By query</b>",
        "channel": "📡 <b>By channel</b>",
        "language": "🌐 <b>By language</b>",
        "top": "🔥 <b>Top posts</b>",
        "trending": "📈 <b>Trending words</b>",
        "cont": " <i>(cont.)</i>",
        "also_in": "also in",
        "was": "was {n}",
        "empty": "No matches for your queries in this period.",
        "no_text": "(no text)",
        "chart_hour": "Matches per hour",
        "chart_day": "Matches per day",
    },
    "ru": {
        "title": "Дайджест",
        "totals": "📊 Найдено постов: <b>{posts}</b> · сюжетов: <b>{stories}</b>",
        "query": "🔎 <b>По запросам</b>",
        "channel": "📡 <b>По каналам</b>",
        "language": "🌐 <b>По языкам</b>",
        "top": "🔥 <b>Главное</b>",
        "trending": "📈 <b>Растущие слова</b>",
        "cont": " <i>(продолжение)</i>",
        "also_in": "также в",
        "was": "было {n}",
        "empty": "За этот период совпадений по вашим запросам нет.",
        "no_text": "(без текста)",
        "chart_hour": "Совпадения по часам",
        "chart_day": "Совпадения по дням",
    },
}
_LANGUAGES: dict[str, dict[str, str]] = {
    "en": {"en": "English", "ru": "Russian", "uk": "Ukrainian", "kk": "Kazakh", "und": "undetermined"},
    "ru": {"en": "английский", "ru": "русский", "uk": "украинский", "kk": "казахский", "und": "не определён"},
}
_MONTHS = {
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    "ru": ["янв", "фев", "мар", "апр", "мая", "июн", "июл", "авг", "сен", "окт", "ноя", "дек"],
}
_SPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")


@dataclass(slots=True)
class TopPost:
    title: str  # the first line of the text, at most ~100 characters; "" for a post without text
    channel: str  # label: @username, else the title
    permalink: str
    views: int | None
    forwards: int | None
    also_in: list[str]  # labels of the story's other channels
    date: datetime
    media_type: str | None = None


@dataclass(slots=True)
class Digest:
    subscriber_id: int
    since: datetime
    until: datetime
    total_matches: int  # posts
    stories: int  # distinct stories among them
    per_query: list[tuple[str, int]]  # (query text, posts), most first
    per_channel: list[tuple[str, int]]  # (channel label, posts)
    per_language: list[tuple[str, int]]  # (language code, posts)
    top_posts: list[TopPost]
    trending: list[tuple[str, int, int]]  # (word, stories now, stories in the previous period)
    chart_png: bytes | None = None
    times: list[datetime] = field(default_factory=list)  # dates of the matched posts, for the chart


# --- building ---------------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def channel_label(post: Post) -> str:
    """As `Channel.label`: @username, else the title, else the id."""
    if post.channel_username:
        return f"@{post.channel_username}"
    return post.channel_title or str(post.channel_id)


def snippet(text: str, limit: int = TITLE_CHARS) -> str:
    """The first non-empty line of a text, whitespace collapsed, cut at a word boundary to `limit`."""
    line = next((s for s in (_SPACE.sub(" ", raw).strip() for raw in text.splitlines()) if s), "")
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-–—") + "…"


def _story(post: Post) -> str:
    return post.story_id or f"{post.channel_id}:{post.message_id}"


def _posts(matches: Iterable[MatchedPost]) -> dict[tuple[int, int], Post]:
    return {(m.post.channel_id, m.post.message_id): m.post for m in matches}


def _ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].casefold(), kv[0]))


def _query_words(texts: Iterable[str]) -> tuple[set[str], frozenset[str]]:
    norms: set[str] = set()
    keys: set[str] = set()
    for text in texts:
        for token in tokenize(text):
            norms.add(token.norm)
            keys |= query_stem_keys(token.norm)
    return norms, frozenset(keys)


def _story_words(posts: Iterable[Post], own: tuple[set[str], frozenset[str]]) -> Counter[str]:
    """How many stories each candidate word occurs in."""
    norms, keys = own
    words: dict[str, set[str]] = defaultdict(set)
    for post in posts:
        words[_story(post)].update(
            t.norm
            for t in tokenize(post.text)
            if len(t.norm) >= MIN_WORD
            and t.norm not in STOP_WORDS
            and t.norm not in norms
            and any(c.isalpha() for c in t.norm)
            and not (keys and keys.intersection(doc_stem_keys(t.norm, None)))
        )
    return Counter(word for found in words.values() for word in found)


def trending_words(
    now: Iterable[Post], before: Iterable[Post], queries: Iterable[str], limit: int = 5
) -> list[tuple[str, int, int]]:
    """(word, stories now, stories before) of the words that rose the most (see the module docstring)."""
    own = _query_words(queries)
    current, previous = _story_words(now, own), _story_words(before, own)
    rising = [(w, n, previous[w]) for w, n in current.items() if n >= MIN_TRENDING and n > previous[w]]
    rising.sort(key=lambda t: (-(t[1] + 1) / (t[2] + 1), -t[1], t[0]))
    return rising[:limit]


def _best_copy(copies: Sequence[Post]) -> Post:
    return max(
        copies, key=lambda p: (p.deleted_at is None, p.views or 0, p.forwards or 0, -p.date.timestamp())
    )


async def _top_posts(
    store: SubscriptionStore, subscriber: Subscriber, posts: Iterable[Post], limit: int
) -> list[TopPost]:
    stories: dict[str, list[Post]] = defaultdict(list)
    for post in sorted(posts, key=lambda p: (p.date, p.channel_id, p.message_id)):
        stories[_story(post)].append(post)
    best = {story: _best_copy(copies) for story, copies in stories.items()}
    ranked = sorted(best, key=lambda s: (-(best[s].views or 0), -(best[s].forwards or 0), best[s].date, s))[
        :limit
    ]
    allowed = set(subscriber.channels)
    found = []
    for story in ranked:
        post = best[story]
        label = channel_label(post)
        others = [channel_label(p) for p in stories[story]]
        others += [
            c.label
            for c in await store.archive.story_channels(story)
            if not allowed or c.id in allowed or c.id == post.channel_id
        ]
        also_in = list(dict.fromkeys(o for o in others if o != label))
        found.append(
            TopPost(
                title=snippet(post.text),
                channel=label,
                permalink=post.permalink,
                views=post.views,
                forwards=post.forwards,
                also_in=also_in,
                date=post.date,
                media_type=post.media_type,
            )
        )
    return found


def _texts(lang: str) -> dict[str, str]:
    return _TEXT.get(lang, _TEXT["en"])


async def build_digest(
    store: SubscriptionStore,
    subscriber: Subscriber,
    until: datetime,
    period: timedelta,
    *,
    top: int = 5,
    trending: int = 5,
    chart: bool = True,
) -> Digest:
    """The digest of the matches of posts dated in [until - period, until); `chart=True` renders the PNG
    (in a worker thread) when there is anything to draw."""
    until = _utc(until)
    since = until - period
    matched = await store.matches_between(subscriber.id, since - period, until)
    current = [m for m in matched if m.post.date >= since]
    posts = _posts(current)
    previous = _posts(m for m in matched if m.post.date < since)

    per_query: dict[int, set[tuple[int, int]]] = defaultdict(set)
    query_text: dict[int, str] = {}
    for m in current:
        per_query[m.query_id].add((m.post.channel_id, m.post.message_id))
        query_text[m.query_id] = m.query_text
    by_query = sorted(
        ((query_text[q], len(keys)) for q, keys in per_query.items()),
        key=lambda kv: (-kv[1], kv[0].casefold(), kv[0]),
    )
    by_channel = _ranked(Counter(channel_label(p) for p in posts.values()))
    by_language = _ranked(Counter(p.lang or "und" for p in posts.values()))

    queries = {m.query_text for m in matched}
    queries.update(q.text for q in await store.list_queries(subscriber.id))
    words = trending_words(posts.values(), previous.values(), queries, trending)
    tops = await _top_posts(store, subscriber, posts.values(), top)
    times = sorted(p.date for p in posts.values())

    png = None
    if chart and times:
        texts = _texts(subscriber.ui_lang)
        title = texts["chart_hour"] if period <= HOURLY_UP_TO else texts["chart_day"]
        png = await asyncio.to_thread(matches_chart, times, since, until, subscriber.timezone, title)
    return Digest(
        subscriber_id=subscriber.id,
        since=since,
        until=until,
        total_matches=len(posts),
        stories=len({_story(p) for p in posts.values()}),
        per_query=by_query,
        per_channel=by_channel,
        per_language=by_language,
        top_posts=tops,
        trending=words,
        chart_png=png,
        times=times,
    )


# --- rendering --------------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts (an emoji outside the BMP is two)."""
    return len(text.encode("utf-16-le")) // 2


def _e(text: str, limit: int | None = None) -> str:
    text = _SPACE.sub(" ", text).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return html.escape(text, quote=True)


def _number(n: int) -> str:
    if n < 1000:
        return str(n)
    value, suffix = (n / 1000, "K") if n < 1_000_000 else (n / 1_000_000, "M")
    shown = f"{value:.1f}" if value < 100 else f"{value:.0f}"
    return shown.removesuffix(".0") + suffix


def _when(moment: datetime, tz: tzinfo, lang: str, *, day: bool = True) -> str:
    local = moment.astimezone(tz)
    clock = f"{local:%H:%M}"
    if not day:
        return clock
    return f"{local.day} {_MONTHS.get(lang, _MONTHS['en'])[local.month - 1]} {clock}"


def _period(since: datetime, until: datetime, tz: tzinfo, tz_name: str, lang: str) -> str:
    same_day = since.astimezone(tz).date() == until.astimezone(tz).date()
    end = _when(until, tz, lang, day=not same_day)
    return f"{_when(since, tz, lang)} – {end} ({_e(tz_name or 'UTC')})"


@dataclass(slots=True)
class _Section:
    heading: str | None
    items: list[str]


def _language(code: str, lang: str) -> str:
    name = _LANGUAGES.get(lang, _LANGUAGES["en"]).get(code)
    return f"{_e(name)} ({_e(code)})" if name else _e(code)


def _top_item(n: int, post: TopPost, tz: tzinfo, lang: str, texts: dict[str, str]) -> str:
    title = post.title or (f"[{post.media_type}]" if post.media_type else texts["no_text"])
    link = post.permalink if post.permalink.startswith(("https://", "http://")) else ""
    head = (
        f'{n}. <a href="{html.escape(link, quote=True)}">{_e(title, 120)}</a>'
        if link
        else f"{n}. {_e(title)}"
    )
    meta = [_e(post.channel, 64), _when(post.date, tz, lang)]
    if post.views is not None:
        meta.append(f"👁 {_number(post.views)}")
    if post.forwards:
        meta.append(f"↗ {_number(post.forwards)}")
    lines = [head, "    " + " · ".join(meta)]
    if post.also_in:
        shown = ", ".join(_e(label, 64) for label in post.also_in[:10])
        more = f" +{len(post.also_in) - 10}" if len(post.also_in) > 10 else ""
        lines.append(f"    <i>{texts['also_in']}: {shown}{more}</i>")
    return "\n".join(lines)


def _sections(digest: Digest, lang: str, tz_name: str) -> list[_Section]:
    texts = _texts(lang)
    tz = zone(tz_name)
    header = f"🗞 <b>{texts['title']}</b> · {_period(digest.since, digest.until, tz, tz_name, lang)}"
    if not digest.total_matches:
        return [_Section(None, [header]), _Section(None, [texts["empty"]])]
    sections = [
        _Section(None, [header]),
        _Section(None, [texts["totals"].format(posts=digest.total_matches, stories=digest.stories)]),
    ]
    if digest.per_query:
        sections.append(
            _Section(texts["query"], [f"• <i>{_e(q, 200)}</i> — {n}" for q, n in digest.per_query])
        )
    if digest.per_channel:
        sections.append(_Section(texts["channel"], [f"• {_e(c, 64)} — {n}" for c, n in digest.per_channel]))
    if digest.per_language:
        sections.append(
            _Section(texts["language"], [f"• {_language(c, lang)} — {n}" for c, n in digest.per_language])
        )
    if digest.top_posts:
        sections.append(
            _Section(
                texts["top"],
                [_top_item(i, p, tz, lang, texts) for i, p in enumerate(digest.top_posts, 1)],
            )
        )
    if digest.trending:
        was = texts["was"]
        sections.append(
            _Section(
                texts["trending"],
                [f"• <b>{_e(w, 64)}</b> — {n} ({was.format(n=p)})" for w, n, p in digest.trending],
            )
        )
    return sections


def _fit(item: str, limit: int) -> str:
    """An item that alone exceeds the limit (it cannot, by construction) as plain text, cut."""
    if utf16_len(item) <= limit:
        return item
    plain = html.unescape(_TAG.sub("", item))
    while utf16_len(html.escape(plain)) > limit - 1:
        plain = plain[: max(0, len(plain) - max(1, len(plain) // 10))]
    return html.escape(plain) + "…"


def _pack(sections: list[_Section], limit: int, cont: str) -> list[str]:
    """Sections joined by blank lines into parts ≤ limit (UTF-16 units); a section that does not fit in
    the current part moves to the next one whole if it fits there, else it is cut between its items
    and its heading repeated with "(cont.)"."""
    parts: list[str] = []
    current = ""

    def fits(text: str) -> bool:
        return utf16_len(text) <= limit

    for section in sections:
        lines = ([section.heading] if section.heading else []) + section.items
        whole = "\n".join(lines)
        joined = f"{current}\n\n{whole}" if current else whole
        if fits(joined):
            current = joined
            continue
        if fits(whole):
            if current:
                parts.append(current)
            current = whole
            continue
        heading = section.heading
        again = f"{heading}{cont}" if heading else None
        body = current + "\n\n" if current else ""
        started = False
        for raw_item in section.items:
            item = _fit(raw_item, limit - (utf16_len(again) + 1 if again else 0))
            if not started:
                first = f"{heading}\n{item}" if heading else item
                if fits(body + first):
                    current = body + first
                else:
                    if current:
                        parts.append(current)
                    current = first
                started = True
            elif fits(f"{current}\n{item}"):
                current = f"{current}\n{item}"
            else:
                parts.append(current)
                current = f"{again}\n{item}" if again else item
    if current:
        parts.append(current)
    return parts


def render_digest(digest: Digest, lang: str, tz: str) -> list[str]:
    """The digest as Telegram HTML messages (parse_mode HTML), each ≤ 4096 UTF-16 units, in English or
    Russian (`lang`; others get English), times in timezone `tz`. Blocks are separated by blank lines;
    parts break only between sections or between a section's lines."""
    lang = lang if lang in _TEXT else "en"
    return _pack(_sections(digest, lang, tz), MESSAGE_LIMIT, _texts(lang)["cont"])


def caption_and_rest(parts: list[str], limit: int = CAPTION_LIMIT) -> tuple[str, list[str]]:
    """Split rendered parts into a photo caption ≤ `limit` (the leading blocks of the first part that fit:
    at least the header and the totals) and the messages that follow it."""
    if not parts:
        return "", []
    blocks = parts[0].split("\n\n")
    taken: list[str] = []
    for block in blocks:
        if utf16_len("\n\n".join([*taken, block])) > limit:
            break
        taken.append(block)
    rest_blocks = blocks[len(taken) :]
    if not taken:  # a first block longer than a caption: cut it between lines
        lines = rest_blocks[0].split("\n")
        head: list[str] = []
        for line in lines:
            if utf16_len("\n".join([*head, line])) > limit:
                break
            head.append(line)
        used = len(head)
        if not head:
            head, used = [_fit(lines[0], limit)], 1
        taken = ["\n".join(head)]
        rest_blocks = [b for b in ["\n".join(lines[used:]), *rest_blocks[1:]] if b]
    rest = "\n\n".join(rest_blocks)
    return "\n\n".join(taken), ([rest] if rest else []) + parts[1:]
