"""Settings: defaults, environment and `.env`, validation with messages that say where to get each key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from core.settings import OFFICIAL_BOT_API, ConfigError, Settings, load_settings

# A Telethon string session: version "1" then base64 of the auth data (~350 characters).
STRING_SESSION = "1" + "BVtsOKt8AazLH3wJ4Z2xQd9Rk0y" * 13 + "=="

SECRETS = {
    "TG_API_HASH": "0123456789abcdef-api-hash-secret",
    "BOT_TOKEN": "123456789:AAE-bot-token-secret-value",
    "TG_SESSION": STRING_SESSION,
}


def isolate(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    """No setting comes from the real environment or from a .env in the working directory."""
    fields = {name.upper() for name in Settings.model_fields}
    for key in list(os.environ):
        upper = key.upper()
        if upper in fields or upper.startswith(("TG_", "BOT_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(cwd)


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate(monkeypatch, tmp_path)
    return tmp_path


def config_error(**env: str) -> str:
    """The ConfigError message load_settings() gives with these environment variables set."""
    mp = pytest.MonkeyPatch()
    try:
        for key, value in env.items():
            mp.setenv(key, value)
        with pytest.raises(ConfigError) as info:
            load_settings()
    finally:
        mp.undo()
    return str(info.value)


# defaults


def test_defaults() -> None:
    settings = load_settings()
    assert settings.bot_api_url == OFFICIAL_BOT_API == "https://api.telegram.org"
    assert settings.database_url == "sqlite:///tgmon.db"
    assert settings.database_path == Path("tgmon.db")
    assert settings.tg_api_id is None and settings.tg_api_hash is None and settings.bot_token is None
    assert settings.tg_session.get_secret_value() == "tgmon.session"
    assert not settings.session_is_string
    assert settings.admin_ids == []
    assert settings.lang_engine == "fasttext"
    assert not settings.bot_configured


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///tgmon.db", Path("tgmon.db")),
        ("sqlite:///data/archive.db", Path("data/archive.db")),
        ("sqlite:////var/lib/tgmon/archive.db", Path("/var/lib/tgmon/archive.db")),
    ],
)
def test_database_path(url: str, path: Path) -> None:
    assert load_settings(database_url=url).database_path == path


# sources


def test_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_API_ID", "12345")
    monkeypatch.setenv("TG_API_HASH", "abcdef")
    monkeypatch.setenv("BOT_TOKEN", "1:token")
    monkeypatch.setenv("BOT_API_URL", "http://localhost:8081/")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///other.db")
    monkeypatch.setenv("LANG_ENGINE", "langdetect")
    monkeypatch.setenv("POLL_INTERVAL", "5")
    settings = load_settings()
    assert settings.tg_api_id == 12345
    assert settings.require_telegram() == (12345, "abcdef")
    assert settings.require_bot_token() == "1:token"
    assert settings.bot_configured
    assert settings.bot_api_url == "http://localhost:8081"  # trailing slash dropped
    assert settings.database_path == Path("other.db")
    assert settings.lang_engine == "langdetect"
    assert settings.poll_interval == 5.0


def test_reads_dotenv_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# tgmon\nTG_API_ID=777\nTG_API_HASH=fromfile\nADMIN_IDS=10,20\nDATABASE_URL=sqlite:///file.db\n",
        encoding="utf-8",
    )
    settings = load_settings()
    assert settings.require_telegram() == (777, "fromfile")
    assert settings.admin_ids == [10, 20]
    assert settings.database_path == Path("file.db")


def test_environment_wins_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("TG_API_ID=777\nDATABASE_URL=sqlite:///file.db\n", encoding="utf-8")
    monkeypatch.setenv("TG_API_ID", "888")
    settings = load_settings()
    assert settings.tg_api_id == 888
    assert settings.database_url == "sqlite:///file.db"


def test_invalid_value_in_dotenv_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TG_API_ID=my-app\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="TG_API_ID"):
        load_settings()


def test_a_dotenv_elsewhere_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("TG_API_ID=777\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_settings().tg_api_id is None


def test_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///env.db")
    assert load_settings(database_url="sqlite:///arg.db").database_path == Path("arg.db")


# ADMIN_IDS


@pytest.mark.parametrize(
    ("raw", "ids"),
    [
        ("1, 2;3", [1, 2, 3]),
        ("42", [42]),
        (" 5 ,, 6 ; ", [5, 6]),
        ("", []),
    ],
)
def test_admin_ids_from_env(monkeypatch: pytest.MonkeyPatch, raw: str, ids: list[int]) -> None:
    monkeypatch.setenv("ADMIN_IDS", raw)
    assert load_settings().admin_ids == ids


def test_admin_ids_from_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ADMIN_IDS=1, 2;3\n", encoding="utf-8")
    assert load_settings().admin_ids == [1, 2, 3]


def test_admin_ids_not_numbers() -> None:
    message = config_error(ADMIN_IDS="1, alice")
    assert "ADMIN_IDS" in message and "@userinfobot" in message


# invalid values


@pytest.mark.parametrize("raw", ["abc", "12.5", "0x1f", "my.telegram.org"])
def test_invalid_tg_api_id(raw: str) -> None:
    message = config_error(TG_API_ID=raw)
    assert message.startswith("Invalid configuration")
    assert "TG_API_ID" in message and "my.telegram.org" in message


@pytest.mark.parametrize("raw", ["api.telegram.org", "ftp://api.telegram.org", "localhost:8081"])
def test_invalid_bot_api_url(raw: str) -> None:
    message = config_error(BOT_API_URL=raw)
    assert "BOT_API_URL" in message and "http://" in message


@pytest.mark.parametrize(
    ("raw", "phrase"),
    [
        ("postgres://user:pw@localhost/tgmon", "only sqlite:///PATH"),
        ("mysql://localhost/tgmon", "only sqlite:///PATH"),
        ("tgmon.db", "only sqlite:///PATH"),
        ("sqlite://tgmon.db", "only sqlite:///PATH"),
        ("sqlite:///", "empty"),
    ],
)
def test_invalid_database_url(raw: str, phrase: str) -> None:
    message = config_error(DATABASE_URL=raw)
    assert "DATABASE_URL" in message and phrase in message


def test_invalid_database_url_does_not_echo_its_password() -> None:
    assert "pw-secret" not in config_error(DATABASE_URL="postgres://user:pw-secret@localhost/tgmon")


def test_invalid_lang_engine() -> None:
    message = config_error(LANG_ENGINE="cld3")
    assert "LANG_ENGINE" in message and "fasttext or langdetect" in message


def test_every_invalid_key_is_named_at_once() -> None:
    message = config_error(TG_API_ID="x", BOT_API_URL="nope", DATABASE_URL="postgres://h/db")
    assert all(key in message for key in ("TG_API_ID", "BOT_API_URL", "DATABASE_URL"))


# required keys


def test_require_telegram_names_tg_api_id() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings().require_telegram()
    message = str(info.value)
    assert "TG_API_ID is not set" in message and "my.telegram.org" in message and ".env" in message


@pytest.mark.parametrize("api_hash", [None, ""])
def test_require_telegram_names_tg_api_hash(monkeypatch: pytest.MonkeyPatch, api_hash: str | None) -> None:
    monkeypatch.setenv("TG_API_ID", "12345")
    if api_hash is not None:
        monkeypatch.setenv("TG_API_HASH", api_hash)
    with pytest.raises(ConfigError) as info:
        load_settings().require_telegram()
    assert "TG_API_HASH is not set" in str(info.value) and "my.telegram.org" in str(info.value)


@pytest.mark.parametrize("token", [None, ""])
def test_require_bot_token_names_botfather(monkeypatch: pytest.MonkeyPatch, token: str | None) -> None:
    if token is not None:
        monkeypatch.setenv("BOT_TOKEN", token)
    settings = load_settings()
    assert not settings.bot_configured
    with pytest.raises(ConfigError) as info:
        settings.require_bot_token()
    assert "BOT_TOKEN is not set" in str(info.value) and "@BotFather" in str(info.value)


def test_blank_tg_api_id_means_not_set(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TG_API_ID=\nTG_API_HASH=\nBOT_TOKEN=\n", encoding="utf-8")
    settings = load_settings()
    assert settings.tg_api_id is None
    with pytest.raises(ConfigError, match="TG_API_ID is not set"):
        settings.require_telegram()


# secrets


def test_secrets_are_secretstr_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_API_ID", "12345")
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert isinstance(settings.tg_api_hash, SecretStr)
    assert isinstance(settings.bot_token, SecretStr)
    assert isinstance(settings.tg_session, SecretStr)
    shown = repr(settings) + str(settings) + repr(settings.model_dump()) + settings.model_dump_json()
    for value in SECRETS.values():
        assert value not in shown
        assert value[:12] not in shown
    assert settings.require_bot_token() == SECRETS["BOT_TOKEN"]
    assert settings.require_telegram() == (12345, SECRETS["TG_API_HASH"])


def test_secrets_not_in_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TG_API_ID", "nope")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert all(value not in str(info.value) for value in SECRETS.values())


# session kind


@pytest.mark.parametrize(
    ("session", "is_string"),
    [
        ("tgmon.session", False),
        ("/var/lib/tgmon/tgmon.session", False),
        ("1.session", False),
        ("1/" + "a" * 200, False),  # a long path that happens to start with 1
        ("/" + "1" * 300, False),
        ("2" + "A" * 352, False),  # not version 1
        ("1" + "A" * 99, False),  # too short for auth data
        (STRING_SESSION, True),
        ("1" + "A" * 352, True),
    ],
)
def test_string_session_detection(monkeypatch: pytest.MonkeyPatch, session: str, is_string: bool) -> None:
    monkeypatch.setenv("TG_SESSION", session)
    assert load_settings().session_is_string is is_string
