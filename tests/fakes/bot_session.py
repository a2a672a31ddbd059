"""A Bot API server in memory: `Bot(token, session=FakeBotSession())` records every call and answers
the way Telegram would, refusals included (bad HTML, too long, not modified, unknown message).

Like aiogram's own MockedSession, answers go through `check_response`, so handlers get real
`Message` objects and real `TelegramBadRequest`s.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, cast

from aiogram import Bot
from aiogram.client.default import Default
from aiogram.client.session.base import BaseSession
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteMyCommands,
    EditMessageText,
    GetMe,
    SendMessage,
    SetMyCommands,
)
from aiogram.methods.base import TelegramMethod, TelegramType
from aiogram.types import InlineKeyboardMarkup

# https://core.telegram.org/bots/api#html-style
ALLOWED_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre",
     "blockquote", "tg-emoji"}
)  # fmt: skip
NAMED_ENTITIES = frozenset({"lt", "gt", "amp", "quot"})
MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
MAX_CALLBACK_ANSWER = 200
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")


class _TelegramHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.plain: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"unsupported start tag {tag!r}")
        if tag == "a" and not dict(attrs).get("href"):
            self.problems.append("<a> without href")
        self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.problems.append(f"self-closing tag {tag!r}")

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"unexpected end tag {tag!r}, open: {self.stack}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        for char in "<>&":
            if char in data:
                self.problems.append(f"unescaped {char!r} in {data[:40]!r}")
        self.plain.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in NAMED_ENTITIES:
            self.problems.append(f"unsupported entity &{name};")
        self.plain.append(html.unescape(f"&{name};"))

    def handle_charref(self, name: str) -> None:
        self.plain.append(html.unescape(f"&#{name};"))

    def handle_comment(self, data: str) -> None:
        self.problems.append("comment")

    def handle_decl(self, decl: str) -> None:
        self.problems.append("declaration")

    def unknown_decl(self, data: str) -> None:
        self.problems.append("declaration")

    def handle_pi(self, data: str) -> None:
        self.problems.append("processing instruction")


def parse_telegram_html(text: str) -> str:
    """The plain text Telegram would show, or ValueError naming what Telegram would refuse."""
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    if parser.rawdata:
        parser.problems.append(f"unparsed {parser.rawdata[:40]!r}")
    if parser.stack:
        parser.problems.append(f"unclosed tags {parser.stack}")
    if parser.problems:
        raise ValueError("; ".join(parser.problems))
    return "".join(parser.plain)


@dataclass(slots=True)
class StoredMessage:
    chat_id: int
    message_id: int
    text: str  # as sent (HTML)
    plain: str  # as Telegram shows it (and returns it)
    markup: str | None  # reply markup as JSON, to tell an edit that changes nothing


class FakeBotSession(BaseSession):
    def __init__(self, bot_username: str = "tgmon_test_bot") -> None:
        super().__init__()
        self.bot_username = bot_username
        self.calls: list[TelegramMethod[Any]] = []
        self.messages: dict[tuple[int, int], StoredMessage] = {}
        self.commands: dict[tuple[str, str | None], list[tuple[str, str]]] = {}
        self.refused: list[str] = []  # what the real server would have refused
        self.closed = False
        self._next_id = 1000

    async def close(self) -> None:
        self.closed = True

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109 - BaseSession's signature
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        nothing: tuple[bytes, ...] = ()
        for chunk in nothing:  # an async generator, as the base class says; it never yields
            yield chunk
        raise NotImplementedError("the fake Bot API serves no files")

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> TelegramType:
        self.calls.append(method)
        status, body = self._answer(bot, method)
        if status != 200:
            description = body["description"]
            if "message is not modified" not in description:
                self.refused.append(f"{type(method).__name__}: {description}")
        response = self.check_response(bot, method, status, json.dumps(body))
        return cast(TelegramType, response.result)

    # what the handlers see

    def sent(self) -> list[SendMessage]:
        return [c for c in self.calls if isinstance(c, SendMessage)]

    def texts(self) -> list[str]:
        """Every text sent or edited in, in order, as HTML."""
        return [c.text or "" for c in self.calls if isinstance(c, SendMessage | EditMessageText)]

    def last_text(self) -> str:
        return self.texts()[-1]

    def callback_answers(self) -> list[str | None]:
        return [c.text for c in self.calls if isinstance(c, AnswerCallbackQuery)]

    def clear(self) -> None:
        self.calls.clear()

    # the server

    def _me(self, bot: Bot) -> dict[str, Any]:
        return {"id": bot.id, "is_bot": True, "first_name": "tgmon", "username": self.bot_username}

    def _answer(self, bot: Bot, method: TelegramMethod[Any]) -> tuple[int, dict[str, Any]]:
        if isinstance(method, GetMe):
            return _ok(self._me(bot))
        if isinstance(method, SendMessage):
            return self._send(bot, method)
        if isinstance(method, EditMessageText):
            return self._edit(bot, method)
        if isinstance(method, AnswerCallbackQuery):
            if method.text is not None and len(method.text) > MAX_CALLBACK_ANSWER:
                return _bad("MESSAGE_TOO_LONG")
            return _ok(True)
        if isinstance(method, SetMyCommands):
            for command in method.commands:
                if not _COMMAND.fullmatch(command.command) or not 1 <= len(command.description) <= 256:
                    return _bad(f"BOT_COMMAND_INVALID: {command.command!r}")
            scope = method.scope.type if method.scope else "default"
            self.commands[(scope, method.language_code)] = [
                (c.command, c.description) for c in method.commands
            ]
            return _ok(True)
        if isinstance(method, DeleteMyCommands):
            return _ok(True)
        return _bad(f"the fake has no {type(method).__name__}")

    def _check_text(self, bot: Bot, text: str, parse_mode: Any, markup: Any) -> tuple[str | None, str]:
        """(the refusal or None, the plain text)."""
        if isinstance(parse_mode, Default):
            parse_mode = bot.default[parse_mode.name]
        plain = text
        if parse_mode == "HTML":
            try:
                plain = parse_telegram_html(text)
            except ValueError as error:
                return f"can't parse entities: {error}", text
        if not plain.strip():
            return "message text is empty", plain
        if len(plain.encode("utf-16-le")) // 2 > MAX_TEXT:
            return "message is too long", plain
        if isinstance(markup, InlineKeyboardMarkup):
            buttons = [b for row in markup.inline_keyboard for b in row]
            if len(buttons) > 100:
                return "reply markup is too long", plain
            for button in buttons:
                if (
                    button.callback_data is not None
                    and len(button.callback_data.encode()) > MAX_CALLBACK_DATA
                ):
                    return "BUTTON_DATA_INVALID", plain
        return None, plain

    def _send(self, bot: Bot, method: SendMessage) -> tuple[int, dict[str, Any]]:
        problem, plain = self._check_text(bot, method.text, method.parse_mode, method.reply_markup)
        if problem:
            return _bad(problem)
        chat_id = int(method.chat_id)
        self._next_id += 1
        stored = StoredMessage(chat_id, self._next_id, method.text, plain, _markup(method.reply_markup))
        self.messages[(chat_id, stored.message_id)] = stored
        return _ok(self._message(bot, stored))

    def _edit(self, bot: Bot, method: EditMessageText) -> tuple[int, dict[str, Any]]:
        if method.chat_id is None or method.message_id is None:
            return _bad("the fake edits chat messages only")
        stored = self.messages.get((int(method.chat_id), method.message_id))
        if stored is None:
            return _bad("message to edit not found")
        text = method.text or ""
        problem, plain = self._check_text(bot, text, method.parse_mode, method.reply_markup)
        if problem:
            return _bad(problem)
        markup = _markup(method.reply_markup)
        if stored.plain == plain and stored.text == text and stored.markup == markup:
            return _bad(
                "message is not modified: specified new message content and reply markup are exactly the "
                "same as a current content and reply markup of a message"
            )
        stored.text, stored.plain, stored.markup = text, plain, markup
        return _ok(self._message(bot, stored, edited=True))

    def _message(self, bot: Bot, stored: StoredMessage, *, edited: bool = False) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": stored.message_id,
            "date": 1_700_000_000,
            "chat": {"id": stored.chat_id, "type": "private"},
            "from": self._me(bot),
            "text": stored.plain,
        }
        if stored.markup is not None:
            message["reply_markup"] = json.loads(stored.markup)
        if edited:
            message["edit_date"] = 1_700_000_001
        return message


def _markup(markup: Any) -> str | None:
    if markup is None:
        return None
    return cast(str, markup.model_dump_json(exclude_none=True))


def _ok(result: Any) -> tuple[int, dict[str, Any]]:
    return 200, {"ok": True, "result": result}


def _bad(description: str) -> tuple[int, dict[str, Any]]:
    return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {description}"}
