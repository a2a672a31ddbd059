"""Analysts' dumps: CSV, JSONL, Parquet and Telegram Desktop's JSON, with a manifest beside each.

    result = await run_export(archive, ExportRequest("csv", Path("dump.csv"), filters, query="протест"))

One SELECT feeds one writer per format: for CSV, JSONL and Parquet its column is the whole record,
formatted by SQLite (`records`); for Telegram Desktop's layout it gives posts (`source`). A query filter
drops posts batch by batch. Every writer has `write_batch(rows)`, `close() -> files` and `discard()`,
streams, and holds one batch at a time. Writing runs in a worker thread, overlapping the next batch's
read (SQLite and the writers' hashing, compression and Arrow release the GIL), so the event loop (the
bot's) stays responsive. The formats, their schemas and the manifest are documented in docs/export.md.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from core import __version__
from core.export import iso
from core.exporters import records, source
from core.exporters.files import ExportError, FileRecord
from core.exporters.flat import SCHEMA_VERSION, CsvWriter, JsonlWriter
from core.exporters.source import (
    Batch,
    channel_counts,
    channel_posts,
    count_posts,
    has_matches,
    record_batches,
)
from core.models import PostFilter
from core.query.matcher import Query, compile_query
from core.storage.sqlite import SqliteArchive

__all__ = [
    "FORMATS",
    "SCHEMA_VERSION",
    "ExportError",
    "ExportRequest",
    "ExportResult",
    "FileRecord",
    "check_request",
    "count_posts",
    "manifest_path",
    "output_path",
    "run_export",
]

FORMATS = ("csv", "jsonl", "parquet", "tdesktop")
STREAMABLE = ("csv", "jsonl")  # may go to standard output
MANIFEST_SUFFIX = ".manifest.json"
TDESKTOP_MANIFEST = "manifest.json"


class Writer(Protocol):
    format: str
    schema: int

    def write_batch(self, rows: Sequence[Any]) -> None: ...
    def close(self) -> list[FileRecord]: ...
    def discard(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ExportRequest:
    format: str
    output: Path | None  # a file (a directory for tdesktop); None: standard output (csv, jsonl)
    filters: PostFilter = field(default_factory=PostFilter)
    query: str | None = None  # query language (docs/query.md): only matching posts are written
    compress: bool = False  # gzip every file (csv, jsonl, tdesktop)
    max_bytes: int | None = None  # split csv/jsonl/parquet into parts of at most this size
    csv_safe: bool = True  # CSV: a leading ' before cells a spreadsheet would take for a formula
    channel_ref: str | None = None  # the channel as the user gave it, for the manifest


@dataclass(slots=True)
class ExportResult:
    format: str
    schema: int
    rows: int = 0  # written
    read: int = 0  # read from the archive (more than `rows` with a query filter)
    per_channel: dict[int, int] = field(default_factory=dict)
    files: list[FileRecord] = field(default_factory=list)
    manifest: Path | None = None
    manifest_data: dict[str, Any] = field(default_factory=dict)


def output_path(request: ExportRequest) -> Path | None:
    """Where the dump goes: `.gz` is added to a gzipped file's name when it lacks it."""
    target = request.output
    if target is None or request.format == "tdesktop":
        return target
    if request.compress and not target.name.endswith(".gz"):
        return target.with_name(target.name + ".gz")
    return target


def manifest_path(request: ExportRequest) -> Path | None:
    target = output_path(request)
    if target is None:
        return None
    if request.format == "tdesktop":
        return target / TDESKTOP_MANIFEST
    return target.with_name(target.name + MANIFEST_SUFFIX)


def check_request(request: ExportRequest) -> None:
    """Every problem with the options, before the archive is read."""
    fmt = request.format
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if request.output is None and fmt not in STREAMABLE:
        what = "a directory" if fmt == "tdesktop" else "a file"
        raise ExportError(f"{fmt} cannot go to standard output: give -o with {what}")
    if request.compress and fmt == "parquet":
        raise ExportError("parquet is compressed inside (zstd): --gzip applies to csv, jsonl and tdesktop")
    if request.max_bytes is not None:
        if fmt == "tdesktop":
            raise ExportError("tdesktop writes one file per channel and is not split: drop --split-mb")
        if request.output is None:
            raise ExportError("splitting needs an output file, not standard output")
        if request.max_bytes < 1:
            raise ExportError("the split size must be positive")
    target = output_path(request)
    if target is not None:
        if fmt == "tdesktop":
            if target.exists() and not target.is_dir():
                raise ExportError(f"cannot write {target}: tdesktop writes a directory, and this is a file")
        elif target.is_dir():
            raise ExportError(f"cannot write {target}: it is a directory")
        elif not target.parent.is_dir():
            raise ExportError(f"cannot write {target}: there is no directory {target.parent}")
    if fmt == "parquet":
        from core.exporters.parquet import load_pyarrow

        load_pyarrow()


