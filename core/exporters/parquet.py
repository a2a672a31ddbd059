"""Parquet through pyarrow (the optional `parquet` extra): typed columns, zstd, row groups of 50,000 rows
(fewer when they would hold more than 24 MiB of data).

Where the time goes, per post: SQLite reading the row and Python's sqlite3 module making an object of
each column (the thread that reads, about half of it), one pass of Arrow's converter over those
objects (the same thread: see `source._converted`), then, in a background thread that holds no GIL,
the nested fields parsed (pyarrow's JSON reader, only for the posts that have them) and the row
groups encoded and compressed. No record is formatted as text and parsed again.

pyarrow is imported when a Parquet export starts, never by `import core.exporters`; it ships no type
information, so it is handled as `Any` here.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from core import __version__
from core.exporters import records
from core.exporters.files import ExportError, FileRecord, OutputFile, part_path
from core.exporters.flat import SCHEMA_VERSION

ROW_GROUP_ROWS = 50_000
ROW_GROUP_BYTES = 24 << 20  # …or fewer rows, when their Arrow data reach 24 MiB (long posts): flat memory
PARSE_BYTES = 4 << 20  # converted rows go to the background thread this many bytes at a time
COMPRESSION = "zstd"
SUFFIXES = (".parquet", ".pq")
# Dictionary encoding only where values repeat: for texts, hashes and links it is tried on every row group
# and given up, which costs more than the rest of the encoding
DICTIONARY = ["channel", "channel_title", "lang", "media_type", "forwarded_from", "author", "service_action"]


def load_pyarrow() -> tuple[Any, Any]:
    """(pyarrow, pyarrow.parquet), or ExportError telling how to install them."""
    try:
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ExportError(
            "the parquet format needs pyarrow: pip install 'tgmon[parquet]' (or pip install pyarrow)"
        ) from None
    return pa, pq


def arrow_schema(pa: Any) -> Any:
    """Schema 2 as Arrow types; the version is in the file's key-value metadata (`tgmon.schema`)."""
    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            pa.field("channel_id", pa.int64(), nullable=False),
            pa.field("channel", pa.string()),
            pa.field("channel_title", pa.string()),
            pa.field("message_id", pa.int64(), nullable=False),
            pa.field("date", ts, nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field(
                "entities",
                pa.list_(
                    pa.struct(
                        [
                            ("type", pa.string()),
                            ("offset", pa.int32()),
                            ("length", pa.int32()),
                            ("url", pa.string()),
                        ]
                    )
                ),
            ),
            pa.field("lang", pa.string()),
            pa.field("lang_confidence", pa.float32()),
            pa.field("url", pa.string()),
            pa.field("views", pa.int64()),
            pa.field("forwards", pa.int64()),
            pa.field("replies", pa.int64()),
            pa.field("reactions", pa.map_(pa.string(), pa.int64())),
            pa.field("media_type", pa.string()),
            pa.field("forwarded_from", pa.string()),
            pa.field("reply_to", pa.int64()),
            pa.field("album_id", pa.int64()),
            pa.field("author", pa.string()),
            pa.field("service_action", pa.string()),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("story_id", pa.string()),
            pa.field("edited", ts),
            pa.field("versions", pa.int32(), nullable=False),
            pa.field("deleted", pa.bool_(), nullable=False),
            pa.field("deleted_at", ts),
            pa.field("collected_at", ts, nullable=False),
            pa.field("content_hash", pa.string(), nullable=False),
            pa.field("matched_queries", pa.list_(pa.string())),
            pa.field(
                "edit_history",
                pa.list_(
                    pa.struct(
                        [
                            ("version", pa.int32()),
                            ("text", pa.string()),
                            ("edit_date", ts),
                            ("recorded_at", ts),
                        ]
                    )
                ),
            ),
        ],
        metadata={
            b"tgmon.schema": str(SCHEMA_VERSION).encode(),
            b"tgmon.version": __version__.encode(),
        },
    )


NESTED = ("entities", "reactions", "tags", "matched_queries", "edit_history")  # JSON lines, when present
ORDER = ("date", "channel_id", "message_id")  # the rows' order; they come in date order only
EMPTY_IS_NULL = ("reactions",)  # the others are `[]` when absent
OPEN, CLOSE = b'{"v":', b"}\n"  # around a nested value: a line for pyarrow's JSON reader


