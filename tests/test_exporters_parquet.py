"""Parquet's own path (core.exporters.parquet, records.parquet_columns, source._converted): rows read as plain
values and converted in the connection's thread, nested fields parsed only where present, the posts of one
date put in order by the writer. Every value is compared with the reference record (core.export)."""

from __future__ import annotations

import random
import struct
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.exporters import parquet, records
from core.exporters.source import record_batches
from core.models import Entity, Post, PostFilter, ProcessedPost, RawPost
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import AlertRecord, SubscriptionStore
from tests.test_exporters import HOSTILE, T0, export, hostile_archive, references

pq = pytest.importorskip("pyarrow.parquet")

A, B, C = 1001, 1002, 1003  # A has a username, B none, C an empty one (the title is used)


def float32(value: float) -> float:
    """`value` rounded to the nearest float32, as IEEE 754 does (the schema's `lang_confidence`)."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


def iso(value: datetime | None) -> str | None:
    return value and value.isoformat().replace("+00:00", "Z")


def assert_is_reference(path: Path, expected: list[tuple[Post, dict[str, Any]]]) -> None:
    """The file holds the reference records, in their order, with Parquet's types."""
    table = pq.read_table(path).to_pylist()
    assert len(table) == len(expected)
    for row, (post, rec) in zip(table, expected, strict=True):
        assert row.pop("lang_confidence") == float32(post.lang_confidence)
        assert row.pop("reactions") == (list(post.reactions.items()) if post.reactions else None)
        entities = row.pop("entities")
        assert [{k: v for k, v in e.items() if v is not None} for e in entities] == rec["entities"]
        for name in ("date", "edited", "deleted_at", "collected_at"):
            row[name] = iso(row[name])
        for version in row["edit_history"]:
            version["edit_date"] = iso(version["edit_date"])
            version["recorded_at"] = iso(version["recorded_at"])
        assert row == {
            k: v for k, v in rec.items() if k not in ("schema", "lang_confidence", "reactions", "entities")
        }


async def test_hostile_values_are_the_reference(archive: SqliteArchive, tmp_path: Path) -> None:
    await hostile_archive(archive)
    expected = await references(archive)
    await export(archive, "parquet", tmp_path / "dump.parquet")
    assert_is_reference(tmp_path / "dump.parquet", expected)


