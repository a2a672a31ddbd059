"""A fake Telegram Bot API server on loopback, for driving the real aiogram HTTP path in tests.

    async with FakeBotAPI() as server:
        bot = server.make_bot()          # or Bot(token, session=AiohttpSession(api=server.api))
        await bot.send_message(42, "hi")
        assert server.sent("sendMessage")[0].params["text"] == "hi"

The server speaks the Bot API wire format (``/bot{token}/{method}``, multipart, form, query or JSON
bodies; ``{"ok": ..., "result"/"error_code"/"description"/"parameters"}`` answers) and answers the way
api.telegram.org does for the methods tgmon uses, including its validation errors. Faults are injected
per method (and optionally per chat): errors, 429 with ``retry_after``, blocked users, slow answers,
reset connections, a proxy's HTML error page instead of JSON, and answers cut off half-way. Every call
is recorded with its arrival time, so tests can also check rate limits.

Behaviour copied from the real server, which may surprise a test author:
- ``getUpdates`` with ``allowed_updates`` drops queued updates of other types, as Telegram does.
- Message text is trimmed and, with ``parse_mode="HTML"``, parsed like tdlib does: unknown or unclosed
  tags are a 400 "can't parse entities"; the answered Message holds the plain text and entities.
- Editing or deleting a message the server has not seen is a 400 ("message to edit not found").
- Editing a message to identical content is a 400 ("message is not modified: ...").
- A callback query may be answered once; an unknown or answered id is a 400 ("query is too old ...").
- A delayed call is still carried out after the client gave up waiting (recorded with status 200),
  just as a real send may be delivered although the request timed out. So is a call whose answer is
  cut off (``cut_response``): the client sees a broken connection, the chat has the message.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final, Literal

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web

__all__ = [
    "DEFAULT_TOKEN",
    "Call",
    "FakeBotAPI",
    "HtmlParseError",
    "LoopbackSession",
    "RateReport",
    "RecordedFile",
    "parse_html",
    "refusal",
]

DEFAULT_TOKEN: Final = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
TEXT_LIMIT: Final = 4096
CAPTION_LIMIT: Final = 1024
CALLBACK_DATA_LIMIT: Final = 64  # bytes
CALLBACK_ANSWER_LIMIT: Final = 200
MAX_UPLOAD_BYTES: Final = 50 * 1024 * 1024

JsonDict = dict[str, Any]

# Values aiogram sends as plain strings that must not be JSON-decoded even when they look like JSON
# or a number ("123" as a text, a digit-only callback query id or custom emoji id).
_STRING_PARAMS: Final = frozenset(
    {
        "action",
        "address",
        "animation",
        "audio",
        "business_connection_id",
        "callback_query_id",
        "caption",
        "custom_emoji_id",
        "description",
        "document",
        "emoji",
        "explanation",
        "file_id",
        "first_name",
        "inline_message_id",
        "inline_query_id",
        "language_code",
        "last_name",
        "message_effect_id",
        "name",
        "parse_mode",
        "payload",
        "phone_number",
        "photo",
        "pre_checkout_query_id",
        "query",
        "question",
        "secret_token",
        "shipping_query_id",
        "short_description",
        "sticker",
        "text",
        "thumbnail",
        "title",
        "url",
        "vcard",
        "video",
        "video_note",
        "voice",
    }
)
_CHAT_PARAMS: Final = frozenset({"chat_id", "from_chat_id"})
_INT_RE: Final = re.compile(r"-?\d+")
_JSON_SCALAR_RE: Final = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?|true|false|null")
_COMMAND_RE: Final = re.compile(r"(?:^|(?<=\s))/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_@])")
_BOT_COMMAND_RE: Final = re.compile(r"[a-z0-9_]{1,32}")
_CHAT_ACTIONS: Final = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_RATE_COUNTED: Final = frozenset({"copyMessage", "copyMessages", "forwardMessage", "forwardMessages"})
_BLOCKED: Final = "Forbidden: bot was blocked by the user"
_NOT_MODIFIED: Final = (
    "message is not modified: specified new message content and reply markup are exactly the same as a "
    "current content and reply markup of the message"
)
_DEFAULT_DESCRIPTIONS: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: _BLOCKED,
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


def is_send(method: str) -> bool:
    """Whether a call delivers a message, so that it counts against Telegram's flood limits."""
    return (method.startswith("send") and method != "sendChatAction") or method in _RATE_COUNTED


# --------------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True, slots=True)
class RecordedFile:
    """A file that arrived as a multipart file field."""

    field_name: str  # the multipart field (aiogram uses a random key, referenced as "attach://key")
    filename: str
    content_type: str
    size: int
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Call:
    """One request the server answered (or, for a reset, dropped: ``status == 0``).

    ``files`` is keyed by the parameter that references the upload ("photo", "document"), falling back
    to the multipart field name for uploads no parameter references.
    """

    method: str
    params: dict[str, Any]
    files: dict[str, RecordedFile]
    at: float  # time.monotonic() on arrival
    status: int
    response: JsonDict | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return HTTPStatus.OK <= self.status < HTTPStatus.MULTIPLE_CHOICES

    @property
    def chat_id(self) -> int | str | None:
        value = self.params.get("chat_id")
        return value if isinstance(value, int | str) else None

    @property
    def text(self) -> str | None:
        value = self.params.get("text", self.params.get("caption"))
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class RateReport:
    """The densest 1-second windows among the recorded successful sends."""

    global_per_s: int
    per_chat_per_s: int
    sends: int
    max_global_in_1s: int
    max_per_chat_in_1s: int
    busiest_chat: int | str | None

    @property
    def global_exceeded(self) -> bool:
        return self.max_global_in_1s > self.global_per_s

    @property
    def per_chat_exceeded(self) -> bool:
        return self.max_per_chat_in_1s > self.per_chat_per_s

    @property
    def ok(self) -> bool:
        return not (self.global_exceeded or self.per_chat_exceeded)


