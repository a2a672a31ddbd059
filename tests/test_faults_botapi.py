"""Faults from the Bot API, through the real aiogram HTTP session against the fake server on loopback.

Each fault must end: the alert reaches every reachable subscriber, or it is `failed` with the reason in
the outbox after bounded attempts; a blocked user is deactivated; the delivery loop and the bot live on.
(tests/test_delivery.py has the single 429, 403, 500-then-reset, parse-entities and 401 cases.)
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiogram import Bot

from bot.app import run_bot
from bot.delivery import Deliverer, Limits
from core.cli import keep_bot_running, main
from core.settings import load_settings
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import SubscriptionStore
from tests.fakes.botapi import DEFAULT_TOKEN, FakeBotAPI
from tests.fakes.outbox import queue


@pytest.fixture
async def bots() -> AsyncIterator[list[Bot]]:
    made: list[Bot] = []
    yield made
    for bot in made:
        await bot.session.close()


class Hurried:
    """A wall clock that runs a second ahead at every reading: a retry due in a second (the outbox
    keeps whole seconds) is due at once. Waits Telegram asks for (429) are kept on the real clock."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        self.at = max(self.at, datetime.now(UTC)) + timedelta(seconds=1)
        return self.at


def deliverer(
    server: FakeBotAPI,
    store: SubscriptionStore,
    bots: list[Bot],
    *,
    timeout: float = 2.0,
    hurried: bool = True,
    **limits: float,
) -> Deliverer:
    bot = server.make_bot(timeout=timeout)
    bots.append(bot)
    base = {"fold_window": 0.0, "chat_interval": 0.0, "retry_base": 0.02}
    wall = Hurried() if hurried else (lambda: datetime.now(UTC))
    return Deliverer(bot, store, limits=Limits(**(base | limits)), wall=wall)  # type: ignore[arg-type]


async def outbox(archive: SqliteArchive) -> list[tuple[int, str, int, str | None]]:
    """(chat, status, attempts, error) of every outbox row."""
    found = await archive._all("SELECT chat_id, status, attempts, error FROM outbox ORDER BY id")
    return [(int(c), str(s), int(a), e) for c, s, a, e in found]


def attempts(server: FakeBotAPI, chat_id: int | None = None) -> list[int]:
    """Statuses of every sendMessage call the server saw (0: the connection was dropped)."""
    return [
        c.status
        for c in server.calls
        if c.method == "sendMessage" and (chat_id is None or c.chat_id == chat_id)
    ]


async def test_a_burst_of_429s_is_obeyed_and_everyone_gets_theirs(
    server: FakeBotAPI, store: SubscriptionStore, archive: SqliteArchive, bots: list[Bot]
) -> None:
    for chat in range(1, 5):
        await queue(store, chat)
    server.fail("sendMessage", status=429, retry_after=1, times=3)  # after each, the bot pauses all sends
    await deliverer(server, store, bots).drain(within=10)
    assert sorted(c.chat_id for c in server.sent("sendMessage")) == [1, 2, 3, 4]
    for chat in range(1, 5):
        calls = [c for c in server.calls if c.method == "sendMessage" and c.chat_id == chat]
        if calls[0].status == 429:  # the chat waited as told before its next try
            assert [c.status for c in calls] == [429, 200] and calls[1].at - calls[0].at >= 1.0
    assert attempts(server).count(429) == 3
    assert {status for _, status, _, _ in await outbox(archive)} == {"sent"}


async def test_429_without_end_is_given_up_with_the_reason(
    server: FakeBotAPI, store: SubscriptionStore, archive: SqliteArchive, bots: list[Bot]
) -> None:
    await queue(store, 3)
    server.fail("sendMessage", status=429, retry_after=1, times=None)
    await deliverer(server, store, bots, hurried=False, give_up_after=2.5).drain(within=10)
    ((_, status, _, error),) = await outbox(archive)
    assert status == "failed" and error is not None and "throttled (429 retry after 1)" in error
    assert 2 <= attempts(server).count(429) <= 3  # obeyed each wait, then stopped asking


