"""Copies of the query index in worker processes: snapshot, journal of changes, catching up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.query import index as index_module
from core.query import replica as replica_module
from core.query.index import QueryIndex
from core.query.matcher import Document, compile_query
from core.query.replica import IndexReplica, SnapshotWriter

POSTS = [
    "Протестующие собрались в центре Алматы",
    "Protesters gathered in Almaty on Sunday",
    "Мітингувальники зібралися в центрі Алмати",
    "The weather in Astana is sunny",
]


def matched(index: QueryIndex) -> list[list[tuple[object, tuple[tuple[int, int], ...]]]]:
    found = []
    for text in POSTS:
        doc = Document.of(text, lang="ru" if "Прот" in text else "uk" if "Міт" in text else "en")
        found.append(sorted((m.query_id, tuple(m.spans)) for m in index.match(doc)))
    return found


def test_the_journal_gives_the_changes_since_a_revision() -> None:
    index = QueryIndex()
    assert index.changes_since(0) == []
    index.add(1, compile_query("Алматы"))
    index.add("b", compile_query("protest*"))
    index.remove(1)
    index.remove(99)  # not there: no change
    assert index.revision == 3
    assert index.changes_since(0) == [(1, 1, "Алматы"), (2, "b", "protest*"), (3, 1, None)]
    assert index.changes_since(2) == [(3, 1, None)]
    assert index.changes_since(3) == []
    assert index.changes_since(4) is None  # a revision this index never had


def test_the_journal_forgets_what_is_too_old() -> None:
    index = QueryIndex()
    for n in range(index_module.JOURNAL + 5):
        index.add(n % 3, compile_query(f"word{n}"))
    assert index.changes_since(index.revision - index_module.JOURNAL) is not None
    assert index.changes_since(4) is None


def test_a_replica_matches_as_the_index_through_changes_and_snapshots(tmp_path: Path) -> None:
    index = QueryIndex()
    index.add(1, compile_query("Алматы"))
    index.add(2, compile_query("protest*"))
    writer = SnapshotWriter()
    replica = IndexReplica()
    try:
        first = writer.sync(index)
        assert first.changes == () and first.base == index.revision
        assert matched(replica.catch_up(first)) == matched(index)
        index.add(3, compile_query('"зібратися" OR weather'))  # stems of Ukrainian, and a plain word
        index.remove(1)
        index.add(2, compile_query("protest* -weather"))  # replaced
        second = writer.sync(index)
        assert second.snapshot == first.snapshot and len(second.changes) == 4  # a replace is two changes
        assert matched(replica.catch_up(second)) == matched(index)
        assert matched(replica.catch_up(first)) == matched(index)  # an older task changes nothing back
        assert {m[0] for post in matched(index) for m in post} == {2, 3}
        for n in range(replica_module.MAX_CHANGES + 1):
            index.add(100 + n, compile_query(f"слово{n}"))
        index.add(4, compile_query("Astana"))
        third = writer.sync(index)
        assert third.snapshot != second.snapshot and third.changes == ()
        assert not Path(second.snapshot).exists()  # the old snapshot is gone
        assert matched(replica.catch_up(third)) == matched(index)
        assert len(replica.catch_up(third)) == len(index)
        other = QueryIndex()  # another index (a pipeline given new queries): a snapshot of its own
        other.add(1, compile_query("weather"))
        fourth = writer.sync(other)
        assert fourth.snapshot != third.snapshot and matched(replica.catch_up(fourth)) == matched(other)
    finally:
        writer.close()
    assert not Path(first.snapshot).parent.exists()


def test_snapshots_of_processes_that_died_are_removed(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead = int(finished.stdout)
    stale = tmp_path / f"{replica_module.PREFIX}{dead}-abc"
    live = tmp_path / f"{replica_module.PREFIX}{os.getpid()}-def"
    other = tmp_path / "tgmon-queries-notes"  # not a snapshot directory
    for directory in (stale, live, other):
        directory.mkdir()
        (directory / "1.pickle").write_bytes(b"x")
    index = QueryIndex()
    index.add(1, compile_query("Алматы"))
    writer = SnapshotWriter(tmp_path)
    try:
        sync = writer.sync(index)
        assert not stale.exists() and live.exists() and other.exists()
        assert Path(sync.snapshot).parent.name.startswith(f"{replica_module.PREFIX}{os.getpid()}-")
    finally:
        writer.close()