# --------------------------------------------------------------------------------------------------
# HTML parse mode, after tdlib's parse_html (td/telegram/MessageEntity.cpp)

_HTML_TAGS: Final = {
    "a": "text_link",
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_ENTITIES: Final = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class HtmlParseError(ValueError):
    """The text is not valid Telegram HTML; the message is what the real server says after the colon."""


@dataclass(slots=True)
class _OpenTag:
    name: str
    attrs: dict[str, str]
    start: int  # UTF-16 offset in the output


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _decode_entity(source: str, at: int) -> tuple[str, int] | None:
    """Decode ``&name;`` / ``&#NN;`` / ``&#xHH;`` at ``source[at]``: (character, length consumed)."""
    end = source.find(";", at + 1, at + 12)
    if end < 0:
        return None
    body = source[at + 1 : end]
    if body in _HTML_ENTITIES:
        return _HTML_ENTITIES[body], end - at + 1
    try:
        if body[:2] in ("#x", "#X"):
            code = int(body[2:], 16)
        elif body[:1] == "#" and body[1:].isdigit():
            code = int(body[1:])
        else:
            return None
    except ValueError:
        return None
    if not 0 < code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), end - at + 1


def _unescape(value: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        decoded = _decode_entity(value, i) if value[i] == "&" else None
        if decoded is None:
            out.append(value[i])
            i += 1
        else:
            out.append(decoded[0])
            i += decoded[1]
    return "".join(out)


def parse_html(source: str) -> tuple[str, list[JsonDict]]:
    """Parse Telegram HTML into (plain text, entities with UTF-16 offsets), strictly, as Telegram does.

    Raises HtmlParseError with the real server's wording ("Unsupported start tag ...", "Can't find end
    tag corresponding to start tag ...", byte offsets in UTF-8).
    """

    def at_byte(pos: int) -> int:
        return len(source[:pos].encode("utf-8"))

    n = len(source)
    out: list[str] = []
    offset = 0
    stack: list[_OpenTag] = []
    entities: list[JsonDict] = []
    i = 0
    while i < n:
        char = source[i]
        if char == "&" and (decoded := _decode_entity(source, i)) is not None:
            out.append(decoded[0])
            offset += _utf16_len(decoded[0])
            i += decoded[1]
            continue
        if char != "<":
            out.append(char)
            offset += 2 if ord(char) > 0xFFFF else 1
            i += 1
            continue
        begin = i
        i += 1
        if i < n and source[i] == "/":
            if not stack:
                raise HtmlParseError(f"Unexpected end tag at byte offset {at_byte(begin)}")
            j = i + 1
            while j < n and not source[j].isspace() and source[j] != ">":
                j += 1
            end_name = source[i + 1 : j].lower()
            while j < n and source[j].isspace():
                j += 1
            if j >= n or source[j] != ">":
                raise HtmlParseError(f"Unclosed end tag at byte offset {at_byte(begin)}")
            tag = stack.pop()
            if end_name and end_name != tag.name:
                raise HtmlParseError(
                    f'Unmatched end tag at byte offset {at_byte(begin)}, expected "</{tag.name}>", '
                    f'found "</{end_name}>"'
                )
            _close_tag(tag, offset, stack, entities)
            i = j + 1
            continue
        j = i
        while j < n and not source[j].isspace() and source[j] != ">":
            j += 1
        if j >= n:
            raise HtmlParseError(f"Unclosed start tag at byte offset {at_byte(begin)}")
        name = source[i:j].lower()
        if name not in _HTML_TAGS:
            raise HtmlParseError(f'Unsupported start tag "{name}" at byte offset {at_byte(begin)}')
        attrs, j = _parse_attributes(source, j, name, at_byte(begin))
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise HtmlParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {at_byte(begin)}')
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise HtmlParseError(f"Invalid custom emoji identifier specified at byte offset {at_byte(begin)}")
        stack.append(_OpenTag(name, attrs, offset))
        i = j + 1
    if stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _parse_attributes(source: str, j: int, tag: str, begin: int) -> tuple[dict[str, str], int]:
    """Read ``name="value"`` pairs from ``source[j]`` up to the closing '>' (returned as the new j)."""
    n = len(source)
    attrs: dict[str, str] = {}
    while True:
        while j < n and source[j].isspace():
            j += 1
        if j >= n:
            raise HtmlParseError(f"Unclosed start tag at byte offset {begin}")
        if source[j] == ">":
            return attrs, j
        name_start = j
        while j < n and not source[j].isspace() and source[j] not in "=>":
            j += 1
        attr = source[name_start:j].lower()
        if not attr:
            raise HtmlParseError(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
        while j < n and source[j].isspace():
            j += 1
        if j < n and source[j] != "=" and tag == "blockquote" and attr == "expandable":
            attrs[attr] = ""
            continue
        if j >= n or source[j] != "=":
            raise HtmlParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                f"at byte offset {begin}"
            )
        j += 1
        while j < n and source[j].isspace():
            j += 1
        if j >= n:
            raise HtmlParseError(f"Unclosed start tag at byte offset {begin}")
        if source[j] in "'\"":
            close = source.find(source[j], j + 1)
            if close < 0:
                raise HtmlParseError(f"Unclosed start tag at byte offset {begin}")
            value = _unescape(source[j + 1 : close])
            j = close + 1
        else:
            value_start = j
            while j < n and (source[j].isalnum() or source[j] in ".-"):
                j += 1
            if j < n and not source[j].isspace() and source[j] != ">":
                raise HtmlParseError(f"Unexpected end of name token at byte offset {begin}")
            value = source[value_start:j]
        attrs[attr] = value


def _close_tag(tag: _OpenTag, offset: int, stack: list[_OpenTag], entities: list[JsonDict]) -> None:
    length = offset - tag.start
    if tag.name == "code" and stack and stack[-1].name == "pre":
        language = tag.attrs.get("class", "")
        if language.startswith("language-"):
            stack[-1].attrs["language"] = language.removeprefix("language-")
            return
    if length <= 0:
        return
    entity: JsonDict = {"offset": tag.start, "length": length, "type": _HTML_TAGS[tag.name]}
    if tag.name == "a":
        href = tag.attrs.get("href", "")
        if not href:
            return
        if href.startswith("tg://user?id=") and href.removeprefix("tg://user?id=").isdigit():
            entity["type"] = "text_mention"
            entity["user"] = {
                "id": int(href.removeprefix("tg://user?id=")),
                "is_bot": False,
                "first_name": "",
            }
        else:
            entity["url"] = href
    elif tag.name == "pre" and tag.attrs.get("language"):
        entity["language"] = tag.attrs["language"]
    elif tag.name == "blockquote" and "expandable" in tag.attrs:
        entity["type"] = "expandable_blockquote"
    elif tag.name == "tg-emoji":
        entity["custom_emoji_id"] = tag.attrs["emoji-id"]
    entities.append(entity)


def _strip(text: str, entities: list[JsonDict]) -> tuple[str, list[JsonDict]]:
    """Trim surrounding whitespace as Telegram does, moving and clipping the entities with the text."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = _utf16_len(text) - _utf16_len(text.lstrip())
    size = _utf16_len(stripped)
    moved: list[JsonDict] = []
    for entity in entities:
        start = max(0, int(entity["offset"]) - lead)
        end = min(size, int(entity["offset"]) + int(entity["length"]) - lead)
        if end > start:
            moved.append({**entity, "offset": start, "length": end - start})
    return stripped, moved


# --------------------------------------------------------------------------------------------------
# the server


class _ApiError(Exception):
    def __init__(self, status: int, description: str, parameters: JsonDict | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> JsonDict:
        body: JsonDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad_request(what: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {what}")


@dataclass(slots=True)
class _Answer:
    """A handler's success with a description beside the result (as deleteWebhook gives)."""

    result: Any
    description: str


@dataclass(slots=True)
class _Request:
    method: str
    token: str
    params: dict[str, Any]
    files: dict[str, RecordedFile]


@dataclass(slots=True)
class _Fault:
    kind: Literal["error", "delay", "reset", "html", "cut"]
    method: str  # "*" matches every method
    times: int | None  # None: forever
    chat_id: int | str | None = None
    status: int = 0
    description: str = ""
    retry_after: int | None = None
    seconds: float = 0.0

    def matches(self, method: str, chat_id: Any) -> bool:
        if self.method not in ("*", method):
            return False
        return self.chat_id is None or self.chat_id == chat_id

    def use(self) -> None:
        if self.times is not None:
            self.times -= 1


_Handler = Callable[[_Request], Awaitable[Any]]


class LoopbackSession(AiohttpSession):
    """aiogram's own aiohttp session; closing skips the 250 ms wait that only TLS connections need."""

    async def close(self) -> None:
        # _session is AiohttpSession's ClientSession; the parent's close() is this plus asyncio.sleep(0.25)
        if self._session is not None and not self._session.closed:
            await self._session.close()


class FakeBotAPI:
    """A Bot API server on 127.0.0.1 that records calls, queues updates and injects faults."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        poll_wait: float = 1.0,
        token: str | None = None,
        bot_first_name: str = "tgmon test",
        bot_username: str = "tgmon_test_bot",
    ) -> None:
        self.host = host
        self.port = port
        self.poll_wait = poll_wait  # the longest a long-poll getUpdates waits, whatever its timeout
        self.token = token  # when set, other tokens get 401 Unauthorized
        self.bot_first_name = bot_first_name
        self.bot_username = bot_username
        self.calls: list[Call] = []
        self.enforce_limits = False
        self.limit_global_per_s = 30
        self.limit_per_chat_per_s = 1
        self.too_many = 0  # 429s the server gave on its own account (enforce_limits)
        self.webhook_url = ""
        self.updates: list[JsonDict] = []  # queued, not yet confirmed
        self.messages: dict[tuple[int | str, int], JsonDict] = {}  # (chat id, message id) → Message
        self.commands: dict[tuple[str, str], list[JsonDict]] = {}  # (scope JSON, language) → commands
        self.results: dict[str, Any] = {}  # method → fixed result, for methods without a handler
        self._faults: list[_Fault] = []
        self._blocked: set[int | str] = set()
        self._chats: dict[int | str, JsonDict] = {}
        self._last_message_id: defaultdict[int | str, int] = defaultdict(int)
        self._update_id = 166770000
        self._callback_ids: dict[str, bool] = {}  # id → answered
        self._file_seq = 0
        self._allowed_updates: frozenset[str] = frozenset()
        self._runner: web.AppRunner | None = None
        self._bound_port = 0
        self._activity = asyncio.Event()
        self._new_updates = asyncio.Event()
        self._stopping = asyncio.Event()
        self._handlers: dict[str, tuple[str, _Handler]] = {}
        for name, handler in self._method_table().items():
            self._handlers[name.lower()] = (name, handler)

    # lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._stopping = asyncio.Event()
        self._new_updates = asyncio.Event()
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self._bound_port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop serving; pending long polls and delays return at once."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping.set()
        self._new_updates.set()
        await runner.cleanup()

    async def __aenter__(self) -> FakeBotAPI:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The base URL, for ``TelegramAPIServer.from_base``."""
        if self._runner is None:
            raise RuntimeError("FakeBotAPI is not started")
        return f"http://{self.host}:{self._bound_port}"

    @property
    def api(self) -> TelegramAPIServer:
        return TelegramAPIServer.from_base(self.url)

    def make_bot(self, token: str = DEFAULT_TOKEN, *, timeout: float = 10.0) -> Bot:
        """A real aiogram Bot over HTTP to this server; close it with ``await bot.session.close()``."""
        return Bot(token, session=LoopbackSession(api=self.api, timeout=timeout))

    # test setup: updates --------------------------------------------------------------------------

    def push_update(self, update: JsonDict) -> JsonDict:
        """Queue a raw update (its update_id is assigned here) and wake a waiting getUpdates."""
        self._update_id += 1
        update = {"update_id": self._update_id, **{k: v for k, v in update.items() if k != "update_id"}}
        self.updates.append(update)
        self._new_updates.set()
        return update

    def push_message(
        self,
        user_id: int,
        text: str,
        *,
        username: str | None = "tester",
        first_name: str = "Test",
        language_code: str | None = "en",
        chat_id: int | None = None,
    ) -> JsonDict:
        """Queue a text message from a user, as the real server shapes it (bot_command entities too)."""
        user = self._user(user_id, username=username, first_name=first_name, language_code=language_code)
        chat = self._chat_for(chat_id if chat_id is not None else user_id, user)
        message: JsonDict = {
            "message_id": self._next_message_id(chat["id"]),
            "from": user,
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        entities = [
            {"offset": _utf16_len(text[: m.start()]), "length": _utf16_len(m.group()), "type": "bot_command"}
            for m in _COMMAND_RE.finditer(text)
        ]
        if entities:
            message["entities"] = entities
        self.messages[(chat["id"], message["message_id"])] = message
        return self.push_update({"message": message})

    def push_callback(
        self,
        user_id: int,
        data: str,
        message_id: int,
        chat_id: int | None = None,
        language_code: str | None = "en",
        *,
        username: str | None = "tester",
        first_name: str = "Test",
    ) -> JsonDict:
        """Queue a button press on ``message_id``; the attached message is the stored one when known."""
        user = self._user(user_id, username=username, first_name=first_name, language_code=language_code)
        chat = self._chat_for(chat_id if chat_id is not None else user_id, user)
        message = self.messages.get((chat["id"], message_id))
        if message is None:  # a message from before the test: make it up, and remember it for edits
            message = {
                "message_id": message_id,
                "from": self._bot_user(self.token or DEFAULT_TOKEN),
                "chat": chat,
                "date": int(time.time()) - 60,
                "text": "…",
            }
            self.messages[(chat["id"], message_id)] = message
            self._last_message_id[chat["id"]] = max(self._last_message_id[chat["id"]], message_id)
        query_id = str(7866573844579717000 + len(self._callback_ids))
        self._callback_ids[query_id] = False
        return self.push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user,
                    "message": message,
                    "chat_instance": str(abs(hash(("chat_instance", chat["id"]))) % 10**19),
                    "data": data,
                }
            }
        )

    def add_chat(self, chat: JsonDict) -> None:
        """Make a group or channel known by id and @username: {"id": -100…, "type": "channel", …}."""
        self._chats[chat["id"]] = chat
        if chat.get("username"):
            self._chats["@" + chat["username"]] = chat

    def my_commands(self, scope: JsonDict | None = None, language_code: str = "") -> list[JsonDict]:
        return self.commands.get((_scope_key(scope), language_code), [])

    # test setup: faults ---------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        status: int,
        description: str | None = None,
        retry_after: int | None = None,
        times: int | None = 1,
        chat_id: int | str | None = None,
    ) -> None:
        """The next ``times`` matching calls (None: all) answer this error instead of being carried out."""
        if status == HTTPStatus.TOO_MANY_REQUESTS and retry_after is None:
            retry_after = 1
        if description is None:
            if retry_after is not None:
                description = f"Too Many Requests: retry after {retry_after}"
            else:
                description = _DEFAULT_DESCRIPTIONS.get(status) or HTTPStatus(status).phrase
        self._faults.append(
            _Fault(
                "error",
                method,
                times,
                _norm_chat(chat_id),
                status=status,
                description=description,
                retry_after=retry_after,
            )
        )

    def block(self, chat_id: int | str) -> None:
        """The user blocked the bot: every send or edit to the chat answers 403 from now on."""
        self._blocked.add(_norm_chat(chat_id) or chat_id)

    def unblock(self, chat_id: int | str) -> None:
        self._blocked.discard(_norm_chat(chat_id) or chat_id)

    def delay(
        self, method: str, seconds: float, times: int | None = 1, chat_id: int | str | None = None
    ) -> None:
        """Sleep before answering the next ``times`` matching calls (the call is still carried out)."""
        self._faults.append(_Fault("delay", method, times, _norm_chat(chat_id), seconds=seconds))

    def reset_connection(self, method: str, times: int | None = 1, chat_id: int | str | None = None) -> None:
        """Close the connection without answering the next ``times`` matching calls (not carried out)."""
        self._faults.append(_Fault("reset", method, times, _norm_chat(chat_id)))

    def html_error(
        self, method: str, status: int = 502, times: int | None = 1, chat_id: int | str | None = None
    ) -> None:
        """Answer the next ``times`` matching calls with a proxy's HTML error page (not carried out),
        as nginx in front of api.telegram.org does when the backend is down."""
        self._faults.append(_Fault("html", method, times, _norm_chat(chat_id), status=status))

    def cut_response(self, method: str, times: int | None = 1, chat_id: int | str | None = None) -> None:
        """Carry out the next ``times`` matching calls, then drop the connection half-way through the
        answer: the client gets a network error for a call that did happen."""
        self._faults.append(_Fault("cut", method, times, _norm_chat(chat_id)))

    def clear_faults(self) -> None:
        self._faults.clear()
        self._blocked.clear()

    # inspection -----------------------------------------------------------------------------------

    def sent(self, method: str | None = "sendMessage", chat_id: int | str | None = None) -> list[Call]:
        """Successful calls of ``method`` (None: any), optionally to one chat."""
        want_chat = _norm_chat(chat_id)
        return [
            c
            for c in self.calls
            if c.ok
            and (method is None or c.method == method)
            and (want_chat is None or c.chat_id == want_chat)
        ]

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 -- the brief's API; asyncio.timeout is used inside
        chat_id: int | str | None = None,
    ) -> list[Call]:
        """Wait until ``count`` successful ``method`` calls arrived; return them all."""
        got = self.sent(method, chat_id)
        try:
            async with asyncio.timeout(timeout):
                while len(got) < count:
                    activity = self._activity
                    await activity.wait()
                    got = self.sent(method, chat_id)
        except TimeoutError:
            where = f" to chat {chat_id}" if chat_id is not None else ""
            raise TimeoutError(
                f"waited {timeout}s for {count} successful {method} call(s){where}, got {len(got)}; "
                f"calls so far: {self.summary() or 'none'}"
            ) from None
        return got

    def summary(self) -> str:
        """The calls so far, counted by method and status: "getMe 200×1, sendMessage 429×2"."""
        counts = Counter((c.method, c.status) for c in self.calls)
        return ", ".join(f"{m} {s}×{n}" for (m, s), n in sorted(counts.items()))

    def rate_violations(self, global_per_s: int = 30, per_chat_per_s: int = 1) -> RateReport:
        """The densest sliding 1-second windows of successful sends, overall and per chat."""
        sends = [c for c in self.calls if c.ok and is_send(c.method)]
        by_chat: defaultdict[int | str | None, list[float]] = defaultdict(list)
        for call in sends:
            by_chat[call.chat_id].append(call.at)
        busiest: int | str | None = None
        max_chat = 0
        for chat, times in by_chat.items():
            densest = _densest_second(times)
            if densest > max_chat:
                busiest, max_chat = chat, densest
        return RateReport(
            global_per_s=global_per_s,
            per_chat_per_s=per_chat_per_s,
            sends=len(sends),
            max_global_in_1s=_densest_second([c.at for c in sends]),
            max_per_chat_in_1s=max_chat,
            busiest_chat=busiest,
        )

    # the HTTP side --------------------------------------------------------------------------------

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response(_ApiError(404, "Not Found").body(), status=404)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        at = time.monotonic()
        token = request.match_info["token"]
        raw_method = request.match_info["method"]
        method, handler = self._handlers.get(raw_method.lower(), (raw_method, None))
        params: dict[str, Any] = {}
        files: dict[str, RecordedFile] = {}
        try:
            params, files = await _read_params(request)
            chat_id = params.get("chat_id")
            if self._take_fault("reset", method, chat_id) is not None:
                self._record(Call(method, params, files, at, 0))
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=HTTPStatus.INTERNAL_SERVER_ERROR)  # never reaches the client
            if (slow := self._take_fault("delay", method, chat_id)) is not None:
                await self._sleep(slow.seconds)
            if (page := self._take_fault("html", method, chat_id)) is not None:
                self._record(Call(method, params, files, at, page.status))
                text = _html_page(page.status)
                return web.Response(status=page.status, text=text, content_type="text/html")
            self._check_token(token)
            if (fault := self._take_fault("error", method, chat_id)) is not None:
                parameters = {"retry_after": fault.retry_after} if fault.retry_after is not None else None
                raise _ApiError(fault.status, fault.description, parameters)
            blocked = isinstance(chat_id, int | str) and chat_id in self._blocked
            if blocked and (is_send(method) or method.startswith("edit")):
                raise _ApiError(403, _BLOCKED)
            if self.enforce_limits and is_send(method):
                self._check_limits(chat_id, at)
            if handler is None:
                if method not in self.results:
                    raise _ApiError(404, "Not Found: method not found")
                result: Any = self.results[method]
            else:
                result = await handler(_Request(method, token, params, files))
        except _ApiError as error:
            body = error.body()
            self._record(Call(method, params, files, at, error.status, body))
            return web.json_response(body, status=error.status)
        body = {"ok": True, "result": result}
        if isinstance(result, _Answer):
            body = {"ok": True, "result": result.result, "description": result.description}
        self._record(Call(method, params, files, at, 200, body))
        if self._take_fault("cut", method, params.get("chat_id")) is not None:
            return await _cut_short(request, body)
        return web.json_response(body)

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        activity, self._activity = self._activity, asyncio.Event()
        activity.set()

    def _take_fault(self, kind: str, method: str, chat_id: Any) -> _Fault | None:
        for fault in self._faults:
            if fault.kind == kind and fault.times != 0 and fault.matches(method, chat_id):
                fault.use()
                return fault
        return None

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake when the server stops."""
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            pass

    def _check_token(self, token: str) -> None:
        if self.token is not None and token != self.token:
            raise _ApiError(401, "Unauthorized")

    def _check_limits(self, chat_id: Any, at: float) -> None:
        recent = [c for c in self.calls if c.ok and is_send(c.method) and at - c.at < 1.0]
        in_chat = sum(1 for c in recent if c.chat_id == chat_id)
        if len(recent) >= self.limit_global_per_s or in_chat >= self.limit_per_chat_per_s:
            self.too_many += 1
            raise _ApiError(429, "Too Many Requests: retry after 1", {"retry_after": 1})

    # the methods ----------------------------------------------------------------------------------

    def _method_table(self) -> dict[str, _Handler]:
        media = {
            "sendVideo": "video",
            "sendAudio": "audio",
            "sendVoice": "voice",
            "sendAnimation": "animation",
            "sendVideoNote": "video_note",
            "sendSticker": "sticker",
        }
        table: dict[str, _Handler] = {
            "getMe": self._get_me,
            "logOut": self._true,
            "close": self._true,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getMyCommands": self._get_my_commands,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendPhoto": self._send_photo,
            "sendDocument": self._media_sender("document"),
            "sendChatAction": self._send_chat_action,
            "getChat": self._get_chat,
        }
        for name, kind in media.items():
            table[name] = self._media_sender(kind)
        return table

    async def _true(self, req: _Request) -> bool:
        return True

    async def _get_me(self, req: _Request) -> JsonDict:
        return {
            **self._bot_user(req.token),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, req: _Request) -> list[JsonDict]:
        if self.webhook_url:
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
                "delete the webhook first",
            )
        offset = _as_int(req.params.get("offset"), 0)
        limit = min(max(_as_int(req.params.get("limit"), 100), 1), 100)
        timeout = max(_as_int(req.params.get("timeout"), 0), 0)
        allowed = req.params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(str(a) for a in allowed)  # persists, as on Telegram
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        elif offset < 0:
            self.updates = self.updates[offset:]
        deadline = time.monotonic() + min(timeout, self.poll_wait)
        while True:
            self._new_updates.clear()
            if self._allowed_updates:
                self.updates = [u for u in self.updates if _update_type(u) in self._allowed_updates]
            if self.updates or self._stopping.is_set():
                return self.updates[:limit]
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            try:
                async with asyncio.timeout(left):
                    await self._new_updates.wait()
            except TimeoutError:
                return []

    async def _set_webhook(self, req: _Request) -> _Answer:
        url = str(req.params.get("url", ""))
        if url and not url.startswith("https://"):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook_url = url
        return _Answer(True, "Webhook was set" if url else "Webhook was deleted")

    async def _delete_webhook(self, req: _Request) -> _Answer:
        was_set, self.webhook_url = bool(self.webhook_url), ""
        if req.params.get("drop_pending_updates") is True:
            self.updates.clear()
        return _Answer(True, "Webhook was deleted" if was_set else "Webhook is already deleted")

    async def _get_webhook_info(self, req: _Request) -> JsonDict:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }

    async def _set_my_commands(self, req: _Request) -> bool:
        commands = req.params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request('parameter "commands" is required')
        if len(commands) > 100:
            raise _bad_request("too many commands specified")
        for command in commands:
            name = command.get("command", "") if isinstance(command, dict) else ""
            if not _BOT_COMMAND_RE.fullmatch(str(name)):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[_commands_key(req.params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _delete_my_commands(self, req: _Request) -> bool:
        self.commands.pop(_commands_key(req.params), None)
        return True

    async def _get_my_commands(self, req: _Request) -> list[JsonDict]:
        return self.my_commands(req.params.get("scope"), str(req.params.get("language_code", "")))

    async def _send_message(self, req: _Request) -> JsonDict:
        chat = self._target_chat(req.params)
        text, entities = _parse_text(req.params, "text", TEXT_LIMIT)
        if not text:
            raise _bad_request("message text is empty")
        content: JsonDict = {"text": text}
        if entities:
            content["entities"] = entities
        if isinstance(options := req.params.get("link_preview_options"), dict):
            content["link_preview_options"] = options
        return self._new_message(req, chat, content)

    async def _send_photo(self, req: _Request) -> JsonDict:
        chat = self._target_chat(req.params)
        upload, file_ref = self._input_file(req, "photo")
        sizes: list[JsonDict] = []
        for width, height, share in ((90, 60, 20), (320, 213, 4), (1280, 853, 1)):
            file_id, unique_id = self._file_ids("AgACAgIAAxkBAAI")
            size: JsonDict = {
                "file_id": file_id,
                "file_unique_id": unique_id,
                "width": width,
                "height": height,
            }
            if upload is not None:
                size["file_size"] = max(upload.size // share, 1)
            sizes.append(size)
        if file_ref:
            sizes[-1]["file_id"] = file_ref
        return self._new_message(req, chat, {"photo": sizes, **_caption(req.params)})

    def _media_sender(self, kind: str) -> _Handler:
        extra: dict[str, JsonDict] = {
            "video": {"width": 1280, "height": 720, "duration": 1},
            "animation": {"width": 320, "height": 240, "duration": 1},
            "audio": {"duration": 1},
            "voice": {"duration": 1},
            "video_note": {"length": 240, "duration": 1},
            "sticker": {
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
            },
        }

        async def send(req: _Request) -> JsonDict:
            chat = self._target_chat(req.params)
            upload, file_ref = self._input_file(req, kind)
            file_id, unique_id = self._file_ids("BQACAgIAAxkBAAI")
            described: JsonDict = {"file_id": file_ref or file_id, "file_unique_id": unique_id}
            described.update(extra.get(kind, {}))
            if upload is not None:
                described["file_name"] = upload.filename
                described["mime_type"] = upload.content_type or "application/octet-stream"
                described["file_size"] = upload.size
            content: JsonDict = {kind: described}
            if kind != "sticker":
                content.update(_caption(req.params))
            return self._new_message(req, chat, content)

        return send

    async def _edit_message_text(self, req: _Request) -> JsonDict | bool:
        text, entities = _parse_text(req.params, "text", TEXT_LIMIT)
        if not text:
            raise _bad_request("message text is empty")
        if req.params.get("inline_message_id"):
            return True
        message = self._stored_message(req.params, "message to edit not found")
        markup = _inline_markup(req.params)
        if (
            message.get("text") == text
            and message.get("entities", []) == entities
            and message.get("reply_markup") == markup
        ):
            raise _bad_request(_NOT_MODIFIED)
        message = {k: v for k, v in message.items() if k not in ("entities", "reply_markup")}
        message.update(text=text, edit_date=int(time.time()))
        if entities:
            message["entities"] = entities
        if markup:
            message["reply_markup"] = markup
        self.messages[(message["chat"]["id"], message["message_id"])] = message
        return message

    async def _edit_message_reply_markup(self, req: _Request) -> JsonDict | bool:
        if req.params.get("inline_message_id"):
            return True
        message = self._stored_message(req.params, "message to edit not found")
        markup = _inline_markup(req.params)
        if message.get("reply_markup") == markup:
            raise _bad_request(_NOT_MODIFIED)
        message = {k: v for k, v in message.items() if k != "reply_markup"}
        message["edit_date"] = int(time.time())
        if markup:
            message["reply_markup"] = markup
        self.messages[(message["chat"]["id"], message["message_id"])] = message
        return message

    async def _delete_message(self, req: _Request) -> bool:
        message = self._stored_message(req.params, "message to delete not found")
        del self.messages[(message["chat"]["id"], message["message_id"])]
        return True

    async def _answer_callback_query(self, req: _Request) -> bool:
        query_id = str(req.params.get("callback_query_id", ""))
        if self._callback_ids.get(query_id, True):
            raise _bad_request("query is too old and response timeout expired or query ID is invalid")
        if len(str(req.params.get("text", ""))) > CALLBACK_ANSWER_LIMIT:
            raise _bad_request("MESSAGE_TOO_LONG")
        self._callback_ids[query_id] = True
        return True

    async def _send_chat_action(self, req: _Request) -> bool:
        self._target_chat(req.params)
        if req.params.get("action") not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        return True

    async def _get_chat(self, req: _Request) -> JsonDict:
        chat = self._target_chat(req.params)
        return {
            **chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }

    # helpers --------------------------------------------------------------------------------------

    def _bot_user(self, token: str) -> JsonDict:
        prefix = token.split(":", 1)[0]
        return {
            "id": int(prefix) if prefix.isdigit() else 123456789,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def _user(
        self, user_id: int, *, username: str | None, first_name: str, language_code: str | None
    ) -> JsonDict:
        user: JsonDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        return user

    def _chat_for(self, chat_id: int, user: JsonDict) -> JsonDict:
        if chat_id in self._chats:
            return self._chats[chat_id]
        chat: JsonDict
        if chat_id > 0:
            chat = {k: user[k] for k in ("id", "first_name", "username") if k in user}
            chat.update(id=chat_id, type="private")
        else:
            chat = _synthetic_chat(chat_id)
        self._chats[chat_id] = chat
        return chat

    def _target_chat(self, params: dict[str, Any]) -> JsonDict:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        if isinstance(chat_id, int | str) and chat_id in self._chats:
            return self._chats[chat_id]
        if isinstance(chat_id, int):
            return _synthetic_chat(chat_id)
        raise _bad_request("chat not found")

    def _next_message_id(self, chat_id: int | str) -> int:
        self._last_message_id[chat_id] += 1
        return self._last_message_id[chat_id]

    def _new_message(self, req: _Request, chat: JsonDict, content: JsonDict) -> JsonDict:
        message: JsonDict = {
            "message_id": self._next_message_id(chat["id"]),
            "from": self._bot_user(req.token),
            "chat": chat,
            "date": int(time.time()),
        }
        reply = req.params.get("reply_parameters")
        reply_to = (
            reply.get("message_id") if isinstance(reply, dict) else req.params.get("reply_to_message_id")
        )
        if reply_to is not None:
            original = self.messages.get((chat["id"], _as_int(reply_to, 0)))
            if original is not None:
                message["reply_to_message"] = {k: v for k, v in original.items() if k != "reply_to_message"}
            elif not (isinstance(reply, dict) and reply.get("allow_sending_without_reply")):
                raise _bad_request("message to be replied not found")
        message.update(content)
        if markup := _inline_markup(req.params):
            message["reply_markup"] = markup
        self.messages[(chat["id"], message["message_id"])] = message
        return message

    def _stored_message(self, params: dict[str, Any], missing: str) -> JsonDict:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        chat = self._chats.get(chat_id) if isinstance(chat_id, int | str) else None
        key = (chat["id"] if chat else chat_id, _as_int(params.get("message_id"), 0))
        message = self.messages.get(key)
        if message is None:
            raise _bad_request(missing)
        return message

    def _input_file(self, req: _Request, kind: str) -> tuple[RecordedFile | None, str]:
        """(the upload, or the file_id/URL sent instead)."""
        upload = req.files.get(kind)
        if upload is not None:
            return upload, ""
        value = req.params.get(kind)
        if not isinstance(value, str) or not value or value.startswith("attach://"):
            raise _bad_request(f"there is no {kind.replace('_', ' ')} in the request")
        return None, value

    def _file_ids(self, prefix: str) -> tuple[str, str]:
        self._file_seq += 1
        return f"{prefix}{self._file_seq:08d}fake", f"AgAD{self._file_seq:08d}"


# --------------------------------------------------------------------------------------------------
# request parsing and small helpers


def _html_page(status: int) -> str:
    phrase = f"{status} {HTTPStatus(status).phrase}"
    return (
        f"<html>\r\n<head><title>{phrase}</title></head>\r\n<body>\r\n<center><h1>{phrase}</h1></center>"
        "\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
    )


async def _cut_short(request: web.Request, body: JsonDict) -> web.StreamResponse:
    """Send the headers and half the answer, then close the connection."""
    data = json.dumps(body).encode()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(data)
    await response.prepare(request)
    await response.write(data[: len(data) // 2])
    if request.transport is not None:
        request.transport.close()
    return response


async def _read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, RecordedFile]]:
    """The call's parameters, decoded as the real server reads them, and its uploaded files."""
    params: dict[str, Any] = {key: _decode(key, value) for key, value in request.query.items()}
    uploads: dict[str, RecordedFile] = {}
    if request.content_type == "application/json":
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            raise _bad_request("can't parse JSON encoded request body") from None
        if not isinstance(body, dict):
            raise _bad_request("JSON object expected as the request body")
        params.update({k: _norm_chat(v) if k in _CHAT_PARAMS else v for k, v in body.items()})
    elif request.can_read_body:
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            raise _ApiError(413, "Request Entity Too Large") from None
        for key, value in form.items():
            if isinstance(value, web.FileField):
                data = value.file.read()
                uploads[key] = RecordedFile(key, value.filename, value.content_type, len(data), data)
            elif isinstance(value, str):
                params[key] = _decode(key, value)
    files: dict[str, RecordedFile] = {}
    for key, value in params.items():
        if isinstance(value, str) and value.startswith("attach://") and value[9:] in uploads:
            files[key] = uploads.pop(value[9:])
    files.update(uploads)
    return params, files


