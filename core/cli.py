"""The `tgmon` command: the composition root that builds settings, archive, pipeline and clients."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm

from core import __version__
from core.langid import make_detector
from core.models import Channel, PostFilter
from core.pipeline import Pipeline
from core.redaction import Redactor, configure_logging
from core.settings import ConfigError, Settings, load_settings
from core.storage import Archive, open_archive

if TYPE_CHECKING:
    from core.storage.roles import Role, RoleStore

log = logging.getLogger("tgmon")


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


def parse_date(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def role_arg(text: str) -> Role:
    from core.storage.roles import RoleError, parse_role

    try:
        return parse_role(text)
    except RoleError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


EXCLUDE_MARK = "\x00"


def protect_exclusions(argv: Sequence[str]) -> list[str]:
    """`tgmon search word -other`: keep argparse from taking `-other` for an option."""
    if not argv or argv[0] != "search":
        return list(argv)
    out, expect_value = [argv[0]], False
    for token in argv[1:]:
        if expect_value:
            out.append(token)
            expect_value = False
        elif token.split("=")[0] in SEARCH_OPTIONS:
            out.append(token)
            expect_value = "=" not in token and token not in ("-h", "--help")
        elif token.startswith("-") and len(token) > 1 and token != "--":
            out.append(EXCLUDE_MARK + token)
        else:
            out.append(token)
    return out


SEARCH_OPTIONS = {"--limit", "--channel", "--since", "--until", "--lang", "-h", "--help"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tgmon", description="Telegram channel monitor")
    parser.add_argument("--version", action="version", version=f"tgmon {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="run the collector and the bot (when BOT_TOKEN is set) in one process")
    sub.add_parser("collect", help="run the collector alone")
    sub.add_parser("bot", help="run the bot alone")
    sub.add_parser("login", help="log the Telegram user session in (creates TG_SESSION, mode 0600)")

    channels = sub.add_parser("channels", help="watched channels").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    add = channels.add_parser("add", help="watch a channel: @name, t.me/name, t.me/s/name or -100… id")
    add.add_argument("ref")
    group = add.add_mutually_exclusive_group()
    group.add_argument("--backfill", type=positive_int, metavar="N", help="also read the N newest posts")
    group.add_argument("--since", type=parse_date, metavar="DATE", help="also read posts since DATE (UTC)")
    channels.add_parser("list", help="watched channels with status, last post and last error")
    remove = channels.add_parser("remove", help="stop watching a channel (its posts are kept)")
    remove.add_argument("ref")
    sub.add_parser("backfill", help="finish every pending backfill now, with progress")

    imp = sub.add_parser("import", help="import Telegram Desktop exports (result.json)")
    imp.add_argument("paths", nargs="+", type=Path)
    imp.add_argument("--no-alerts", action="store_true", help="store only; alert nobody")

    export = sub.add_parser(
        "export",
        help="dump posts as CSV, JSON lines, Parquet or Telegram Desktop JSON, with a manifest",
        description="Dump posts for analysis; a manifest (filters, counts, SHA-256 of every file) is "
        "written beside the dump. Formats and schemas: docs/export.md.",
    )
    export.add_argument("--format", choices=["csv", "jsonl", "parquet", "tdesktop"], default="jsonl")
    export.add_argument(
        "-o",
        "--output",
        default="-",
        help="file path (a directory for tdesktop: DIR/<channel id>/result.json), "
        "or - for standard output (csv and jsonl only)",
    )
    export.add_argument("--query", metavar="QUERY", help="only posts matching this query (docs/query.md)")
    export.add_argument("--gzip", action="store_true", help="gzip every file (.gz is added to the name)")
    export.add_argument(
        "--split-mb",
        type=positive_int,
        metavar="N",
        help="split into parts of at most N MB (10^6 bytes) each: dump.part001.jsonl, … (not tdesktop)",
    )
    export.add_argument(
        "--csv-safe",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="CSV: prefix ' to cells starting with = + - @ tab CR or ' so that spreadsheets do not run "
        "them as formulas (default: on; --no-csv-safe writes the values untouched)",
    )
    add_filters(export)

    roles = sub.add_parser("roles", help="operator and analyst roles (admins are ADMIN_IDS)").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    for action, text in (("grant", "give a user a role"), ("revoke", "take a role back")):
        change = roles.add_parser(action, help=f"{text}: operator (channels, /stats) or analyst (/search)")
        change.add_argument(
            "user", metavar="USER_ID", help="numeric Telegram user id, or @name the bot has seen"
        )
        change.add_argument("role", metavar="ROLE", type=role_arg, help="operator or analyst")
    roles.add_parser("list", help="admins and every granted role")
    sub.add_parser("invite", help="create a single-use invitation code (for SUBSCRIBE_MODE=invite)")

    search = sub.add_parser("search", help="full-text search of the archive")
    search.add_argument("query", nargs="*", help='words, "phrases", OR, -exclude, prefix*')
    search.add_argument("--limit", type=positive_int, default=20)
    add_filters(search)
    return parser


def add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--channel", help="@name or channel id")
    parser.add_argument("--since", type=parse_date, metavar="DATE")
    parser.add_argument("--until", type=parse_date, metavar="DATE")
    parser.add_argument("--lang", metavar="CODE", help="ISO 639-1 code, e.g. ru")


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Archive]:
    try:
        archive = await open_archive(settings.database_url)
    except Exception as exc:  # unreadable path, not a database, a newer schema: say so plainly
        raise UserError(f"cannot open the database {settings.database_url}: {exc}") from None
    try:
        yield archive
    finally:
        await archive.close()


def make_pipeline(settings: Settings, archive: Archive) -> Pipeline:
    """The one pipeline: language, subscribers' queries, stories, and the alert outbox."""
    from core.alerts import OutboxSink, SubscriptionQueries
    from core.storage.sqlite import SqliteArchive
    from core.storage.subscriptions import SubscriptionStore
    from core.stories import StoryIndex

    detector = make_detector(settings.lang_engine)
    workers = settings.pipeline_workers
    if not isinstance(archive, SqliteArchive):
        return Pipeline(archive, detector, stories=StoryIndex(), workers=workers)
    store = SubscriptionStore(archive)
    queries = SubscriptionQueries(store)
    sink = OutboxSink(store, queries, max_age=timedelta(hours=settings.max_alert_age_hours))
    return Pipeline(archive, detector, sink, queries, StoryIndex(), workers=workers)


