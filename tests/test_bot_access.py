"""Roles and access in the bot: who may run which privileged command, invitations, the admin, operator
and analyst commands. Real Dispatcher and archive, a fake Bot API behind the session."""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from aiogram import Bot, Dispatcher
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendDocument, SendMessage
from aiogram.types import CallbackQuery, Chat, InlineKeyboardMarkup, Message, MessageEntity, Update, User
from pydantic import SecretStr

from bot.app import ERROR_TEXT, build_bot, build_dispatcher
from bot.filters import PRIVILEGED, PRIVILEGED_BUTTONS, PRIVILEGED_COMMANDS, HasRole
from bot.handlers import admin, operators
from bot.handlers import export as export_handlers
from bot.handlers import search as search_handlers
from bot.handlers.export import ExportAsk, ExportConfirm
from bot.handlers.search import SearchPage, SearchSessions
from bot.middlewares import RateLimiter
from bot.services.subscribers import SubscriberService
from core.models import ChannelStatus, RawPost
from core.pipeline import Pipeline
from core.settings import Settings
from core.storage.roles import HEARTBEAT_KEY, OperationsStore, Role, RoleStore, WatchStatus
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import SubscriptionStore
from tests.fakes.bot_session import FakeBotSession, parse_telegram_html
from tests.fakes.clock import FakeClock

ADMIN, OPERATOR, ANALYST, SUBSCRIBER, NEWCOMER = 1, 2, 3, 4, 5
BOT_ID = 42
NOW = datetime(2024, 5, 15, 10, 0, tzinfo=UTC)
ROLE_OF = {"admin": ADMIN, "operator": OPERATOR, "analyst": ANALYST, "subscriber": SUBSCRIBER}
NOT_ALLOWED = ["Not allowed."]


class NoDigests:
    async def send_now(self, subscriber: object, period: timedelta) -> None:
        return None


@dataclass
class Env:
    dp: Dispatcher
    bot: Bot
    session: FakeBotSession
    archive: SqliteArchive
    roles: RoleStore
    ops: OperationsStore
    store: SubscriptionStore
    clock: FakeClock
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    usernames: dict[int, str] = field(default_factory=dict)  # as Telegram sends them with every message

    async def send(
        self, text: str, user: int = SUBSCRIBER, username: str | None = None, lang: str = "en"
    ) -> list[str]:
        """Feed one private message; the texts the bot sent or edited in reply."""
        n = next(self.ids)
        if username is not None:
            self.usernames[user] = username
        username = self.usernames.get(user)
        entities = None
        if text.startswith("/"):
            entities = [MessageEntity(type="bot_command", offset=0, length=len(text.split()[0]))]
        message = Message(
            message_id=n,
            date=self.clock.now(),
            chat=Chat(id=user, type="private"),
            from_user=User(id=user, is_bot=False, first_name="U", username=username, language_code=lang),
            text=text,
            entities=entities,
        )
        before = len(self.session.calls)
        await self.dp.feed_update(self.bot, Update(update_id=n, message=message))
        return [
            c.text or "" for c in self.session.calls[before:] if isinstance(c, SendMessage | EditMessageText)
        ]

    async def press(self, data: str, message_id: int, user: int) -> tuple[str | None, list[str]]:
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
            id=str(n),
            from_user=User(id=user, is_bot=False, first_name="U", language_code="en"),
            chat_instance="ci",
            data=data,
            message=shown,
        )
        before = len(self.session.calls)
        await self.dp.feed_update(self.bot, Update(update_id=n, callback_query=callback))
        calls = self.session.calls[before:]
        answers = [c.text for c in calls if isinstance(c, AnswerCallbackQuery)]
        texts = [c.text or "" for c in calls if isinstance(c, SendMessage | EditMessageText)]
        return (answers[0] if answers else None), texts

    def buttons(self, method: SendMessage | EditMessageText) -> list[list[tuple[str, str]]]:
        markup = method.reply_markup
        assert isinstance(markup, InlineKeyboardMarkup)
        return [[(b.text, b.callback_data or "") for b in row] for row in markup.inline_keyboard]

    def last_sent(self) -> SendMessage:
        return self.session.sent()[-1]

    def last_edit(self) -> EditMessageText:
        return [c for c in self.session.calls if isinstance(c, EditMessageText)][-1]

    async def audit(self) -> list[tuple[int | None, str, str | None, bool]]:
        """Oldest first."""
        return [
            (e.user_id, e.action, e.detail, e.allowed) for e in reversed(await self.roles.audit_log(1000))
        ]