async def test_5xx_an_html_error_page_and_a_reset_are_retried_then_delivered_once(
    server: FakeBotAPI, store: SubscriptionStore, archive: SqliteArchive, bots: list[Bot]
) -> None:
    await queue(store, 7)
    server.fail("sendMessage", status=500, times=1)
    await deliverer(server, store, bots).drain(within=5)  # one fault at a time: each is the next call's
    server.html_error("sendMessage", status=502)
    await queue(store, 7, "1:2", "Second protest")
    await deliverer(server, store, bots).drain(within=5)
    server.reset_connection("sendMessage")
    await queue(store, 7, "1:3", "Third protest")
    await deliverer(server, store, bots).drain(within=5)
    assert attempts(server) == [500, 200, 502, 200, 0, 200]
    texts = [c.text or "" for c in server.sent("sendMessage", chat_id=7)]
    assert [t.split("\n")[1].replace("<b>", "").replace("</b>", "") for t in texts] == [
        "Protest in Almaty", "Second protest", "Third protest",
    ]  # fmt: skip
    assert [(status, tries) for _, status, tries, _ in await outbox(archive)] == [("sent", 2)] * 3


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("500", "TelegramServerError: Telegram server says - Internal Server Error"),
        ("502 page", "not a Bot API answer: 502 Bad Gateway"),
        ("reset", "TelegramNetworkError"),
        ("timeout", "Request timeout error"),
    ],
)
async def test_a_fault_that_never_ends_is_given_up_after_bounded_attempts(
    server: FakeBotAPI,
    store: SubscriptionStore,
    archive: SqliteArchive,
    bots: list[Bot],
    fault: str,
    reason: str,
) -> None:
    await queue(store, 8)
    {
        "500": lambda: server.fail("sendMessage", status=500, times=None),
        "502 page": lambda: server.html_error("sendMessage", times=None),
        "reset": lambda: server.reset_connection("sendMessage", times=None),
        "timeout": lambda: server.delay("sendMessage", 0.6, times=None),
    }[fault]()
    sender = deliverer(server, store, bots, timeout=0.3 if fault == "timeout" else 2.0, max_attempts=3)
    await sender.drain(within=10)
    if fault == "timeout":  # the server is still carrying out the last call the client gave up on
        await server.wait_for("sendMessage", count=3, timeout=3)
    ((_, status, tries, error),) = await outbox(archive)
    assert status == "failed" and tries == 3 and error is not None
    assert error.startswith("gave up after 3 attempts: ") and reason in error and len(error) <= 300
    assert len(attempts(server)) == 3  # bounded: no fourth call
    assert sender.stats.failed == 1


async def test_an_answer_cut_half_way_is_retried_and_the_alert_is_never_lost(
    server: FakeBotAPI, store: SubscriptionStore, archive: SqliteArchive, bots: list[Bot]
) -> None:
    await queue(store, 9)
    server.cut_response("sendMessage")
    await deliverer(server, store, bots).drain(within=5)
    # Telegram took the first call but the answer never arrived: the Bot API has no way to ask, so the
    # retry repeats it (at least once, never lost).
    assert len(server.sent("sendMessage", chat_id=9)) == 2
    assert [status for _, status, _, _ in await outbox(archive)] == ["sent"]


async def test_a_message_that_became_too_long_goes_out_as_plain_text(
    server: FakeBotAPI, store: SubscriptionStore, archive: SqliteArchive, bots: list[Bot]
) -> None:
    queries = [f"very long query number {n} with many words to match" for n in range(100)]
    await queue(store, 11, queries=queries)
    # The renderer keeps alerts under 4,096 UTF-16 units (tests/test_hostile_text.py); Telegram may
    # still count a text as longer than we do (entities it expands), and then says so:
    server.fail("sendMessage", status=400, description="Bad Request: message is too long", chat_id=11)
    await deliverer(server, store, bots).drain(within=5)
    rejected, accepted = [c for c in server.calls if c.method == "sendMessage"]
    assert rejected.status == 400 and "message is too long" in str(rejected.response)
    assert "parse_mode" not in accepted.params and accepted.text is not None
    assert accepted.text.startswith("🔔 KZ News") and "Protest in Almaty" in accepted.text
    assert len(accepted.text) <= 4000 and "<b>" not in accepted.text
    assert [status for _, status, _, _ in await outbox(archive)] == ["sent"]


@pytest.mark.parametrize(
    ("descriptions", "reason"),
    [
        (["can't parse entities: Unsupported start tag", "can't parse entities: again"], "again"),
        (["message is too long", "message is too long"], "message is too long"),
        (["message text is empty"], "message text is empty"),
    ],
)
async def test_a_rejected_message_is_failed_with_the_reason_not_retried(
    server: FakeBotAPI,
    store: SubscriptionStore,
    archive: SqliteArchive,
    bots: list[Bot],
    descriptions: list[str],
    reason: str,
) -> None:
    await queue(store, 12)
    await queue(store, 13)
    for description in descriptions:  # the HTML try, then (for markup or length) the plain-text try
        server.fail("sendMessage", status=400, description=f"Bad Request: {description}", chat_id=12)
    await deliverer(server, store, bots).drain(within=5)
    assert attempts(server, 12) == [400] * len(descriptions)
    rows = {chat: (status, error) for chat, status, _, error in await outbox(archive)}
    assert rows[12][0] == "failed" and reason in (rows[12][1] or "")
    assert rows[13] == ("sent", None)  # the other subscriber is not held up


