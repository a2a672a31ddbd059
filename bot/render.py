"""Alert messages as Telegram HTML: escaped, matched words in bold, always under the size limit."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

MAX_MESSAGE = 4096
FOLDED_SNIPPET = 160
FOLD_MAX_ITEMS = 10

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


def _when(payload: dict[str, Any], tz: str) -> str:
    try:
        moment = datetime.fromisoformat(str(payload["date"])).astimezone(ZoneInfo(tz))
    except (KeyError, ValueError):
        return ""
    return f"{moment:%Y-%m-%d %H:%M}"


def _head(payload: dict[str, Any], lang: str, tz: str) -> str:
    labels = _labels(lang)
    parts = [f"<b>{html.escape(str(payload.get('channel_title') or payload.get('channel') or ''))}</b>"]
    when = _when(payload, tz)
    if when:
        parts.append(when)
    if payload.get("lang") and payload["lang"] != "und":
        parts.append(html.escape(str(payload["lang"])))
    if payload.get("edited"):
        parts.append(f"<i>{labels['edited']}</i>")
    return " · ".join(parts)


def _link(payload: dict[str, Any], lang: str) -> str:
    labels = _labels(lang)
    queries = ", ".join(
        f"<code>{html.escape(str(q), quote=False)}</code>" for q in payload.get("queries", [])
    )
    url = html.escape(str(payload.get("url", "")), quote=True)
    line = f'<a href="{url}">{labels["open"]}</a> · {labels["query"]}: {queries}'
    also = payload.get("also_in") or []
    if also:
        line += f"\n{labels['also']}: " + ", ".join(html.escape(str(c)) for c in also)
    return line


def render_alert(payload: dict[str, Any], lang: str = "en", tz: str = "UTC") -> str:
    head, foot = _head(payload, lang, tz), _link(payload, lang)
    budget = MAX_MESSAGE - len(head) - len(foot) - 10  # tags count against the limit only loosely: stay safe
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
        if count >= FOLD_MAX_ITEMS or len(current) + len(entry) + 2 > MAX_MESSAGE:
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