EnvFactory = Callable[..., Awaitable[Env]]


@pytest.fixture
async def make_env(archive: SqliteArchive) -> AsyncIterator[EnvFactory]:
    sessions: list[FakeBotSession] = []

    async def make(mode: Literal["open", "invite"] = "open") -> Env:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, bot_token=SecretStr(f"{BOT_ID}:TEST"), admin_ids=[ADMIN], subscribe_mode=mode
        )
        store = SubscriptionStore(archive)
        roles = RoleStore(archive, settings.admin_ids)
        ops = OperationsStore(archive)
        await roles.grant(OPERATOR, Role.OPERATOR, ADMIN)
        await roles.grant(ANALYST, Role.ANALYST, ADMIN)
        session = FakeBotSession()
        sessions.append(session)
        clock = FakeClock()
        dp = build_dispatcher(
            archive,
            settings,
            service=SubscriberService(archive, store),
            digests=NoDigests(),
            limiter=RateLimiter(clock=clock.monotonic),
            clock=clock.now,
            roles=roles,
            channels=ops,
            searches=SearchSessions(clock=clock.monotonic),
        )
        return Env(dp, build_bot(settings, session), session, archive, roles, ops, store, clock)

    yield make
    for session in sessions:  # nothing the bot sent would have been refused by Telegram
        assert session.refused == []
        for text in session.texts():
            parse_telegram_html(text)


@pytest.fixture
async def env(make_env: EnvFactory) -> Env:
    return await make_env()


def allowed(role: str, command: str) -> bool:
    return role == "admin" or (role != "subscriber" and command in PRIVILEGED[Role(role)])


# who may do what


def test_every_role_router_command_is_in_the_refusal_list() -> None:
    assert sorted(PRIVILEGED_COMMANDS) == sorted(
        ["grant", "revoke", "roles", "invite", "watch", "unwatch", "watched", "stats", "search", "export"]
    )


@pytest.mark.parametrize("role", list(ROLE_OF))
async def test_privileged_commands_matrix(
    make_env: EnvFactory, role: str, caplog: pytest.LogCaptureFixture
) -> None:
    env = await make_env()
    user = ROLE_OF[role]
    for command in PRIVILEGED_COMMANDS:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="tgmon.bot"):
            replies = await env.send(f"/{command}", user=user)
        *_, last = await env.audit()
        if allowed(role, command):
            assert replies and replies != NOT_ALLOWED, (role, command)
            assert last == (user, command, None, True), (role, command)
            assert f"command_allowed user={user} command={command}" in caplog.text
        else:
            assert replies == NOT_ALLOWED, (role, command)
            assert last == (user, command, None, False), (role, command)
            assert f"command_denied user={user} command={command}" in caplog.text
    audit = await env.audit()
    assert len(audit) == len(PRIVILEGED_COMMANDS)  # every attempt, once
    assert [a[3] for a in audit] == [allowed(role, c) for c in PRIVILEGED_COMMANDS]


async def test_the_refusal_speaks_russian_and_records_the_arguments(env: Env) -> None:
    assert await env.send("/watch @tengrinews backfill 5", lang="ru") == ["Нет доступа."]
    assert (await env.audit())[-1] == (SUBSCRIBER, "watch", "@tengrinews backfill 5", False)
    assert await env.ops.requests() == []  # nothing was done


async def test_a_command_addressed_to_the_bot_is_gated_too(env: Env) -> None:
    assert await env.send("/stats@tgmon_test_bot") == NOT_ALLOWED
    [reply] = await env.send("/stats@tgmon_test_bot", user=OPERATOR)
    assert "tgmon now" in reply


