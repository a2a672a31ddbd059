"""File modes of what holds secrets or subscribers' data, and the per-user limits as Settings set them.

(Secrets in output: test_security_leaks.py. Roles and forged buttons: test_bot_access.py.)
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiogram.methods import SendMessage
from aiogram.types import Chat, Message, MessageEntity, Update, User
from pydantic import SecretStr

from bot.app import build_bot, build_dispatcher, run_bot
from bot.handlers.export import ExportAsk, ExportSessions
from bot.services.subscribers import ServiceError, SubscriberService
from collectors.telegram import build_client
from core.models import RawPost
from core.pipeline import Pipeline
from core.settings import ConfigError, Settings, load_settings
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import QueryLimitReached, SubscriptionStore
from tests.fakes.bot_session import FakeBotSession
from tests.fakes.botapi import DEFAULT_TOKEN, FakeBotAPI
from tests.fakes.memory import FixedDetector
from tests.test_settings import isolate

ANALYST = 777


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A permissive umask: an owner-only mode must come from tgmon, not from the user's luck."""
    old = os.umask(0)
    yield
    os.umask(old)


# file modes


async def test_database_wal_and_shm_are_owner_only(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "data" / "tgmon.db"
    archive = await SqliteArchive.open(db)
    try:
        await archive.upsert_channel(1, "news", "News")
        await SubscriptionStore(archive).upsert_subscriber(5, 5, "en")
        files = sorted(db.parent.iterdir())
        assert [p.name for p in files] == ["tgmon.db", "tgmon.db-shm", "tgmon.db-wal"]
        assert {p.name: mode(p) for p in files} == dict.fromkeys((p.name for p in files), 0o600)
    finally:
        await archive.close()


def session_settings(path: Path) -> Settings:
    return Settings(_env_file=None, tg_api_id=1, tg_api_hash="0123456789abcdef", tg_session=str(path))  # type: ignore[call-arg, arg-type]


def test_session_file_is_owner_only_before_telethon_writes_it(tmp_path: Path, open_umask: None) -> None:
    """SQLite would create it 0644; the auth key is saved into it at the first connect, before any
    login finishes, so a chmod afterwards leaves a window."""
    client = build_client(session_settings(tmp_path / "tgmon"))
    path = tmp_path / "tgmon.session"
    assert mode(path) == 0o600
    client.session.set_dc(2, "127.0.0.1", 443)
    client.session.save()  # Telethon writes its tables and the data centre
    client.session.close()
    assert mode(path) == 0o600 and path.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == ["tgmon.session"]  # no journal left behind


def test_an_existing_readable_session_file_is_made_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "old.session"
    path.write_bytes(b"")
    path.chmod(0o644)
    build_client(session_settings(path)).session.close()
    assert mode(path) == 0o600


def test_a_session_in_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot create the session file .*nowhere.* \(TG_SESSION\)"):
        build_client(session_settings(tmp_path / "nowhere" / "tgmon.session"))


# the query limit


async def test_parallel_adds_cannot_pass_the_query_limit(archive: SqliteArchive) -> None:
    """Updates are handled as concurrent tasks: counting before the insert let a burst overshoot."""
    store = SubscriptionStore(archive)
    service = SubscriberService(archive, store, max_queries=5)
    await store.upsert_subscriber(1, 1, "en")
    results = await asyncio.gather(
        *(service.add_query(1, f"word{n}") for n in range(20)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, ServiceError)]
    assert len(refused) == 15 and {r.key for r in refused} == {"too_many_queries"}
    assert len(await store.list_queries(1)) == 5
    with pytest.raises(QueryLimitReached):
        await store.add_query(1, "direct", limit=5)
    await store.delete_query(1, (await store.list_queries(1))[0].id)
    assert (await service.add_query(1, "room again")).text == "room again"  # a deleted one frees a place


# limits from Settings


@pytest.mark.parametrize(
    ("key", "value"),
    [("MAX_QUERIES", "0"), ("MAX_QUERIES", "5000"), ("COMMANDS_PER_MINUTE", "0"), ("EXPORTS_PER_HOUR", "x")],
)
def test_bad_limits_are_config_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    isolate(monkeypatch, tmp_path)
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=key):
        load_settings()


