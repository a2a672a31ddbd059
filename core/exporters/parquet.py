"""Parquet through pyarrow (the optional `parquet` extra): typed columns, zstd, row groups of 50,000 rows
(fewer when they would hold more than 24 MiB of data).

pyarrow is imported when a Parquet export starts, never by `import core.exporters`; it ships no type
information, so it is handled as `Any` here.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import accumulate
from pathlib import Path
from typing import Any

from core import __version__
from core.exporters.files import ExportError, FileRecord, OutputFile, part_path
from core.exporters.flat import SCHEMA_VERSION

ROW_GROUP_ROWS = 50_000
ROW_GROUP_BYTES = 24 << 20  # …or fewer rows, when their Arrow data reach 24 MiB (long posts): flat memory
PARSE_BYTES = 4 << 20  # rows are parsed into Arrow this many bytes at a time
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


def json_schema(pa: Any, schema: Any) -> Any:
    """What `records.parquet_sql` writes, as pyarrow's JSON reader is told to read it: timestamps as
    integer microseconds (also inside `edit_history`), `reactions` as a list of key/value pairs."""
    fields = []
    for field in schema:
        if field.name == "text":  # a column of its own, not JSON
            continue
        kind = field.type
        if pa.types.is_timestamp(kind):
            kind = pa.int64()
        elif pa.types.is_map(kind):
            kind = pa.list_(pa.struct([("key", kind.key_type), ("value", kind.item_type)]))
        elif field.name == "edit_history":
            item = kind.value_type
            kind = pa.list_(
                pa.struct(
                    [
                        (f.name, pa.int64() if pa.types.is_timestamp(f.type) else f.type)
                        for f in (item.field(i) for i in range(item.num_fields))
                    ]
                )
            )
        elif field.name == "lang_confidence":
            kind = pa.float64()
        fields.append(pa.field(field.name, kind))
    return pa.schema(fields)


class ParquetWriter:
    """Row groups of `row_group_rows`; with `max_bytes`, parts that are each a complete Parquet file.

    Incoming rows become Arrow record batches (8 MB of them at a time); a row group is written when
    enough rows are pending, in a background thread, while the next rows are parsed. To split
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
        self.arrow_schema = arrow_schema(self.pa)
        self._json = importlib.import_module("pyarrow.json")
        self._parse_options = self._json.ParseOptions(explicit_schema=json_schema(self.pa, self.arrow_schema))
        self._lines: list[bytes] = []  # rows not yet parsed
        self._texts: list[bytes] = []
        self._held = 0
        self.target = target
        self.max_bytes = max_bytes
        self.row_group_rows = row_group_rows
        self.row_group_bytes = row_group_bytes
        self._pending: list[Any] = []  # record batches not yet written
        self._pending_rows = 0
        self._pending_bytes = 0
        self._done: list[tuple[OutputFile, int, str]] = []
        self._file: OutputFile | None = None
        self._writer: Any = None
        self._estimate = 0  # upper bound of the current part's size: sum of its groups' standalone sizes
        # Row groups are encoded and compressed in a thread of their own (Arrow releases the GIL), while
        # the next rows are read and parsed; one group at a time, in order.
        self._background: ThreadPoolExecutor | None = None
        self._writing: Future[None] | None = None

    def write_batch(self, rows: Sequence[tuple[bytes, bytes]]) -> None:
        """(JSON object, text) pairs formatted by `records.parquet_sql`: parsed once enough are held."""
        if not rows:
            return
        lines, texts = zip(*rows, strict=True)
        self._lines += lines
        self._texts += texts
        self._held += sum(map(len, lines)) + sum(map(len, texts))
        if self._held >= PARSE_BYTES or self._pending_rows + len(self._lines) >= self.row_group_rows:
            self._parse()
            if self._pending_rows >= self.row_group_rows or self._pending_bytes >= self.row_group_bytes:
                self._flush()

    def _parse(self) -> None:
        """The held rows as one record batch: the JSON parsed by pyarrow's reader (C++, off the GIL), the
        texts taken as they are, then every column given its type."""
        if not self._lines:
            return
        pa = self.pa
        block = max(PARSE_BYTES, max(map(len, self._lines)) + 1)  # a block must hold the longest line
        options = self._json.ReadOptions(block_size=block, use_threads=False)  # the export is the thread
        table = self._json.read_json(
            pa.BufferReader(b"".join(self._lines)), read_options=options, parse_options=self._parse_options
        )
        arrays = []
        for field in self.arrow_schema:
            if field.name == "text":  # the bytes and their offsets as they are: no copy per value
                # (not validated again: SQLite holds them as the UTF-8 that Python wrote)
                offsets = pa.array([0, *accumulate(map(len, self._texts))], pa.int32())
                data = pa.py_buffer(b"".join(self._texts))
                arrays.append(pa.StringArray.from_buffers(len(self._texts), offsets.buffers()[1], data))
                continue
            column = table.column(field.name).combine_chunks()
            if pa.types.is_map(field.type):
                column = pa.MapArray.from_arrays(
                    column.offsets,
                    column.values.field("key"),
                    column.values.field("value"),
                    type=field.type,
                    mask=column.is_null(),
                )
            elif column.type != field.type:
                column = column.cast(field.type)
            arrays.append(column)
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.arrow_schema)
        self._lines, self._texts, self._held = [], [], 0
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes

    def _flush(self) -> None:
        """Hand the pending rows to the background thread (once it has written the previous ones)."""
        self._parse()
        if not self._pending:
            return
        table = self.pa.Table.from_batches(self._pending, schema=self.arrow_schema)
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        self._wait()
        if self._background is None:
            self._background = ThreadPoolExecutor(1, thread_name_prefix="tgmon-parquet")
        self._writing = self._background.submit(self._write_table, table)

    def _wait(self) -> None:
        """Until the background write is done; its error, if any, is raised here."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def _stop(self) -> None:
        if self._background is not None:
            self._background.shutdown(wait=True)
            self._background = None

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

    def close(self) -> list[FileRecord]:
        try:
            self._flush()
            self._wait()
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
        with contextlib.suppress(Exception):  # the export already failed: its error is being raised
            self._wait()
        self._stop()
        if self._writer is not None:
            with contextlib.suppress(Exception):  # the export already failed; the file goes anyway
                self._writer.close()
        for part, _, _ in self._done:
            part.discard()
        if self._file is not None:
            self._file.discard()
        self._done, self._file, self._writer = [], None, None
