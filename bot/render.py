"""Alert messages as Telegram HTML: escaped, matched words in bold, always under the size limit."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.digest import utf16_len

MAX_MESSAGE = 4096  # UTF-16 code units of text, as Telegram counts
FOLDED_SNIPPET = 160
FOLD_MAX_ITEMS = 10
# The head and the link line stay well under the limit whatever a post or a subscriber brings: a channel
# title, each query and each "also in" label is cut, and only the first few are listed.
TITLE_CHARS = 128
QUERY_CHARS = 100
MAX_QUERIES_SHOWN = 5
LABEL_CHARS = 64
MAX_ALSO_SHOWN = 10
_TAG = re.compile(r"<[^>]*>")

LABELS = {
    "en": {"open": "Open post", "query": "query", "edited": "edited", "also": "Also in",
           "many": "{n} new matches"},
    "ru": {"open": "Открыть пост", "query": "запрос", "edited": "изменён", "also": "Также в",
           "many": "Новых совпадений: {n}"},
}  # fmt: skip


def _labels(lang: str) -> dict[str, str]:
    return LABELS.get(lang, LABELS["en"])


def highlight(text: str, spans: Sequence[Sequence[int]], limit: int | None = None) -> str:
    """Escape the text and wrap the matched spans in <b>; cut at `limit` characters of text."""
    if limit is not None and len(text) > limit:
        text = text[:limit].rstrip() + "…"
    out, cursor = [], 0
    for start, end in sorted((int(s[0]), int(s[1])) for s in spans):
        if start < cursor or end > len(text):
            continue
        out.append(html.escape(text[cursor:start], quote=False))
        out.append(f"<b>{html.escape(text[start:end], quote=False)}</b>")
        cursor = end
    out.append(html.escape(text[cursor:], quote=False))
    return "".join(out)


def _cut(value: object, limit: int) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _listed(items: Sequence[object], limit: int, shown: int) -> str:
    """The first `shown` items, each cut to `limit` characters and escaped, and how many more."""
    listed = ", ".join(html.escape(_cut(item, limit), quote=False) for item in items[:shown])
    return listed + (f" +{len(items) - shown}" if len(items) > shown else "")


def _visible_units(message: str) -> int:
    """The UTF-16 length of what Telegram shows for this HTML (tags dropped, entities decoded)."""
    return utf16_len(html.unescape(_TAG.sub("", message)))


def _when(payload: dict[str, Any], tz: str) -> str:
    try:
        moment = datetime.fromisoformat(str(payload["date"])).astimezone(ZoneInfo(tz))
    except (KeyError, ValueError, OverflowError):  # OverflowError: year 9999 in a zone east of UTC
        return ""
    return f"{moment:%Y-%m-%d %H:%M}"


def _head(payload: dict[str, Any], lang: str, tz: str) -> str:
    labels = _labels(lang)
    title = _cut(payload.get("channel_title") or payload.get("channel") or "", TITLE_CHARS)
    parts = [f"<b>{html.escape(title)}</b>"]
    when = _when(payload, tz)
    if when:
        parts.append(when)
    if payload.get("lang") and payload["lang"] != "und":
        parts.append(html.escape(_cut(payload["lang"], 8)))
    if payload.get("edited"):
        parts.append(f"<i>{labels['edited']}</i>")
    return " · ".join(parts)


def _link(payload: dict[str, Any], lang: str) -> str:
    labels = _labels(lang)
    queries = list(payload.get("queries", []))
    listed = ", ".join(
        f"<code>{html.escape(_cut(q, QUERY_CHARS), quote=False)}</code>" for q in queries[:MAX_QUERIES_SHOWN]
    )
    if len(queries) > MAX_QUERIES_SHOWN:
        listed += f" +{len(queries) - MAX_QUERIES_SHOWN}"
    url = html.escape(str(payload.get("url", "")), quote=True)
    line = f'<a href="{url}">{labels["open"]}</a> · {labels["query"]}: {listed}'
    also = list(payload.get("also_in") or [])
    if also:
        line += f"\n{labels['also']}: " + _listed(also, LABEL_CHARS, MAX_ALSO_SHOWN)
    return line


def render_alert(payload: dict[str, Any], lang: str = "en", tz: str = "UTC") -> str:
    head, foot = _head(payload, lang, tz), _link(payload, lang)
    budget = MAX_MESSAGE - _visible_units(head) - _visible_units(foot) - 10
    # the body's limit is in characters: at most two UTF-16 units each
    text = str(payload.get("snippet", ""))
    body = highlight(text, payload.get("spans", []), limit=min(len(text), max(budget // 2, 100)))
    if payload.get("truncated") and not body.endswith("…"):
        body += "…"
    return f"🔔 {head}\n{body}\n{foot}"


def render_folded(payloads: Sequence[dict[str, Any]], lang: str = "en", tz: str = "UTC") -> list[str]:
    """Several alerts for one chat as few messages as fit, each a short entry."""
    labels = _labels(lang)
    entries = []
    for payload in payloads:
        snippet = highlight(str(payload.get("snippet", "")), payload.get("spans", []), limit=FOLDED_SNIPPET)
        entries.append(f"{_head(payload, lang, tz)}\n{snippet}\n{_link(payload, lang)}")
    messages, current = [], f"🔔 <b>{labels['many'].format(n=len(payloads))}</b>"
    count = 0
    for entry in entries:
        # the HTML's own UTF-16 length: never less than the text Telegram counts
        if count >= FOLD_MAX_ITEMS or utf16_len(current) + utf16_len(entry) + 2 > MAX_MESSAGE:
            messages.append(current)
            current, count = "", 0
        current = f"{current}\n\n{entry}" if current else entry
        count += 1
    messages.append(current)
    return messages


def fold_first(payloads: Sequence[dict[str, Any]], lang: str = "en", tz: str = "UTC") -> tuple[str, int]:
    """One message folding as many of the alerts as fit, and how many it took (the rest wait their turn:
    a chat gets one message per second)."""
    for count in range(min(len(payloads), FOLD_MAX_ITEMS), 1, -1):
        messages = render_folded(payloads[:count], lang, tz)
        if len(messages) == 1:
            return messages[0], count
    return render_alert(payloads[0], lang, tz), 1
