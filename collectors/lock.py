"""One collector per database: a second one would read every channel twice."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType


class CollectorLockedError(Exception):
    """Another collector already runs against this database."""


class CollectorLock:
    """An exclusive, non-blocking `flock` on `<database>.collector.lock`; released when the process dies."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".collector.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise CollectorLockedError(
                f"another tgmon collector (pid {holder}) is already running on {self.database}; "
                "stop it first, or point DATABASE_URL at another database"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> CollectorLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
