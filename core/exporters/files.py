"""Output files of a dump: hashed while written, optionally gzipped, optionally split into parts.

Every file is written under a temporary name beside its target and renamed when the whole export
succeeded; a failed export leaves no half-written file behind. Size and SHA-256 are of the bytes on
disk (the compressed bytes when gzipped), computed while writing: nothing is read back.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

GZIP_LEVEL = 6  # zlib's default: level 9 costs about twice the time for a few per cent
_SYNC_EVERY = 1 << 20  # gzip: flush the compressor every MiB of input, so a part's size is known
_BUFFER = 256 << 10  # bytes of rows gathered before they go to the file
_GZIP_SLACK = 64  # trailer and the last block's header, beyond the stored-block worst case


class ExportError(Exception):
    """An export the user can fix: bad options, an unwritable output, a missing optional package."""


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One written file, as the manifest lists it; `name` is relative to the manifest's directory."""

    name: str
    path: Path | None  # None: standard output
    bytes: int
    sha256: str
    rows: int
    channel_id: int | None = None  # tdesktop: the channel the file holds


class HashingSink(io.RawIOBase):
    """Counts and hashes every byte on its way to `raw`."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        view = memoryview(data)
        self._raw.write(view)
        self.sha.update(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._raw.flush()


def _temporary(target: Path) -> Path:
    return target.with_name(f".{target.name}.partial")


class OutputFile:
    """One file: bytes in, optionally gzipped; `bound()` never underestimates its final size."""

    def __init__(self, target: Path | None, *, compress: bool, stdout: IO[bytes] | None = None) -> None:
        self.target = target
        self.rows = 0
        self._temp: Path | None = None
        if target is None:
            assert stdout is not None
            self._raw: IO[bytes] = stdout
        else:
            self._temp = _temporary(target)
            try:
                self._raw = open(self._temp, "wb")  # noqa: SIM115 - closed by close() or discard()
            except OSError as exc:
                raise ExportError(f"cannot write {target}: {exc.strerror or exc}") from None
        self.sink = HashingSink(self._raw)
        self._gzip = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self.sink, compresslevel=GZIP_LEVEL, mtime=0)
            if compress
            else None
        )
        self.stream: gzip.GzipFile | HashingSink = self._gzip if self._gzip is not None else self.sink
        self._pending = 0  # gzip: input bytes since the compressor was last flushed
        self._buffer: list[bytes] = []  # rows gathered into one write (one hash update, one compress call)
        self._buffered = 0

    def write(self, data: bytes) -> None:
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= _BUFFER:
            self._drain()

    def _drain(self) -> None:
        if not self._buffer:
            return
        self.stream.write(b"".join(self._buffer))
        self._buffer.clear()
        if self._gzip is not None:
            self._pending += self._buffered
        self._buffered = 0
        if self._pending >= _SYNC_EVERY:
            self.sync()

    def sync(self) -> None:
        """Push everything written so far to the file (gzip: through the compressor): `bound()` is exact."""
        self._drain()
        if self._gzip is not None and self._pending:
            self._gzip.flush(zlib.Z_SYNC_FLUSH)
            self._pending = 0

    def bound(self) -> int:
        """An upper bound of the file's size if it were closed now."""
        if self._gzip is None:
            return self.sink.size + self._buffered
        # deflate never grows input by more than 5 bytes per 16 KiB stored block
        pending = self._pending + self._buffered
        return self.sink.size + pending + pending // 3000 + _GZIP_SLACK

    def close(self) -> tuple[int, str]:
        """Finish the file; (size, SHA-256) of its bytes. The target is renamed into place by `commit`."""
        self._drain()
        if self._gzip is not None:
            self._gzip.close()
        self.sink.flush()
        if self.target is not None:
            self._raw.close()
        return self.sink.size, self.sink.sha.hexdigest()

    def commit(self, final: Path) -> None:
        if self._temp is not None:
            os.replace(self._temp, final)

    def discard(self) -> None:
        if self._temp is None:
            return
        try:
            if self._gzip is not None:
                self._gzip.close()
        except (OSError, ValueError):
            pass
        self._raw.close()
        self._temp.unlink(missing_ok=True)


