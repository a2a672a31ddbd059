"""A second collector on the same database refuses to run, across processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from collectors.lock import CollectorLock, CollectorLockedError

HOLD = """
import sys, time
from pathlib import Path
from collectors.lock import CollectorLock
lock = CollectorLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(30)
"""


def test_second_collector_in_another_process_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "tgmon.db"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(CollectorLockedError, match=rf"pid {holder.pid}\).*already running"):
            CollectorLock(db).acquire()
    finally:
        holder.kill()
        holder.wait()
    with CollectorLock(db):  # a killed holder leaves no stale lock behind
        pass


def test_lock_is_reentrant_after_release(tmp_path: Path) -> None:
    lock = CollectorLock(tmp_path / "x.db")
    lock.acquire()
    lock.release()
    with CollectorLock(tmp_path / "x.db"):
        pass
