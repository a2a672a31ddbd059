"""Secrets never leak: one full run at LOG_LEVEL=DEBUG, every output grepped for the bot token, the API
hash and the session string.

The run: the collector (fake Telethon client) adding and backfilling a channel, the bot (real aiogram
over HTTP to the fake Bot API, which accepts only the secret token) with /start, /add, an alert whose
first send hits a reset connection, /search, /export and forged buttons; `tgmon import`, `search` and
`export` in every format; and the error paths where a secret is most likely to slip out: a Bot API
URL that redirects forever or does not parse (aiohttp names the URL, which holds the token), a token
the server refuses, the real Telethon client failing to connect with a string session, bad settings.

Collected: the redacted log stream the product writes, every log record before formatting (so the
token must not even reach the logger), the CLI's stdout and stderr, the exceptions' messages and
tracebacks, every exported or sent file, everything the bot sent, and the database's bytes.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import logging
import socket
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web
from telethon.crypto import AuthKey
from telethon.sessions import StringSession

from bot.app import build_bot, run_bot
from core import cli
from core.cli import main
from core.redaction import MASK, RedactingFormatter, Redactor, configure_logging
from core.settings import Settings, load_settings
from core.storage.sqlite import SqliteArchive
from tests.conftest import FIXTURES
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.telethon_client import FakeTelegramClient
from tests.fakes.tl_builders import make_channel, make_message
from tests.test_cli import isolate
from tests.test_e2e_bot import export_with_fresh_post

TOKEN = "7001234567:AAHleakCheckTOKEN-secret_part-0123456789"
TOKEN_SECRET = TOKEN.split(":", 1)[1]
API_HASH = "c0ffee5ec7e7a9c0ffee5ec7e7a9c0ff"
USER = 501  # an admin, so /search and /export are allowed


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def string_session(port: int) -> str:
    """A real Telethon string session whose data centre is a closed loopback port."""
    session = StringSession()
    session.set_dc(2, "127.0.0.1", port)
    session.auth_key = AuthKey(bytes((i * 37 + 11) % 256 for i in range(256)))
    return str(session.save())


SESSION = string_session(free_port())
SECRETS = {
    "bot token": TOKEN,
    "bot token's secret half": TOKEN_SECRET,
    "part of the token": TOKEN_SECRET[8:28],
    "api hash": API_HASH,
    "session string": SESSION,
    "part of the session string": SESSION[20:60],
}


@dataclass
class Haystack:
    """Everything the run wrote or showed, by where it came from."""

    texts: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def add_bytes(self, where: str, data: bytes) -> None:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        self.add(where, data.decode("utf-8", errors="replace"))
        self.add(where + " (latin-1)", data.decode("latin-1"))  # secrets inside binary pages

    def add_files(self, label: str, folder: Path, pattern: str) -> int:
        files = [p for p in folder.glob(pattern) if p.is_file()]
        for path in files:
            self.add_bytes(f"{label} {path.relative_to(folder)}", path.read_bytes())
        return len(files)

    def add_error(self, where: str, error: BaseException) -> None:
        self.add(where, f"{error}\n{error!r}\n" + "".join(traceback.format_exception(error)))

    def leaks(self) -> list[str]:
        found = []
        for where, text in self.texts:
            for name, secret in SECRETS.items():
                if secret in text or quote(secret, safe="") in text:
                    at = text.find(secret)
                    found.append(f"{name} in {where}: …{text[max(at - 80, 0) : at + 20]!r}…")
        return found


class RawRecords(logging.Handler):
    """Log records as the code made them, before any formatter could redact them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name} {record.levelname} {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + "".join(traceback.format_exception(record.exc_info[1]))
        self.lines.append(text)


@pytest.fixture
def raw_records() -> Iterator[RawRecords]:
    """On the named loggers, not the root: `tgmon` replaces the root's handlers on every start."""
    handler = RawRecords()
    names = ("tgmon", "aiogram", "aiohttp", "asyncio", "telethon", "core", "bot", "collectors")
    for name in names:
        logging.getLogger(name).addHandler(handler)
    yield handler
    for name in names:
        logging.getLogger(name).removeHandler(handler)


@pytest.fixture
def secret_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "tgmon.db"
    isolate(monkeypatch, tmp_path, db)
    env = {
        "TG_API_ID": "12345", "TG_API_HASH": API_HASH, "TG_SESSION": SESSION, "BOT_TOKEN": TOKEN,
        "ADMIN_IDS": str(USER), "LOG_LEVEL": "DEBUG", "FOLD_WINDOW": "0",
    }  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return db


@pytest.fixture
async def redirect_loop() -> AsyncIterator[str]:
    """A loopback "Bot API" that redirects every request to itself: aiohttp gives up naming the URL."""

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(request.url))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@dataclass
class Run:
    hay: Haystack
    streams: list[tuple[str, io.StringIO]] = field(default_factory=list)

    async def tgmon(self, *argv: str) -> tuple[int, str]:
        """`tgmon ARGV` in a worker thread (main runs its own event loop), stderr kept for the grep."""
        err = io.StringIO()
        self.streams.append((f"tgmon {' '.join(argv)[:60]} (stderr and log)", err))
        code = await asyncio.to_thread(main, list(argv), err)
        return code, err.getvalue()


