"""The bot end to end: real Dispatcher, real archive and service, a fake Bot API behind the session."""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.default import Default
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage
from aiogram.types import CallbackQuery, Chat, InlineKeyboardMarkup, Message, MessageEntity, Update, User
from pydantic import SecretStr

from bot.app import build_bot, build_dispatcher, set_commands
from bot.handlers.schedule import next_digest
from bot.keyboards import ChannelAction, MenuAction, MenuItem, QueryAction, QueryOp
from bot.middlewares import RateLimiter, Verdict
from bot.services.subscribers import SubscriberService
from bot.texts import COMMANDS
from core.settings import Settings
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import SubscriptionStore
from core.subscriptions import DigestMode, Subscriber
from tests.fakes.bot_session import FakeBotSession, parse_telegram_html
from tests.fakes.clock import FakeClock

ANN, BOB = 111, 222
BOT_ID = 42
# Wednesday 15 May 2024, 10:00 UTC: 12:00 in Berlin (CEST)
NOW = datetime(2024, 5, 15, 10, 0, tzinfo=UTC)


@dataclass
class RecordingDigests:
    calls: list[tuple[int, timedelta]] = field(default_factory=list)
    fail: bool = False

    async def send_now(self, subscriber: Subscriber, period: timedelta) -> None:
        if self.fail:
            raise RuntimeError("digest store exploded")
        self.calls.append((subscriber.id, period))


@dataclass
class Env:
    dp: Dispatcher
    bot: Bot
    session: FakeBotSession
    service: SubscriberService
    store: SubscriptionStore
    archive: SqliteArchive
    clock: FakeClock
    digests: RecordingDigests
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _user(self, user_id: int, language_code: str | None) -> User:
        return User(id=user_id, is_bot=False, first_name="Ann", language_code=language_code)

    async def send(
        self, text: str, user: int = ANN, language_code: str | None = "en", chat_type: str = "private"
    ) -> list[str]:
        """Feed one message; the texts the bot sent or edited in reply."""
        n = next(self.ids)
        entities = None
        if text.startswith("/"):
            entities = [MessageEntity(type="bot_command", offset=0, length=len(text.split()[0]))]
        message = Message(
            message_id=n,
            date=self.clock.now(),
            chat=Chat(id=user if chat_type == "private" else -100, type=chat_type),
            from_user=self._user(user, language_code),
            text=text,
            entities=entities,
        )
        before = len(self.session.calls)
        await self.dp.feed_update(self.bot, Update(update_id=n, message=message))
        return _texts(self.session.calls[before:])

    async def press(self, data: str, message_id: int, user: int = ANN) -> tuple[str | None, list[str]]:
        """Press a button under the bot's message `message_id`: (callback answer, texts sent or edited)."""
        n = next(self.ids)
        stored = self.session.messages.get((user, message_id))
        shown = Message(
            message_id=message_id,
            date=self.clock.now(),
            chat=Chat(id=user, type="private"),
            from_user=User(id=BOT_ID, is_bot=True, first_name="tgmon"),
            text=stored.plain if stored else "…",
        )
        callback = CallbackQuery(
            id=str(n), from_user=self._user(user, "en"), chat_instance="ci", data=data, message=shown
        )
        before = len(self.session.calls)
        await self.dp.feed_update(self.bot, Update(update_id=n, callback_query=callback))
        calls = self.session.calls[before:]
        answers = [c.text for c in calls if isinstance(c, AnswerCallbackQuery)]
        assert len(answers) <= 1
        return (answers[0] if answers else None), _texts(calls)

    def last_sent(self) -> SendMessage:
        return self.session.sent()[-1]

    def buttons(self, method: SendMessage | EditMessageText | None = None) -> list[list[str]]:
        """Callback data of the last message's keyboard, row by row."""
        method = method or self.last_sent()
        markup = method.reply_markup
        assert isinstance(markup, InlineKeyboardMarkup)
        return [[b.callback_data or "" for b in row] for row in markup.inline_keyboard]

    def last_edit(self) -> EditMessageText:
        return [c for c in self.session.calls if isinstance(c, EditMessageText)][-1]


def _texts(calls: list[Any]) -> list[str]:
    return [c.text or "" for c in calls if isinstance(c, SendMessage | EditMessageText)]