def _decode(key: str, value: str) -> Any:
    """JSON-decode what aiogram JSON-encodes (objects, lists, numbers, booleans); keep text as text."""
    if key in _CHAT_PARAMS:
        return _norm_chat(value)
    if key in _STRING_PARAMS:
        return value
    if value[:1] in ("{", "[") or _JSON_SCALAR_RE.fullmatch(value):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _norm_chat(value: Any) -> Any:
    """Chat ids: int-like strings become ints; "@username" stays a string."""
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        return int(value)
    return value


def _as_int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_RE.fullmatch(value):
        return int(value)
    return default


def _update_type(update: JsonDict) -> str:
    return next((k for k in update if k != "update_id"), "")


def _scope_key(scope: Any) -> str:
    return json.dumps(scope if isinstance(scope, dict) else {"type": "default"}, sort_keys=True)


def _commands_key(params: dict[str, Any]) -> tuple[str, str]:
    return _scope_key(params.get("scope")), str(params.get("language_code", ""))


def _synthetic_chat(chat_id: int) -> JsonDict:
    if chat_id > 0:
        return {"id": chat_id, "first_name": "Test", "type": "private"}
    if chat_id <= -(10**12):
        return {"id": chat_id, "title": "Test supergroup", "type": "supergroup"}
    return {"id": chat_id, "title": "Test group", "type": "group"}


