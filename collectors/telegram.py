"""Build the real Telethon client from Settings: the only place a live TelegramClient is made."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from telethon import TelegramClient
from telethon.sessions import StringSession

from core.settings import ConfigError, Settings


def session_path(settings: Settings) -> Path | None:
    if settings.session_is_string:
        return None
    value = settings.tg_session.get_secret_value()
    path = Path(value if value.endswith(".session") else f"{value}.session")
    return path


def build_client(settings: Settings) -> TelegramClient:
    api_id, api_hash = settings.require_telegram()
    protect_session(settings)  # before Telethon opens it: SQLite would create it world-readable (0644)
    value = settings.tg_session.get_secret_value()
    session: str | StringSession = StringSession(value) if settings.session_is_string else value
    # flood_sleep_threshold=0: every FloodWaitError reaches the collector, which pauses only that channel
    return TelegramClient(session, api_id, api_hash, flood_sleep_threshold=0, receive_updates=True)


def protect_session(settings: Settings) -> None:
    """The session file is a login: readable by the owner only, from its first byte."""
    path = session_path(settings)
    if path is None:
        return
    try:
        if path.exists():
            os.chmod(path, 0o600)
        else:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # Telethon fills the empty file
    except OSError as exc:
        raise ConfigError(f"cannot create the session file {path} (TG_SESSION): {exc.strerror}") from None


async def connect_authorized(settings: Settings) -> TelegramClient:
    client = build_client(settings)
    await client.connect()
    if not await client.is_user_authorized():
        if sys.stdin.isatty():  # first run in a terminal: log in now (phone, code, 2FA password)
            await client.start()
        else:
            await client.disconnect()
            raise ConfigError("The Telegram session is not logged in: run `tgmon login` first (TG_SESSION).")
    protect_session(settings)
    return client
