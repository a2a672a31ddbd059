"""The fake Bot API server, driven by the real aiogram Bot over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import CommandStart
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)

from tests.fakes.botapi import DEFAULT_TOKEN, FakeBotAPI, parse_html

USER = 5551234


@pytest.fixture
async def server() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(poll_wait=0.2) as api:
        yield api


@pytest.fixture
async def bot(server: FakeBotAPI) -> AsyncIterator[Bot]:
    bot = server.make_bot()
    yield bot
    await bot.session.close()


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=d, callback_data=d) for d in data]]
    )


@asynccontextmanager
async def polling(dp: Dispatcher, bot: Bot) -> AsyncIterator[None]:
    task = asyncio.create_task(dp.start_polling(bot, handle_signals=False, close_bot_session=False))
    try:
        yield
    finally:
        await dp.stop_polling()
        await task


# the basics ---------------------------------------------------------------------------------------


async def test_get_me(server: FakeBotAPI, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == int(DEFAULT_TOKEN.split(":")[0]) == bot.id
    assert me.is_bot and me.username == "tgmon_test_bot" and me.can_join_groups
    assert [c.method for c in server.sent(None)] == ["getMe"]


async def test_send_message_records_decoded_params_and_answers_a_message(
    server: FakeBotAPI, bot: Bot
) -> None:
    first = await bot.send_message(42, "<b>hi</b> there", parse_mode="HTML", reply_markup=keyboard("a:1"))
    second = await bot.send_message(42, "again")
    other = await bot.send_message(43, "elsewhere")

    call = server.sent("sendMessage")[0]
    assert call.params["chat_id"] == 42
    assert call.params["text"] == "<b>hi</b> there"
    assert call.params["parse_mode"] == "HTML"
    assert call.params["reply_markup"] == {"inline_keyboard": [[{"text": "a:1", "callback_data": "a:1"}]]}
    assert (first.message_id, second.message_id, other.message_id) == (1, 2, 1)
    assert first.chat.id == 42 and first.chat.type == "private" and first.from_user and first.from_user.is_bot
    assert first.text == "hi there"
    assert [(e.type, e.offset, e.length) for e in first.entities or []] == [("bold", 0, 2)]
    assert first.reply_markup and first.reply_markup.model_dump() == keyboard("a:1").model_dump()
    assert len(server.sent(chat_id=42)) == 2


async def test_digit_text_and_json_looking_text_stay_strings(server: FakeBotAPI, bot: Bot) -> None:
    await bot.send_message(42, "123")
    await bot.send_message(42, '{"a": 1}')
    assert [c.params["text"] for c in server.sent()] == ["123", '{"a": 1}']


async def test_json_and_form_bodies_and_unknown_methods(server: FakeBotAPI) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{server.url}/bot{DEFAULT_TOKEN}/sendMessage", json={"chat_id": "7", "text": "j"}
        ) as r:
            assert r.status == 200 and (await r.json())["result"]["chat"]["id"] == 7
        async with http.post(
            f"{server.url}/bot{DEFAULT_TOKEN}/SENDMESSAGE", data={"chat_id": "7", "text": "f"}
        ) as r:
            assert r.status == 200
        async with http.post(f"{server.url}/bot{DEFAULT_TOKEN}/noSuchMethod") as r:
            assert r.status == 404
            assert await r.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found: method not found",
            }
    assert [(c.method, c.params) for c in server.sent()] == [
        ("sendMessage", {"chat_id": 7, "text": "j"}),
        ("sendMessage", {"chat_id": 7, "text": "f"}),
    ]


# faults -------------------------------------------------------------------------------------------


async def test_429_raises_retry_after_with_its_seconds(server: FakeBotAPI, bot: Bot) -> None:
    server.fail("sendMessage", status=429, retry_after=3)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(42, "x")
    assert caught.value.retry_after == 3
    assert "Too Many Requests: retry after 3" in str(caught.value)
    assert server.calls[-1].status == 429
    assert server.calls[-1].response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 3",
        "parameters": {"retry_after": 3},
    }
    await bot.send_message(42, "x")  # times=1: the next one goes through
    assert len(server.sent()) == 1


async def test_blocked_user_and_per_chat_403(server: FakeBotAPI, bot: Bot) -> None:
    server.block(42)
    for _ in range(2):
        with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
            await bot.send_message(42, "x")
    server.fail("sendMessage", status=403, chat_id=43)
    await bot.send_message(44, "not this chat")
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(43, "x")
    assert [c.chat_id for c in server.sent()] == [44]


@pytest.mark.parametrize("status", [500, 502])
async def test_server_errors(server: FakeBotAPI, bot: Bot, status: int) -> None:
    server.fail("sendMessage", status=status, times=2)
    for _ in range(2):
        with pytest.raises(TelegramServerError):
            await bot.send_message(42, "x")
    await bot.send_message(42, "x")


async def test_bad_request_with_description(server: FakeBotAPI, bot: Bot) -> None:
    server.fail("getChat", status=400, description="Bad Request: chat not found")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.get_chat(-1001)
    chat = await bot.get_chat(-1001)
    assert chat.type == "group"


async def test_delay_beyond_the_request_timeout_is_a_network_error(server: FakeBotAPI, bot: Bot) -> None:
    server.delay("sendMessage", 2.0)
    started = time.monotonic()
    with pytest.raises(TelegramNetworkError, match="timeout"):
        await bot.send_message(42, "slow", request_timeout=0.2)  # type: ignore[arg-type]
    assert time.monotonic() - started < 1.5


async def test_reset_connection_is_a_network_error(server: FakeBotAPI, bot: Bot) -> None:
    server.reset_connection("sendMessage")
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(42, "lost")
    assert server.calls[-1].status == 0 and not server.sent()
    await bot.send_message(42, "again")
    assert len(server.sent()) == 1


# validation ---------------------------------------------------------------------------------------


async def test_text_length_is_counted_after_html_parsing(server: FakeBotAPI, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(42, "a" * 4097)
    await bot.send_message(42, "a" * 4096)
    await bot.send_message(42, "<b>" + "&lt;" * 4096 + "</b>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(42, "  \n ")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(42, "<b></b>", parse_mode="HTML")


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("line<br>break", 'Unsupported start tag "br" at byte offset 4'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ('<span class="x">s</span>', 'Tag "span" must have class "tg-spoiler"'),
        ("<b", "Unclosed start tag at byte offset 0"),
    ],
)
async def test_malformed_html_is_rejected(server: FakeBotAPI, bot: Bot, html: str, error: str) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities") as caught:
        await bot.send_message(42, html, parse_mode="HTML")
    assert error in caught.value.message
    assert server.calls[-1].status == 400 and not server.sent()


def test_parse_html_entities_use_utf16_offsets() -> None:
    text, entities = parse_html(
        '😀 <b>bold <i>both</i></b> <a href="https://x.org">l</a> <tg-spoiler>s</tg-spoiler> '
        '<pre><code class="language-py">p</code></pre> &amp;&#33;'
    )
    assert text == "😀 bold both l s p &!"
    assert entities == [
        {"offset": 3, "length": 9, "type": "bold"},
        {"offset": 8, "length": 4, "type": "italic"},
        {"offset": 13, "length": 1, "type": "text_link", "url": "https://x.org"},
        {"offset": 15, "length": 1, "type": "spoiler"},
        {"offset": 17, "length": 1, "type": "pre", "language": "py"},
    ]


async def test_caption_limit_and_callback_data_limit(server: FakeBotAPI, bot: Bot) -> None:
    photo = BufferedInputFile(b"\x89PNG...", filename="p.png")
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(42, photo, caption="c" * 1025)
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(42, "x", reply_markup=keyboard("d" * 65))


async def test_edits_deletes_and_not_modified(server: FakeBotAPI, bot: Bot) -> None:
    sent = await bot.send_message(42, "one", reply_markup=keyboard("k"))
    edited = await bot.edit_message_text("two", chat_id=42, message_id=sent.message_id)
    assert (
        isinstance(edited, Message) and edited.text == "two" and edited.edit_date and not edited.reply_markup
    )
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("two", chat_id=42, message_id=sent.message_id)
    marked = await bot.edit_message_reply_markup(
        chat_id=42, message_id=sent.message_id, reply_markup=keyboard("z")
    )
    assert isinstance(marked, Message) and marked.reply_markup
    assert marked.reply_markup.model_dump() == keyboard("z").model_dump()
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=42, message_id=999)
    assert await bot.delete_message(42, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(42, sent.message_id)


async def test_commands_round_trip_and_validation(server: FakeBotAPI, bot: Bot) -> None:
    commands = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="find", description="Search"),
    ]
    assert await bot.set_my_commands(commands)
    assert [c.model_dump() for c in await bot.get_my_commands()] == [c.model_dump() for c in commands]
    assert server.my_commands() == [c.model_dump(exclude_none=True) for c in commands]
    assert await bot.get_my_commands(language_code="ru") == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Start", description="x")])
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == []
    assert await bot.send_chat_action(42, "typing")
    assert await bot.delete_webhook(drop_pending_updates=True)


# files --------------------------------------------------------------------------------------------


async def test_uploads_are_recorded_with_their_bytes(server: FakeBotAPI, bot: Bot) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    message = await bot.send_photo(
        42, BufferedInputFile(png, filename="chart.png"), caption="<i>c</i>", parse_mode="HTML"
    )
    upload = server.sent("sendPhoto")[0].files["photo"]
    assert (upload.filename, upload.size, upload.data) == ("chart.png", len(png), png)
    assert message.photo and message.photo[-1].file_size == len(png) and message.caption == "c"

    csv = "id,text\n1,привет\n".encode()
    doc = await bot.send_document(42, BufferedInputFile(csv, filename="export.csv"))
    assert doc.document and (doc.document.file_name, doc.document.file_size) == ("export.csv", len(csv))
    assert server.sent("sendDocument")[0].files["document"].data == csv
    again = await bot.send_document(43, doc.document.file_id)
    assert again.document and again.document.file_id == doc.document.file_id
    assert not server.sent("sendDocument")[1].files


# updates ------------------------------------------------------------------------------------------


async def test_pushed_updates_are_realistic_and_confirmed_by_offset(server: FakeBotAPI, bot: Bot) -> None:
    first = server.push_message(USER, "/start@tgmon_test_bot deep", username="alice")
    second = server.push_message(USER, "hello")
    parsed = Update.model_validate(first)
    assert parsed.message and parsed.message.from_user and parsed.message.from_user.username == "alice"
    assert first["message"]["entities"] == [{"offset": 0, "length": 21, "type": "bot_command"}]
    assert "entities" not in second["message"]
    assert second["update_id"] == first["update_id"] + 1
    assert second["message"]["message_id"] == first["message"]["message_id"] + 1

    updates = await bot.get_updates()
    assert [u.update_id for u in updates] == [first["update_id"], second["update_id"]]
    assert await bot.get_updates(offset=second["update_id"] + 1) == []
    assert not server.updates

    started = time.monotonic()
    assert await bot.get_updates(timeout=30) == []  # long poll capped by poll_wait (0.2 s)
    assert 0.15 < time.monotonic() - started < 1.0

    asyncio.get_running_loop().call_later(0.05, server.push_message, USER, "late")
    started = time.monotonic()
    woken = await bot.get_updates(timeout=30)
    assert [u.message.text for u in woken if u.message] == ["late"]
    assert time.monotonic() - started < 0.15


async def test_long_poll_returns_promptly_when_the_server_stops() -> None:
    server = FakeBotAPI(poll_wait=30)
    await server.start()
    bot = server.make_bot()
    try:
        poll = asyncio.create_task(bot.get_updates(timeout=30))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await server.stop()
        assert await poll == []
        assert time.monotonic() - started < 1.0
    finally:
        await bot.session.close()
        await server.stop()


async def test_dispatcher_polling_answers_start(server: FakeBotAPI, bot: Bot) -> None:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer(f"hi {message.from_user.first_name if message.from_user else '?'}")

    dp = Dispatcher()
    dp.include_router(router)
    update = server.push_message(USER, "/start", first_name="Ann")
    async with polling(dp, bot):
        [reply] = await server.wait_for("sendMessage", chat_id=USER)
    assert reply.params["text"] == "hi Ann"
    assert reply.response and reply.response["result"]["message_id"] == update["message"]["message_id"] + 1
    assert not server.updates or server.updates[0]["update_id"] > update["update_id"]


async def test_callback_reaches_its_handler(server: FakeBotAPI, bot: Bot) -> None:
    sent = await bot.send_message(USER, "pick", reply_markup=keyboard("v1:yes", "v1:no"))
    router = Router()

    @router.callback_query(F.data.startswith("v1:"))
    async def pick(query: CallbackQuery) -> None:
        await query.answer("noted")
        if isinstance(query.message, Message):
            await query.message.edit_text(f"picked {query.data}")

    dp = Dispatcher()
    dp.include_router(router)
    update = server.push_callback(USER, "v1:yes", sent.message_id)
    assert update["callback_query"]["message"]["reply_markup"] == keyboard("v1:yes", "v1:no").model_dump(
        exclude_none=True
    )
    async with polling(dp, bot):
        [edit] = await server.wait_for("editMessageText")
    assert edit.params == {"chat_id": USER, "message_id": sent.message_id, "text": "picked v1:yes"}
    [answer] = server.sent("answerCallbackQuery")
    assert answer.params["text"] == "noted"
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(update["callback_query"]["id"])


# rates and waiting --------------------------------------------------------------------------------


async def test_enforced_limits_answer_429_when_flooding_a_chat(server: FakeBotAPI, bot: Bot) -> None:
    server.enforce_limits = True
    await bot.send_message(42, "1")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(42, "2")
    assert caught.value.retry_after == 1
    await bot.send_message(43, "other chat is fine")
    assert server.too_many == 1
    assert server.rate_violations().ok


async def test_rate_report_finds_floods(server: FakeBotAPI, bot: Bot) -> None:
    for i in range(3):
        await bot.send_message(42, str(i))
    await bot.send_message(43, "x")
    await bot.send_chat_action(42, "typing")  # not a send
    report = server.rate_violations()
    assert (report.sends, report.max_global_in_1s, report.max_per_chat_in_1s) == (4, 4, 3)
    assert report.busiest_chat == 42 and report.per_chat_exceeded and not report.global_exceeded
    assert not report.ok


async def test_wait_for_waits_and_explains_a_timeout(server: FakeBotAPI, bot: Bot) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await bot.send_message(42, "a")
        await bot.send_message(42, "b")

    task = asyncio.create_task(later())
    calls = await server.wait_for("sendMessage", count=2, timeout=2.0)
    await task
    assert [c.params["text"] for c in calls] == ["a", "b"]
    with pytest.raises(TimeoutError, match=r"sendPhoto call\(s\), got 0; calls so far: sendMessage 200×2"):
        await server.wait_for("sendPhoto", timeout=0.05)
