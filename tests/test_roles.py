"""Roles, invitations, the audit log, usernames and the operators' store; the `tgmon roles` and
`tgmon invite` commands."""

from __future__ import annotations

import io
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.cli import main
from core.models import ChannelStatus, RawPost
from core.pipeline import Pipeline
from core.settings import Settings
from core.storage.roles import (
    HEARTBEAT_KEY,
    OperationsStore,
    Role,
    RoleError,
    RoleStore,
    WatchStatus,
    parse_role,
)
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import SubscriptionStore

ADMIN, ANN, BOB = 1, 111, 222


@pytest.fixture
def roles(archive: SqliteArchive) -> RoleStore:
    return RoleStore(archive, admins=[ADMIN])


# roles


async def test_grant_revoke_and_roles_of(roles: RoleStore) -> None:
    assert await roles.roles_of(ANN) == set()
    assert await roles.grant(ANN, Role.ANALYST, ADMIN) is True
    assert await roles.grant(ANN, Role.ANALYST, ADMIN) is False  # already held
    assert await roles.grant(ANN, Role.OPERATOR, None) is True
    assert await roles.roles_of(ANN) == {Role.ANALYST, Role.OPERATOR}
    assert await roles.roles_of(BOB) == set()  # per user
    assert await roles.revoke(ANN, Role.ANALYST) is True
    assert await roles.revoke(ANN, Role.ANALYST) is False
    assert await roles.roles_of(ANN) == {"operator"}
    assert await roles.has_role(ANN, Role.OPERATOR) and not await roles.has_role(ANN, Role.ANALYST)


async def test_admins_come_from_the_settings_and_hold_every_role(roles: RoleStore) -> None:
    assert roles.is_admin(ADMIN) and not roles.is_admin(ANN)
    assert await roles.roles_of(ADMIN) == {Role.ADMIN, Role.OPERATOR, Role.ANALYST}
    with pytest.raises(RoleError):
        await roles.grant(ANN, Role.ADMIN, ADMIN)
    assert await roles.roles_of(ANN) == set()
    assert await roles.all_roles() == []  # admins are never stored


def test_parse_role() -> None:
    assert parse_role(" Operator ") is Role.OPERATOR
    assert parse_role("analyst") is Role.ANALYST
    with pytest.raises(RoleError, match="ADMIN_IDS"):
        parse_role("admin")
    with pytest.raises(RoleError, match="unknown role 'boss': use operator or analyst"):
        parse_role("boss")


async def test_all_roles_lists_grants_with_known_usernames(roles: RoleStore) -> None:
    await roles.grant(BOB, Role.OPERATOR, ADMIN)
    await roles.grant(ANN, Role.ANALYST, None)
    await roles.grant(ANN, Role.OPERATOR, ADMIN)
    await roles.remember_username(ANN, "ann_k")
    grants = await roles.all_roles()
    assert [(g.user_id, g.role, g.granted_by, g.username) for g in grants] == [
        (ANN, Role.ANALYST, None, "ann_k"),
        (ANN, Role.OPERATOR, ADMIN, "ann_k"),
        (BOB, Role.OPERATOR, ADMIN, None),
    ]
    assert all(abs(g.granted_at - datetime.now(UTC)) < timedelta(minutes=1) for g in grants)


async def test_usernames_follow_their_owner(roles: RoleStore) -> None:
    await roles.remember_username(ANN, "ann")
    assert await roles.user_by_username("@ANN") == ANN  # with the @, any case
    await roles.remember_username(ANN, "ann_new")  # Ann renamed herself
    assert await roles.user_by_username("ann") is None
    assert await roles.username_of(ANN) == "ann_new"
    await roles.remember_username(BOB, "ann_new")  # the name changed hands
    assert await roles.user_by_username("ann_new") == BOB
    assert await roles.username_of(ANN) is None
    await roles.remember_username(BOB, None)  # dropped his username
    assert await roles.user_by_username("ann_new") is None


# invitations and the audit log


async def test_an_invitation_works_once(roles: RoleStore) -> None:
    code = await roles.create_invite(ADMIN)
    other = await roles.create_invite(ADMIN)
    assert code != other and len(code) >= 16 and all(c.isalnum() or c in "-_" for c in code)
    assert await roles.use_invite(code, ANN) is True
    assert await roles.use_invite(code, BOB) is False  # single use
    assert await roles.use_invite(code, ANN) is False
    assert await roles.use_invite("not-a-code", BOB) is False
    assert await roles.use_invite("", BOB) is False
    assert await roles.use_invite(other, BOB) is True


