"""JSONL and CSV: one line per post, schema version 2 (docs/export.md)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from core.export import iso, post_record
from core.exporters.files import FileRecord, Parts
from core.exporters.source import ExportRow

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


def record(row: ExportRow) -> dict[str, Any]:
    """One post as a JSONL schema 2 record: schema 1's record plus matched queries and edit history."""
    rec = post_record(row.post)
    rec["schema"] = SCHEMA_VERSION
    rec["matched_queries"] = list(row.matched_queries)
    rec["edit_history"] = _history(row)
    return rec


def _history(row: ExportRow) -> list[dict[str, Any]]:
    return [
        {
            "version": v.version,
            "text": v.text,
            "edit_date": iso(v.edit_date),
            "recorded_at": iso(v.recorded_at),
        }
        for v in row.edit_history
    ]


_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # one encoder, not one per call


def _json_cell(value: list[Any]) -> str:
    return _json(value) if value else "[]"


def _safe(text: str | None) -> str:
    """A text cell a spreadsheet would take for a formula gets a leading apostrophe."""
    if not text:
        return ""
    return "'" + text if text.startswith(FORMULA_START) else text


def _raw(text: str | None) -> str:
    return text or ""


def csv_cells(row: ExportRow, *, safe: bool) -> list[Any]:
    """A row as CSV cells, the JSONL record's values: null → empty, booleans → true/false, lists and
    objects → JSON text; with `safe`, user-written text cells (text, channel names, author, forward
    origin) that start like a formula get a leading apostrophe."""
    p = row.post
    cell = _safe if safe else _raw
    return [
        SCHEMA_VERSION,
        p.channel_id,
        cell(p.channel_username or p.channel_title),
        cell(p.channel_title),
        p.message_id,
        iso(p.date),
        cell(p.text),
        p.lang,
        round(p.lang_confidence, 4),
        p.permalink,
        "" if p.views is None else p.views,
        "" if p.forwards is None else p.forwards,
        "" if p.replies is None else p.replies,
        "" if p.reactions is None else _json(p.reactions),
        p.media_type or "",
        cell(p.forwarded_from),
        "" if p.reply_to is None else p.reply_to,
        "" if p.album_id is None else p.album_id,
        cell(p.author),
        p.service_action or "",
        _json_cell(list(p.tags)),
        p.story_id or "",
        iso(p.edit_date) or "",
        p.versions,
        "true" if p.deleted_at is not None else "false",
        iso(p.deleted_at) or "",
        iso(p.collected_at) or "",
        p.content_hash,
        _json_cell(list(row.matched_queries)),
        _json_cell(_history(row)),
    ]


class _Line:
    """A write target that keeps the one line `csv.writer` just wrote."""

    __slots__ = ("line",)

    def __init__(self) -> None:
        self.line = ""

    def write(self, text: str) -> int:
        self.line = text
        return len(text)


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

    def write_batch(self, rows: Sequence[ExportRow]) -> None:
        for row in rows:
            self.parts.write_row((_json(record(row)) + "\n").encode("utf-8"))

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
        self.safe = safe
        self._line = _Line()
        self._csv = csv.writer(self._line, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        self._csv.writerow(CSV_COLUMNS)
        header = self._line.line.encode("utf-8-sig")  # the BOM, then the header row: in every part
        self.parts = Parts(
            target,
            compress=compress,
            max_bytes=max_bytes,
            suffixes=self.suffixes,
            header=header,
            stdout=stdout,
        )

    def write_batch(self, rows: Sequence[ExportRow]) -> None:
        for row in rows:
            self._csv.writerow(csv_cells(row, safe=self.safe))
            self.parts.write_row(self._line.line.encode("utf-8"))

    def close(self) -> list[FileRecord]:
        return self.parts.close()

    def discard(self) -> None:
        self.parts.discard()