async def test_role_holders_keep_the_subscriber_commands(env: Env) -> None:
    for user in (ADMIN, OPERATOR, ANALYST):
        assert await env.send("/add alpha", user=user) == ["✅ Added #1: <code>alpha</code>"]
    assert await env.send("/frobnicate", user=ADMIN) == ["I don't know this command. /help lists them."]


async def test_grant_and_revoke_take_effect_at_once(env: Env) -> None:
    await env.send("/start", user=SUBSCRIBER, username="sub_one")
    assert await env.send("/search alpha") == NOT_ALLOWED
    assert await env.send("/grant @sub_one analyst", user=ADMIN) == ["✅ @sub_one (4) is now analyst."]
    [reply] = await env.send("/search alpha")
    assert "Nothing found" in reply
    assert await env.send("/revoke 4 analyst", user=ADMIN) == ["✅ @sub_one (4) is no longer analyst."]
    assert await env.send("/search alpha") == NOT_ALLOWED


# admin commands


async def test_grant_by_username_or_numeric_id(env: Env) -> None:
    await env.send("/start", user=NEWCOMER, username="Ann_K")
    assert await env.send("/grant @ann_k operator", user=ADMIN) == ["✅ @Ann_K (5) is now operator."]
    assert await env.send("/grant @ann_k operator", user=ADMIN) == ["@Ann_K (5) already is operator."]
    assert await env.send("/grant 777 analyst", user=ADMIN) == ["✅ 777 is now analyst."]
    assert await env.roles.roles_of(NEWCOMER) == {Role.OPERATOR}
    assert await env.roles.roles_of(777) == {Role.ANALYST}
    [reply] = await env.send("/grant @stranger analyst", user=ADMIN)
    assert reply.startswith("I don't know @stranger: they must write to me first")
    assert await env.send("/grant 777 boss", user=ADMIN) == [
        "There is no role “boss”: use operator, analyst."
    ]
    [reply] = await env.send("/grant 777 admin", user=ADMIN)
    assert "ADMIN_IDS" in reply and await env.roles.roles_of(777) == {Role.ANALYST}
    [reply] = await env.send("/grant <b>", user=ADMIN)
    assert reply.startswith("Write whom and which role")
    assert await env.send("/revoke 777 operator", user=ADMIN) == ["777 is not operator."]
    assert await env.send("/revoke 1 operator", user=ADMIN) == [
        "1 is an admin (ADMIN_IDS) and keeps every role."
    ]
    assert (await env.audit())[-1] == (ADMIN, "revoke", "1 operator", True)


async def test_roles_lists_admins_operators_and_analysts(env: Env) -> None:
    await env.send("/start", user=OPERATOR, username="op_<x>")
    [reply] = await env.send("/roles", user=ADMIN)
    assert reply == ("<b>Roles</b>\nAdmins (ADMIN_IDS): 1\nOperators: @op_&lt;x&gt; (2)\nAnalysts: 3")
    await env.roles.revoke(ANALYST, Role.ANALYST)
    [reply] = await env.send("/roles", user=ADMIN)
    assert reply.endswith("Analysts: nobody")


# invitations


