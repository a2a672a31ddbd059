"""Parse what an operator types to name a channel: @name, t.me/name, t.me/s/name, -100… ids."""

from __future__ import annotations

import re
from dataclasses import dataclass

_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
_ID = re.compile(r"-?[0-9]+")
MAX_CHANNEL_ID = 2**52  # the Bot API's bound on chat ids ("at most 52 significant bits")
_LINK = re.compile(r"^(?:https?://)?(?:www\.)?(?:t\.me|telegram\.me|telegram\.dog)/(?P<path>.+)$", re.I)


class ChannelRefError(ValueError):
    """The text does not name a channel; the message says what was expected."""


@dataclass(frozen=True, slots=True)
class ChannelRef:
    username: str | None = None
    channel_id: int | None = None  # bare id, no -100 prefix

    def __str__(self) -> str:
        return f"@{self.username}" if self.username else f"-100{self.channel_id}"


def parse_channel_ref(text: str) -> ChannelRef:
    value = text.strip()
    if not value:
        raise ChannelRefError("empty channel: give @name, t.me/name or a -100… id")
    if _ID.fullmatch(value):
        digits = value.removeprefix("-")
        if value.startswith("-100") and len(digits) > 3:
            return ChannelRef(channel_id=_channel_id(digits[3:], value))
        if value.startswith("-"):
            raise ChannelRefError(
                f"{_shown(value)} is a group id, not a channel id (channel ids start with -100)"
            )
        return ChannelRef(channel_id=_channel_id(digits, value))
    link = _LINK.match(value)
    if link:
        parts = [p for p in link.group("path").split("?")[0].split("/") if p]
        if parts and parts[0] == "s":
            parts = parts[1:]
        if parts and parts[0] == "c" and len(parts) >= 2 and _ID.fullmatch(parts[1]):
            return ChannelRef(channel_id=_channel_id(parts[1], value))
        if not parts:
            raise ChannelRefError(f"{_shown(value)} has no channel name: use t.me/name")
        if parts[0].startswith(("+", "joinchat")):
            raise ChannelRefError(f"{_shown(value)} is an invite link; tgmon reads public channels by @name")
        value = parts[0]
    name = value.removeprefix("@")
    if not _USERNAME.match(name):
        raise ChannelRefError(
            f"{_shown(repr(text.strip()))} is not a channel: use @name (4-32 letters, digits, _), t.me/name "
            "or a -100… id"
        )
    return ChannelRef(username=name)


def _channel_id(digits: str, value: str) -> int:
    """ASCII digits as a channel id, refused when no channel can have it."""
    number = int(digits) if len(digits) <= 20 else MAX_CHANNEL_ID
    if not 0 < number < MAX_CHANNEL_ID:
        raise ChannelRefError(
            f"{_shown(value)} is not a channel id: too {'small' if number <= 0 else 'large'}"
        )
    return number


def _shown(text: str, limit: int = 40) -> str:
    """The operator's text as echoed in an error: at most `limit` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
