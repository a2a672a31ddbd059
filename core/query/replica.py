"""Copies of the query index in the pipeline's worker processes, kept in step with the main one.

The main process writes a snapshot of its index (each query's id and text) to a file, and hands every
task an `IndexSync`: that file, its revision, and the changes made since. A worker builds its copy from
the snapshot once, then applies the changes it has not seen; a new snapshot is written only when the
changes since the last one grow too many to send along, or the index is another one.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import tempfile
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

from core import heap
from core.query.index import Change, QueryIndex
from core.query.matcher import compile_query

log = logging.getLogger("tgmon.pipeline")

MAX_CHANGES = 256  # sent along with each task; past that, a new snapshot


@dataclass(frozen=True, slots=True)
class IndexSync:
    """How to bring a copy of the index up to date: the snapshot at revision `base`, then `changes`."""

    snapshot: str  # path of a pickled list of (query id, text); a new snapshot has a new path
    base: int
    changes: tuple[Change, ...]


PREFIX = "tgmon-queries-"


class SnapshotWriter:
    """The main process's side: snapshots of one index at a time, in a private directory of `parent`
    (the temporary directory), named after this process; those of processes that died without closing
    their pipeline are removed when this one makes its own."""

    def __init__(self, parent: Path | None = None) -> None:
        self._parent = parent
        self._directory: Path | None = None
        self._index: QueryIndex | None = None
        self._snapshot: Path | None = None
        self._base = 0
        self._count = 0

    def sync(self, index: QueryIndex) -> IndexSync:
        changes = index.changes_since(self._base) if index is self._index else None
        if self._snapshot is None or changes is None or len(changes) > MAX_CHANGES:
            self._write(index)
            changes = []
        assert self._snapshot is not None
        return IndexSync(str(self._snapshot), self._base, tuple(changes))

    def _write(self, index: QueryIndex) -> None:
        if self._directory is None:
            parent = self._parent or Path(tempfile.gettempdir())
            _remove_stale(parent)
            self._directory = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))  # 0700
        self._count += 1
        path = self._directory / f"{self._count}.pickle"  # the directory is this process's
        entries = [(query_id, query.text) for query_id, query in index.items()]
        with open(path, "wb") as file:
            pickle.dump(entries, file, protocol=pickle.HIGHEST_PROTOCOL)
        if self._snapshot is not None:  # no task still names it: batches prepare one after another
            self._snapshot.unlink(missing_ok=True)
        self._index, self._snapshot, self._base = index, path, index.revision
        log.info("query_snapshot queries=%s revision=%s", len(entries), index.revision)

    def close(self) -> None:
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = self._snapshot = self._index = None


def _remove_stale(parent: Path) -> None:
    for directory in parent.glob(f"{PREFIX}*-*"):
        pid = directory.name.removeprefix(PREFIX).split("-", 1)[0]
        try:
            if not pid.isdigit() or directory.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:  # its process is gone
            shutil.rmtree(directory, ignore_errors=True)
        except OSError:  # alive (another user's), or unreadable: not ours to judge
            continue


class IndexReplica:
    """A worker process's side: its copy of the index, brought up to date before each task."""

    def __init__(self) -> None:
        self.index = QueryIndex()
        self._snapshot: str | None = None
        self._revision = -1

    def catch_up(self, sync: IndexSync) -> QueryIndex:
        if sync.snapshot != self._snapshot:
            with open(sync.snapshot, "rb") as file:
                entries: list[tuple[Hashable, str]] = pickle.load(file)
            self.index = QueryIndex()
            self.index.add_many((query_id, compile_query(text)) for query_id, text in entries)
            self._snapshot, self._revision = sync.snapshot, sync.base
            heap.settle()  # long-lived, as the main process's copy
        for revision, query_id, text in sync.changes:
            if revision <= self._revision:
                continue
            if text is None:
                self.index.remove(query_id)
            else:
                self.index.add(query_id, compile_query(text))
            self._revision = revision
        return self.index
