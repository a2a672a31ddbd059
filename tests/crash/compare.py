"""What a crash test compares: an archive read back whole, table by table, without its clocks.

Rows are keyed by (channel, message), never by the database's own row ids; times of storing
(`collected_at`, `recorded_at`, outbox times) differ between runs and are left out.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.query.fts import fts_body

POST_FIELDS = (
    "date, text, entities, lang, lang_confidence, views, forwards, replies, reactions, media_type, "
    "forwarded_from, reply_to, album_id, author, service_action, tags, permalink, edit_date, "
    "deleted_at IS NOT NULL, content_hash, version, story_id, story_sig"
)
CHANNEL_FIELDS = (
    "username, title, watched, status, last_seen_id, backfill_active, backfill_cursor, backfill_remaining"
)


@dataclass
class Archive:
    posts: dict[tuple[int, int], tuple[Any, ...]] = field(default_factory=dict)
    versions: dict[tuple[int, int, int], tuple[Any, ...]] = field(default_factory=dict)
    channels: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    fts: dict[tuple[int, int], str] = field(default_factory=dict)
    matches: set[tuple[int, int, int]] = field(default_factory=set)
    alerted: set[tuple[int, str]] = field(default_factory=set)
    outbox: Counter[tuple[Any, ...]] = field(default_factory=Counter)


def read_archive(path: Path) -> Archive:
    with sqlite3.connect(path) as db:
        found = Archive()
        for row in db.execute(f"SELECT channel_id, message_id, {POST_FIELDS} FROM posts"):
            found.posts[(row[0], row[1])] = row[2:]
        for row in db.execute(
            "SELECT p.channel_id, p.message_id, v.version, v.text, v.entities, v.edit_date, v.content_hash "
            "FROM post_versions v JOIN posts p ON p.id = v.post_id UNION ALL "
            "SELECT channel_id, message_id, version, text, entities, edit_date, content_hash FROM posts"
        ):
            found.versions[row[:3]] = row[3:]
        for row in db.execute(f"SELECT id, {CHANNEL_FIELDS} FROM channels"):
            found.channels[row[0]] = row[1:]
        for row in db.execute(
            "SELECT p.channel_id, p.message_id, f.body FROM posts_fts f JOIN posts p ON p.id = f.rowid"
        ):
            found.fts[(row[0], row[1])] = row[2]
        found.matches = set(
            db.execute(
                "SELECT p.channel_id, p.message_id, m.query_id FROM post_matches m "
                "JOIN posts p ON p.id = m.post_id"
            )
        )
        found.alerted = set(db.execute("SELECT subscriber_id, story_id FROM alerted"))
        found.outbox = Counter(
            db.execute(
                "SELECT o.subscriber_id, o.chat_id, o.kind, o.story_id, o.payload, b.body, o.status "
                "FROM outbox o LEFT JOIN alert_bodies b ON b.id = o.body_id"
            )
        )
    return found


def check_sound(path: Path) -> list[str]:
    """Problems of one database on its own: SQLite's and FTS5's integrity checks, foreign keys, and the
    full-text index holding exactly every post's folded text."""
    problems = []
    with sqlite3.connect(path) as db:
        verdict = [row[0] for row in db.execute("PRAGMA integrity_check")]
        if verdict != ["ok"]:
            problems.append(f"integrity_check: {verdict[:5]}")
        try:
            db.execute("INSERT INTO posts_fts (posts_fts) VALUES ('integrity-check')")
        except sqlite3.DatabaseError as exc:
            problems.append(f"fts integrity-check: {exc}")
        if orphans := db.execute("PRAGMA foreign_key_check").fetchall():
            problems.append(f"foreign keys broken: {orphans[:5]}")
        texts = {rowid: text for rowid, text in db.execute("SELECT id, text FROM posts WHERE text != ''")}
        bodies = dict(db.execute("SELECT rowid, body FROM posts_fts"))
        if set(texts) != set(bodies):
            missing, stray = len(set(texts) - set(bodies)), len(set(bodies) - set(texts))
            problems.append(f"fts rows: {missing} posts not indexed, {stray} index rows without a post")
        wrong = [
            rowid for rowid, text in texts.items() if rowid in bodies and bodies[rowid] != fts_body(text)
        ]
        if wrong:
            problems.append(f"fts body differs from the post's text for {len(wrong)} posts, e.g. {wrong[:3]}")
        versions = db.execute(  # versions 1 … current-1 in the history, the current one in the post
            "SELECT COUNT(*) FROM posts p WHERE p.version - 1 != (SELECT COUNT(*) FROM post_versions v "
            "WHERE v.post_id = p.id AND v.version BETWEEN 1 AND p.version - 1) "
            "OR EXISTS (SELECT 1 FROM post_versions v WHERE v.post_id = p.id AND v.version >= p.version)"
        ).fetchone()[0]
        if versions:
            problems.append(f"{versions} posts whose history is not versions 1 to the one before theirs")
    return problems


def match(path: Path, words: Sequence[str]) -> dict[str, set[tuple[int, int]]]:
    """Posts each word finds in the full-text index."""
    with sqlite3.connect(path) as db:
        return {
            word: set(
                db.execute(
                    "SELECT p.channel_id, p.message_id FROM posts_fts f JOIN posts p ON p.id = f.rowid "
                    "WHERE posts_fts MATCH ?",
                    (fts_body(word),),
                )
            )
            for word in words
        }


def differences(got: dict[Any, Any], want: dict[Any, Any], what: str, show: int = 3) -> list[str]:
    """Keys missing, extra, and values that differ, each with a few examples."""
    out = []
    if missing := sorted(set(want) - set(got)):
        out.append(f"{what}: {len(missing)} missing, e.g. {missing[:show]}")
    if extra := sorted(set(got) - set(want)):
        out.append(f"{what}: {len(extra)} extra, e.g. {extra[:show]}")
    if changed := sorted(k for k in set(got) & set(want) if got[k] != want[k]):
        k = changed[0]
        out.append(f"{what}: {len(changed)} differ, e.g. {k}: {got[k]!r:.300} != {want[k]!r:.300}")
    return out


def archive_differences(got: Archive, want: Archive) -> list[str]:
    """Everything but the alert stage's rows: posts, versions, channels, the index."""
    return [
        *differences(got.posts, want.posts, "posts"),
        *differences(got.versions, want.versions, "post versions"),
        *differences(got.channels, want.channels, "channels"),
        *differences(got.fts, want.fts, "fts rows"),
    ]


def outbox_differences(got: Archive, want: Archive) -> list[str]:
    """The alert stage's rows: what matched which query, the stories alerted, the outbox."""
    return [
        *differences(dict.fromkeys(got.matches), dict.fromkeys(want.matches), "post matches"),
        *differences(dict.fromkeys(got.alerted), dict.fromkeys(want.alerted), "alerted stories"),
        *differences(dict(got.outbox), dict(want.outbox), "outbox rows"),
    ]