@pytest.fixture
async def env(archive: SqliteArchive) -> AsyncIterator[Env]:
    store = SubscriptionStore(archive)
    service = SubscriberService(archive, store, max_queries=3)
    session = FakeBotSession()
    settings = Settings(_env_file=None, bot_token=SecretStr(f"{BOT_ID}:TEST"))  # type: ignore[call-arg]
    bot = build_bot(settings, session)
    clock = FakeClock()
    digests = RecordingDigests()
    dp = build_dispatcher(
        archive,
        settings,
        service=service,
        digests=digests,
        limiter=RateLimiter(clock=clock.monotonic),
        clock=clock.now,
    )
    yield Env(dp, bot, session, service, store, archive, clock, digests)
    # nothing the bot sent would have been refused by Telegram, and all of it is HTML
    assert session.refused == []
    for call in session.calls:
        if isinstance(call, SendMessage | EditMessageText):
            assert (
                isinstance(call.parse_mode, Default) or call.parse_mode == "HTML"
            )  # the bot's default: HTML
            parse_telegram_html(call.text or "")


async def subscriber(env: Env, user: int = ANN) -> Subscriber:
    found = await env.store.get_subscriber(user)
    assert found is not None
    return found


# /start, /help, /language


@pytest.mark.parametrize(
    ("code", "ui"), [("ru", "ru"), ("uk", "ru"), ("kk", "ru"), ("en", "en"), ("de", "en"), (None, "en")]
)
async def test_start_creates_the_subscriber_in_their_language(env: Env, code: str | None, ui: str) -> None:
    [reply] = await env.send("/start", language_code=code)
    found = await subscriber(env)
    assert found.ui_lang == ui and found.chat_id == ANN
    if ui == "ru":
        assert "Привет" in reply and "/add протест Алматы" in reply
    else:
        assert "Hi! I'm tgmon" in reply and "/add protest Almaty" in reply
    assert env.buttons() == [["m1:add"], ["m1:list", "m1:help"], ["l1:en:1" if ui == "ru" else "l1:ru:1"]]


async def test_bot_speaks_html_without_link_previews(env: Env) -> None:
    assert env.bot.default["parse_mode"] == "HTML"
    assert env.bot.default["link_preview_is_disabled"] is True


async def test_help_lists_every_command(env: Env) -> None:
    [reply] = await env.send("/help")
    for command in COMMANDS:
        assert f"\n/{command.command}" in reply
    assert len(reply.splitlines()) >= len(COMMANDS) + 2


async def test_language_switch_changes_the_texts(env: Env) -> None:
    await env.send("/start")
    assert await env.send("/language ru") == ["✅ Язык интерфейса: русский."]
    [reply] = await env.send("/help")
    assert "Команды" in reply and "добавить запрос" in reply
    assert (await subscriber(env)).ui_lang == "ru"
    [reply] = await env.send("/language deutsch")
    assert "«deutsch»" in reply
    [reply] = await env.send("/language")
    assert "русский" in reply


async def test_language_button_on_start_redraws_the_greeting(env: Env) -> None:
    await env.send("/start", language_code="en")
    greeting = env.last_sent()
    answer, [edited] = await env.press("l1:ru:1", message_id=env.session._next_id)
    assert answer == "✅ Язык интерфейса: русский."
    assert "Привет" in edited and edited != greeting.text
    assert env.buttons(env.last_edit())[-1] == ["l1:en:1"]
    answer, _ = await env.press("l1:de:1", message_id=env.session._next_id)  # crafted
    assert answer == "Эта кнопка устарела: отправьте команду ещё раз."
    assert (await subscriber(env)).ui_lang == "ru"


async def test_menu_buttons(env: Env) -> None:
    await env.send("/start")
    start_id = env.session._next_id
    _, [text] = await env.press(MenuAction(item=MenuItem.ADD).pack(), start_id)
    assert "<code>/add protest Almaty</code>" in text
    _, [text] = await env.press(MenuAction(item=MenuItem.LIST).pack(), start_id)
    assert "no queries yet" in text
    _, [text] = await env.press(MenuAction(item=MenuItem.HELP).pack(), start_id)
    assert "/digest" in text


# /add, /list, /remove


