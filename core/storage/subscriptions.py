"""Subscribers, queries, matches and the delivery outbox, in the archive's database.

Every change to queries bumps `meta.queries_version`, so a collector in another process reloads its
query index; every alert passes through `alerted`, so a story reaches a subscriber once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.models import Post
from core.storage import rows
from core.storage.sqlite import SqliteArchive
from core.subscriptions import DigestMode, OutboxItem, Subscriber, Subscription

SUBSCRIBER_COLUMNS = (
    "id, chat_id, ui_lang, active, paused, langs, channels, quiet_start, quiet_end, timezone, digest, "
    "digest_at, digest_day, last_digest_at, inactive_reason, created_at"
)
OUTBOX_COLUMNS = (
    "o.id, o.subscriber_id, o.chat_id, o.kind, o.story_id, o.payload, o.attempts, o.not_before, "
    "o.created_at, o.stored_at, b.body"
)
OUTBOX_FROM = "outbox o LEFT JOIN alert_bodies b ON b.id = o.body_id"
EDITABLE = {
    "ui_lang", "paused", "langs", "channels", "quiet_start", "quiet_end", "timezone", "digest", "digest_at",
    "digest_day", "last_digest_at",
}  # fmt: skip


def _subscriber(row: Any) -> Subscriber:
    return Subscriber(
        id=row[0],
        chat_id=row[1],
        ui_lang=row[2],
        active=bool(row[3]),
        paused=bool(row[4]),
        langs=tuple(json.loads(row[5])) if row[5] else (),
        channels=tuple(json.loads(row[6])) if row[6] else (),
        quiet_start=row[7],
        quiet_end=row[8],
        timezone=row[9],
        digest=DigestMode(row[10]),
        digest_at=row[11],
        digest_day=row[12],
        last_digest_at=rows.dt(row[13]),
        inactive_reason=row[14],
        created_at=rows.dt(row[15]),
    )


def _subscription(row: Any) -> Subscription:
    created = rows.dt(row[4])
    assert created is not None
    return Subscription(id=row[0], subscriber_id=row[1], text=row[2], paused=bool(row[3]), created_at=created)


def _outbox(row: Any) -> OutboxItem:
    not_before, created = rows.dt(row[7]), rows.dt(row[8])
    assert not_before is not None and created is not None
    payload = json.loads(row[5]) if row[10] is None else json.loads(row[10]) | json.loads(row[5])
    return OutboxItem(row[0], row[1], row[2], row[3], row[4], payload, row[6], not_before, created, row[9])


class QueryLimitReached(Exception):
    """The subscriber already has the most queries allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} queries per subscriber")
        self.limit = limit


_ENCODER = json.JSONEncoder(ensure_ascii=False)  # json.dumps would make one per call


def _json(payload: dict[str, Any] | list[str]) -> str:
    return _ENCODER.encode(payload)


def _also_in(also: list[str], channel: str | None, label: str | None) -> bool:
    """Add a channel's label to a queued alert's "also in" (unless it is the alert's own); whether it
    was added."""
    if label and label != channel and label not in also:
        also.append(label)
        return True
    return False


@dataclass(slots=True)  # not frozen: a few are made for every post, and a frozen one costs twice as much
class AlertRecord:
    """One subscriber's match of one post, as the alert stage hands it to storage."""

    subscriber_id: int
    chat_id: int
    channel_id: int
    message_id: int
    story_id: str
    query_ids: tuple[int, ...]
    payload: dict[str, Any]  # what the alert shows (bot/render.py), or its subscriber's own part of it…
    alert: bool  # False: recorded for digests only (too old, quiet filters, …)
    stored_at: float
    shared: dict[str, Any] | None = None  # …and the part all subscribers of the post share (one object)

    def shown(self, key: str) -> Any:
        """One field of what the alert shows."""
        if key in self.payload or self.shared is None:
            return self.payload.get(key)
        return self.shared.get(key)