def _parse_text(params: dict[str, Any], key: str, limit: int) -> tuple[str, list[JsonDict]]:
    """Text after the parse mode is applied, trimmed, with its entities; 400s like Telegram's."""
    raw = params.get(key)
    text = raw if isinstance(raw, str) else "" if raw is None else str(raw)
    entities: list[JsonDict] = []
    parse_mode = params.get("parse_mode")
    if isinstance(parse_mode, str) and parse_mode.lower() == "html":
        try:
            text, entities = parse_html(text)
        except HtmlParseError as error:
            raise _bad_request(f"can't parse entities: {error}") from None
    elif isinstance(given := params.get("entities" if key == "text" else "caption_entities"), list):
        entities = [e for e in given if isinstance(e, dict)]
    text, entities = _strip(text, entities)
    if _utf16_len(text) > limit:  # Telegram counts UTF-16 code units: an emoji outside the BMP is two
        raise _bad_request("message is too long" if key == "text" else "message caption is too long")
    _check_keyboard(params)
    return text, entities


def refusal(text: str, *, parse_mode: str | None = "HTML", caption: bool = False) -> str | None:
    """What Telegram would answer a sendMessage with this text (or a photo with this caption) with: the
    400's description, or None when it would be sent. The same checks as the server's, without one."""
    key = "caption" if caption else "text"
    try:
        plain, _ = _parse_text(
            {key: text, "parse_mode": parse_mode}, key, CAPTION_LIMIT if caption else TEXT_LIMIT
        )
    except _ApiError as error:
        return error.description
    return None if plain or caption else "Bad Request: message text is empty"