async def test_invite_only_mode(make_env: EnvFactory, caplog: pytest.LogCaptureFixture) -> None:
    env = await make_env("invite")
    with caplog.at_level(logging.INFO, logger="tgmon.bot"):
        assert await env.send("/start", user=NEWCOMER) == [
            "This bot is invite-only: open the invitation link an admin gave you."
        ]
    assert "subscribe_refused user=5 reason=invite_only" in caplog.text
    assert await env.send("/add alpha", user=NEWCOMER, lang="ru") == [
        "Этот бот только по приглашениям: откройте ссылку-приглашение от администратора."
    ]
    [reply] = await env.send("/start forged", user=NEWCOMER)
    assert reply.startswith("This invitation is not valid or was already used.")
    answer, texts = await env.press("m1:list", 1, user=NEWCOMER)
    assert answer == "This bot is invite-only." and texts == []
    assert await env.store.get_subscriber(NEWCOMER) is None

    [reply] = await env.send("/invite", user=ADMIN)  # admins are always let in
    link = re.search(r"https://t\.me/tgmon_test_bot\?start=([A-Za-z0-9_-]+)", reply)
    assert link is not None and "SUBSCRIBE_MODE" not in reply
    [greeting] = await env.send(f"/start {link.group(1)}", user=NEWCOMER)
    assert greeting.startswith("👋 <b>Hi! I'm tgmon.</b>")
    assert await env.store.get_subscriber(NEWCOMER) is not None
    assert await env.send("/add alpha", user=NEWCOMER) == ["✅ Added #1: <code>alpha</code>"]

    [reply] = await env.send(f"/start {link.group(1)}", user=777)  # the same code again
    assert reply.startswith("This invitation is not valid or was already used.")
    assert await env.store.get_subscriber(777) is None
    [greeting] = await env.send("/start", user=OPERATOR)  # role holders need no code
    assert greeting.startswith("👋")


async def test_invite_in_open_mode_says_the_code_is_not_needed(env: Env) -> None:
    [reply] = await env.send("/invite", user=ADMIN)
    assert "?start=" in reply and "SUBSCRIBE_MODE is open" in reply
    [greeting] = await env.send("/start", user=NEWCOMER)  # open: anyone
    assert greeting.startswith("👋")


# operator commands


async def test_watch_records_a_request_for_the_collector(env: Env) -> None:
    [reply] = await env.send("/watch @tengrinews backfill 500", user=OPERATOR)
    assert reply.startswith("📥 Asked the collector to watch @tengrinews, with the 500 newest posts.")
    assert "collector resolves the name" in reply
    [request] = await env.ops.requests()
    assert (request.ref, request.backfill, request.requested_by) == ("@tengrinews", 500, OPERATOR)
    [reply] = await env.send("/watch https://t.me/s/TengriNews", user=ADMIN)
    assert reply.startswith("⏳ @tengrinews is already waiting for the collector, with the 500 newest posts.")
    assert len(await env.ops.requests()) == 1
    [reply] = await env.send("/watch -1001234567 backfill=20", user=OPERATOR)
    assert "-1001234567, with the 20 newest posts" in reply

    [reply] = await env.send("/watch t.me/+AbCdEf", user=OPERATOR)
    assert reply.startswith("⚠️") and "invite link" in reply
    [reply] = await env.send("/watch @tengrinews backfill lots", user=OPERATOR)
    assert reply.startswith("“lots” is not a number of posts")
    [reply] = await env.send("/watch", user=OPERATOR)
    assert reply.startswith("Name the channel")

    await env.archive.upsert_channel(1001, "vlast_kz", "Vlast")
    assert await env.send("/watch @Vlast_kz", user=OPERATOR) == [
        "@vlast_kz is already watched. To read older posts too: <code>/watch @vlast_kz backfill 500</code>."
    ]
    [reply] = await env.send("/watch @vlast_kz 100", user=OPERATOR)
    assert reply.startswith("📥 Asked the collector to watch @vlast_kz, with the 100 newest posts.")


async def test_unwatch(env: Env, pipeline: Pipeline) -> None:
    await env.archive.upsert_channel(7, "news", "News")
    await pipeline.ingest([RawPost(7, i, NOW - timedelta(hours=i), f"post {i}") for i in range(1, 4)])
    assert await env.send("/unwatch @news", user=OPERATOR) == [
        "⏹ Stopped watching @news; its 3 posts stay in the archive."
    ]
    channel = await env.archive.get_channel(7)
    assert channel is not None and not channel.watched and await env.archive.count_posts(7) == 3
    assert await env.send("/unwatch -1007", user=OPERATOR) == ["@news is not watched."]
    await env.send("/watch @fresh", user=OPERATOR)
    assert await env.send("/unwatch @FRESH", user=OPERATOR) == ["⏹ Cancelled the request to watch @FRESH."]
    assert [r.status for r in await env.ops.requests((WatchStatus.CANCELLED,))] == [WatchStatus.CANCELLED]
    assert await env.send("/unwatch @nowhere", user=OPERATOR) == [
        "There is no channel @nowhere in the archive (see /watched)."
    ]
    [reply] = await env.send("/unwatch a b", user=OPERATOR)
    assert reply.startswith("Name the channel")


