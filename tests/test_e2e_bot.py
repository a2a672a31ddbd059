"""End to end over HTTP: the bot against the fake Bot API, an import in another process, the alert.

/start and /add through real aiogram polling, `tgmon import` of a fresh post as a subprocess, the
alert with highlight and link, /summary with its chart; and a bot killed mid fan-out that resumes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from bot.app import run_bot
from core.settings import load_settings
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import AlertRecord, SubscriptionStore
from tests.fakes.botapi import DEFAULT_TOKEN, FakeBotAPI

T = TypeVar("T")
USER = 501
CHANNEL = 1500000077


def export_with_fresh_post(path: Path) -> Path:
    now = int(time.time())
    message = {
        "id": 42, "type": "message", "date": "2026-01-01T00:00:00", "date_unixtime": str(now - 60),
        "from": "KZ Wire", "from_id": f"channel{CHANNEL}",
        "text": [
            "Protesters gathered in ", {"type": "bold", "text": "Almaty"}, " on Sunday <demanding> reforms.",
        ],
        "text_entities": [
            {"type": "plain", "text": "Protesters gathered in "}, {"type": "bold", "text": "Almaty"},
            {"type": "plain", "text": " on Sunday <demanding> reforms."},
        ],
    }  # fmt: skip
    chat = {"name": "KZ Wire", "type": "public_channel", "id": CHANNEL, "messages": [message]}
    path.write_text(json.dumps(chat, ensure_ascii=False), encoding="utf-8")
    return path


def env_for(server: FakeBotAPI, db: Path) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": f"sqlite:///{db}", "BOT_TOKEN": DEFAULT_TOKEN, "BOT_API_URL": server.url,
        "FOLD_WINDOW": "0", "LANG_ENGINE": "fasttext", "TG_API_ID": "", "TG_API_HASH": "",
    }  # fmt: skip


async def eventually(check: Callable[[], Awaitable[T]], within: float = 10.0) -> T:
    """Poll another process's effect until it shows (there is no event to wait on across processes)."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)


@pytest.fixture
async def server() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(poll_wait=0.2) as fake:
        yield fake


async def test_start_add_import_alert_and_summary(
    server: FakeBotAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "tgmon.db"
    for key, value in env_for(server, db).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    archive = await SqliteArchive.open(db)
    bot_task = asyncio.create_task(run_bot(load_settings(), archive))
    try:
        server.push_message(USER, "/start", language_code="en")
        await server.wait_for("sendMessage", chat_id=USER, timeout=10)
        server.push_message(USER, "/add protest Almaty")
        replies = await server.wait_for("sendMessage", count=2, chat_id=USER, timeout=10)
        assert "protest Almaty" in replies[-1].text

        export = export_with_fresh_post(tmp_path / "result.json")
        imported = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "core.cli", "import", str(export)],
            env=env_for(server, db), cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert imported.returncode == 0, imported.stderr
        calls = await server.wait_for("sendMessage", count=3, chat_id=USER, timeout=15)
        alert = calls[-1].text
        assert "<b>Protesters</b>" in alert and "<b>Almaty</b>" in alert and "&lt;demanding&gt;" in alert
        assert f'href="https://t.me/c/{CHANNEL}/42"' in alert and "KZ Wire" in alert

        store = SubscriptionStore(archive)
        latency = await eventually(store.latencies)  # marked sent just after Telegram accepted it
        assert len(latency) == 1 and 0 <= latency[0] < 15

        server.push_message(USER, "/summary")
        (photo,) = await server.wait_for("sendPhoto", chat_id=USER, timeout=20)
        assert photo.files["photo"].data.startswith(b"\x89PNG") and "1" in str(photo.params.get("caption"))
    finally:
        bot_task.cancel()
        await asyncio.gather(bot_task, return_exceptions=True)
        await archive.close()


async def test_a_killed_bot_resumes_without_losing_alerts(server: FakeBotAPI, tmp_path: Path) -> None:
    db = tmp_path / "tgmon.db"
    archive = await SqliteArchive.open(db)
    store = SubscriptionStore(archive)
    await archive.upsert_channel(1, "kz_news", "KZ News")
    chats = list(range(1000, 1150))
    for chat in chats:
        await store.upsert_subscriber(chat, chat, "en")
        payload = {"channel": "@kz_news", "channel_title": "KZ", "url": "https://t.me/kz_news/1",
                   "date": "2026-01-01T00:00:00+00:00", "snippet": f"alert for {chat}", "spans": [],
                   "queries": ["x"], "edited": False, "also_in": []}  # fmt: skip
        await store.record_alerts([AlertRecord(chat, chat, 1, 1, "1:1", (), payload, True, time.time())])
    await archive.close()

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "core.cli", "bot"], env=env_for(server, db), cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    bot = start()
    try:
        await server.wait_for("sendMessage", count=40, timeout=30)
        bot.send_signal(signal.SIGKILL)
        bot.wait()
        killed_at = len(server.sent("sendMessage"))
        bot = start()

        async def all_reached() -> bool:
            return len({c.chat_id for c in server.sent("sendMessage")}) == len(chats)

        await eventually(all_reached, within=60)
    finally:
        bot.send_signal(signal.SIGKILL)
        bot.wait()
    delivered = [c.chat_id for c in server.sent("sendMessage")]
    assert set(delivered) == set(chats)  # nothing lost
    repeats = len(delivered) - len(set(delivered))
    assert repeats <= 8, f"{repeats} repeats"  # at most the sends in flight at the kill (concurrency 8)
    assert killed_at >= 40
    print(f"killed after {killed_at} sends; {repeats} repeated after the restart")