def post(n: int, chance: random.Random) -> ProcessedPost:
    """Post n: 7 posts a second over three channels; the first 1,200 have no optional field at all (every
    nullable column starts with nulls for more than a read batch), the later ones each field now and then."""
    channel = (A, B, C)[n % 3]
    date = T0 + timedelta(seconds=n // 7)
    text = f"{HOSTILE[n % len(HOSTILE)]} слово {n}"
    if n < 1200:
        return ProcessedPost(RawPost(channel, n, date, text), "ru", 0.5, (), f"{n:064x}")
    raw = RawPost(
        channel,
        n,
        date,
        text,
        (Entity("bold", 0, 1), Entity("text_link", 1, 2, 'https://x.example/"a",b')) if n % 3 == 0 else (),
        views=n if n % 2 else None,
        forwards=n // 2 if n % 4 == 1 else None,
        replies=0 if n % 6 == 1 else None,
        reactions={"🔥": n, 'a"b,c': 1} if n % 5 == 0 else ({} if n % 5 == 1 else None),
        media_type="photo" if n % 7 == 0 else None,
        forwarded_from=HOSTILE[(n + 3) % len(HOSTILE)] or None if n % 11 == 0 else None,
        reply_to=n - 1 if n % 13 == 0 else None,
        album_id=n // 10 if n % 17 == 0 else None,
        author=HOSTILE[(n + 4) % len(HOSTILE)] or None if n % 19 == 0 else None,
        service_action="pin_message" if n % 23 == 0 else None,
    )
    tags = ("#тег", '#"x"') if n % 2 == 0 else ()
    story = f"story-{n // 50}" if n % 29 == 0 else None
    return ProcessedPost(raw, "en" if n % 3 else "ru", chance.random(), tags, f"{n:064x}", story_id=story)


async def many_posts(archive: SqliteArchive, count: int) -> None:
    """`count` posts saved with each second's posts shuffled, so that the archive's row order is not
    the export's (date, channel, message) order; edits, deletions and query matches among the later."""
    for channel, username in ((A, "chan_a"), (B, None), (C, "")):
        await archive.upsert_channel(channel, username, f'Канал "{channel}", {HOSTILE[channel % 5]}')
    chance = random.Random(5)
    posts = [post(n, chance) for n in range(count)]
    for start in range(0, count, 7):
        group = posts[start : start + 7]
        chance.shuffle(group)
        posts[start : start + 7] = group
    await archive.save_posts(posts)
    edited = [p for p in posts if p.raw.message_id % 97 == 3 and p.raw.message_id >= 1200]
    await archive.save_posts(
        [
            ProcessedPost(
                RawPost(p.raw.channel_id, p.raw.message_id, p.raw.date, p.raw.text + " v2", edit_date=T0),
                "ru",
                0.7,
                (),
                "f" * 64,
            )
            for p in edited
        ]
    )
    for channel in (A, B, C):
        await archive.mark_deleted(
            channel, [n for n in range(1500, count, 89) if n % 3 == (A, B, C).index(channel)], T0
        )
    store = SubscriptionStore(archive)
    await store.upsert_subscriber(1, 1, "ru")
    first = await store.add_query(1, 'слово "x"')
    other = await store.add_query(1, "другой")
    matched = [(n % 3, n) for n in range(1300, count, 101)]
    await store.record_alerts(
        [
            AlertRecord(
                1,
                1,
                (A, B, C)[k],
                n,
                f"{(A, B, C)[k]}:{n}",
                (other.id, first.id),
                {},
                alert=False,
                stored_at=0.0,
            )
            for k, n in matched
        ]
    )


@pytest.mark.parametrize("query", [None, "слово"])  # with a query, rows are converted by the writer
async def test_batches_of_rows_become_the_reference(
    archive: SqliteArchive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str | None
) -> None:
    monkeypatch.setattr(parquet, "PARSE_BYTES", 1)  # every read batch on its own: dates span batches
    await many_posts(archive, 2600)
    expected = await references(archive)
    assert any(r["edit_history"] for _, r in expected) and any(r["matched_queries"] for _, r in expected)
    assert any(p.deleted_at for p, _ in expected)
    assert any(r["story_id"].startswith("story-") for _, r in expected)
    result = await export(archive, "parquet", tmp_path / "dump.parquet", query=query)
    assert result.rows == result.read == 2600
    assert result.per_channel == {A: 867, B: 867, C: 866}
    assert_is_reference(tmp_path / "dump.parquet", expected)


async def test_the_posts_of_a_date_come_in_channel_and_message_order(
    archive: SqliteArchive, tmp_path: Path
) -> None:
    await many_posts(archive, 2600)
    await export(archive, "parquet", tmp_path / "dump.parquet")
    table = pq.read_table(tmp_path / "dump.parquet", columns=["date", "channel_id", "message_id"])
    keys = list(zip(*(table.column(name).to_pylist() for name in table.column_names), strict=True))
    assert keys == sorted(keys) and len(set(keys)) == 2600
    stored = await archive._all("SELECT date, channel_id, message_id FROM posts ORDER BY rowid")
    assert [k[1:] for k in keys] != [tuple(r[1:]) for r in stored]  # the archive's order is another


async def test_rows_are_converted_in_the_connection_thread(archive: SqliteArchive) -> None:
    await many_posts(archive, 30)
    threads: set[int] = set()

    def convert(rows: list[Any]) -> tuple[str, int]:
        threads.add(threading.get_ident())
        return ("converted", len(rows))

    columns = records.parquet_columns(any_matches=True)
    found = [
        batch
        async for batch in record_batches(
            archive, ", ".join(columns.values()), PostFilter(), size=8, width=len(columns), convert=convert
        )
    ]
    assert [b.items for b in found] == [("converted", 8)] * 3 + [("converted", 6)]
    assert sum(len(b.channel_ids) for b in found) == 30
    assert threads and threading.get_ident() not in threads  # aiosqlite's thread, not the event loop's


async def test_no_posts_give_a_file_with_the_schema(archive: SqliteArchive, tmp_path: Path) -> None:
    result = await export(archive, "parquet", tmp_path / "dump.parquet")
    assert result.rows == 0
    table = pq.read_table(tmp_path / "dump.parquet")
    assert table.num_rows == 0 and table.schema.metadata[b"tgmon.schema"] == b"2"
    assert table.schema.names == parquet.arrow_schema(pytest.importorskip("pyarrow")).names
