"""JSONL and CSV: one line per post, schema version 2 (docs/export.md); `records` formats the lines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO

from core.exporters.files import FileRecord, Parts

SCHEMA_VERSION = 2  # 1 + matched_queries, edit_history; every version 1 field is unchanged

# JSONL schema 2's fields in order; CSV has the same columns without `entities` (UTF-16 offsets into
# the text mean nothing in a spreadsheet).
FIELDS = (
    "schema", "channel_id", "channel", "channel_title", "message_id", "date", "text", "entities", "lang",
    "lang_confidence", "url", "views", "forwards", "replies", "reactions", "media_type", "forwarded_from",
    "reply_to", "album_id", "author", "service_action", "tags", "story_id", "edited", "versions", "deleted",
    "deleted_at", "collected_at", "content_hash", "matched_queries", "edit_history",
)  # fmt: skip
CSV_COLUMNS = tuple(name for name in FIELDS if name != "entities")

# OWASP's formula triggers, plus the apostrophe itself so that removing one leading apostrophe always
# gives the original value back.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


class JsonlWriter:
    format = "jsonl"
    schema = SCHEMA_VERSION
    suffixes = (".jsonl", ".json", ".ndjson")

    def __init__(
        self,
        target: Path | None,
        *,
        compress: bool = False,
        max_bytes: int | None = None,
        stdout: IO[bytes] | None = None,
    ) -> None:
        self.parts = Parts(
            target, compress=compress, max_bytes=max_bytes, suffixes=self.suffixes, stdout=stdout
        )

    def write_batch(self, rows: Sequence[bytes]) -> None:
        """Lines formatted by `records.jsonl_sql`, each ending with its line break."""
        self.parts.write_lines(rows)

    def close(self) -> list[FileRecord]:
        return self.parts.close()

    def discard(self) -> None:
        self.parts.discard()


class CsvWriter:
    """RFC 4180: comma, double quotes doubled, CRLF; UTF-8 with a BOM so that Excel reads it as UTF-8."""

    format = "csv"
    schema = SCHEMA_VERSION
    suffixes = (".csv",)

    def __init__(
        self,
        target: Path | None,
        *,
        compress: bool = False,
        max_bytes: int | None = None,
        stdout: IO[bytes] | None = None,
        safe: bool = True,
    ) -> None:
        self.safe = safe  # applied by `records.csv_sql`, which formats the rows
        header = (",".join(CSV_COLUMNS) + "\r\n").encode("utf-8-sig")  # the BOM, the header: in every part
        self.parts = Parts(
            target,
            compress=compress,
            max_bytes=max_bytes,
            suffixes=self.suffixes,
            header=header,
            stdout=stdout,
        )

    def write_batch(self, rows: Sequence[bytes]) -> None:
        """Rows formatted by `records.csv_sql`, each ending with `\r\n`."""
        self.parts.write_lines(rows)

    def close(self) -> list[FileRecord]:
        return self.parts.close()

    def discard(self) -> None:
        self.parts.discard()