async def test_watched_shows_health_and_pending_requests(env: Env, pipeline: Pipeline) -> None:
    assert await env.send("/watched", user=OPERATOR) == [
        "No channels are watched yet: <code>/watch @name</code> adds one."
    ]
    await env.archive.upsert_channel(7, "news", "News")
    await env.archive.upsert_channel(8, None, "Slow <b>")
    await pipeline.ingest([RawPost(7, i, NOW - timedelta(hours=12 * i), f"post {i}") for i in range(1, 29)])
    await env.archive.set_channel_status(
        8, ChannelStatus.FLOOD_WAIT, error="FLOOD_WAIT_900 <x>", flood_wait_until=NOW + timedelta(minutes=15)
    )
    await env.send("/start", user=OPERATOR, username="opname")
    await env.send("/watch @fresh backfill 50", user=OPERATOR)
    failed, _ = await env.ops.request_watch("@private_one", None, ADMIN)
    await env.ops.fail_request(failed.id, "the channel is private")

    [reply] = await env.send("/watched", user=OPERATOR)
    assert reply.splitlines() == [
        "<b>Watched channels</b>: 2",
        "• @news — active · last post 2024-05-14 22:00 UTC · 2.0/day · 28 posts",  # 14 in the last 7 days
        "• Slow &lt;b&gt; — flood wait · last post never · 0.0/day · 0 posts",
        "  ⚠️ last error: FLOOD_WAIT_900 &lt;x&gt;",
        "  ⏳ flood wait until 2024-05-15 10:15 UTC (15 min left)",
        "",
        "<b>Waiting for the collector</b>: 1",
        f"• @fresh, with the 50 newest posts — asked {reply.split('asked ')[1].split(' by')[0]} by @opname",
        "",
        "<b>Failed requests</b> (last 7 days): 1",
        "• @private_one — the channel is private",
    ]


async def test_watched_splits_a_long_listing(env: Env) -> None:
    for n in range(1, 121):
        await env.archive.upsert_channel(n, f"channel_number_{n:03d}", f"Channel {n}")
    replies = await env.send("/watched", user=OPERATOR)
    assert len(replies) >= 2 and all(len(r) <= 3900 for r in replies)
    assert sum(r.count("• @channel_number_") for r in replies) == 120


async def test_stats(env: Env, pipeline: Pipeline) -> None:
    [reply] = await env.send("/stats", user=OPERATOR)
    assert "Posts: 0 · channels: 0 watched of 0" in reply
    assert "Collector lag: unknown · heartbeat: unknown" in reply

    env.clock.wall = datetime.now(UTC)  # lag is measured from when posts were stored: now
    await env.archive.upsert_channel(7, "news", "News")
    await pipeline.ingest([RawPost(7, i, NOW, f"post {i}") for i in range(1, 6)])
    await env.send("/add alpha", user=SUBSCRIBER)
    await env.store.enqueue(SUBSCRIBER, SUBSCRIBER, "alert", {})
    sent = await env.store.enqueue(SUBSCRIBER, SUBSCRIBER, "alert", {})
    await env.store.mark_sent([sent], 0.0)
    beat = (env.clock.wall - timedelta(seconds=30)).isoformat()
    async with env.archive._write() as db:
        await db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (HEARTBEAT_KEY, beat))

    [reply] = await env.send("/stats", user=ADMIN)
    lines = reply.splitlines()
    assert lines[:5] == [
        "<b>tgmon now</b>",
        "Posts: 5 · channels: 1 watched of 1",
        "Subscribers: 3 active of 3 · queries: 1 live of 1",  # everyone who has written
        "Alerts: 1 sent, 1 queued, 0 failed",
        "Delivery failures: 0 given up, 0 retrying, 0 dropped (bot blocked)",
    ]
    assert re.fullmatch(
        r"Collector lag: \d+ s \(newest post stored \d{4}-\d\d-\d\d \d\d:\d\d UTC\) · heartbeat: 3\d s ago",
        lines[5],
    ), lines[5]