async def test_add_a_good_query(env: Env) -> None:
    assert await env.send("/add протест Алматы") == ["✅ Added #1: <code>протест Алматы</code>"]
    assert await env.send('/add "state of emergency" & <riot>') == [
        '✅ Added #2: <code>"state of emergency" &amp; &lt;riot&gt;</code>'
    ]
    assert [q.text for q in await env.store.list_queries(ANN)] == [
        "протест Алматы",
        '"state of emergency" & <riot>',
    ]


async def test_add_a_broken_query_points_at_the_problem(env: Env) -> None:
    [reply] = await env.send("/add <b>protest OR")
    assert reply == (
        "⚠️ I could not read this query: 'OR' needs a word on both sides.\n"
        "<pre>&lt;b&gt;protest OR\n           ^</pre>\nThe query syntax: /help."
    )
    assert await env.store.list_queries(ANN) == []


async def test_add_without_a_query_shows_usage(env: Env) -> None:
    [reply] = await env.send("/add   ")
    assert (
        reply.startswith("Write the query after the command") and "<code>/add protest Almaty</code>" in reply
    )
    [reply] = await env.send("/add", language_code="ru")
    assert "Напишите запрос" not in reply  # the UI language was set at first contact, not per message


async def test_query_limit(env: Env) -> None:
    for word in ("one", "two", "three"):
        await env.send(f"/add {word}")
    [reply] = await env.send("/add four")
    assert reply.startswith("You already have 3 queries, the most allowed.")
    assert len(await env.store.list_queries(ANN)) == 3


async def test_list_numbers_queries_with_buttons(env: Env) -> None:
    await env.send("/add alpha")
    await env.send("/add beta <x>")
    first, second = await env.store.list_queries(ANN)
    await env.store.set_query_paused(ANN, second.id, True)
    [reply] = await env.send("/list")
    assert "1. <code>alpha</code>\n2. <code>beta &lt;x&gt;</code> ⏸ <i>paused</i>" in reply
    assert env.buttons() == [
        [f"q1:p:{first.id}", f"q1:d:{first.id}"],
        [f"q1:r:{second.id}", f"q1:d:{second.id}"],
    ]


async def test_list_when_empty_and_when_all_paused(env: Env) -> None:
    [reply] = await env.send("/list")
    assert "no queries yet" in reply and env.last_sent().reply_markup is None
    await env.send("/add alpha")
    await env.send("/pause")
    [reply] = await env.send("/list")
    assert "All alerts are paused" in reply


async def test_pause_resume_and_delete_buttons_edit_the_list(env: Env) -> None:
    await env.send("/add alpha")
    await env.send("/add beta")
    first, second = await env.store.list_queries(ANN)
    await env.send("/list")
    list_id = env.session._next_id

    answer, [edited] = await env.press(QueryAction(op=QueryOp.PAUSE, query_id=first.id).pack(), list_id)
    assert answer == "Paused" and "1. <code>alpha</code> ⏸ <i>paused</i>" in edited
    assert env.buttons(env.last_edit())[0] == [f"q1:r:{first.id}", f"q1:d:{first.id}"]
    assert (await env.store.get_query(ANN, first.id)).paused  # type: ignore[union-attr]

    answer, [edited] = await env.press(f"q1:r:{first.id}", list_id)
    assert answer == "Resumed" and "paused" not in edited

    answer, [edited] = await env.press(f"q1:d:{first.id}", list_id)
    assert answer == "Deleted" and "1. <code>beta</code>" in edited and "alpha" not in edited
    assert [q.id for q in await env.store.list_queries(ANN)] == [second.id]

    answer, texts = await env.press(f"q1:d:{first.id}", list_id)  # the same button again
    assert answer == "Query not found" and texts == [env.session.messages[(ANN, list_id)].text]


async def test_crafted_button_for_another_users_query_does_nothing(env: Env) -> None:
    await env.send("/add alpha")
    [query] = await env.store.list_queries(ANN)
    await env.send("/list", user=BOB)
    bob_list = env.session._next_id
    for op in QueryOp:
        answer, _ = await env.press(QueryAction(op=op, query_id=query.id).pack(), bob_list, user=BOB)
        assert answer == "Query not found"
    still = await env.store.get_query(ANN, query.id)
    assert still is not None and not still.paused