def part_path(target: Path, number: int, suffixes: tuple[str, ...]) -> Path:
    """`dump.jsonl.gz`, 3 → `dump.part003.jsonl.gz`: the number goes before the format's suffixes."""
    name = target.name
    tail = ""
    stripped = True
    while stripped:
        stripped = False
        for suffix in suffixes:
            if name.endswith(suffix) and len(name) > len(suffix):
                name, tail = name[: -len(suffix)], suffix + tail
                stripped = True
    return target.with_name(f"{name}.part{number:03d}{tail}")


class Parts:
    """The files of one flat dump: a single file, or parts of at most `max_bytes` each.

    `header` is written at the start of every part (a CSV header). With `max_bytes`, a part ends before
    a row that would push it over the limit; a single row larger than the limit gets a part of its own.
    """

    def __init__(
        self,
        target: Path | None,
        *,
        compress: bool,
        max_bytes: int | None = None,
        suffixes: tuple[str, ...] = (),
        header: bytes = b"",
        stdout: IO[bytes] | None = None,
    ) -> None:
        if max_bytes is not None and target is None:
            raise ExportError("splitting needs an output file, not standard output")
        self.target = target
        self.compress = compress
        self.max_bytes = max_bytes
        self.suffixes = (*suffixes, ".gz")
        self.header = header
        self.stdout = stdout
        self.done: list[tuple[OutputFile, int, str]] = []
        self.current: OutputFile | None = None

    def _open(self) -> OutputFile:
        number = len(self.done) + 1
        target = self.target
        if target is not None and self.max_bytes is not None:
            target = part_path(target, number, self.suffixes)
        part = OutputFile(target, compress=self.compress, stdout=self.stdout)
        self.current = part
        if self.header:
            part.write(self.header)
        return part

    def file(self, incoming: int = 0) -> OutputFile:
        """The part to write the next `incoming` bytes to: a new one when they would not fit."""
        part = self.current or self._open()
        if self.max_bytes is None or not part.rows:
            return part
        limit = self.max_bytes - incoming - incoming // 3000
        if part.bound() > limit:
            part.sync()  # gzip: the bound counted pending input as if incompressible; measure it
            if part.bound() > limit:
                self._finish_current()
                part = self._open()
        return part

    def write_row(self, data: bytes) -> None:
        part = self.file(len(data))
        part.write(data)
        part.rows += 1

    def write_lines(self, lines: Sequence[bytes]) -> None:
        """Rows already formatted: one write for the lot, unless they would take the current part over
        the limit (then row by row, to end the part at the right row)."""
        if not lines:
            return
        data = b"".join(lines)
        part = self.current or self._open()
        if self.max_bytes is None or part.bound() + len(data) + len(data) // 3000 <= self.max_bytes:
            part.write(data)
            part.rows += len(lines)
            return
        for line in lines:
            self.write_row(line)

    def _finish_current(self) -> None:
        part = self.current
        if part is None:
            return
        size, sha = part.close()
        self.done.append((part, size, sha))
        self.current = None

    def close(self) -> list[FileRecord]:
        """Finish every part and rename them into place; a single part keeps the target's own name."""
        if self.current is None and not self.done:
            self._open()  # an empty export still writes its (empty, or header-only) file
        self._finish_current()
        records = []
        single = len(self.done) == 1
        for part, size, sha in self.done:
            final = part.target
            if final is not None and single and self.target is not None:
                final = self.target  # split requested, but everything fit in one file
            if final is not None:
                part.commit(final)
            records.append(FileRecord(final.name if final else "-", final, size, sha, part.rows))
        return records

    def discard(self) -> None:
        for part, _, _ in self.done:
            part.discard()
        if self.current is not None:
            self.current.discard()
        self.done, self.current = [], None