async def find_channel(archive: Archive, text: str) -> Channel:
    """A stored channel by any form `channels add` accepts."""
    from collectors.refs import ChannelRefError, parse_channel_ref

    try:
        ref = parse_channel_ref(text)
    except ChannelRefError as exc:
        raise UserError(str(exc)) from None
    channel = await archive.get_channel(ref.username or ref.channel_id or 0)
    if channel is None:
        raise UserError(f"no channel {text!r} in the archive (see `tgmon channels list`)")
    return channel


async def resolve_filters(archive: Archive, args: argparse.Namespace) -> PostFilter:
    channel_id = (await find_channel(archive, args.channel)).id if args.channel else None
    lang = args.lang.lower() if args.lang else None
    return PostFilter(channel_id=channel_id, since=args.since, until=args.until, lang=lang)


def bar(desc: str, total: int | None = None, unit: str = "post") -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, disable=None)


# commands


async def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from collectors.tdesktop import ExportFormatError
    from core.importer import import_exports

    async with opened(settings) as archive:
        progress = bar("import")
        pipeline = make_pipeline(settings, archive)
        try:
            report = await import_exports(
                pipeline,
                args.paths,
                alerts=not args.no_alerts,
                on_start=lambda total: setattr(progress, "total", total),
                on_rows=progress.update,
            )
        except ExportFormatError as exc:
            raise UserError(f"{exc}\nNothing was imported.") from None
        finally:
            progress.close()
            pipeline.close()
    print(
        f"imported {report.messages} messages ({report.service} service) from {report.chats} chats: "
        f"{report.new} new, {report.edited} changed, {report.unchanged} already archived"
    )
    if report.skipped_chats:
        print(
            f"skipped {len(report.skipped_chats)} chats that are not channels: "
            + ", ".join(report.skipped_chats)
        )
    return 0