class NoDigests:
    async def send_now(self, subscriber: object, period: object) -> None:
        return None


async def test_commands_per_minute_comes_from_settings(archive: SqliteArchive) -> None:
    settings = Settings(_env_file=None, bot_token=SecretStr("42:TEST"), commands_per_minute=2)  # type: ignore[call-arg]
    store = SubscriptionStore(archive)
    session = FakeBotSession()
    bot = build_bot(settings, session)
    dp = build_dispatcher(archive, settings, service=SubscriberService(archive, store), digests=NoDigests())

    async def send(n: int) -> list[str]:
        before = len(session.calls)
        message = Message(
            message_id=n, date=0, chat=Chat(id=9, type="private"), text="/help",
            from_user=User(id=9, is_bot=False, first_name="U", language_code="en"),
            entities=[MessageEntity(type="bot_command", offset=0, length=5)],
        )  # fmt: skip
        await dp.feed_update(bot, Update(update_id=n, message=message))
        return [c.text for c in session.calls[before:] if isinstance(c, SendMessage)]

    assert len(await send(1)) == 1 and len(await send(2)) == 1
    assert await send(3) == ["🐢 Too many commands at once. Please wait a minute and try again."]


@pytest.fixture
async def bot_with_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeBotAPI]:
    """The whole bot over HTTP, its limits set only through the environment."""
    isolate(monkeypatch, tmp_path)
    async with FakeBotAPI(poll_wait=0.1) as server:
        db = tmp_path / "tgmon.db"
        env = {
            "DATABASE_URL": f"sqlite:///{db}", "BOT_TOKEN": DEFAULT_TOKEN, "BOT_API_URL": server.url,
            "ADMIN_IDS": str(ANALYST),
            "MAX_QUERIES": "2", "SEARCHES_PER_MINUTE": "1", "EXPORTS_PER_HOUR": "1",
        }  # fmt: skip
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        archive = await SqliteArchive.open(db)
        await archive.upsert_channel(1, "kz_news", "KZ News")
        now = datetime.now(UTC)
        posts = [
            RawPost(1, i, now - timedelta(hours=i), f"Protest number {i} in Almaty") for i in range(1, 9)
        ]
        await Pipeline(archive, FixedDetector()).ingest(posts)
        task = asyncio.create_task(run_bot(load_settings(), archive))
        try:
            yield server
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await archive.close()


async def test_query_search_and_export_limits_come_from_settings(bot_with_limits: FakeBotAPI) -> None:
    server = bot_with_limits
    replies = 0

    async def send(text: str, answers: int = 1) -> str:
        nonlocal replies
        replies += answers
        server.push_message(ANALYST, text)
        sent = await server.wait_for("sendMessage", count=replies, chat_id=ANALYST, timeout=15)
        return sent[-1].text or ""

    assert (await send("/add alpha")).startswith("✅ Added #1")
    assert (await send("/add beta")).startswith("✅ Added #2")
    assert (await send("/add gamma")).startswith("You already have 2 queries, the most allowed.")
    assert (await send("/search protest")).startswith("🔎")
    assert await send("/search almaty") == "🐢 Too many searches: up to 1 a minute. Please wait a little."
    assert (await send("/export format=csv", answers=2)).startswith("✅")  # working…, then done
    assert len(server.sent("sendDocument", chat_id=ANALYST)) == 2  # the dump and its manifest
    assert await send("/export format=jsonl") == "🐢 Up to 1 exports an hour. Please wait a little."
    assert len(server.sent("sendDocument", chat_id=ANALYST)) == 2


def test_only_the_newest_export_confirmation_stays_live() -> None:
    """Confirmations wait in memory: one per user, however many large exports they ask for."""
    exports = ExportSessions()
    keys = [exports.hold(ANALYST, ExportAsk(format="csv")) for _ in range(100)]
    other = exports.hold(ANALYST + 1, ExportAsk(format="jsonl"))
    assert len(exports.pending) == 2
    assert exports.take(ANALYST, keys[0]) is None  # an older button: expired
    assert exports.take(ANALYST, other) is None  # someone else's
    assert exports.take(ANALYST, keys[-1]) == ExportAsk(format="csv")
    assert exports.take(ANALYST + 1, other) == ExportAsk(format="jsonl")
