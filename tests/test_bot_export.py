"""/export over HTTP: the real aiogram session against the fake Bot API sends gzip documents."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import bot.handlers.export as export_handler
from bot.app import run_bot
from bot.handlers.export import ExportParseError, parse_export
from core.models import RawPost
from core.pipeline import Pipeline
from core.settings import load_settings
from core.storage.sqlite import SqliteArchive
from tests.fakes.botapi import DEFAULT_TOKEN, FakeBotAPI
from tests.fakes.memory import FixedDetector

ANALYST = 777


def test_parse_export_options() -> None:
    ask = parse_export("format=jsonl channel=@kz since=2026-01-01 lang=RU query=протест Алматы -реклама")
    assert (ask.format, ask.channel, ask.lang, ask.query) == ("jsonl", "@kz", "ru", "протест Алматы -реклама")
    assert ask.since == datetime(2026, 1, 1, tzinfo=UTC)
    for bad in ["format=xls", "since=yesterday", "color=red", "oops"]:
        with pytest.raises(ExportParseError):
            parse_export(bad)


@pytest.fixture
async def bot_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(poll_wait=0.1) as server:
        db = tmp_path / "tgmon.db"
        for key, value in {
            "DATABASE_URL": f"sqlite:///{db}", "BOT_TOKEN": DEFAULT_TOKEN, "BOT_API_URL": server.url,
            "ADMIN_IDS": str(ANALYST),
        }.items():  # fmt: skip
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(tmp_path)
        archive = await SqliteArchive.open(db)
        await archive.upsert_channel(1, "kz_news", "KZ News")
        now = datetime.now(UTC)
        posts = [RawPost(1, i, now - timedelta(hours=i), f"Протест номер {i} в Алматы") for i in range(1, 31)]
        await Pipeline(archive, FixedDetector()).ingest(posts)
        task = asyncio.create_task(run_bot(load_settings(), archive))
        try:
            yield server
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await archive.close()


async def test_export_sends_gzip_documents_and_a_manifest(bot_env: FakeBotAPI) -> None:
    server = bot_env
    server.push_message(ANALYST, "/export format=jsonl query=номер")
    docs = await server.wait_for("sendDocument", count=2, chat_id=ANALYST, timeout=15)
    dump, manifest = docs[0].files["document"], docs[1].files["document"]
    assert dump.filename.endswith(".jsonl.gz") and manifest.filename.endswith(".manifest.json")
    rows = [json.loads(line) for line in gzip.decompress(dump.data).decode().splitlines()]
    assert len(rows) == 30 and all("Алматы" in r["text"] for r in rows)
    listed = json.loads(manifest.data)["files"][0]
    assert listed["sha256"] == hashlib.sha256(dump.data).hexdigest()


async def test_a_large_export_asks_first(bot_env: FakeBotAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    server = bot_env
    monkeypatch.setattr(export_handler, "CONFIRM_ABOVE", 10)
    server.push_message(ANALYST, "/export format=csv")
    (ask,) = await server.wait_for("sendMessage", chat_id=ANALYST, timeout=10)
    assert "30" in ask.text
    buttons = ask.params["reply_markup"]["inline_keyboard"][0]
    server.push_callback(ANALYST + 1, buttons[0]["callback_data"], ask.response["result"]["message_id"])
    await asyncio.sleep(0.5)
    assert server.sent("sendDocument") == []  # someone else's button starts nothing
    server.push_callback(ANALYST, buttons[0]["callback_data"], ask.response["result"]["message_id"])
    (dump, _) = await server.wait_for("sendDocument", count=2, chat_id=ANALYST, timeout=15)
    assert gzip.decompress(dump.files["document"].data).decode("utf-8-sig").count("\r\n") == 31