async def test_audit_log(roles: RoleStore) -> None:
    await roles.audit(ANN, "watch", "@chan", False)
    await roles.audit(ADMIN, "grant", "222 analyst", True)
    await roles.audit(None, "cli:invite", None, True)
    newest, middle, oldest = await roles.audit_log()
    assert (oldest.user_id, oldest.action, oldest.detail, oldest.allowed) == (ANN, "watch", "@chan", False)
    assert (middle.user_id, middle.action, middle.allowed) == (ADMIN, "grant", True)
    assert (newest.user_id, newest.action, newest.detail) == (None, "cli:invite", None)
    assert [e.id for e in await roles.audit_log(limit=1)] == [newest.id]


# the operators' store


async def test_watch_requests(archive: SqliteArchive) -> None:
    ops = OperationsStore(archive)
    first, created = await ops.request_watch("@news", None, ANN)
    assert created and first.status is WatchStatus.PENDING and first.requested_by == ANN
    again, created = await ops.request_watch("@NEWS", 500, BOB)  # the same channel, any case
    assert not created and again.id == first.id and again.backfill == 500
    again, _ = await ops.request_watch("@news", 100, BOB)
    assert again.backfill == 500  # the larger backfill stays
    other, _ = await ops.request_watch("-1001234", None, None)
    assert [r.ref for r in await ops.requests()] == ["@news", "-1001234"]

    await ops.resolve_request(first.id, 77)
    await ops.fail_request(other.id, "CHANNEL_PRIVATE")
    assert await ops.requests() == []
    [done] = await ops.requests((WatchStatus.DONE,))
    assert done.channel_id == 77 and done.resolved_at is not None
    [failed] = await ops.requests((WatchStatus.FAILED,), since=datetime.now(UTC) - timedelta(days=7))
    assert failed.error == "CHANNEL_PRIVATE"
    assert await ops.requests((WatchStatus.FAILED,), since=datetime.now(UTC) + timedelta(days=1)) == []

    _, created = await ops.request_watch("@news", None, ANN)  # a new request once the old one is closed
    assert created
    assert await ops.cancel_request("@News") is True
    assert await ops.cancel_request("@news") is False
    assert [r.status for r in await ops.requests((WatchStatus.CANCELLED,))] == [WatchStatus.CANCELLED]


def raw(message_id: int, date: datetime, channel_id: int = 7) -> RawPost:
    return RawPost(channel_id=channel_id, message_id=message_id, date=date, text=f"post {message_id}")


async def test_health_and_totals(archive: SqliteArchive, pipeline: Pipeline) -> None:
    now = datetime.now(UTC)
    ops = OperationsStore(archive)
    empty = await ops.totals()
    assert (empty.posts, empty.channels_total, empty.subscribers_total) == (0, 0, 0)
    assert empty.newest_collected is None and empty.heartbeat is None and empty.lag(now) is None

    await archive.upsert_channel(7, "news", "News")
    await archive.upsert_channel(8, None, "Quiet")
    await archive.upsert_channel(9, "gone", "Gone")
    await pipeline.ingest([raw(i, now - timedelta(days=i)) for i in range(1, 11)])  # 1..10 days old
    await archive.unwatch_channel(9)
    until = now + timedelta(minutes=5)
    await archive.set_channel_status(
        8, ChannelStatus.FLOOD_WAIT, error="FLOOD_WAIT_300", flood_wait_until=until
    )

    news, quiet = await ops.health(now)
    assert (news.channel.id, news.posts, news.per_day) == (7, 10, 1.0)  # 7 of them in the last 7 days
    assert news.last_post is not None and abs(news.last_post - (now - timedelta(days=1))) < timedelta(
        seconds=1
    )
    assert (quiet.channel.id, quiet.posts, quiet.last_post, quiet.per_day) == (8, 0, None, 0.0)
    assert quiet.channel.last_error == "FLOOD_WAIT_300" and quiet.channel.flood_wait_until is not None

    store = SubscriptionStore(archive)
    await store.upsert_subscriber(ANN, ANN, "en")
    await store.upsert_subscriber(BOB, BOB, "en")
    await store.deactivate(BOB, "blocked")
    await store.add_query(ANN, "alpha")
    paused = await store.add_query(ANN, "beta")
    await store.set_query_paused(ANN, paused.id, True)
    sent = await store.enqueue(ANN, ANN, "alert", {})
    failed = await store.enqueue(ANN, ANN, "alert", {})
    retrying = await store.enqueue(ANN, ANN, "alert", {})
    await store.enqueue(ANN, ANN, "alert", {})
    digest = await store.enqueue(ANN, ANN, "digest", {})
    await store.mark_sent([sent], 0.0)
    await store.mark_failed([failed, digest], "400 chat not found")
    await store.mark_retry([retrying], now, "429")
    async with archive._write() as db:
        await db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)", (HEARTBEAT_KEY, "2024-05-15T10:00:00")
        )

    totals = await ops.totals()
    assert (totals.posts, totals.channels_watched, totals.channels_total) == (10, 2, 3)
    assert (totals.subscribers_active, totals.subscribers_total) == (1, 2)
    assert (totals.queries_live, totals.queries_total) == (1, 2)
    assert (totals.alerts_sent, totals.alerts_queued, totals.alerts_failed) == (1, 2, 1)
    assert (totals.delivery_failed, totals.delivery_retrying, totals.delivery_dropped) == (2, 1, 0)
    assert totals.heartbeat == datetime(2024, 5, 15, 10, tzinfo=UTC)  # naive ISO reads as UTC
    lag = totals.lag(now)
    assert lag is not None and lag < timedelta(minutes=1)