async def until_logged(stream: io.StringIO, text: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while True:
        if text in stream.getvalue():
            return
        assert time.monotonic() < deadline, f"no {text!r} logged in {within} s"
        await asyncio.sleep(0.05)


def planted(text: str) -> list[str]:
    hay = Haystack()
    hay.add("planted", text)
    return hay.leaks()


def test_the_grep_finds_what_it_looks_for() -> None:
    assert planted(f"POST http://host/bot{TOKEN}/getMe")
    assert planted(f"url=/bot{quote(TOKEN, safe='')}/getMe")
    assert planted(f"api_hash={API_HASH}") and planted(SESSION[10:70])
    assert not planted(f"POST http://host/bot{MASK}/getMe")


@pytest.mark.slow  # ~12 s: Telethon retries its connection five times
async def test_no_secret_in_any_output_of_a_full_run(
    secret_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raw_records: RawRecords,
    redirect_loop: str,
) -> None:
    run = Run(Haystack())
    hay = run.hay

    # the collector, with the fake Telegram client in place of the login
    fake = FakeTelegramClient()
    fake.add_channel(
        make_channel(1001, "newsroom", "Newsroom"),
        [make_message(1001, i, f"protest in Almaty, report {i}") for i in range(1, 21)],
    )

    async def connect(settings: Settings) -> FakeTelegramClient:
        return fake

    with monkeypatch.context() as patched:
        patched.setattr("collectors.telegram.connect_authorized", connect)
        assert (await run.tgmon("channels", "add", "@newsroom", "--backfill", "20"))[0] == 0
        code, err = await run.tgmon("channels", "add", "@no_such_channel")
        assert code == 2 and "cannot watch" in err

    # the bot over HTTP; the fake Bot API answers only the secret token
    async with FakeBotAPI(token=TOKEN, poll_wait=0.2) as server:
        monkeypatch.setenv("BOT_API_URL", server.url)
        settings = load_settings()
        bot_log = io.StringIO()
        run.streams.append(("the bot's log", bot_log))
        configure_logging(settings, logging.DEBUG, bot_log)  # as `tgmon bot` does
        archive = await SqliteArchive.open(secret_env)
        bot_task = asyncio.create_task(run_bot(settings, archive))
        try:
            server.push_message(USER, "/start")
            await server.wait_for("sendMessage", chat_id=USER, timeout=15)
            server.push_message(USER, "/add protest Almaty")
            await server.wait_for("sendMessage", count=2, chat_id=USER, timeout=10)
            server.reset_connection("sendMessage", chat_id=USER)  # the alert's first try fails
            code, err = await run.tgmon("import", str(export_with_fresh_post(tmp_path / "result.json")))
            assert code == 0, err
            alert = (await server.wait_for("sendMessage", count=3, chat_id=USER, timeout=20))[-1]
            assert "Almaty" in (alert.text or "")
            server.push_message(USER, "/search protest")
            await server.wait_for("sendMessage", count=4, chat_id=USER, timeout=10)
            server.push_message(USER, "/export format=csv")
            await server.wait_for("sendDocument", count=2, chat_id=USER, timeout=20)
            for data in ("q1:d:1", "x1:" + "A" * 300 + ":1", TOKEN, "s1:zz:0"):
                server.push_callback(USER, data, message_id=1)
            await server.wait_for("answerCallbackQuery", count=4, timeout=10)
        finally:
            bot_task.cancel()
            await asyncio.gather(bot_task, return_exceptions=True)
            await archive.close()
        assert "bot_started" in bot_log.getvalue()
        assert any(c.status == 0 for c in server.calls)  # the reset happened, and was retried
        for call in server.calls:
            hay.add(f"Bot API call {call.method}", repr(call.params))
            for file in call.files.values():
                hay.add_bytes(f"file sent by the bot: {file.filename}", file.data)

        server.token = "1:someone-else"  # BOT_TOKEN is refused
        code, err = await run.tgmon("bot")
        assert code == 2 and "refused BOT_TOKEN" in err

    # a Bot API URL that redirects forever, and one that does not parse: aiohttp names the URL. `tgmon
    # bot` keeps trying then, so its loop runs here, logging as `tgmon` sets it up, until it has failed
    for url in (redirect_loop, "http://[::1"):
        monkeypatch.setenv("BOT_API_URL", url)
        settings = load_settings()
        log_stream = io.StringIO()
        run.streams.append((f"the bot's log, Bot API at {url}", log_stream))
        configure_logging(settings, logging.DEBUG, log_stream)
        archive = await SqliteArchive.open(secret_env)
        keeper = asyncio.create_task(cli.keep_bot_running(settings, archive, alone=True, first_delay=60))
        try:
            await until_logged(log_stream, "bot_failed")
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            await archive.close()
        assert f"/bot{MASK}/" in log_stream.getvalue()  # the token was in the error, and was cut out
        bot = build_bot(settings)
        try:
            with pytest.raises(Exception) as info:
                await bot.get_me()
        finally:
            await bot.session.close()
        assert MASK in str(info.value)  # the token was in it, and was cut out
        hay.add_error(f"get_me via {url}", info.value)

    # search and export from the command line, every format
    assert (await run.tgmon("search", "protest"))[0] == 0
    out = tmp_path / "out"
    out.mkdir()
    for fmt, target in (("csv", "d.csv"), ("jsonl", "d.jsonl"), ("parquet", "d.parquet"), ("tdesktop", "td")):
        code, err = await run.tgmon("export", "--format", fmt, "-o", str(out / target))
        assert code == 0, err
    code, err = await run.tgmon("export", "--format", "jsonl", "--gzip", "-o", str(out / "z.jsonl"))
    assert code == 0, err
    assert hay.add_files("exported", out, "**/*") >= 9  # four dumps, a gzip one, and their manifests
    code, err = await run.tgmon("import", str(FIXTURES / "tdesktop" / "bad_truncated.result.json"))
    assert code == 2 and "Nothing was imported" in err

    # the real Telethon client with the string session: its data centre does not answer
    code, err = await run.tgmon("collect")
    assert code == 1 and "connection to Telegram was lost" in err, err

    # settings that do not validate, one of them a mangled secret
    monkeypatch.setenv("TG_API_ID", "nope")
    monkeypatch.setenv("BOT_TOKEN", TOKEN + " pasted twice " + TOKEN)
    code, err = await run.tgmon("channels", "list")
    assert code == 2 and "TG_API_ID" in err and "BOT_TOKEN: Value error, not a bot token" in err
    monkeypatch.setenv("TG_API_ID", "12345")
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    settings = load_settings()
    hay.add(
        "the settings shown", f"{settings!r} {settings} {settings.model_dump()} {settings.model_dump_json()}"
    )

    captured = capsys.readouterr()
    hay.add("stdout", captured.out)
    hay.add("stderr", captured.err)
    for where, stream in run.streams:
        hay.add(where, stream.getvalue())
    for line in raw_records.lines:
        hay.add("a log record before formatting", line)
    assert hay.add_files("database file", tmp_path, "tgmon.db*") >= 1

    names = {line.split(" ", 1)[0] for line in raw_records.lines}  # DEBUG logging really ran
    assert {"tgmon.delivery", "tgmon.bot", "tgmon.pipeline", "aiogram.dispatcher"} <= names, names
    assert hay.leaks() == []


def test_the_log_formatter_redacts_messages_arguments_and_tracebacks() -> None:
    """The safety net for a secret in an error nobody foresaw: the whole formatted record is redacted."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(Redactor([TOKEN, TOKEN_SECRET, API_HASH, SESSION])))
    logger = logging.getLogger("tgmon.test_redaction")
    logger.addHandler(handler)
    try:
        logger.warning("api hash %s and url %s", API_HASH, f"https://api.telegram.org/bot{TOKEN}/getMe")
        try:
            try:
                raise OSError(f"cannot open session {SESSION}")
            except OSError as inner:
                raise RuntimeError(f"failed at /file/bot{TOKEN_SECRET}/x") from inner
        except RuntimeError:
            logger.exception("boom %s", TOKEN)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert planted(text) == []
    assert text.count(MASK) == 5 and "The above exception was the direct cause" in text


def test_a_crash_prints_a_redacted_traceback(
    secret_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def crash(settings: Settings, args: object) -> int:
        raise RuntimeError(f"unforeseen: POST https://api.telegram.org/bot{TOKEN}/sendMessage")

    monkeypatch.setitem(cli.COMMANDS, "search", crash)
    err = io.StringIO()
    assert main(["search", "x"], stderr=err) == 1
    text = err.getvalue() + "".join(capsys.readouterr())
    assert "tgmon: unexpected error" in text and "RuntimeError: unforeseen" in text
    assert f"/bot{MASK}/sendMessage" in text and planted(text) == []


def test_short_values_are_not_treated_as_secrets() -> None:
    """TG_API_HASH=x in a test must not blank out every x of the log."""
    settings = Settings(_env_file=None, tg_api_hash="x", bot_token="1:abc")  # type: ignore[call-arg, arg-type]
    redact = configure_logging(settings, logging.INFO, io.StringIO())
    assert redact("x marks 1:abc") == "x marks 1:abc"
    assert Redactor([TOKEN])(f"a{TOKEN}b{TOKEN}") == f"a{MASK}b{MASK}"