async def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from dataclasses import replace

    from core.exporters import ExportError, ExportRequest, check_request, count_posts, run_export
    from core.query.ast import QuerySyntaxError
    from core.query.matcher import compile_query
    from core.storage.sqlite import SqliteArchive

    to_stdout = args.output == "-"
    request = ExportRequest(
        format=args.format,
        output=None if to_stdout else Path(args.output),
        query=args.query,
        compress=args.gzip,
        max_bytes=args.split_mb * 1_000_000 if args.split_mb else None,
        csv_safe=args.csv_safe,
        channel_ref=args.channel,
    )
    try:  # every mistake in the options is reported before the archive is opened
        check_request(request)
        if args.query:
            compile_query(args.query)
    except ExportError as exc:
        raise UserError(str(exc)) from None
    except QuerySyntaxError as exc:
        raise UserError(f"bad query: {exc.message}\n{exc.pointer()}") from None
    stdout = sys.stdout.buffer if to_stdout else None
    async with opened(settings) as archive:
        if not isinstance(archive, SqliteArchive):
            raise UserError("export reads the SQLite archive only")
        request = replace(request, filters=await resolve_filters(archive, args))
        progress = bar("export", total=await count_posts(archive, request.filters))
        try:
            result = await run_export(archive, request, on_read=progress.update, stdout=stdout)
        except ExportError as exc:
            raise UserError(str(exc)) from None
        finally:
            progress.close()
    read = f" (of {result.read} read)" if args.query else ""
    print(f"exported {result.rows} posts{read}", file=sys.stderr)
    if result.manifest is not None:
        for file in result.files:
            print(
                f"  {file.name}: {file.rows} posts, {file.bytes} bytes, sha256 {file.sha256}", file=sys.stderr
            )
        print(f"manifest: {result.manifest}", file=sys.stderr)
    return 0


async def cmd_search(settings: Settings, args: argparse.Namespace) -> int:
    from core.query.ast import QuerySyntaxError
    from core.search import search

    async with opened(settings) as archive:
        filters = await resolve_filters(archive, args)
        query = " ".join(word.removeprefix(EXCLUDE_MARK) for word in args.query)
        try:
            result = await search(archive, query, limit=args.limit, filters=filters)
        except QuerySyntaxError as exc:
            raise UserError(f"{exc.message}\n{exc.pointer()}") from None
    for hit in result.hits:
        post = hit.post
        flags = " [deleted]" if post.deleted_at else ""
        print(f"{post.date:%Y-%m-%d %H:%M} {post.channel_username or post.channel_title} {post.lang}{flags}")
        print(f"  {post.permalink}\n  {snippet(post.text, hit.spans)}")
    note = "" if result.exhaustive else f" (stopped after reading {result.scanned} posts: add a word)"
    print(f"{len(result.hits)} posts{note}", file=sys.stderr)
    return 0