class _Bodies:
    """The alert bodies (the part all of a post's subscribers share) that a call stores: each once, with
    the next free ids (the caller holds the write lock). The records hold each body, so its id() stays
    theirs while this lives."""

    def __init__(self, next_id: int) -> None:
        self.next_id = next_id
        self._ids: dict[int, int] = {}
        self.rows: list[tuple[int, str]] = []

    def id_of(self, shared: dict[str, Any] | None) -> int | None:
        if not shared:
            return None
        found = self._ids.get(id(shared))
        if found is None:
            found = self._ids[id(shared)] = self.next_id
            self.rows.append((found, _json(shared)))
            self.next_id += 1
        return found


@dataclass(slots=True)
class _Queued:
    """An alert this call queues."""

    record: AlertRecord
    own: dict[str, Any]  # the record's own payload, with a list of its own for "also in"
    outbox_id: int


@dataclass(slots=True)
class _Pending:
    """A (subscriber, story) alerted before; `outbox_id` while its alert is still waiting to be sent."""

    outbox_id: int | None
    channel: str | None
    also_in: list[str]


@dataclass(frozen=True, slots=True)
class MatchedPost:
    post: Post
    query_id: int
    query_text: str


class SubscriptionStore:
    def __init__(self, archive: SqliteArchive) -> None:
        self.archive = archive

    # subscribers

    async def get_subscriber(self, subscriber_id: int) -> Subscriber | None:
        row = await self.archive._one(
            f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE id = ?", (subscriber_id,)
        )
        return _subscriber(row) if row else None

    async def upsert_subscriber(
        self, subscriber_id: int, chat_id: int, ui_lang: str
    ) -> tuple[Subscriber, bool]:
        """The subscriber, created on first contact; one who blocked the bot and writes again is active."""
        async with self.archive._write() as db:
            cur = await db.execute(
                "INSERT OR IGNORE INTO subscribers (id, chat_id, ui_lang, created_at) VALUES (?, ?, ?, ?)",
                (subscriber_id, chat_id, ui_lang, rows.now_ts()),
            )
            created = cur.rowcount == 1
            await db.execute(
                "UPDATE subscribers SET chat_id = ?, active = 1, inactive_reason = NULL WHERE id = ?",
                (chat_id, subscriber_id),
            )
            await self._bump(db)
        found = await self.get_subscriber(subscriber_id)
        assert found is not None
        return found, created

    async def update_subscriber(self, subscriber_id: int, **fields: Any) -> Subscriber:
        unknown = set(fields) - EDITABLE
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        values = []
        for key, value in fields.items():
            if key in ("langs", "channels"):
                value = json.dumps(list(value)) if value else None
            elif key == "paused":
                value = int(value)
            elif key == "last_digest_at":
                value = rows.ts(value)
            elif isinstance(value, DigestMode):
                value = value.value
            values.append(value)
        async with self.archive._write() as db:
            await db.execute(
                f"UPDATE subscribers SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                (*values, subscriber_id),
            )
            if {"paused", "langs", "channels"} & set(fields):
                await self._bump(db)
        found = await self.get_subscriber(subscriber_id)
        assert found is not None
        return found

    async def deactivate(self, subscriber_id: int, reason: str) -> int:
        """Stop all delivery to a subscriber (blocked the bot, account gone); returns dropped messages."""
        async with self.archive._write() as db:
            await db.execute(
                "UPDATE subscribers SET active = 0, inactive_reason = ? WHERE id = ?", (reason, subscriber_id)
            )
            cur = await db.execute(
                "UPDATE outbox SET status = 'dropped', error = ? "
                "WHERE subscriber_id = ? AND status = 'pending'",
                (reason, subscriber_id),
            )
            await self._bump(db)
            return cur.rowcount

    async def subscribers(self, *, active_only: bool = True) -> list[Subscriber]:
        where = "WHERE active = 1" if active_only else ""
        found = await self.archive._all(f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers {where} ORDER BY id")
        return [_subscriber(r) for r in found]

    # queries

    async def add_query(self, subscriber_id: int, text: str, *, limit: int | None = None) -> Subscription:
        """Store a query; with `limit`, QueryLimitReached when the subscriber already has that many.

        Counted in the same write transaction, so parallel adds cannot overshoot the limit."""
        async with self.archive._write() as db:
            if limit is not None:
                async with db.execute(
                    "SELECT COUNT(*) FROM queries WHERE subscriber_id = ? AND deleted_at IS NULL",
                    (subscriber_id,),
                ) as cur:
                    row = await cur.fetchone()
                if row is not None and row[0] >= limit:
                    raise QueryLimitReached(limit)
            cur = await db.execute(
                "INSERT INTO queries (subscriber_id, text, created_at) VALUES (?, ?, ?)",
                (subscriber_id, text, rows.now_ts()),
            )
            await self._bump(db)
            query_id = cur.lastrowid
        found = await self.get_query(subscriber_id, query_id or 0)
        assert found is not None
        return found

    async def get_query(self, subscriber_id: int, query_id: int) -> Subscription | None:
        row = await self.archive._one(
            "SELECT id, subscriber_id, text, paused, created_at FROM queries "
            "WHERE id = ? AND subscriber_id = ? AND deleted_at IS NULL",
            (query_id, subscriber_id),
        )
        return _subscription(row) if row else None

    async def list_queries(self, subscriber_id: int) -> list[Subscription]:
        found = await self.archive._all(
            "SELECT id, subscriber_id, text, paused, created_at FROM queries "
            "WHERE subscriber_id = ? AND deleted_at IS NULL ORDER BY id",
            (subscriber_id,),
        )
        return [_subscription(r) for r in found]

    async def delete_query(self, subscriber_id: int, query_id: int) -> bool:
        """Soft delete (matches already recorded keep pointing at it); only the owner can."""
        async with self.archive._write() as db:
            cur = await db.execute(
                "UPDATE queries SET deleted_at = ? WHERE id = ? AND subscriber_id = ? AND deleted_at IS NULL",
                (rows.now_ts(), query_id, subscriber_id),
            )
            await self._bump(db)
            return cur.rowcount == 1

    async def set_query_paused(self, subscriber_id: int, query_id: int, paused: bool) -> bool:
        async with self.archive._write() as db:
            cur = await db.execute(
                "UPDATE queries SET paused = ? WHERE id = ? AND subscriber_id = ? AND deleted_at IS NULL",
                (int(paused), query_id, subscriber_id),
            )
            await self._bump(db)
            return cur.rowcount == 1

    async def live_queries(self) -> list[tuple[Subscription, Subscriber]]:
        """Queries that should alert: not paused or deleted, of active, unpaused subscribers."""
        cols = ", ".join(f"s.{c.strip()}" for c in SUBSCRIBER_COLUMNS.split(","))
        found = await self.archive._all(
            f"SELECT q.id, q.subscriber_id, q.text, q.paused, q.created_at, {cols} FROM queries q "
            "JOIN subscribers s ON s.id = q.subscriber_id "
            "WHERE q.deleted_at IS NULL AND q.paused = 0 AND s.active = 1 AND s.paused = 0 ORDER BY q.id"
        )
        return [(_subscription(r[:5]), _subscriber(r[5:])) for r in found]

    async def queries_version(self) -> int:
        row = await self.archive._one("SELECT value FROM meta WHERE key = 'queries_version'")
        return int(row[0]) if row else 0

    async def _bump(self, db: Any) -> None:
        await db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'queries_version'")

    # matches and alerts

    async def record_alerts(
        self, records: Sequence[AlertRecord], *, not_before: datetime | None = None
    ) -> int:
        """Store matches; queue one alert per (subscriber, story). Returns how many alerts were queued.

        Set-based: a few statements per call, whatever the number of records. Records are taken in order:
        the first of a (subscriber, story) not alerted before queues the alert, later ones (the story in
        other channels) add "also in" to it while it is still pending. Inside a transaction the caller
        already holds (the pipeline's batch), this joins it.
        """
        now = rows.now_ts()
        due = rows.ts(not_before) or now
        async with self.archive._write() as db:
            await db.executemany(
                "INSERT OR IGNORE INTO post_matches (post_id, query_id, matched_at) "
                "SELECT id, ?, ? FROM posts WHERE channel_id = ? AND message_id = ?",
                [(qid, now, r.channel_id, r.message_id) for r in records for qid in r.query_ids],
            )
            alerting = [r for r in records if r.alert]
            if not alerting:
                return 0
            pending = await self._pending_alerts(db, alerting)
            async with db.execute(
                "SELECT (SELECT COALESCE(MAX(id), 0) FROM outbox), "
                "(SELECT COALESCE(MAX(id), 0) FROM alert_bodies)"
            ) as cur:
                row = await cur.fetchone()
            assert row is not None
            next_id = int(row[0]) + 1  # we hold the write lock: ids are ours to give
            bodies = _Bodies(int(row[1]) + 1)
            queued: dict[tuple[int, str], _Queued] = {}
            changed: dict[int, list[str]] = {}
            for record in alerting:
                key = (record.subscriber_id, record.story_id)
                label = record.shown("channel")
                if key in queued:
                    first = queued[key]
                    _also_in(first.own.setdefault("also_in", []), first.record.shown("channel"), label)
                elif key in pending:
                    alerted = pending[key]
                    if alerted.outbox_id is not None and _also_in(alerted.also_in, alerted.channel, label):
                        changed[alerted.outbox_id] = alerted.also_in
                else:
                    own = dict(record.payload)
                    if record.shown("also_in") is not None:  # a copy: the record's own list stays as it was
                        own["also_in"] = list(record.shown("also_in"))
                    queued[key] = _Queued(record, own, next_id)
                    next_id += 1
            outbox_rows = [
                (q.outbox_id, r.subscriber_id, r.chat_id, r.story_id, _json(q.own), bodies.id_of(r.shared),
                 due, now, r.stored_at)
                for q in queued.values()
                for r in (q.record,)
            ]  # fmt: skip
            await db.executemany("INSERT INTO alert_bodies (id, body) VALUES (?, ?)", bodies.rows)
            await db.executemany(
                "INSERT INTO outbox (id, subscriber_id, chat_id, kind, story_id, payload, body_id, "
                "not_before, created_at, stored_at) VALUES (?, ?, ?, 'alert', ?, ?, ?, ?, ?, ?)",
                outbox_rows,
            )
            await db.executemany(
                "INSERT INTO alerted (subscriber_id, story_id, outbox_id) VALUES (?, ?, ?)",
                [(sub, story, q.outbox_id) for (sub, story), q in queued.items()],
            )
            await db.executemany(  # only the list changes: SQLite rewrites it in place of a Python round trip
                "UPDATE outbox SET payload = json_set(payload, '$.also_in', json(?)) WHERE id = ?",
                [(_json(also), outbox_id) for outbox_id, also in changed.items()],
            )
        return len(queued)

    @staticmethod
    async def _pending_alerts(db: Any, records: Sequence[AlertRecord]) -> dict[tuple[int, str], _Pending]:
        """The (subscriber, story) pairs of `records` already alerted, with their outbox row if pending."""
        pairs = sorted({(r.story_id, r.subscriber_id) for r in records})  # the table's order
        found: dict[tuple[int, str], _Pending] = {}
        for start in range(0, len(pairs), 400):  # 2 variables a pair, under SQLite's limit
            chunk = pairs[start : start + 400]
            async with db.execute(
                f"WITH wanted (story, sub) AS (VALUES {','.join(['(?, ?)'] * len(chunk))}) "
                "SELECT a.subscriber_id, a.story_id, o.id, "
                "COALESCE(json_extract(o.payload, '$.channel'), json_extract(b.body, '$.channel')), "
                "json_extract(o.payload, '$.also_in') FROM wanted "
                "CROSS JOIN alerted a ON a.subscriber_id = wanted.sub AND a.story_id = wanted.story "
                "LEFT JOIN outbox o ON o.id = a.outbox_id AND o.status = 'pending' "
                "LEFT JOIN alert_bodies b ON b.id = o.body_id",
                [value for pair in chunk for value in pair],
            ) as cur:
                for sub, story, outbox_id, channel, also in await cur.fetchall():
                    found[(sub, story)] = _Pending(outbox_id, channel, json.loads(also) if also else [])
        return found

    async def enqueue(
        self,
        subscriber_id: int,
        chat_id: int,
        kind: str,
        payload: dict[str, Any],
        *,
        not_before: datetime | None = None,
    ) -> int:
        async with self.archive._write() as db:
            cur = await db.execute(
                "INSERT INTO outbox (subscriber_id, chat_id, kind, payload, not_before, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (subscriber_id, chat_id, kind, json.dumps(payload, ensure_ascii=False),
                 rows.ts(not_before) or rows.now_ts(), rows.now_ts()),
            )  # fmt: skip
            return cur.lastrowid or 0

    async def due(self, now: datetime, limit: int = 200) -> list[OutboxItem]:
        found = await self.archive._all(
            f"SELECT {OUTBOX_COLUMNS} FROM {OUTBOX_FROM} WHERE o.status = 'pending' AND o.not_before <= ? "
            "ORDER BY o.id LIMIT ?",
            (rows.ts(now), limit),
        )
        return [_outbox(r) for r in found]

    async def due_chats(self, now: datetime) -> list[int]:
        """Chats with something due, the one waiting longest first."""
        found = await self.archive._all(
            "SELECT chat_id FROM outbox WHERE status = 'pending' AND not_before <= ? "
            "GROUP BY chat_id ORDER BY MIN(id)",
            (rows.ts(now),),
        )
        return [r[0] for r in found]

    async def due_in(self, now: datetime, chat_ids: Sequence[int], per_chat: int) -> list[OutboxItem]:
        """What is due for these chats, oldest first, at most `per_chat` items each."""
        if not chat_ids:
            return []
        marks = ", ".join("?" * len(chat_ids))
        found = await self.archive._all(
            f"SELECT {OUTBOX_COLUMNS} FROM (SELECT id, "
            "ROW_NUMBER() OVER (PARTITION BY chat_id ORDER BY id) AS n FROM outbox "
            f"WHERE status = 'pending' AND not_before <= ? AND chat_id IN ({marks})) due "
            "JOIN outbox o ON o.id = due.id LEFT JOIN alert_bodies b ON b.id = o.body_id "
            "WHERE due.n <= ? ORDER BY o.id",
            (rows.ts(now), *chat_ids, per_chat),
        )
        return [_outbox(r) for r in found]

    async def next_due(self) -> datetime | None:
        row = await self.archive._one("SELECT MIN(not_before) FROM outbox WHERE status = 'pending'")
        return rows.dt(row[0]) if row and row[0] is not None else None

    async def mark_sent(self, ids: Sequence[int], at: float) -> None:
        async with self.archive._write() as db:
            await db.executemany(
                "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1 WHERE id = ?",
                [(at, i) for i in ids],
            )

    async def mark_retry(
        self, ids: Sequence[int], not_before: datetime, error: str, *, attempt: bool = True
    ) -> None:
        async with self.archive._write() as db:
            await db.executemany(
                "UPDATE outbox SET not_before = ?, error = ?, attempts = attempts + ? WHERE id = ?",
                [(math.ceil(not_before.timestamp()), error, int(attempt), i) for i in ids],
            )

    async def mark_failed(self, ids: Sequence[int], error: str) -> None:
        async with self.archive._write() as db:
            await db.executemany(
                "UPDATE outbox SET status = 'failed', error = ?, attempts = attempts + 1 WHERE id = ?",
                [(error, i) for i in ids],
            )

    async def outbox_counts(self) -> dict[str, int]:
        found = await self.archive._all("SELECT status, COUNT(*) FROM outbox GROUP BY status")
        return {status: count for status, count in found}

    async def latencies(self) -> list[float]:
        """Seconds from post stored to message sent, for every alert sent."""
        found = await self.archive._all(
            "SELECT sent_at - stored_at FROM outbox "
            "WHERE kind = 'alert' AND status = 'sent' AND stored_at IS NOT NULL"
        )
        return [float(r[0]) for r in found]

    # digests

    async def matches_between(
        self, subscriber_id: int, since: datetime, until: datetime
    ) -> list[MatchedPost]:
        """Posts that matched the subscriber's queries, by post date, stories kept apart for the caller."""
        found = await self.archive._all(
            f"SELECT {rows.POST_COLUMNS}, q.id, q.text FROM post_matches m "
            "JOIN queries q ON q.id = m.query_id JOIN posts p ON p.id = m.post_id "
            "JOIN channels c ON c.id = p.channel_id "
            "WHERE q.subscriber_id = ? AND p.date >= ? AND p.date < ? ORDER BY p.date",
            (subscriber_id, rows.ts(since), rows.ts(until)),
        )
        return [MatchedPost(rows.post_from(r[:-2]), r[-2], r[-1]) for r in found]
