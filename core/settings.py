"""One Settings object, read from the environment and `.env`, built once at start-up and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

OFFICIAL_BOT_API = "https://api.telegram.org"

# Where a user gets each key: shown in every configuration error.
HOW_TO_GET: dict[str, str] = {
    "TG_API_ID": "create an application at https://my.telegram.org (API development tools)",
    "TG_API_HASH": "create an application at https://my.telegram.org (API development tools)",
    "TG_SESSION": "a session file path (run `tgmon login` to create it) or a Telethon string session",
    "BOT_TOKEN": "ask @BotFather in Telegram (/newbot)",
    "BOT_API_URL": "the Bot API server base URL, e.g. https://api.telegram.org or http://localhost:8081",
    "DATABASE_URL": "e.g. sqlite:///tgmon.db (a path relative to the working directory)",
    "ADMIN_IDS": "comma-separated numeric Telegram user ids (ask @userinfobot for yours)",
    "LANG_ENGINE": "fasttext or langdetect",
    "SUBSCRIBE_MODE": "open (anyone may subscribe) or invite (only with a code an admin creates by /invite)",
}


class ConfigError(Exception):
    """A missing or invalid setting, with a message fit for the user."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    tg_api_id: int | None = None
    tg_api_hash: SecretStr | None = None
    tg_session: SecretStr = SecretStr("tgmon.session")
    bot_token: SecretStr | None = None
    bot_api_url: str = OFFICIAL_BOT_API
    database_url: str = "sqlite:///tgmon.db"
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    lang_engine: Literal["fasttext", "langdetect"] = "fasttext"
    pipeline_workers: int = Field(
        0, ge=0, le=8, description="processes that detect language, fingerprint and match beside ingest"
    )
    subscribe_mode: Literal["open", "invite"] = "open"
    poll_interval: float = Field(60.0, gt=0, description="seconds between catch-up passes per channel")
    refresh_hours: float = Field(48.0, ge=0, description="refresh counters of posts this recent")
    refresh_interval: float = Field(1800.0, gt=0, description="seconds between counter refreshes")
    max_flood_wait: float = Field(86400.0, gt=0)
    max_alert_age_hours: float = Field(24.0, ge=0, description="older posts go to digests, not alerts")
    fold_window: float = Field(10.0, ge=0, description="seconds in which further alerts to a chat fold")
    max_lag_minutes: float = Field(15.0, gt=0, description="a channel not read in full for longer is behind")
    heartbeat_timeout_minutes: float = Field(5.0, gt=0, description="no collector heartbeat this long: down")
    channel_failures: int = Field(3, ge=1, description="failed rounds in a row before a channel is failing")
    metrics_port: int | None = Field(None, ge=1, le=65535, description="Prometheus endpoint; unset: off")
    metrics_addr: str = Field("127.0.0.1", description="address the Prometheus endpoint binds to")
    commands_per_minute: int = Field(
        20, ge=1, description="per user: a burst of this many, refilled in 1 min"
    )
    searches_per_minute: int = Field(10, ge=1, description="/search runs and page turns per analyst")
    exports_per_hour: int = Field(3, ge=1, description="/export runs per analyst")
    max_queries: int = Field(50, ge=1, le=1000, description="live queries per subscriber")
    log_level: str = "INFO"

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("bot_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        """aiogram's own check, with a message that does not repeat the value."""
        if value is None or not value.get_secret_value():
            return value
        bot_id, colon, secret = value.get_secret_value().partition(":")
        if not (colon and bot_id.isdigit() and secret) or any(c.isspace() for c in secret):
            raise ValueError("not a bot token: it looks like 123456789:AAE… (digits, a colon, then letters)")
        return value

    @field_validator("bot_api_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, value: str) -> str:
        if not value.startswith("sqlite:///"):
            raise ValueError("only sqlite:///PATH is supported for now")
        if value == "sqlite:///":
            raise ValueError("the path after sqlite:/// is empty")
        return value

    @property
    def database_path(self) -> Path:
        return Path(self.database_url.removeprefix("sqlite:///"))

    @property
    def session_is_string(self) -> bool:
        """A Telethon string session is long base64 text starting with '1', not a path."""
        value = self.tg_session.get_secret_value()
        return len(value) > 100 and value.startswith("1") and "/" not in value[:5]

    def require_telegram(self) -> tuple[int, str]:
        """The user-session credentials, or a ConfigError naming the missing key."""
        if self.tg_api_id is None:
            raise missing("TG_API_ID")
        if self.tg_api_hash is None or not self.tg_api_hash.get_secret_value():
            raise missing("TG_API_HASH")
        return self.tg_api_id, self.tg_api_hash.get_secret_value()

    def require_bot_token(self) -> str:
        if self.bot_token is None or not self.bot_token.get_secret_value():
            raise missing("BOT_TOKEN")
        return self.bot_token.get_secret_value()

    @property
    def bot_configured(self) -> bool:
        return self.bot_token is not None and bool(self.bot_token.get_secret_value())


def missing(key: str) -> ConfigError:
    return ConfigError(f"{key} is not set: {HOW_TO_GET.get(key, '')}. Put it in .env or the environment.")


def load_settings(**overrides: object) -> Settings:
    """Build the Settings, turning pydantic's errors into one clear ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # overrides are field values by name
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = str(err["loc"][0]).upper() if err["loc"] else "?"
            hint = HOW_TO_GET.get(key, "")
            lines.append(f"{key}: {err['msg']}" + (f" ({hint})" if hint else ""))
        raise ConfigError("Invalid configuration:\n  " + "\n  ".join(lines)) from None
