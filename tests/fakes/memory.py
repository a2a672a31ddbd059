"""Small fakes for the pipeline's ports."""

from __future__ import annotations

from collections.abc import Sequence

from core.langid import Detection
from core.models import Post
from core.pipeline import Handover


class RecordingSink:
    """An AlertSink that keeps what it was handed."""

    def __init__(self) -> None:
        self.items: list[Handover] = []

    async def hand_over(self, items: Sequence[Handover]) -> None:
        self.items.extend(items)

    @property
    def new(self) -> list[Post]:
        return [item.post for item in self.items if not item.edited]

    @property
    def edited(self) -> list[Post]:
        return [item.post for item in self.items if item.edited]


class FixedDetector:
    """A LanguageDetector that answers 'en' for Latin text and 'ru' otherwise: fast and predictable."""

    name = "fixed"

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, text: str) -> Detection:
        self.calls += 1
        if not text.strip():
            return Detection("und", 0.0)
        return Detection("en" if text.isascii() else "ru", 0.9)