def snippet(text: str, spans: Sequence[Any], width: int = 200) -> str:
    """One line around the first match, the matched words in [brackets]."""
    start = max(spans[0].start - width // 3, 0) if spans else 0
    end = min(start + width, len(text))
    out, cursor = [], start
    for span in spans:
        if span.start < cursor or span.end > end:
            continue
        out += [text[cursor : span.start], "[", text[span.start : span.end], "]"]
        cursor = span.end
    out.append(text[cursor:end])
    line = " ".join("".join(out).split())
    return ("…" if start else "") + line + ("…" if end < len(text) else "")


async def cmd_channels_list(settings: Settings, args: argparse.Namespace) -> int:
    async with opened(settings) as archive:
        channels = await archive.list_channels(watched_only=False)
        stats = await archive.channel_stats()
    if not channels:
        print("no channels yet: tgmon channels add @name")
    for channel in channels:
        posts, last = stats.get(channel.id, (0, None))
        state = channel.status.value if channel.watched else "archived (not watched)"
        if channel.flood_wait_until and channel.flood_wait_until > datetime.now(UTC):
            state += f" until {channel.flood_wait_until:%H:%M:%S}"
        if channel.backfill_active:
            state += ", backfill pending"
        last_text = f"{last:%Y-%m-%d %H:%M}" if last else "-"
        print(f"{channel.label:<32} id={channel.id:<12} {state:<22} posts={posts:<7} last={last_text}")
        if channel.last_error:
            print(f"  last error: {channel.last_error}")
    return 0


def role_store(settings: Settings, archive: Archive) -> RoleStore:
    from core.storage.roles import RoleStore
    from core.storage.sqlite import SqliteArchive

    if not isinstance(archive, SqliteArchive):
        raise UserError("roles need the SQLite archive")
    return RoleStore(archive, settings.admin_ids)


async def cli_user(roles: RoleStore, text: str) -> int:
    """A numeric Telegram user id, or the @name of someone who has written to the bot."""
    if text.isdigit():
        return int(text)
    found = await roles.user_by_username(text) if text.lstrip("@")[:1].isalpha() else None
    if found is None:
        raise UserError(
            f"{text!r} is not a user id: give the numeric Telegram user id, or the @name of someone who has "
            "written to the bot"
        )
    return found


async def cmd_roles_change(settings: Settings, args: argparse.Namespace) -> int:
    async with opened(settings) as archive:
        roles = role_store(settings, archive)
        user_id = await cli_user(roles, args.user)
        role = args.role.value
        if args.action == "grant":
            changed = await roles.grant(user_id, args.role, None)
            done, same = f"{user_id} is now {role}", f"{user_id} already is {role}"
        else:
            changed = await roles.revoke(user_id, args.role)
            done, same = f"{user_id} is no longer {role}", f"{user_id} was not {role}"
        await roles.audit(None, f"cli:{args.action}", f"{user_id} {role}", True)
    print(done if changed else same)
    if args.action == "revoke" and user_id in settings.admin_ids:
        print(f"{user_id} is an admin (ADMIN_IDS) and keeps every role", file=sys.stderr)
    return 0


async def cmd_roles_list(settings: Settings, args: argparse.Namespace) -> int:
    async with opened(settings) as archive:
        roles = role_store(settings, archive)
        grants = await roles.all_roles()
    admins = ", ".join(str(a) for a in settings.admin_ids) or "none (set ADMIN_IDS)"
    print(f"admins (ADMIN_IDS): {admins}")
    if not grants:
        print("no roles granted: tgmon roles grant USER_ID operator|analyst")
    for grant in grants:
        name = f"@{grant.username}" if grant.username else "-"
        by = grant.granted_by if grant.granted_by is not None else "cli"
        print(
            f"{grant.user_id:<12} {name:<24} {grant.role.value:<9} "
            f"granted {grant.granted_at:%Y-%m-%d %H:%M} UTC by {by}"
        )
    return 0


async def cmd_invite(settings: Settings, args: argparse.Namespace) -> int:
    async with opened(settings) as archive:
        roles = role_store(settings, archive)
        code = await roles.create_invite(None)
        await roles.audit(None, "cli:invite", None, True)
    print(code)
    print("single use: send it as a link https://t.me/<bot username>?start=CODE", file=sys.stderr)
    if settings.subscribe_mode != "invite":
        print("note: SUBSCRIBE_MODE is open, so anyone may subscribe without a code for now", file=sys.stderr)
    return 0


async def with_collector(
    settings: Settings, body: Callable[[Any, Archive], Awaitable[int]], *, exclusive: bool = True
) -> int:
    """Run `body(collector, archive)` with a connected, logged-in Telegram client.

    `exclusive`: hold the collector lock, so two collectors never read the same database's channels.
    """
    from collectors.collector import Collector
    from collectors.lock import CollectorLock, CollectorLockedError
    from collectors.source import TelethonSource
    from collectors.telegram import connect_authorized
    from core.health import collector_observer

    lock = CollectorLock(settings.database_path)
    if exclusive:
        try:
            lock.acquire()
        except CollectorLockedError as exc:
            raise UserError(str(exc)) from None
    try:
        async with opened(settings) as archive:
            client = await connect_authorized(settings)
            pipeline = make_pipeline(settings, archive)
            try:
                collector = Collector(
                    archive,
                    TelethonSource(client),
                    pipeline,
                    poll_interval=settings.poll_interval,
                    refresh_hours=settings.refresh_hours,
                    refresh_interval=settings.refresh_interval,
                    max_flood_wait=settings.max_flood_wait,
                    observer=collector_observer(archive),  # heartbeat, channel health, metrics
                    watch_requests=watch_requests(archive),
                )
                return await body(collector, archive)
            finally:
                pipeline.close()
                await client.disconnect()
    finally:
        lock.release()


def watch_requests(archive: Archive) -> Any:
    """Operators' /watch requests from the bot, when the archive can hold them."""
    from core.storage.roles import OperationsStore
    from core.storage.sqlite import SqliteArchive

    return OperationsStore(archive) if isinstance(archive, SqliteArchive) else None


def collector_running(settings: Settings) -> bool:
    from collectors.lock import CollectorLock, CollectorLockedError

    try:
        with CollectorLock(settings.database_path):
            return False
    except CollectorLockedError:
        return True


async def run_backfills(collector: Any, archive: Archive) -> int:
    for channel in await archive.list_channels():
        if channel.backfill_active:
            await backfill_with_bar(collector, channel.id, channel.label, channel.backfill_remaining)
    return 0


async def backfill_with_bar(collector: Any, channel_id: int, label: str, total: int | None) -> None:
    from collectors.source import ChannelUnavailable, FloodWait

    with bar(f"backfill {label}", total) as progress:
        try:
            await collector.backfill(channel_id, progress.update)
        except FloodWait as exc:
            raise UserError(
                f"Telegram asks to wait {exc.seconds} s; `tgmon backfill` resumes later"
            ) from None
        except ChannelUnavailable as exc:
            raise UserError(f"cannot read {label}: {exc}") from None


async def cmd_channels_add(settings: Settings, args: argparse.Namespace) -> int:
    from collectors.refs import ChannelRefError, parse_channel_ref
    from collectors.source import ChannelUnavailable, FloodWait

    try:
        ref = parse_channel_ref(args.ref)
    except ChannelRefError as exc:
        raise UserError(str(exc)) from None

    async def body(collector: Any, archive: Archive) -> int:
        try:
            channel = await collector.add_channel(ref, backfill=args.backfill, since=args.since)
        except ChannelUnavailable as exc:
            raise UserError(f"cannot watch {args.ref}: {exc}") from None
        except FloodWait as exc:
            raise UserError(f"Telegram asks to wait {exc.seconds} s before resolving more channels") from None
        print(f"watching {channel.label} ({channel.title}), id {channel.id}")
        if channel.backfill_active:
            if collector_running(settings):
                print("the running collector will backfill it; see `tgmon channels list`")
            else:
                await backfill_with_bar(collector, channel.id, channel.label, args.backfill)
        return 0

    return await with_collector(settings, body, exclusive=False)


async def cmd_channels_remove(settings: Settings, args: argparse.Namespace) -> int:
    async with opened(settings) as archive:
        channel = await find_channel(archive, args.ref)
        await archive.unwatch_channel(channel.id)
        print(f"stopped watching {channel.label}; its {await archive.count_posts(channel.id)} posts are kept")
    return 0


async def cmd_collect(settings: Settings, args: argparse.Namespace, with_bot: bool = False) -> int:
    from core.metrics import serve_metrics

    async def body(collector: Any, archive: Archive) -> int:
        jobs = [collector.run()]
        if with_bot:
            if settings.bot_configured:
                jobs.append(keep_bot_running(settings, archive))
            else:
                log.warning("bot_disabled reason=BOT_TOKEN is not set; collecting only")
        async with serve_metrics(settings, archive):  # when METRICS_PORT is set
            await asyncio.gather(*jobs)
        return 0

    return await with_collector(settings, body)


async def keep_bot_running(
    settings: Settings, archive: Archive, *, alone: bool = False, first_delay: float = 5.0
) -> None:
    """A bot failure (Telegram unreachable at start, an unexpected error) stops neither `tgmon run`'s
    collector nor `tgmon bot`: log it and start the bot again. Alone, a token Telegram refuses ends it."""
    from aiogram.exceptions import TelegramUnauthorizedError

    from bot.app import run_bot

    delay = first_delay
    while True:
        try:
            await run_bot(settings, archive)
            return
        except Exception as exc:
            if alone and isinstance(exc, TelegramUnauthorizedError):
                refused = f"Telegram refused BOT_TOKEN ({exc.message}): check it with @BotFather"
                raise UserError(refused) from None
            log.exception("bot_failed restart_in=%ss", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 300.0)


async def cmd_bot(settings: Settings, args: argparse.Namespace) -> int:
    settings.require_bot_token()
    from core.metrics import serve_metrics

    async with opened(settings) as archive, serve_metrics(settings, archive):  # when METRICS_PORT is set
        await keep_bot_running(settings, archive, alone=True)
    return 0


async def cmd_login(settings: Settings, args: argparse.Namespace) -> int:
    from collectors.telegram import build_client, protect_session

    client = build_client(settings)
    await client.start()  # asks for the phone, the code and the 2FA password when one is set
    me = await client.get_me()
    if settings.session_is_string:
        print("logged in; this session string now holds the login, keep it secret:")
        print(client.session.save())
    protect_session(settings)
    await client.disconnect()
    print(f"logged in as {getattr(me, 'username', None) or getattr(me, 'id', '?')}")
    return 0


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "import": cmd_import,
    "export": cmd_export,
    "search": cmd_search,
    "channels list": cmd_channels_list,
    "channels add": cmd_channels_add,
    "channels remove": cmd_channels_remove,
    "backfill": lambda settings, _: with_collector(settings, run_backfills),
    "collect": cmd_collect,
    "run": lambda settings, args: cmd_collect(settings, args, with_bot=True),
    "bot": cmd_bot,
    "login": cmd_login,
    "roles grant": cmd_roles_change,
    "roles revoke": cmd_roles_change,
    "roles list": cmd_roles_list,
    "invite": cmd_invite,
}