def _caption(params: dict[str, Any]) -> JsonDict:
    caption, entities = _parse_text(params, "caption", CAPTION_LIMIT)
    content: JsonDict = {}
    if caption:
        content["caption"] = caption
    if entities:
        content["caption_entities"] = entities
    return content


def _inline_markup(params: dict[str, Any]) -> JsonDict | None:
    _check_keyboard(params)
    markup = params.get("reply_markup")
    if isinstance(markup, dict) and isinstance(markup.get("inline_keyboard"), list):
        return markup
    return None


def _check_keyboard(params: dict[str, Any]) -> None:
    markup = params.get("reply_markup")
    if not isinstance(markup, dict) or not isinstance(markup.get("inline_keyboard"), list):
        return
    for row in markup["inline_keyboard"]:
        for button in row if isinstance(row, list) else ():
            if not isinstance(button, dict):
                continue
            if len(str(button.get("callback_data", "")).encode("utf-8")) > CALLBACK_DATA_LIMIT:
                raise _bad_request("BUTTON_DATA_INVALID")
            if not set(button) - {"text"}:
                raise _bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                )


def _densest_second(times: Iterable[float]) -> int:
    """The most events inside any window [t, t + 1 s)."""
    ordered = sorted(times)
    best = 0
    left = 0
    for right, at in enumerate(ordered):
        while at - ordered[left] >= 1.0:
            left += 1
        best = max(best, right - left + 1)
    return best