def make_writer(request: ExportRequest, stdout: IO[bytes] | None = None) -> Writer:
    target = output_path(request)
    if request.format == "tdesktop":
        from core.exporters.tdesktop import TdesktopWriter

        assert target is not None
        return TdesktopWriter(target, compress=request.compress)
    if request.format == "parquet":
        from core.exporters.parquet import ParquetWriter

        assert target is not None
        return ParquetWriter(target, max_bytes=request.max_bytes)
    if target is None and stdout is None:
        raise ExportError("standard output is not available")
    options: dict[str, Any] = {"compress": request.compress, "max_bytes": request.max_bytes, "stdout": stdout}
    if request.format == "csv":
        return CsvWriter(target, safe=request.csv_safe, **options)
    return JsonlWriter(target, **options)


async def _batches(
    archive: SqliteArchive,
    request: ExportRequest,
    query: Query | None,
    on_read: Callable[[int], None],
    convert: Callable[[list[Any]], Any] | None = None,
) -> AsyncGenerator[Batch[Any], None]:
    if request.format != "tdesktop":
        any_matches = await has_matches(archive)
        width, order = 1, source.ORDER
        if request.format == "csv":
            sql = records.csv_sql(safe=request.csv_safe, any_matches=any_matches)
        elif request.format == "parquet":
            columns = records.parquet_columns(any_matches=any_matches)
            sql, width = ", ".join(columns.values()), len(columns)
            order = records.PARQUET_ORDER  # the writer orders posts of the same date
        else:
            sql = records.jsonl_sql(any_matches=any_matches)
        await archive._db.create_function(records.ROUND4, 1, records.round4, deterministic=True)
        async with aclosing(
            record_batches(
                archive, sql, request.filters, query, on_read, width=width, order=order, convert=convert
            )
        ) as found:
            async for batch in found:
                yield batch
        return
    # Desktop's layout: channel by channel, each in message-id order
    for channel_id, _ in await channel_counts(archive, request.filters):
        async with aclosing(channel_posts(archive, channel_id, request.filters, query, on_read)) as posts:
            async for batch in posts:
                yield batch


async def run_export(
    archive: SqliteArchive,
    request: ExportRequest,
    *,
    on_read: Callable[[int], None] | None = None,
    stdout: IO[bytes] | None = None,
) -> ExportResult:
    """Write the dump and its manifest; raises ExportError or QuerySyntaxError before writing anything.

    `on_read(n)` is called as posts are read (the progress bar); `stdout` receives csv/jsonl bytes
    when `request.output` is None (no manifest then: the result carries it).
    """
    check_request(request)
    query = compile_query(request.query) if request.query else None
    started = datetime.now(UTC)
    writer = make_writer(request, stdout)
    result = ExportResult(request.format, writer.schema)

    def count_read(n: int) -> None:
        result.read += n
        if on_read is not None:
            on_read(n)

    pending: asyncio.Future[None] | None = None
    try:
        convert = getattr(writer, "convert", None)  # rows → what its write_batch takes, where they are read
        async with aclosing(_batches(archive, request, query, count_read, convert)) as batches:
            async for batch in batches:
                if pending is not None:
                    await pending
                # the write of this batch overlaps the read of the next one
                pending = asyncio.ensure_future(asyncio.to_thread(writer.write_batch, batch.items))
                for channel_id, n in Counter(batch.channel_ids).items():
                    result.per_channel[channel_id] = result.per_channel.get(channel_id, 0) + n
                result.rows += len(batch.items)
        if pending is not None:
            await pending
            pending = None
        result.files = await asyncio.to_thread(writer.close)
    except BaseException:
        if pending is not None:  # a worker thread cannot be stopped: let it finish before cleaning up
            await asyncio.gather(pending, return_exceptions=True)
        writer.discard()
        raise
    result.manifest_data = manifest(request, result, started)
    target = manifest_path(request)
    if target is not None:
        write_manifest(target, result.manifest_data)
        result.manifest = target
    return result


def manifest(request: ExportRequest, result: ExportResult, started: datetime) -> dict[str, Any]:
    f = request.filters
    options: dict[str, Any] = {"gzip": request.compress, "split_bytes": request.max_bytes}
    if request.format == "csv":
        options["csv_safe"] = request.csv_safe
    return {
        "tool": "tgmon",
        "version": __version__,
        "started_at": iso(started),
        "exported_at": iso(datetime.now(UTC)),
        "format": request.format,
        "schema": result.schema,
        "filters": {
            "channel": request.channel_ref,
            "channel_id": f.channel_id,
            "since": iso(f.since),
            "until": iso(f.until),
            "lang": f.lang,
            "query": request.query,
            "include_deleted": f.include_deleted,
        },
        "options": options,
        "rows": {
            "total": result.rows,
            "read": result.read,
            "per_channel": {str(channel_id): n for channel_id, n in sorted(result.per_channel.items())},
        },
        "files": [
            {"name": f.name, "bytes": f.bytes, "sha256": f.sha256, "rows": f.rows}
            | ({"channel_id": f.channel_id} if f.channel_id is not None else {})
            for f in result.files
        ],
    }


def write_manifest(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