# analyst search


async def posts(pipeline: Pipeline, count: int) -> None:
    await pipeline.ingest(
        [
            RawPost(7, i, NOW - timedelta(hours=count - i), f"Day {i}: the <protest> in Almaty")
            for i in range(1, count + 1)
        ]
    )


@pytest.fixture
async def archived(env: Env, pipeline: Pipeline) -> Env:
    await env.archive.upsert_channel(7, "news", "News")
    await env.archive.upsert_channel(8, None, "Other")
    await posts(pipeline, 12)
    await pipeline.ingest([RawPost(8, 1, NOW, "nothing to see")])
    return env


async def test_search_pages_with_buttons(archived: Env) -> None:
    env = archived
    [first] = await env.send("/search protest", user=ANALYST)
    lines = first.splitlines()
    assert lines[0] == "🔎 <code>protest</code> — newest first, page 1"
    assert lines[2] == ('<b>1.</b> @news · 2024-05-15 10:00 UTC · <a href="https://t.me/news/12">open</a>')
    assert lines[3] == "Day 12: the &lt;<b>protest</b>&gt; in Almaty"
    assert [line.split(".")[0] for line in lines if line.startswith("<b>")] == [
        f"<b>{n}" for n in range(1, 6)
    ]
    [[(label, data)]] = env.buttons(env.last_sent())
    assert label == "2 ▶" and "protest" not in data and len(data.encode()) <= 64
    key = SearchPage.unpack(data).key
    message_id = env.session._next_id

    answer, [second] = await env.press(data, message_id, user=ANALYST)
    assert answer is None and "page 2" in second and "<b>6.</b>" in second and "Day 7:" in second
    assert [label for label, _ in env.buttons(env.last_edit())[0]] == ["◀ 1", "3 ▶"]
    _, [third] = await env.press(SearchPage(key=key, page=2).pack(), message_id, user=ANALYST)
    assert "<b>11.</b>" in third and "<b>12.</b>" in third and "<b>13.</b>" not in third
    assert [label for label, _ in env.buttons(env.last_edit())[0]] == ["◀ 2"]
    _, [back] = await env.press(SearchPage(key=key, page=0).pack(), message_id, user=ANALYST)
    assert back == first


async def test_search_buttons_work_only_for_their_owner(archived: Env) -> None:
    env = archived
    await env.send("/search protest", user=ANALYST)
    [[(_, data)]] = env.buttons(env.last_sent())
    await env.roles.grant(OPERATOR, Role.ANALYST, ADMIN)  # another analyst
    answer, texts = await env.press(data, env.session._next_id, user=OPERATOR)
    assert answer == "This search has expired: send /search again." and texts == []
    answer, texts = await env.press(data, env.session._next_id, user=SUBSCRIBER)  # no role at all
    assert answer == "Not allowed." and texts == []
    answer, _ = await env.press(data.rsplit(":", 1)[0] + ":99", env.session._next_id, user=ANALYST)
    assert answer == "This search has expired: send /search again."


async def test_search_with_few_results_has_no_buttons(archived: Env) -> None:
    [reply] = await archived.send("/search nothing", user=ADMIN)
    assert "<b>1.</b> Other" in reply and archived.last_sent().reply_markup is None
    assert await archived.send("/search zebra", user=ANALYST) == ["🔎 Nothing found for <code>zebra</code>."]


async def test_search_query_errors_point_at_the_problem(archived: Env) -> None:
    [reply] = await archived.send("/search <b>protest OR", user=ANALYST)
    assert reply == (
        "⚠️ I could not read this query: 'OR' needs a word on both sides.\n"
        "<pre>&lt;b&gt;protest OR\n           ^</pre>\nThe query syntax: /help."
    )
    [reply] = await archived.send("/search", user=ANALYST)
    assert reply.startswith("Write the query after the command")


