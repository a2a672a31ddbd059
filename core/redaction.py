"""Keep the secrets (bot token, API hash, a session string) out of logs and error messages.

Libraries put them where we do not look: aiohttp's errors carry the request URL, and the Bot API URL
holds the bot token (`/bot<token>/getMe`). Every log line tgmon writes passes `RedactingFormatter`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, TextIO

if TYPE_CHECKING:
    from core.settings import Settings

MASK: Final = "[redacted]"
MIN_SECRET_CHARS: Final = 8  # a shorter value would blank out ordinary words, and is no real secret
LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"


def token_parts(token: str) -> list[str]:
    """The token and its secret half (after the bot id), which also stands alone in some URLs."""
    _, _, secret = token.partition(":")
    return [token, secret] if secret else [token]


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret worth hiding, longest first (so a token goes before its half)."""
    values: list[str] = []
    if settings.bot_token is not None:
        values += token_parts(settings.bot_token.get_secret_value())
    if settings.tg_api_hash is not None:
        values.append(settings.tg_api_hash.get_secret_value())
    if settings.session_is_string:
        values.append(settings.tg_session.get_secret_value())
    return sorted({v for v in values if len(v) >= MIN_SECRET_CHARS}, key=len, reverse=True)


class Redactor:
    """`redactor(text)`: the text with every secret replaced by [redacted]."""

    def __init__(self, secrets: Iterable[str]) -> None:
        wanted = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in wanted)) if wanted else None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)


class RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted record: message, arguments, traceback and stack."""

    def __init__(self, redactor: Redactor, fmt: str = LOG_FORMAT) -> None:
        super().__init__(fmt)
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(super().format(record))


def configure_logging(settings: Settings, level: int, stream: TextIO) -> Redactor:
    """Log to `stream` at `level`, secrets redacted; returns the redactor for other output."""
    redactor = Redactor(secret_values(settings))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(redactor))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("telethon").setLevel(logging.WARNING)
    return redactor