async def test_a_list_that_can_no_longer_be_edited_is_sent_again(env: Env) -> None:
    await env.send("/add alpha")
    [query] = await env.store.list_queries(ANN)
    answer, texts = await env.press(f"q1:p:{query.id}", message_id=1)  # not a message the bot knows
    assert answer == "Paused" and len(texts) == 2 and texts[0] == texts[1]
    assert isinstance(env.session.calls[-1], SendMessage)
    assert env.session.refused == ["EditMessageText: Bad Request: message to edit not found"]
    env.session.refused.clear()


async def test_out_of_date_and_malformed_buttons(env: Env) -> None:
    await env.send("/list")
    for data in ("q0:d:1", "q1:x:1", "q1:d:abc", "zz", "c1:notanumber"):
        answer, texts = await env.press(data, env.session._next_id)
        assert answer == "This button is out of date: send the command again." and texts == []


async def test_remove_by_number(env: Env) -> None:
    await env.send("/add alpha")
    await env.send("/add beta")
    assert await env.send("/remove 3") == ["There is no query #3: use a number from 1 to 2 (see /list)."]
    assert await env.send("/remove 0") == ["There is no query #0: use a number from 1 to 2 (see /list)."]
    [reply] = await env.send("/remove two")
    assert reply.startswith("“two” is not a query number.")
    [reply] = await env.send("/remove")
    assert reply.startswith("Give the query's number from /list")
    assert len(await env.store.list_queries(ANN)) == 2
    assert await env.send("/remove 1") == ["🗑 Deleted #1: <code>alpha</code>"]
    assert await env.send("/remove #1") == ["🗑 Deleted #1: <code>beta</code>"]
    assert await env.send("/remove 1") == ["There is no query #1: you have no queries yet."]


# /lang, /channels


async def test_lang(env: Env) -> None:
    [reply] = await env.send("/lang")
    assert reply.startswith("Posts in: any language.")
    assert await env.send("/lang ru EN") == ["✅ Posts in: en, ru."]
    assert (await subscriber(env)).langs == ("en", "ru")
    [reply] = await env.send("/lang ru xx")
    assert reply.startswith("Unknown language code “xx”.") and "<code>/lang ru en kk</code>" in reply
    [reply] = await env.send("/lang <russian>")
    assert reply.startswith("Unknown language code “&lt;russian&gt;”.")
    assert (await subscriber(env)).langs == ("en", "ru")
    assert await env.send("/lang any") == ["✅ Posts in: any language."]
    assert (await subscriber(env)).langs == ()


async def test_channels_toggle(env: Env) -> None:
    [reply] = await env.send("/channels")
    assert reply.startswith("No channels are watched yet")
    await env.archive.upsert_channel(1001, "tengrinews", "Tengri News")
    await env.archive.upsert_channel(1002, None, "Vlast <kz>")
    [reply] = await env.send("/channels")
    assert "<b>Channels I watch</b>: 2." in reply and "<b>all</b>" in reply
    assert env.buttons() == [["c1:0"], ["c1:1001"], ["c1:1002"]]
    message_id = env.session._next_id

    answer, [edited] = await env.press(ChannelAction(channel_id=1002).pack(), message_id)
    assert answer == "Saved" and "only from (1): Vlast &lt;kz&gt;" in edited
    assert (await subscriber(env)).channels == (1002,)
    labels = [b.text for row in env.last_edit().reply_markup.inline_keyboard for b in row]  # type: ignore[union-attr]
    assert labels == ["All channels", "▫️ @tengrinews", "✅ Vlast <kz>"]

    await env.press("c1:1001", message_id)
    assert (await subscriber(env)).channels == (1001, 1002)
    await env.press("c1:999", message_id)  # not a watched channel: ignored
    assert (await subscriber(env)).channels == (1001, 1002)
    answer, [edited] = await env.press("c1:0", message_id)
    assert answer == "All channels" and "<b>all</b>" in edited
    assert (await subscriber(env)).channels == ()


# /pause, /resume, /quiet, /timezone, /digest


async def test_pause_and_resume_everything(env: Env) -> None:
    [reply] = await env.send("/pause")
    assert reply.startswith("⏸ Alerts are paused.") and (await subscriber(env)).paused
    assert await env.send("/resume") == ["▶️ Alerts are on."]
    assert not (await subscriber(env)).paused