async def test_the_delivery_loop_survives_every_fault_and_delivers_later_alerts(
    server: FakeBotAPI, store: SubscriptionStore, archive: SqliteArchive, bots: list[Bot]
) -> None:
    chats = {21: "429", 22: "500", 23: "502 page", 24: "reset", 25: "timeout", 26: "blocked", 27: "400"}
    for chat in chats:
        await queue(store, chat)
    server.fail("sendMessage", status=429, retry_after=1, chat_id=21)
    server.fail("sendMessage", status=500, chat_id=22)
    server.html_error("sendMessage", chat_id=23)
    server.reset_connection("sendMessage", chat_id=24)
    server.delay("sendMessage", 0.8, chat_id=25)
    server.block(26)
    server.fail("sendMessage", status=400, description="Bad Request: chat not found", chat_id=27)
    sender = deliverer(server, store, bots, timeout=0.5)
    stop = asyncio.Event()
    loop = asyncio.create_task(sender.run(stop, poll=0.05))
    try:
        for chat in (21, 22, 23, 24):
            await server.wait_for("sendMessage", chat_id=chat, timeout=5)
        await server.wait_for("sendMessage", count=2, chat_id=25, timeout=5)  # the timed-out one, the retry
        assert not loop.done()
        await queue(store, 21, "1:9", "Later protest")  # after the faults, the loop still delivers
        sender.wake()
        later = await server.wait_for("sendMessage", count=2, chat_id=21, timeout=5)
        assert "Later" in (later[-1].text or "")
        assert not loop.done()
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)
    assert len(server.sent("sendMessage", chat_id=25)) >= 2  # a timed-out send may arrive: at least once
    for chat in (26, 27):
        subscriber = await store.get_subscriber(chat)
        assert subscriber is not None and not subscriber.active, chat
    assert "blocked" in ((await store.get_subscriber(26)).inactive_reason or "")  # type: ignore[union-attr]
    statuses = {chat: status for chat, status, _, _ in await outbox(archive)}
    assert statuses == {21: "sent", 22: "sent", 23: "sent", 24: "sent", 25: "sent", 26: "dropped",
                        27: "dropped"}  # fmt: skip


async def test_run_bot_survives_api_faults_at_start_and_while_polling(
    server: FakeBotAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "tgmon.db"
    env = {"DATABASE_URL": f"sqlite:///{db}", "BOT_TOKEN": DEFAULT_TOKEN, "BOT_API_URL": server.url,
           "FOLD_WINDOW": "0", "TG_API_ID": "", "TG_API_HASH": ""}  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    server.html_error("setMyCommands", times=None)  # the menu cannot be set: the bot goes on without it
    server.reset_connection("getUpdates")
    server.html_error("getUpdates", status=502)
    archive = await SqliteArchive.open(db)
    bot = asyncio.create_task(run_bot(load_settings(), archive))
    try:
        server.push_message(501, "/start", language_code="en")
        (welcome,) = await server.wait_for("sendMessage", chat_id=501, timeout=10)
        assert not bot.done() and welcome.text
        store = SubscriptionStore(archive)
        await archive.upsert_channel(1, "kz_news", "KZ News")
        await queue(store, 501)
        alert = await server.wait_for("sendMessage", count=2, chat_id=501, timeout=10)
        assert "Protest" in (alert[-1].text or "") and not bot.done()  # delivery runs beside polling
    finally:
        bot.cancel()
        await asyncio.gather(bot, return_exceptions=True)
        await archive.close()
    assert [c.status for c in server.calls if c.method == "getUpdates"][:2] == [0, 502]


def bot_env(server: FakeBotAPI, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"DATABASE_URL": f"sqlite:///{db}", "BOT_TOKEN": DEFAULT_TOKEN, "BOT_API_URL": server.url,
           "FOLD_WINDOW": "0", "TG_API_ID": "", "TG_API_HASH": ""}  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(db.parent)


async def test_the_bot_alone_restarts_when_telegram_fails_at_start(
    server: FakeBotAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot_env(server, tmp_path / "tgmon.db", monkeypatch)
    server.html_error("getMe", status=502)  # aiogram's polling asks getMe first: a failure ends run_bot
    archive = await SqliteArchive.open(tmp_path / "tgmon.db")
    bot = asyncio.create_task(keep_bot_running(load_settings(), archive, alone=True, first_delay=0.05))
    try:
        server.push_message(501, "/start", language_code="en")
        await server.wait_for("sendMessage", chat_id=501, timeout=10)
        assert not bot.done()
        assert [c.status for c in server.calls if c.method == "getMe"][:2] == [502, 200]
    finally:
        bot.cancel()
        await asyncio.gather(bot, return_exceptions=True)
        await archive.close()


def test_tgmon_bot_with_a_refused_token_is_one_line_not_a_restart_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def serve() -> tuple[int, str]:
        async with FakeBotAPI(token="42:another-token") as server:  # answers 401 to our token
            bot_env(server, tmp_path / "tgmon.db", monkeypatch)
            err = io.StringIO()
            code = await asyncio.to_thread(main, ["bot"], err)
            return code, err.getvalue()

    code, err = asyncio.run(serve())
    assert code == 2 and "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("tgmon:")]
    assert line == "tgmon: Telegram refused BOT_TOKEN (Unauthorized): check it with @BotFather"
