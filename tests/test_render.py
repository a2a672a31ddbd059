"""Alert messages: escaped HTML, bold matches, under Telegram's limit whatever the post holds."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.render import MAX_MESSAGE, highlight, render_alert, render_folded

ALLOWED = {"b", "i", "a", "code", "pre", "u", "s"}


class Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in ALLOWED, tag
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, tag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def visible(message: str) -> str:
    checker = Checker()
    checker.feed(message)
    checker.close()
    assert checker.stack == []
    return "".join(checker.text)


def payload(snippet: str, spans: list[tuple[int, int]], **extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "channel": "@kz_news", "channel_title": "KZ <News>", "url": "https://t.me/kz_news/1?a=1&b=2",
        "date": "2026-01-05T10:00:00+00:00", "lang": "ru", "queries": ['"a & b"'], "snippet": snippet,
        "spans": spans, "edited": False, "also_in": [],
    }  # fmt: skip
    return base | extra


def test_highlight_escapes_and_bolds() -> None:
    text = "<script>alert(1)</script> Алматы & co"
    assert highlight(text, [(26, 32)]) == "&lt;script&gt;alert(1)&lt;/script&gt; <b>Алматы</b> &amp; co"


def test_alert_shape_in_both_languages() -> None:
    message = render_alert(payload("Протест в Алматы", [(0, 7), (10, 16)], edited=True, also_in=["@b"]), "ru")
    text = visible(message)
    assert "KZ <News>" in text and "Протест в Алматы" in text and "изменён" in text and "Также в: @b" in text
    assert "<b>Протест</b>" in message and 'href="https://t.me/kz_news/1?a=1&amp;b=2"' in message
    assert "Open post" in render_alert(payload("x", []), "en")


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.characters(codec="utf-8"), max_size=5000),
    cuts=st.lists(st.integers(0, 5000), max_size=20),
)
def test_any_post_renders_valid_and_short(text: str, cuts: list[int]) -> None:
    points = sorted({c for c in cuts if c <= len(text)})
    spans = list(zip(points[::2], points[1::2], strict=False))
    message = render_alert(payload(text, spans))
    assert len(visible(message)) <= MAX_MESSAGE and len(message) <= 3 * MAX_MESSAGE


def test_folded_bursts_split_under_the_limit() -> None:
    many = [payload("Алматы " * 300, [(0, 6)]) for _ in range(25)]
    messages = render_folded(many, "en")
    assert len(messages) == 3 and all(len(visible(m)) <= MAX_MESSAGE for m in messages)
    assert messages[0].startswith("🔔 <b>25 new matches</b>")