async def test_search_rate_limit(archived: Env) -> None:
    env = archived
    for _ in range(10):
        [reply] = await env.send("/search protest", user=ANALYST)
        assert reply.startswith("🔎")
    assert await env.send("/search protest", user=ANALYST) == [
        "🐢 Too many searches: up to 10 a minute. Please wait a little."
    ]
    [[(_, data)]] = env.buttons(env.session.sent()[-2])
    answer, _ = await env.press(data, env.session._next_id, user=ANALYST)
    assert answer == "🐢 Too many searches: up to 10 a minute. Please wait a little."
    env.clock.advance(6)  # 10 a minute: one every 6 seconds
    [reply] = await env.send("/search protest", user=ANALYST)
    assert reply.startswith("🔎")


def test_search_sessions_keep_a_few_queries_per_user() -> None:
    clock = FakeClock()
    sessions = SearchSessions(keep=2, ttl=60, clock=clock.monotonic)
    first = sessions.save(1, "alpha")
    assert sessions.save(1, "alpha") == first  # the same query, the same key
    second, third = sessions.save(1, "beta"), sessions.save(1, "gamma")
    assert sessions.get(1, first) is None  # pushed out
    assert sessions.get(1, second) == "beta" and sessions.get(2, second) is None
    clock.advance(61)
    assert sessions.get(1, third) is None  # expired


# the role routers, read back from the routers themselves


def role_router_surface() -> dict[Role, tuple[set[str], set[str]]]:
    """Each role router's (commands, button prefixes), as its handlers' filters say."""
    surface: dict[Role, tuple[set[str], set[str]]] = {}
    for module in (admin, operators, search_handlers, export_handlers):
        router = module.build_router()
        [gate] = [f.callback for f in router.message._handler.filters]
        assert isinstance(gate, HasRole)
        for observer in (router.callback_query,):  # a router with buttons gates them too
            if observer.handlers:
                assert [type(f.callback) for f in observer._handler.filters] == [HasRole]
        commands = {
            str(command)
            for handler in router.message.handlers
            for f in handler.filters or []
            if isinstance(f.callback, Command)
            for command in f.callback.commands
        }
        prefixes = {
            f.callback.callback_data.__prefix__
            for handler in router.callback_query.handlers
            for f in handler.filters or []
            if isinstance(f.callback, CallbackQueryFilter)
        }
        known_commands, known_prefixes = surface.setdefault(gate.role, (set(), set()))
        known_commands |= commands
        known_prefixes |= prefixes
    return surface


def test_the_refusal_lists_match_what_the_role_routers_serve() -> None:
    """A command or button added to a role router without its refusal would go unaudited."""
    surface = role_router_surface()
    assert {role: commands for role, (commands, _) in surface.items()} == {
        role: set(commands) for role, commands in PRIVILEGED.items()
    }
    assert {role: prefixes for role, (_, prefixes) in surface.items() if prefixes} == {
        role: set(prefixes) for role, prefixes in PRIVILEGED_BUTTONS.items()
    }


# forged buttons: the data is the client's to make up, so every field is checked on the server

STALE = "This button is out of date: send the command again."
EXPIRED = "This search has expired: send /search again."
TABLES = ("subscribers", "queries", "outbox", "roles", "invites", "watch_requests", "channels")


async def tables(env: Env) -> dict[str, list[tuple[object, ...]]]:
    """Every row a button could change."""
    return {t: [tuple(r) for r in await env.archive._all(f"SELECT * FROM {t} ORDER BY 1")] for t in TABLES}


async def test_a_button_with_another_users_query_id_changes_nothing(env: Env) -> None:
    for text in ("/add alpha", "/add beta OR gamma"):
        await env.send(text, user=NEWCOMER)
    await env.send("/add mine", user=SUBSCRIBER)
    theirs = await env.store.list_queries(NEWCOMER)
    await env.send("/start", user=ADMIN)
    before = await tables(env)
    for presser in (SUBSCRIBER, ADMIN):  # an admin is no exception: queries are their owner's
        await env.send("/list", user=presser)
        own_list = env.session._next_id
        for op in ("p", "r", "d"):
            for query in theirs:
                answer, texts = await env.press(f"q1:{op}:{query.id}", own_list, user=presser)
                assert answer == "Query not found", (presser, op)
                assert not any("alpha" in t or "gamma" in t for t in texts)  # only the presser's own list
    assert await tables(env) == before
    assert [q.text for q in await env.store.list_queries(NEWCOMER)] == ["alpha", "beta OR gamma"]


