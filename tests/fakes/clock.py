"""A clock for tests: wall time and monotonic time that move only when told to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START = datetime(2024, 5, 15, 10, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = START) -> None:
        self.wall = start
        self.mono = 1000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds
