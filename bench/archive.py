"""The large archive the export and search benchmarks read, built once and cached.

    path = ensure_archive(1_000_000)   # <tmp>/tgmon-bench/archive-1000000-s7-b1-shared.db

The schema is the application's own (`SqliteArchive.open` runs the migrations); the rows are written
in bulk with the sqlite3 module, as the archive's `save_posts` would write them: a `posts` row per post
(an edited post's first version in `post_versions`), the full-text index filled with `fts_body` (the
function the app indexes with), 5 % of the posts edited once (a second version), 1 % deleted, 2 % matched by a
subscriber's query. Texts, entities and reactions are real: the shared Telegram exports and channel
dumps (../shared/data), or the test fixtures when those are absent. Posts are spread over 20 channels,
30 s apart, so the archive spans about a year.

The file is keyed by row count, schema version, this builder's version and the text source, and is
rebuilt when absent or stale. A lock keeps two benchmark processes from building it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import fcntl
import json
import os
import random
import re
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from bench.common import FIXTURES, SHARED_DATA, have_shared_data

BUILDER_VERSION = 1  # raise when what is built changes
CHANNELS = 20
FIRST_CHANNEL = 2_000_000_000
START = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp())
STEP = 30  # seconds between posts
MATCHED_QUERY = "новости OR news"
EDIT = "\n\nUPD: исправлено"  # what the edited posts' second version adds
_ARABIC = re.compile(r"[\u0600-\u06ff]")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_UK = re.compile(r"[іїєґІЇЄҐ]")
_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Source:
    """One real post text with what came with it."""

    text: str
    entities: str | None  # JSON, as the archive stores it
    reactions: str | None
    media_type: str | None
    forwarded_from: str | None
    author: str | None
    lang: str
    tags: str | None
    content_hash: str
    fts: str
    edited_hash: str  # of the text + EDIT
    edited_fts: str


def cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "tgmon-bench"


def archive_path(rows: int) -> Path:
    from core.storage.migrations import SCHEMA_VERSION

    source = "shared" if have_shared_data() else "fixtures"
    return cache_dir() / f"archive-{rows}-s{SCHEMA_VERSION}-b{BUILDER_VERSION}-{source}.db"


def _guess_lang(text: str, default: str) -> str:
    if _CJK.search(text):
        return "zh"
    if _ARABIC.search(text):
        return default if default in ("ar", "fa") else "ar"
    if _UK.search(text):
        return "uk"
    if _CYRILLIC.search(text):
        return default if default in ("ru", "uk") else "ru"
    return "en" if text.isascii() else default


def _dump_texts() -> Iterator[tuple[str, str]]:
    """(text, language) of the shared channel dumps: plain texts without entities."""
    dumps = SHARED_DATA / "dumps"
    for path in sorted((dumps / "ria_and_other_ru").glob("*_messages.json")):
        for item in json.loads(path.read_text(encoding="utf-8")):
            yield item.get("text") or "", "ru"
    official = json.loads((dumps / "ru_official" / "tg_news.json").read_text(encoding="utf-8"))
    for posts in official.values():
        for item in posts:
            yield item.get("message") or "", "ru"
    with (dumps / "ukrainian" / "suspilne_news_verified.csv").open(encoding="utf-8", newline="") as file:
        for row in csv.DictReader(file):
            yield (row.get("Text") or "").strip(), "uk"
    for path in sorted((dumps / "persian").glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as file:
            for row in csv.DictReader(file):
                yield row.get("raw_text") or "", "fa"
    for line in (dumps / "telethon_to_dict" / "bloomberg_1488156064.jsonl").read_text().splitlines():
        yield json.loads(line).get("message") or "", "en"


def source_texts() -> list[Source]:
    """Every distinct real text, with what the pipeline derives from it (tags, hash, index body)."""
    from collectors.tdesktop import read_export
    from core.pipeline import content_hash, extract_tags
    from core.query.fts import fts_body
    from core.storage import rows

    if have_shared_data():
        exports = sorted((SHARED_DATA / "exports").glob("*.result.json"))
    else:
        exports = [FIXTURES / "tdesktop" / "single_chat", FIXTURES / "tdesktop" / "account.result.json"]
    raws = [raw for path in exports for _, found in read_export(path) for raw in found if raw.text]
    plain = list(_dump_texts()) if have_shared_data() else []
    from core.models import RawPost

    seen: set[str] = set()
    found: list[Source] = []
    epoch = datetime.fromtimestamp(0, UTC)
    langs = {text: lang for text, lang in plain}
    for raw in [*raws, *(RawPost(0, 0, epoch, text) for text in langs)]:
        if not raw.text or raw.text in seen:
            continue
        seen.add(raw.text)
        found.append(
            Source(
                text=raw.text,
                entities=rows.entities_json(raw.entities),
                reactions=rows.json_or_none(raw.reactions),
                media_type=raw.media_type,
                forwarded_from=raw.forwarded_from,
                author=raw.author,
                lang=_guess_lang(raw.text, langs.get(raw.text, "en")),
                tags=rows.json_or_none(list(extract_tags(raw))),
                content_hash=content_hash(raw),
                fts=fts_body(raw.text),
                edited_hash=content_hash(replace(raw, text=raw.text + EDIT)),
                edited_fts=fts_body(raw.text + EDIT),
            )
        )
    random.Random(3).shuffle(found)  # languages and sources mixed through time
    return found


def _post_rows(sources: list[Source], rows: int) -> Iterator[tuple[object, ...]]:
    chance = random.Random(1)
    for i in range(rows):
        s = sources[i % len(sources)]
        channel = FIRST_CHANNEL + i % CHANNELS
        message = i // CHANNELS + 1
        date = START + STEP * i
        username = f"bench_{i % CHANNELS}" if i % CHANNELS % 2 else None
        link = f"https://t.me/{username}/{message}" if username else f"https://t.me/c/{channel}/{message}"
        edited = i % 20 == 7
        yield (
            i + 1,
            channel,
            message,
            date,
            s.text + EDIT if edited else s.text,
            s.entities,
            s.lang,
            0.5 + chance.random() / 2,
            chance.randrange(100_000),
            chance.randrange(100),
            chance.randrange(50) or None,
            s.reactions,
            s.media_type,
            s.forwarded_from,
            (message - 1) if i % 37 == 5 and message > 1 else None,
            None,
            s.author,
            None,
            s.tags,
            link,
            date + 3600 if edited else None,
            START + 400 * 86400 if i % 100 == 3 else None,
            date + 5,
            s.edited_hash if edited else s.content_hash,
            2 if edited else 1,
        )


def build(path: Path, rows: int) -> None:
    """Write `rows` posts into a fresh archive at `path` (replaced when present)."""
    from core.storage.sqlite import SqliteArchive

    started = time.perf_counter()
    sources = source_texts()
    print(f"  {len(sources)} distinct real texts", file=sys.stderr, flush=True)
    partial = path.with_name(path.name + ".partial")
    for stale in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        stale.unlink(missing_ok=True)

    async def create() -> None:  # the application's schema, through its own migrations
        archive = await SqliteArchive.open(partial)
        await archive.close()

    asyncio.run(create())
    conn = sqlite3.connect(partial, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")  # a failed build is thrown away: no journal needed
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -262144")  # 256 MiB while building
        conn.execute("BEGIN")
        for n in range(CHANNELS):
            username = f"bench_{n}" if n % 2 else None
            conn.execute(
                "INSERT INTO channels (id, username, title, watched, added_at) VALUES (?, ?, ?, 0, ?)",
                (FIRST_CHANNEL + n, username, f"Канал {n}", START),
            )
        conn.execute(
            "CREATE TEMP TABLE sources (edited TEXT PRIMARY KEY, text TEXT, content_hash TEXT) WITHOUT ROWID"
        )
        conn.executemany(
            "INSERT OR IGNORE INTO sources VALUES (?, ?, ?)",
            ((s.text + EDIT, s.text, s.content_hash) for s in sources),
        )
        conn.execute("CREATE TEMP TABLE bodies (text TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID")
        conn.executemany("INSERT OR IGNORE INTO bodies VALUES (?, ?)", ((s.text, s.fts) for s in sources))
        conn.executemany(
            "INSERT OR IGNORE INTO bodies VALUES (?, ?)", ((s.text + EDIT, s.edited_fts) for s in sources)
        )
        conn.executemany(
            "INSERT INTO posts (id, channel_id, message_id, date, text, entities, lang, lang_confidence, "
            "views, forwards, replies, reactions, media_type, forwarded_from, reply_to, album_id, author, "
            "service_action, tags, permalink, edit_date, deleted_at, collected_at, content_hash, version) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            _post_rows(sources, rows),
        )
        print(f"  posts: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        # the edited posts: the version the edit replaced, and when the current one was recorded
        conn.execute(
            "INSERT INTO post_versions (post_id, version, text, entities, edit_date, recorded_at, "
            "content_hash) SELECT p.id, 1, s.text, p.entities, NULL, p.collected_at, s.content_hash "
            "FROM posts p JOIN sources s ON s.edited = p.text WHERE p.version = 2"
        )
        conn.execute("UPDATE posts SET version_at = edit_date + 60 WHERE version = 2")
        print(f"  versions: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        # the index, as save_posts fills it: fts_body of each text (computed once per distinct text)
        conn.execute(
            "INSERT INTO posts_fts (rowid, body) SELECT p.id, b.body FROM posts p "
            "JOIN bodies b ON b.text = p.text WHERE p.text != '' ORDER BY p.id"
        )
        print(f"  index: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        conn.execute(
            "INSERT INTO subscribers (id, chat_id, ui_lang, created_at) VALUES (1, 1, 'ru', ?)", (START,)
        )
        conn.execute(
            "INSERT INTO queries (id, subscriber_id, text, created_at) VALUES (1, 1, ?, ?)",
            (MATCHED_QUERY, START),
        )
        conn.execute(
            "INSERT INTO post_matches (post_id, query_id, matched_at) "
            "SELECT id, 1, collected_at FROM posts WHERE id % 50 = 11"
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA optimize")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()
    os.replace(partial, path)
    print(f"  built {path} in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)


def _fresh(path: Path, rows: int) -> bool:
    from core.storage.migrations import SCHEMA_VERSION

    if not path.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            count = conn.execute("SELECT MAX(id) FROM posts").fetchone()[0]
    except sqlite3.Error:
        return False
    return bool(version == SCHEMA_VERSION and count == rows)


def ensure_archive(rows: int) -> Path:
    """The cached archive of `rows` posts, built first when absent or stale."""
    path = archive_path(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _fresh(path, rows):
            print(f"building {path} ({rows} posts) …", file=sys.stderr, flush=True)
            build(path, rows)
    return path


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(ensure_archive(count))
