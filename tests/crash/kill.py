"""Run a child to completion through seeded SIGKILLs, timed by its `crash:stored` lines.

The kill points are spread over the whole job: kill i waits until the job's committed batches (counted
over every run) reach a seeded position, then lets the child work a random part of one batch more. So a
kill lands in the middle of a batch, in the start-up and the re-reading of a restart (when several
positions coincide), or right after a commit, never all in one place.
"""

from __future__ import annotations

import os
import queue
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.crash.run_cli import MARK

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Kill:
    run: int
    at_batch: int  # committed batches of the job (all runs) when the signal went
    after_s: float  # seconds since the run started
    forced: bool = False  # the child killed itself right after a commit (run_cli --die-after)


@dataclass
class Batches:
    """What the `crash:stored` lines of one or more runs add up to."""

    batches: int = 0  # commits that stored something (new or edited posts)
    new: int = 0
    edited: int = 0
    unchanged: int = 0

    def add(self, line: str) -> bool:
        new, edited, unchanged = (int(x) for x in line.split()[1:4])
        self.new += new
        self.edited += edited
        self.unchanged += unchanged
        if new or edited:
            self.batches += 1
        return bool(new or edited)


@dataclass
class KillReport:
    kills: list[Kill] = field(default_factory=list)
    runs: int = 0
    seconds: float = 0.0
    totals: Batches = field(default_factory=Batches)
    outputs: list[str] = field(default_factory=list)  # stderr of every run, for failure messages

    def summary(self, name: str) -> str:
        forced = sum(k.forced for k in self.kills)
        return (
            f"{name}: {len(self.kills)} SIGKILLs ({forced} forced after a commit) over {self.runs} runs "
            f"in {self.seconds:.1f} s; {self.totals.batches} batches stored "
            f"({self.totals.new} new, {self.totals.edited} edited posts)"
        )


def cpu_seconds() -> float:
    """CPU time of this process and of every child it has waited for: the figure that matters on a
    shared machine, where wall time stretches with the load."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def child_env(database: Path, **extra: str) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": f"sqlite:///{database}", "LOG_LEVEL": "WARNING", "TG_API_ID": "1",
        "TG_API_HASH": "x", "BOT_TOKEN": "", "PYTHONPATH": str(ROOT),
    } | extra  # fmt: skip


def start_child(
    command: Sequence[str], database: Path, *, telegram: Path | None = None, die_after: int | None = None
) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tests.crash.run_cli"]
    if telegram is not None:
        argv += ["--telegram", str(telegram)]
    if die_after is not None:
        argv += ["--die-after", str(die_after)]
    return subprocess.Popen(
        [*argv, "--", *command], cwd=database.parent, env=child_env(database), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def run_once(command: Sequence[str], database: Path, *, telegram: Path | None = None) -> KillReport:
    """The uninterrupted run."""
    report = KillReport(runs=1)
    began = time.monotonic()
    child = start_child(command, database, telegram=telegram)
    out, err = child.communicate(timeout=600)
    report.seconds = time.monotonic() - began
    report.outputs.append(err)
    for line in out.splitlines():
        if line.startswith(MARK):
            report.totals.add(line)
    if child.returncode != 0:
        raise AssertionError(f"{command} failed ({child.returncode}):\n{err[-3000:]}")
    return report


class _Lines:
    """The child's stdout lines as a queue, read by a thread; stderr kept whole."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.err: list[str] = []
        assert child.stdout is not None and child.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(child.stdout, self.queue.put), daemon=True),
            threading.Thread(target=self._pump, args=(child.stderr, self.err.append), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _pump(stream: object, put: Callable[[str], object]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            put(line)
        put(None)  # type: ignore[arg-type]

    def join(self) -> str:
        for thread in self._threads:
            thread.join(timeout=30)
        return "".join(line for line in self.err if line)


def run_with_kills(
    command: Sequence[str],
    database: Path,
    *,
    kills: int,
    expected_batches: int,
    seed: int,
    telegram: Path | None = None,
    forced_run: int | None = 1,
    between: Callable[[int], object] | None = None,
    timeout: float = 600.0,
) -> KillReport:
    """SIGKILL the command `kills` times (one of them, in run `forced_run`, by the child itself right
    after its first commit), restart it after each, and let the last run finish; `between(run)` is
    called before every restart."""
    rng = random.Random(seed)
    # where the unforced kills land, in committed batches of the whole job; the last batches stay clear
    # (`expected_batches` may be an estimate: a backfill's deletions and limits make it smaller)
    last = max(int(expected_batches * 0.85) - 2, 1)
    planned = sorted(rng.randrange(last) for _ in range(kills - (forced_run is not None)))
    report = KillReport()
    began = time.monotonic()
    startup = 0.5  # seconds from spawn to the first commit of a restart, learnt as we go
    interval = 0.2  # seconds between two commits, learnt as we go
    while True:
        run = report.runs
        if run and between is not None:
            between(run)
        forced = run == forced_run and len(report.kills) < kills
        target = None if forced or len(report.kills) >= kills else planned.pop(0)
        spawned = time.monotonic()
        child = start_child(command, database, telegram=telegram, die_after=1 if forced else None)
        report.runs += 1
        lines = _Lines(child)
        last_commit = spawned
        deadline: float | None = None
        if target is not None and report.totals.batches >= target:  # lands in start-up or re-reading
            deadline = spawned + rng.uniform(0, startup)
        seen_commit = False
        while True:
            wait = None if deadline is None else max(deadline - time.monotonic(), 0)
            try:
                line = lines.queue.get(timeout=wait if wait is not None else timeout)
            except queue.Empty:
                if deadline is None:
                    raise AssertionError(f"run {run} of {command} stalled") from None
                child.send_signal(signal.SIGKILL)
                child.wait()
                report.kills.append(Kill(run, report.totals.batches, time.monotonic() - spawned))
                break
            if line is None:  # the child exited on its own (or killed itself)
                child.wait()
                if forced and child.returncode == -signal.SIGKILL:
                    report.kills.append(Kill(run, report.totals.batches, time.monotonic() - spawned, True))
                break
            if not line.startswith(MARK) or not report.totals.add(line):
                continue
            now = time.monotonic()
            if seen_commit:
                interval = 0.7 * interval + 0.3 * (now - last_commit)
            else:
                startup = 0.7 * startup + 0.3 * (now - spawned)
                seen_commit = True
            last_commit = now
            if target is not None and deadline is None and report.totals.batches >= target:
                deadline = now + rng.uniform(0, interval)
        err = lines.join()
        report.outputs.append(err)
        if child.returncode not in (0, -signal.SIGKILL):
            raise AssertionError(f"run {run} of {command} failed ({child.returncode}):\n{err[-3000:]}")
        if child.returncode == 0:
            break
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{command} did not finish within {timeout} s")
    report.seconds = time.monotonic() - began
    return report
