"""Small fakes for the pipeline's ports."""

from __future__ import annotations

from collections.abc import Sequence

from core.langid import Detection
from core.models import Post


class RecordingSink:
    """An AlertSink that keeps what it was handed."""

    def __init__(self) -> None:
        self.new: list[Post] = []
        self.edited: list[Post] = []

    async def hand_over(self, new: Sequence[Post], edited: Sequence[Post]) -> None:
        self.new.extend(new)
        self.edited.extend(edited)


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