async def test_quiet_hours(env: Env) -> None:
    [reply] = await env.send("/quiet")
    assert reply.startswith("No quiet hours.")
    assert await env.send("/quiet 23:00-07:00") == ["🌙 Quiet hours: 23:00–07:00 (UTC): no alerts then."]
    found = await subscriber(env)
    assert (found.quiet_start, found.quiet_end) == (23 * 60, 7 * 60)
    await env.send("/quiet 22-6:30")
    found = await subscriber(env)
    assert (found.quiet_start, found.quiet_end) == (22 * 60, 6 * 60 + 30)
    [reply] = await env.send("/quiet 25-7")
    assert reply == (
        "“25-7” is not a time range. Write it like <code>/quiet 23:00-07:00</code> or "
        "<code>/quiet 23-7</code>, or <code>/quiet off</code>."
    )
    [reply] = await env.send("/quiet")
    assert reply.startswith("🌙 Quiet hours: 22:00–06:30 (UTC).")
    assert await env.send("/quiet off") == ["🔔 Quiet hours are off."]
    found = await subscriber(env)
    assert (found.quiet_start, found.quiet_end) == (None, None)


async def test_timezone(env: Env) -> None:
    [reply] = await env.send("/timezone")
    assert reply.startswith("🕒 Your time zone: UTC (now 10:00 there).")
    assert await env.send("/timezone europe/berlin") == ["🕒 Time zone: Europe/Berlin (now 12:00 there)."]
    assert await env.send("/timezone UTC+5") == ["🕒 Time zone: Etc/GMT-5 (now 15:00 there)."]
    assert await env.send("/timezone -03:00") == ["🕒 Time zone: Etc/GMT+3 (now 07:00 there)."]
    [reply] = await env.send("/timezone Europe")
    assert reply.startswith("Unknown time zone “Europe”.")
    [reply] = await env.send("/timezone UTC+5:30")
    assert "Asia/Kolkata" in reply
    assert (await subscriber(env)).timezone == "Etc/GMT+3"


async def test_digest_confirms_the_next_delivery_in_local_time(env: Env) -> None:
    await env.send("/timezone Europe/Berlin")  # now: Wed 15 May, 12:00 there
    assert await env.send("/digest daily 09:00") == [
        "📰 Digest: every day at 09:00.\nNext one: Thu 16 May, 09:00 (Europe/Berlin)."
    ]
    assert await env.send("/digest daily 18:30") == [
        "📰 Digest: every day at 18:30.\nNext one: Wed 15 May, 18:30 (Europe/Berlin)."
    ]
    assert await env.send("/digest weekly пн 08:30") == [
        "📰 Digest: every week on Monday at 08:30.\nNext one: Mon 20 May, 08:30 (Europe/Berlin)."
    ]
    found = await subscriber(env)
    assert (found.digest, found.digest_at, found.digest_day) == (DigestMode.WEEKLY, 510, 0)
    assert await env.send("/digest hourly") == [
        "📰 Digest: every hour.\nNext one: Wed 15 May, 13:00 (Europe/Berlin)."
    ]
    [reply] = await env.send("/digest weekly someday 09:00")
    assert reply.startswith("“someday” is not a day of the week") and "<code>/digest off</code>" in reply
    [reply] = await env.send("/digest sometimes")
    assert reply.startswith("“sometimes” is not a digest schedule.")
    assert (await subscriber(env)).digest is DigestMode.HOURLY
    [reply] = await env.send("/digest off")
    assert reply.startswith("📰 Digest: off.") and (await subscriber(env)).digest is DigestMode.OFF


async def test_digest_in_russian(env: Env) -> None:
    await env.send("/start", language_code="ru")
    assert await env.send("/digest weekly fri 18:00") == [
        "📰 Дайджест: каждую неделю, в пятницу в 18:00.\nСледующий: пт 17.05, 18:00 (UTC)."
    ]