# the CLI


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh archive; nothing read from the real environment or a .env in the cwd; ADMIN_IDS=1."""
    fields = {name.upper() for name in Settings.model_fields}
    for key in list(os.environ):
        if key.upper() in fields or key.upper().startswith(("TG_", "BOT_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "tgmon.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("ADMIN_IDS", str(ADMIN))
    return path


def tgmon(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    capsys.readouterr()
    err = io.StringIO()
    try:
        code = main(list(argv), stderr=err)
    except SystemExit as exit_:  # argparse refusing the arguments
        code = int(exit_.code or 0)
    out, sys_err = capsys.readouterr()
    return Result(code, out, err.getvalue() + sys_err)


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return list(conn.execute(sql).fetchall())


def test_cli_grant_revoke_and_list(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = tgmon(capsys, "roles", "list")
    assert result.code == 0
    assert "admins (ADMIN_IDS): 1" in result.out and "no roles granted" in result.out

    assert tgmon(capsys, "roles", "grant", "111", "analyst").out == "111 is now analyst\n"
    assert tgmon(capsys, "roles", "grant", "111", "Analyst").out == "111 already is analyst\n"
    assert tgmon(capsys, "roles", "grant", "222", "operator").code == 0
    lines = tgmon(capsys, "roles", "list").out.splitlines()
    assert lines[0] == "admins (ADMIN_IDS): 1"
    assert lines[1].split()[:3] == ["111", "-", "analyst"] and lines[1].endswith("by cli")
    assert lines[2].split()[:3] == ["222", "-", "operator"]
    assert sorted(rows(db, "SELECT user_id, role, granted_by FROM roles")) == [
        (111, "analyst", None),
        (222, "operator", None),
    ]

    assert tgmon(capsys, "roles", "revoke", "111", "analyst").out == "111 is no longer analyst\n"
    assert tgmon(capsys, "roles", "revoke", "111", "analyst").out == "111 was not analyst\n"
    assert rows(db, "SELECT user_id, role FROM roles") == [(222, "operator")]
    result = tgmon(capsys, "roles", "revoke", "1", "operator")
    assert "is an admin (ADMIN_IDS) and keeps every role" in result.err
    assert ("cli:grant", "111 analyst", 1) in rows(db, "SELECT action, detail, allowed FROM audit")


def test_cli_grant_by_a_username_the_bot_has_seen(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tgmon(capsys, "roles", "list")  # creates the database
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("INSERT INTO usernames (username, user_id, seen_at) VALUES ('ann_k', 111, 0)")
    assert tgmon(capsys, "roles", "grant", "@Ann_K", "operator").out == "111 is now operator\n"
    assert "@ann_k" in tgmon(capsys, "roles", "list").out
    result = tgmon(capsys, "roles", "grant", "@nobody", "operator")
    assert result.code == 2 and "'@nobody' is not a user id" in result.err


@pytest.mark.parametrize(
    ("role", "message"),
    [
        ("boss", "unknown role 'boss': use operator or analyst"),
        ("admin", "admins are not granted: they are ADMIN_IDS in the settings"),
    ],
)
def test_cli_refuses_bad_roles(db: Path, capsys: pytest.CaptureFixture[str], role: str, message: str) -> None:
    for action in ("grant", "revoke"):
        result = tgmon(capsys, "roles", action, "111", role)
        assert result.code == 2 and message in result.err and "Traceback" not in result.err
    assert not db.exists() or rows(db, "SELECT * FROM roles") == []


def test_cli_invite_prints_a_single_use_code(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = tgmon(capsys, "invite")
    code = result.out.strip()
    assert result.code == 0 and len(code) >= 16 and "\n" not in code
    assert "?start=CODE" in result.err and "SUBSCRIBE_MODE is open" in result.err
    assert rows(db, "SELECT code, created_by, used_by FROM invites") == [(code, None, None)]
    assert tgmon(capsys, "invite").out.strip() != code