@pytest.mark.parametrize("role", list(ROLE_OF))
async def test_privileged_buttons_matrix(make_env: EnvFactory, role: str) -> None:
    env = await make_env()
    user = ROLE_OF[role]
    await env.send("/start", user=user)
    for command, data, expired in (  # a key the user never had
        ("search", SearchPage(key="0badc0de", page=1).pack(), EXPIRED),
        (
            "export",
            ExportConfirm(key="0badc0de", go=True).pack(),
            "This export has expired: send /export again.",
        ),
    ):
        before = await tables(env)
        answer, texts = await env.press(data, 1, user=user)
        assert texts == [] and await tables(env) == before, (role, command)
        if allowed(role, command):
            assert answer == expired, (role, command)
        else:
            assert answer == NOT_ALLOWED[0], (role, command)
            prefix = data.split(":")[0]
            assert (await env.audit())[-1] == (user, f"button:{prefix}", data, False)


async def test_another_analysts_export_confirmation_is_not_theirs(archived: Env) -> None:
    env = archived
    key = env.dp["exports"].hold(ANALYST, ExportAsk())
    for user in (ADMIN, OPERATOR):
        await env.roles.grant(user, Role.ANALYST, ADMIN)
        answer, texts = await env.press(ExportConfirm(key=key, go=True).pack(), 1, user=user)
        assert answer is not None and "expired" in answer and texts == []
    assert key in env.dp["exports"].pending  # still the owner's to confirm
    assert not any(isinstance(c, SendDocument) for c in env.session.calls)


FORGED = [
    "q1:d:abc", "q1:x:1", "q1:d", "q1:d:1:2", "q1:d:", "q1:d:-1", "q1:d:99999999999999999999999",
    "q2:d:1", "q0:d:1", "Q1:d:1", "c1:abc", "c1:-5", "c1:99999999999999999999999", "l1:xx:1",
    "l1:en:maybe", "l1:" + "e" * 60 + ":1", "m1:bogus", "m1:", "s1:", "s1:k", "s1:k:-1", "s1:k:99999999999",
    "x1:", "x1:k:maybe", ":", "::::", "\x00", "ё" * 64, "q1:d:1" + " " * 4000, "A" * 10_000, "%s%n{0}",
]  # fmt: skip


@pytest.mark.parametrize("user", [SUBSCRIBER, ANALYST, ADMIN])
async def test_malformed_oversized_and_unknown_version_buttons_are_refused(
    env: Env, user: int, caplog: pytest.LogCaptureFixture
) -> None:
    await env.send("/add alpha", user=NEWCOMER)
    await env.send("/add mine", user=user)
    await env.send("/list", user=user)
    own_list = env.session._next_id
    before = await tables(env)
    for data in FORGED:
        env.clock.advance(3)  # within the rate limit: 20 a minute
        with caplog.at_level(logging.ERROR):
            answer, texts = await env.press(data, own_list, user=user)
        assert answer is not None and answer != ERROR_TEXT.split("\n")[0], data
        privileged = data.startswith(("s1:", "x1:")) and user == SUBSCRIBER
        expected = (
            {NOT_ALLOWED[0]} if privileged else {STALE, EXPIRED, "Query not found", "Saved", "All channels"}
        )
        assert answer in expected, (data, answer)
        if answer == STALE or answer in NOT_ALLOWED:
            assert texts == [], data
        assert not any("alpha" in text for text in texts)  # a redraw shows the presser's own
    assert "handler_failed" not in caplog.text
    assert await tables(env) == before  # c1 with an unknown channel: the choice stays "all channels"