def database_trouble(exc: sqlite3.OperationalError) -> str:
    """One line for a database that refused a write; each write is one transaction, so the one that
    failed left nothing behind and what was committed before it stays."""
    from core.storage.sqlite import BUSY_TIMEOUT_MS

    text = str(exc)
    if "locked" in text or "busy" in text:
        return (
            f"the database is locked by another process (waited {BUSY_TIMEOUT_MS / 1000:g} s); nothing "
            "half-written was kept: run again when it is free"
        )
    if "full" in text:
        return (
            "the disk holding the database is full; the write in progress was rolled back and what was "
            "saved before it is kept: free some space and run again"
        )
    return f"the database failed ({text}); the write in progress was rolled back: run again"


def main(argv: Sequence[str] | None = None, stderr: TextIO | None = None) -> int:
    err = stderr or sys.stderr
    args = build_parser().parse_args(protect_exclusions(sys.argv[1:] if argv is None else argv))
    name = args.command + (f" {args.action}" if getattr(args, "action", None) else "")
    redact = Redactor(())
    try:
        settings = load_settings()
        level = logging.DEBUG if args.verbose else getattr(logging, settings.log_level.upper(), logging.INFO)
        redact = configure_logging(settings, level, err)
        code: int = asyncio.run(COMMANDS[name](settings, args))
        return code
    except (ConfigError, UserError) as exc:
        print(redact(f"tgmon: {exc}"), file=err)
        return 2
    except (ConnectionError, TimeoutError) as exc:
        print(
            redact(
                f"tgmon: the connection to Telegram was lost ({exc}); progress so far is saved, run again to "
                "resume"
            ),
            file=err,
        )
        return 1
    except sqlite3.OperationalError as exc:  # locked past the busy timeout, disk full, I/O error
        print(redact(f"tgmon: {database_trouble(exc)}"), file=err)
        log.debug("database_error", exc_info=True)
        return 1
    except BrokenPipeError:  # the reader went away (`tgmon export | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 0
    except KeyboardInterrupt:
        print("tgmon: interrupted; progress so far is saved", file=err)
        return 130
    except Exception:  # a bug: the traceback goes through the log, where secrets are redacted
        log.critical("tgmon_crashed command=%s", name, exc_info=True)
        print("tgmon: unexpected error (details above); please report it", file=err)
        return 1


if __name__ == "__main__":
    sys.exit(main())