def _read_type(pa: Any, kind: Any) -> Any:
    """How pyarrow's JSON reader is told to read a nested field: timestamps as integer microseconds,
    maps as lists of key/value pairs."""
    if pa.types.is_timestamp(kind):
        return pa.int64()
    if pa.types.is_map(kind):
        return pa.list_(pa.struct([("key", kind.key_type), ("value", kind.item_type)]))
    if pa.types.is_list(kind):
        return pa.list_(_read_type(pa, kind.value_type))
    if pa.types.is_struct(kind):
        return pa.struct(
            [(f.name, _read_type(pa, f.type)) for f in (kind.field(i) for i in range(kind.num_fields))]
        )
    return kind


def row_type(pa: Any, schema: Any) -> Any:
    """The rows `records.parquet_columns` selects, the channel id first, as the struct Arrow converts
    them to in one pass: texts and the nested fields' JSON as bytes, the rest as in the schema;
    `deleted` is not selected."""
    fields = []
    for name in ["channel_id", *records.parquet_columns(any_matches=False)]:
        kind = schema.field(name).type
        if pa.types.is_string(kind) or name in NESTED:
            kind = pa.binary()
        fields.append(pa.field(name, kind))
    return pa.struct(fields)


class ParquetWriter:
    """Row groups of `row_group_rows`; with `max_bytes`, parts that are each a complete Parquet file.

    Rows become an Arrow struct array in one pass of Arrow's converter (`convert`): the only step that
    needs their Python objects, so the only one in the caller's thread. The rest runs in a background
    thread, where Arrow releases the GIL, while the next rows are read: the posts of a date put in
    order, the nested fields parsed, record batches built (`PARSE_BYTES` of rows at a time), row groups
    encoded, compressed and written. The reading runs at most a row group's bytes ahead. To split
    exactly, each row group is first encoded alone in memory to learn its size: a part ends before a
    group that would push it over the limit.
    """

    format = "parquet"
    schema = SCHEMA_VERSION

    def __init__(
        self,
        target: Path,
        *,
        max_bytes: int | None = None,
        row_group_rows: int = ROW_GROUP_ROWS,
        row_group_bytes: int = ROW_GROUP_BYTES,
    ) -> None:
        self.pa, self.pq = load_pyarrow()
        self.pc = importlib.import_module("pyarrow.compute")
        self._json = importlib.import_module("pyarrow.json")
        self.arrow_schema = arrow_schema(self.pa)
        self._row_type = row_type(self.pa, self.arrow_schema)
        self._read_schemas = {
            name: self.pa.schema([("v", _read_type(self.pa, self.arrow_schema.field(name).type))])
            for name in NESTED
        }
        self._line_start, self._line_end = self.pa.scalar(OPEN), self.pa.scalar(CLOSE)
        self._nothing = self.pa.scalar(b"")
        self.target = target
        self.max_bytes = max_bytes
        self.row_group_rows = row_group_rows
        self.row_group_bytes = row_group_bytes
        self._chunks: list[Any] = []  # struct arrays not yet handed to the background thread
        self._chunk_rows = 0
        self._chunk_bytes = 0
        self._queued: list[tuple[Future[None], int]] = []  # background tasks not known done, their bytes
        self._background: ThreadPoolExecutor | None = None
        # the background thread's: one task at a time, in order
        self._carry: list[Any] = []  # rows of the last date seen: more may follow
        self._pending: list[Any] = []  # record batches not yet written
        self._pending_rows = 0
        self._pending_bytes = 0
        self._done: list[tuple[OutputFile, int, str]] = []
        self._file: OutputFile | None = None
        self._writer: Any = None
        self._estimate = 0  # upper bound of the current part's size: sum of its groups' standalone sizes

    def convert(self, rows: Sequence[tuple[Any, ...]]) -> Any:
        """Rows selected by `records.parquet_columns`, the channel id first, as a struct array: one pass
        of Arrow's converter over the tuples (safe in any thread; the export calls it in the thread
        that read them)."""
        return self.pa.array(rows, type=self._row_type)

    def write_batch(self, rows: Any) -> None:
        """Rows (`convert`'s, or as it takes them)."""
        if not len(rows):
            return
        chunk = rows if isinstance(rows, self.pa.StructArray) else self.convert(rows)
        self._chunks.append(chunk)
        self._chunk_rows += len(chunk)
        self._chunk_bytes += chunk.nbytes
        if self._chunk_bytes >= PARSE_BYTES or self._chunk_rows >= self.row_group_rows:
            self._hand_over()

    def _hand_over(self, *, last: bool = False) -> None:
        """Queue the converted rows for the background thread; wait while a row group's worth of bytes
        is queued already (memory stays flat when the encoding is slower than the reading)."""
        chunks, size = self._chunks, self._chunk_bytes
        self._chunks, self._chunk_rows, self._chunk_bytes = [], 0, 0
        while self._queued and (
            last or self._queued[0][0].done() or sum(n for _, n in self._queued) + size > self.row_group_bytes
        ):
            self._queued.pop(0)[0].result()  # a task's error is raised here
        if self._background is None:
            self._background = ThreadPoolExecutor(1, thread_name_prefix="tgmon-parquet")
        self._queued.append((self._background.submit(self._add, chunks, last), size))
        if last:
            self._queued.pop()[0].result()

    def _add(self, chunks: list[Any], last: bool) -> None:
        """In the background thread: the rows as a record batch, written once a row group is pending.

        The rows come in date order only (`records.PARQUET_ORDER`): posts of the same date are put in
        channel and message order here, the last date's held back until the next rows (or the end).
        """
        pa, pc = self.pa, self.pc
        parts, self._carry = self._carry + chunks, []
        rows = parts[0] if len(parts) == 1 else pa.concat_arrays(parts) if parts else None
        if rows is not None and not last:
            dates = pc.struct_field(rows, "date")
            start = pc.index(dates, dates[len(rows) - 1]).as_py()  # the last date's first row
            self._carry = [rows.slice(start)]
            rows = rows.slice(0, start)
        if rows is not None and len(rows):
            batch = self._record_batch(self._in_order(rows))
            self._pending.append(batch)
            self._pending_rows += batch.num_rows
            self._pending_bytes += batch.nbytes
        if self._pending and (
            last or self._pending_rows >= self.row_group_rows or self._pending_bytes >= self.row_group_bytes
        ):
            table = pa.Table.from_batches(self._pending, schema=self.arrow_schema)
            self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
            self._write_table(table)

    def _in_order(self, rows: Any) -> Any:
        """Rows in date order, those of the same date put in (channel, message) order."""
        pa, pc = self.pa, self.pc
        keys = [pc.struct_field(rows, name) for name in ORDER]
        before, after = [k.slice(0, len(k) - 1) for k in keys], [k.slice(1) for k in keys]
        # a row out of order: its date the previous row's, its (channel, message) smaller
        same_date = pc.equal(before[0], after[0])
        smaller = pc.or_(
            pc.less(after[1], before[1]), pc.and_(pc.equal(after[1], before[1]), pc.less(after[2], before[2]))
        )
        if not pc.any(pc.and_(same_date, smaller)).as_py():
            return rows
        return rows.take(
            pc.sort_indices(pa.table(dict(zip(ORDER, keys, strict=True))), [(k, "ascending") for k in ORDER])
        )

    def _record_batch(self, rows: Any) -> Any:
        """The rows' columns with the schema's types: texts as they are (UTF-8 as SQLite holds it, which
        Python wrote), the nested fields parsed, `deleted` and the default `story_id` computed."""
        pa, pc = self.pa, self.pc
        columns = {}
        for field, column in zip(self._row_type, rows.flatten(), strict=True):
            if field.name in NESTED:
                column = self._nested(field.name, column)
            elif self.arrow_schema.field(field.name).type == pa.string():
                column = column.view(pa.string())
            columns[field.name] = column
        own_story = pc.binary_join_element_wise(
            columns["channel_id"].cast(pa.string()), columns["message_id"].cast(pa.string()), ":"
        )
        columns["story_id"] = pc.coalesce(columns["story_id"], own_story)
        columns["deleted"] = columns["deleted_at"].is_valid()
        return pa.RecordBatch.from_arrays(
            [columns[f.name] for f in self.arrow_schema], schema=self.arrow_schema
        )

    def _nested(self, name: str, values: Any) -> Any:
        """A nested column from its JSON values (null where the field is empty): the present ones parsed,
        then spread over every row, the others empty lists (or null)."""
        pa, pc = self.pa, self.pc
        kind = self.arrow_schema.field(name).type
        schema = self._read_schemas[name]
        present = values.drop_null()
        if len(present):
            lines = pc.binary_join_element_wise(self._line_start, present, self._line_end, self._nothing)
            _, ends, data = lines.buffers()
            ends = pa.Array.from_buffers(pa.int32(), len(lines) + 1, [None, ends], offset=lines.offset)
            first, last = ends[0].as_py(), ends[-1].as_py()
            # one block for all: the reader allocates a whole block however few the lines
            options = self._json.ReadOptions(block_size=last - first + 1, use_threads=False)
            parsed = (
                self._json.read_json(
                    pa.BufferReader(data.slice(first, last - first)),
                    read_options=options,
                    parse_options=self._json.ParseOptions(explicit_schema=schema),
                )
                .column("v")
                .combine_chunks()
            )
        else:
            parsed = pa.array([], schema.field("v").type)
        # where each row's list starts: the start of the parsed list of the present rows before it
        before = pc.cumulative_sum(values.is_valid().cast(pa.int32()))
        offsets = parsed.offsets.take(pa.concat_arrays([pa.array([0], pa.int32()), before]))
        mask = values.is_null() if name in EMPTY_IS_NULL else None
        if pa.types.is_map(kind):
            items = parsed.values
            return pa.MapArray.from_arrays(
                offsets, items.field("key"), items.field("value"), type=kind, mask=mask
            )
        column = pa.ListArray.from_arrays(offsets, parsed.values, mask=mask)
        return column if column.type == kind else column.cast(kind)

    def _write_table(self, table: Any) -> None:
        for start in range(0, table.num_rows, self.row_group_rows):
            self._write_group(table.slice(start, self.row_group_rows))

    def _options(self) -> dict[str, Any]:
        return {"compression": COMPRESSION, "write_statistics": True, "use_dictionary": DICTIONARY}

    def _standalone_size(self, table: Any) -> int:
        buffer = io.BytesIO()
        self.pq.write_table(table, buffer, row_group_size=table.num_rows, **self._options())
        return buffer.tell()

    def _write_group(self, table: Any) -> None:
        if self.max_bytes is not None:
            size = self._standalone_size(table)
            if size > self.max_bytes and table.num_rows > 1:  # too big for any part: halve it
                half = table.num_rows // 2
                self._write_group(table.slice(0, half))
                self._write_group(table.slice(half))
                return
            if self._file is not None and self._file.rows and self._estimate + size > self.max_bytes:
                self._finish_part()
            self._estimate += size
        writer = self._open()
        writer.write_table(table, row_group_size=table.num_rows)
        assert self._file is not None
        self._file.rows += table.num_rows

    def _open(self) -> Any:
        if self._writer is None:
            target = self.target
            if self.max_bytes is not None:
                target = part_path(target, len(self._done) + 1, SUFFIXES)
            self._file = OutputFile(target, compress=False)
            self._writer = self.pq.ParquetWriter(self._file.sink, self.arrow_schema, **self._options())
        return self._writer

    def _finish_part(self) -> None:
        if self._writer is None or self._file is None:
            return
        self._writer.close()
        size, sha = self._file.close()
        self._done.append((self._file, size, sha))
        self._writer, self._file, self._estimate = None, None, 0

    def _stop(self) -> None:
        """Both threads finished and ended; the first error of their tasks, if any, raised then."""
        tasks = [task for task, _ in self._queued]
        self._queued = []
        if self._background is not None:
            self._background.shutdown(wait=True)
            self._background = None
        for task in tasks:
            task.result()

    def close(self) -> list[FileRecord]:
        try:
            self._hand_over(last=True)
        finally:
            self._stop()
        if self._writer is None and not self._done:
            self._open()  # no rows: still a valid file with the schema
        self._finish_part()
        single = len(self._done) == 1
        records = []
        for part, size, sha in self._done:
            final = self.target if single else part.target
            assert final is not None
            part.commit(final)
            records.append(FileRecord(final.name, final, size, sha, part.rows))
        return records

    def discard(self) -> None:
        self._chunks = []
        with contextlib.suppress(Exception):  # the export already failed: its error is being raised
            self._stop()
        if self._writer is not None:
            with contextlib.suppress(Exception):  # the export already failed; the file goes anyway
                self._writer.close()
        for part, _, _ in self._done:
            part.discard()
        if self._file is not None:
            self._file.discard()
        self._done, self._file, self._writer = [], None, None