def test_next_digest_across_a_clock_change() -> None:
    berlin = Subscriber(1, 1, timezone="Europe/Berlin", digest=DigestMode.DAILY, digest_at=9 * 60)
    saturday = datetime(2024, 3, 30, 12, tzinfo=UTC)  # the clocks go forward that night
    upcoming = next_digest(berlin, saturday)
    assert upcoming is not None and upcoming.astimezone(UTC) == datetime(2024, 3, 31, 7, tzinfo=UTC)
    weekly = Subscriber(1, 1, digest=DigestMode.WEEKLY, digest_at=10 * 60, digest_day=2)
    assert next_digest(weekly, NOW) == datetime(2024, 5, 22, 10, tzinfo=UTC)  # 10:00 today is not after now
    assert next_digest(Subscriber(1, 1), NOW) is None


# /summary


async def test_summary_calls_the_digest_service(env: Env) -> None:
    assert await env.send("/summary") == ["⏳ Preparing a digest of the last 24 h…"]
    assert await env.send("/summary 7d") == ["⏳ Preparing a digest of the last 7 d…"]
    [reply] = await env.send("/summary 30d")
    assert reply.startswith("“30d” is not a period")
    assert env.digests.calls == [(ANN, timedelta(hours=24)), (ANN, timedelta(days=7))]


async def test_a_failing_service_gets_a_short_apology(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env.digests.fail = True
    with caplog.at_level(logging.ERROR, logger="tgmon.bot"):
        replies = await env.send("/summary")
    assert replies[-1].startswith("Something went wrong on my side")
    assert "Traceback" not in "".join(replies) and "handler_failed" in caplog.text


# the rest


async def test_unknown_commands_and_plain_text(env: Env) -> None:
    assert await env.send("/frobnicate") == ["I don't know this command. /help lists them."]
    [reply] = await env.send("protest Almaty")
    assert "send /add and a query" in reply


async def test_command_addressed_to_this_bot(env: Env) -> None:
    assert await env.send("/add@tgmon_test_bot alpha") == ["✅ Added #1: <code>alpha</code>"]


async def test_groups_are_ignored(env: Env) -> None:
    assert await env.send("/start", chat_type="group") == []
    assert await env.store.get_subscriber(ANN) is None


async def test_rate_limit(env: Env) -> None:
    for _ in range(20):
        assert len(await env.send("/help")) == 1
    assert await env.send("/help") == ["🐢 Too many commands at once. Please wait a minute and try again."]
    assert await env.send("/help") == []  # said once; the rest is dropped
    assert len(await env.send("/help", user=BOB)) == 1  # per user
    env.clock.advance(3)  # 20 per minute: a command every 3 seconds
    assert len(await env.send("/help")) == 1
    assert await env.send("/help") == ["🐢 Too many commands at once. Please wait a minute and try again."]


def test_rate_limiter_refills_and_forgets_idle_users() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, 10.0, clock=clock.monotonic)
    assert [limiter.take(1) for _ in range(4)] == [Verdict.ALLOW, Verdict.ALLOW, Verdict.WARN, Verdict.DROP]
    clock.advance(5)
    assert [limiter.take(1), limiter.take(1)] == [Verdict.ALLOW, Verdict.WARN]
    clock.advance(60)
    limiter._prune(clock.monotonic())
    assert limiter._buckets == {}


async def test_nasty_input_always_gets_valid_html(env: Env) -> None:
    nasty = "<b>&amp; </i> \"'` <a href=x>"
    for command in ("/add", "/remove", "/lang", "/quiet", "/timezone", "/digest", "/digest weekly",
                    "/summary", "/language", "/frobnicate"):  # fmt: skip
        replies = await env.send(f"{command} {nasty}")
        assert replies, command
        for reply in replies:
            parse_telegram_html(reply)  # raises on what Telegram would refuse
            assert "<a href=x>" not in reply
    long = "x" * 3000 + " OR"
    [reply] = await env.send(f"/add {long}")
    assert len(parse_telegram_html(reply)) < 500


async def test_command_menu_in_both_languages() -> None:
    session = FakeBotSession()
    bot = Bot(f"{BOT_ID}:TEST", session=session)
    await set_commands(bot)
    assert set(session.commands) == {("default", None), ("default", "ru"), ("default", "uk"),
                                     ("default", "be"), ("default", "kk")}  # fmt: skip
    assert ("add", "add a query to watch for") in session.commands[("default", None)]
    assert ("add", "добавить запрос") in session.commands[("default", "kk")]
    assert session.refused == []
