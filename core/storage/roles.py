"""Who may do what, and the operators' side of the archive, in the archive's database.

`RoleStore`: roles granted to Telegram users (operator, analyst), invitation codes, the audit log and the
usernames the bot has seen. Admins are ADMIN_IDS from the settings: never stored, and an admin holds
every role.

`OperationsStore`: channels operators asked to watch (the bot has no user session, so it records a
request that the collector resolves), each channel's health and the totals behind `/stats`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from core.models import Channel
from core.storage import rows
from core.storage.sqlite import SqliteArchive

__all__ = [
    "GRANTABLE",
    "HEARTBEAT_KEY",
    "AuditEntry",
    "ChannelHealth",
    "Grant",
    "OperationsStore",
    "Role",
    "RoleError",
    "RoleStore",
    "Totals",
    "WatchRequest",
    "WatchStatus",
    "parse_role",
]

INVITE_BYTES: Final = 12  # 16 URL-safe characters: fits a t.me/bot?start= deep link (64 at most)
HEARTBEAT_KEY: Final = "collector_heartbeat"  # meta key: an ISO timestamp the collector writes


class Role(StrEnum):
    ADMIN = "admin"  # from ADMIN_IDS only
    OPERATOR = "operator"
    ANALYST = "analyst"


GRANTABLE: Final = (Role.OPERATOR, Role.ANALYST)


class RoleError(ValueError):
    """A role name that cannot be granted; the message says what can."""


def parse_role(text: str) -> Role:
    """A grantable role by name (any case): operator or analyst."""
    name = text.strip().lower()
    if name == Role.ADMIN:
        raise RoleError("admins are not granted: they are ADMIN_IDS in the settings")
    for role in GRANTABLE:
        if role == name:
            return role
    raise RoleError(f"unknown role {text.strip()!r}: use {' or '.join(GRANTABLE)}")


def _at(value: int | None) -> datetime:
    found = rows.dt(value)
    assert found is not None
    return found


@dataclass(frozen=True, slots=True)
class Grant:
    user_id: int
    role: Role
    granted_at: datetime
    granted_by: int | None  # None: the CLI
    username: str | None = None  # the last one the bot saw, when it has


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    user_id: int | None  # None: the CLI
    action: str
    detail: str | None
    allowed: bool


class RoleStore:
    def __init__(self, archive: SqliteArchive, admins: Iterable[int] = ()) -> None:
        self.archive = archive
        self.admins = frozenset(admins)

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admins

    # roles

    async def grant(self, user_id: int, role: Role, by: int | None) -> bool:
        """False when the user already held the role; RoleError for `admin`."""
        if role not in GRANTABLE:
            raise RoleError(f"{role} cannot be granted")
        async with self.archive._write() as db:
            cur = await db.execute(
                "INSERT OR IGNORE INTO roles (user_id, role, granted_by, granted_at) VALUES (?, ?, ?, ?)",
                (user_id, role.value, by, rows.now_ts()),
            )
            return cur.rowcount == 1

    async def revoke(self, user_id: int, role: Role) -> bool:
        """False when the user did not hold the role (an admin's come from the settings and stay)."""
        async with self.archive._write() as db:
            cur = await db.execute("DELETE FROM roles WHERE user_id = ? AND role = ?", (user_id, role.value))
            return cur.rowcount == 1

    async def roles_of(self, user_id: int) -> set[Role]:
        if self.is_admin(user_id):
            return set(Role)
        found = await self.archive._all("SELECT role FROM roles WHERE user_id = ?", (user_id,))
        return {Role(r[0]) for r in found if r[0] in GRANTABLE}

    async def has_role(self, user_id: int, role: Role) -> bool:
        return role in await self.roles_of(user_id)

    async def all_roles(self) -> list[Grant]:
        """Every stored grant (admins are not stored), by user, then role."""
        found = await self.archive._all(
            "SELECT r.user_id, r.role, r.granted_at, r.granted_by, "
            "(SELECT username FROM usernames u WHERE u.user_id = r.user_id ORDER BY seen_at DESC LIMIT 1) "
            "FROM roles r ORDER BY r.user_id, r.role"
        )
        return [Grant(r[0], Role(r[1]), _at(r[2]), r[3], r[4]) for r in found]

    # invitations

    async def create_invite(self, by: int | None) -> str:
        code = secrets.token_urlsafe(INVITE_BYTES)
        async with self.archive._write() as db:
            await db.execute(
                "INSERT INTO invites (code, created_by, created_at) VALUES (?, ?, ?)",
                (code, by, rows.now_ts()),
            )
        return code

    async def use_invite(self, code: str, user_id: int) -> bool:
        """True once per code: the first user to bring it."""
        if not code or len(code) > 64:
            return False
        async with self.archive._write() as db:
            cur = await db.execute(
                "UPDATE invites SET used_by = ?, used_at = ? WHERE code = ? AND used_by IS NULL",
                (user_id, rows.now_ts(), code),
            )
            return cur.rowcount == 1

    # the audit log

    async def audit(self, user_id: int | None, action: str, detail: str | None, allowed: bool) -> None:
        async with self.archive._write() as db:
            await db.execute(
                "INSERT INTO audit (at, user_id, action, detail, allowed) VALUES (?, ?, ?, ?, ?)",
                (rows.now_ts(), user_id, action, detail, int(allowed)),
            )

    async def audit_log(self, limit: int = 50) -> list[AuditEntry]:
        """The newest entries first."""
        found = await self.archive._all(
            "SELECT id, at, user_id, action, detail, allowed FROM audit ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [AuditEntry(r[0], _at(r[1]), r[2], r[3], r[4], bool(r[5])) for r in found]

    # usernames, so that admins can write `/grant @name`

    async def remember_username(self, user_id: int, username: str | None) -> None:
        """The user's current username; a name that changed hands points at its new owner."""
        async with self.archive._write() as db:
            await db.execute("DELETE FROM usernames WHERE user_id = ?", (user_id,))
            if username:
                await db.execute(
                    "INSERT OR REPLACE INTO usernames (username, user_id, seen_at) VALUES (?, ?, ?)",
                    (username.lstrip("@"), user_id, rows.now_ts()),
                )

    async def user_by_username(self, username: str) -> int | None:
        row = await self.archive._one(
            "SELECT user_id FROM usernames WHERE username = ?", (username.strip().lstrip("@"),)
        )
        return int(row[0]) if row else None

    async def username_of(self, user_id: int) -> str | None:
        row = await self.archive._one(
            "SELECT username FROM usernames WHERE user_id = ? ORDER BY seen_at DESC LIMIT 1", (user_id,)
        )
        return str(row[0]) if row else None


# operations


class WatchStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


WATCH_COLUMNS = "id, ref, backfill, requested_by, requested_at, status, error, channel_id, resolved_at"


@dataclass(frozen=True, slots=True)
class WatchRequest:
    id: int
    ref: str  # @name or -100… id
    backfill: int | None
    requested_by: int | None
    requested_at: datetime
    status: WatchStatus
    error: str | None = None
    channel_id: int | None = None
    resolved_at: datetime | None = None


def _request(row: Any) -> WatchRequest:
    return WatchRequest(
        row[0], row[1], row[2], row[3], _at(row[4]), WatchStatus(row[5]), row[6], row[7], rows.dt(row[8])
    )


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    channel: Channel
    posts: int
    last_post: datetime | None
    per_day: float  # over the last `days` days


@dataclass(frozen=True, slots=True)
class Totals:
    posts: int
    channels_watched: int
    channels_total: int
    subscribers_active: int
    subscribers_total: int
    queries_live: int  # not deleted, not paused
    queries_total: int  # not deleted
    alerts_sent: int
    alerts_queued: int
    alerts_failed: int
    delivery_failed: int  # every kind of message that was given up
    delivery_retrying: int  # still pending after a failed attempt
    delivery_dropped: int  # the subscriber blocked the bot
    newest_collected: datetime | None
    heartbeat: datetime | None  # the collector's last sign of life, when it writes one

    def lag(self, now: datetime) -> timedelta | None:
        """How long ago the newest post was stored."""
        return None if self.newest_collected is None else max(now - self.newest_collected, timedelta(0))


def _iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class OperationsStore:
    """What operators see and ask for; the `channels` service of the bot."""

    def __init__(self, archive: SqliteArchive) -> None:
        self.archive = archive

    # watch requests

    async def request_watch(
        self, ref: str, backfill: int | None, by: int | None
    ) -> tuple[WatchRequest, bool]:
        """(the pending request for `ref`, True when it is new). Asking again while one is pending keeps
        one request and the larger backfill."""
        async with self.archive._write() as db:
            cur = await db.execute(
                "INSERT OR IGNORE INTO watch_requests (ref, backfill, requested_by, requested_at) "
                "VALUES (?, ?, ?, ?)",
                (ref, backfill, by, rows.now_ts()),
            )
            created = cur.rowcount == 1
            if not created and backfill:
                await db.execute(
                    "UPDATE watch_requests SET backfill = MAX(COALESCE(backfill, 0), ?) "
                    "WHERE ref = ? AND status = 'pending'",
                    (backfill, ref),
                )
        found = await self.archive._one(
            f"SELECT {WATCH_COLUMNS} FROM watch_requests WHERE ref = ? AND status = 'pending'", (ref,)
        )
        return _request(found), created

    async def requests(
        self, statuses: Sequence[WatchStatus] = (WatchStatus.PENDING,), since: datetime | None = None
    ) -> list[WatchRequest]:
        """Oldest first; `since`: asked for or closed since then."""
        marks = ",".join("?" * len(statuses))
        found = await self.archive._all(
            f"SELECT {WATCH_COLUMNS} FROM watch_requests WHERE status IN ({marks}) "
            "AND COALESCE(resolved_at, requested_at) >= ? ORDER BY id",
            (*[s.value for s in statuses], rows.ts(since) or 0),
        )
        return [_request(r) for r in found]

    async def cancel_request(self, ref: str) -> bool:
        async with self.archive._write() as db:
            cur = await db.execute(
                "UPDATE watch_requests SET status = 'cancelled', resolved_at = ? "
                "WHERE ref = ? AND status = 'pending'",
                (rows.now_ts(), ref),
            )
            return cur.rowcount == 1

    async def resolve_request(self, request_id: int, channel_id: int) -> None:
        """The collector watches the channel now."""
        await self._close(request_id, WatchStatus.DONE, None, channel_id)

    async def fail_request(self, request_id: int, error: str) -> None:
        """The collector could not watch it: the reason is shown to operators in /watched."""
        await self._close(request_id, WatchStatus.FAILED, error, None)

    async def _close(
        self, request_id: int, status: WatchStatus, error: str | None, channel_id: int | None
    ) -> None:
        async with self.archive._write() as db:
            await db.execute(
                "UPDATE watch_requests SET status = ?, error = ?, channel_id = ?, resolved_at = ? "
                "WHERE id = ? AND status = 'pending'",
                (status.value, error, channel_id, rows.now_ts(), request_id),
            )

    # channels

    async def find_channel(self, ref: int | str) -> Channel | None:
        """By bare id or username (with or without the @)."""
        return await self.archive.get_channel(ref)

    async def unwatch(self, channel_id: int) -> int:
        """Stop collecting; returns how many of its posts stay in the archive."""
        await self.archive.unwatch_channel(channel_id)
        return await self.archive.count_posts(channel_id)

    async def health(self, now: datetime, days: int = 7) -> list[ChannelHealth]:
        """Every watched channel with its totals, newest post and posts per day lately."""
        channels = await self.archive.list_channels(watched_only=True)
        totals = await self.archive.channel_stats()
        recent = dict(
            await self.archive._all(
                "SELECT channel_id, COUNT(*) FROM posts WHERE date >= ? GROUP BY channel_id",
                (rows.ts(now - timedelta(days=days)),),
            )
        )
        out = []
        for channel in channels:
            posts, last = totals.get(channel.id, (0, None))
            out.append(ChannelHealth(channel, posts, last, recent.get(channel.id, 0) / days))
        return out

    async def totals(self) -> Totals:
        db = self.archive
        posts, newest = await db._one("SELECT COUNT(*), MAX(collected_at) FROM posts")
        watched, channels = await db._one("SELECT COALESCE(SUM(watched), 0), COUNT(*) FROM channels")
        active, subscribers = await db._one("SELECT COALESCE(SUM(active), 0), COUNT(*) FROM subscribers")
        live, queries = await db._one(
            "SELECT COALESCE(SUM(paused = 0), 0), COUNT(*) FROM queries WHERE deleted_at IS NULL"
        )
        outbox: dict[tuple[str, str], int] = {}
        retrying = 0
        for kind, status, count, retried in await db._all(
            "SELECT kind, status, COUNT(*), COALESCE(SUM(attempts > 0), 0) FROM outbox GROUP BY kind, status"
        ):
            outbox[(kind, status)] = count
            if status == "pending":
                retrying += retried

        def of(status: str, kind: str | None = None) -> int:
            return sum(n for (k, s), n in outbox.items() if s == status and (kind is None or k == kind))

        beat = await db._one("SELECT value FROM meta WHERE key = ?", (HEARTBEAT_KEY,))
        return Totals(
            posts=posts,
            channels_watched=watched,
            channels_total=channels,
            subscribers_active=active,
            subscribers_total=subscribers,
            queries_live=live,
            queries_total=queries,
            alerts_sent=of("sent", "alert"),
            alerts_queued=of("pending", "alert"),
            alerts_failed=of("failed", "alert"),
            delivery_failed=of("failed"),
            delivery_retrying=retrying,
            delivery_dropped=of("dropped"),
            newest_collected=rows.dt(newest),
            heartbeat=_iso(beat[0] if beat else None),
        )
