"""Crashes: `tgmon import`, the collector's backfill and the bot's delivery, SIGKILLed at seeded points.

Each job runs in a child process (tests/crash/run_cli.py runs the real CLI) and is killed, restarted,
and killed again until it finishes; the archive it leaves is then compared, table by table, with the
archive of one uninterrupted run of the same job. One kill of each storing job is forced right after a
batch commits, before its alerts are queued (the window of the known gap below).
The default run kills the import and the backfill 3 times each, the slow run 30 times; the bot, whose
restart costs about 2.5 s of CPU (importing aiogram), 2 and 10 times. Every case prints its figures
(kills, runs, CPU seconds); `pytest -s -k crash` shows them.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import sqlite3
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.render import FOLD_MAX_ITEMS
from tests.crash.compare import archive_differences, check_sound, match, outbox_differences, read_archive
from tests.crash.exports import build_exports
from tests.crash.kill import KillReport, child_env, cpu_seconds, run_once, run_with_kills, start_child
from tests.crash.run_cli import MARK
from tests.crash.setup import WORDS, fan_out, subscribe, watch
from tests.crash.telegram import Spec, mutate_unread
from tests.fakes.botapi import DEFAULT_TOKEN, FakeBotAPI


@dataclass(frozen=True)
class Size:
    name: str
    items: int  # messages (import), posts per channel (backfill), chats (bot)
    kills: int
    seed: int


FAST_KILLS, FAST_SEED = 3, 11
SLOW_KILLS, SLOW_SEED = 30, 12


@dataclass
class Outcome:
    killed: Path
    reference: Path
    report: KillReport
    reference_report: KillReport
    expected_posts: int
    cpu_s: float  # of the test and its children, from the first byte written to the last run


def sizes(fast: int, slow: int) -> list[object]:
    return [
        pytest.param(Size("fast", fast, FAST_KILLS, FAST_SEED), id="fast"),
        pytest.param(Size("slow", slow, SLOW_KILLS, SLOW_SEED), id="slow", marks=pytest.mark.slow),
    ]


def show(outcome: Outcome, name: str) -> None:
    print(outcome.report.summary(f"{name} killed"))
    print(outcome.reference_report.summary(f"{name} uninterrupted"))
    print(f"{name}: {outcome.cpu_s:.1f} s of CPU in all")


# import


@pytest.fixture(scope="module", params=sizes(fast=1_500, slow=16_000))
def imported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    size: Size = request.param
    base = tmp_path_factory.mktemp(f"import-{size.name}")
    cpu = cpu_seconds()
    exports = build_exports(base / "exports", size.items, seed=size.seed, now=time.time())
    killed, reference = base / "killed" / "tgmon.db", base / "reference" / "tgmon.db"
    subscribe(killed)
    subscribe(reference)
    command = ["import", str(exports.old), str(exports.new)]
    with ThreadPoolExecutor(1) as pool:  # the uninterrupted run beside the killed ones
        uninterrupted = pool.submit(run_once, command, reference)
        report = run_with_kills(
            command, killed, kills=size.kills, expected_batches=exports.batches, seed=size.seed
        )
        outcome = Outcome(killed, reference, report, uninterrupted.result(), size.items, cpu_seconds() - cpu)
    show(outcome, f"import {size.name}")
    return outcome


def check_archive(outcome: Outcome, kills: int) -> None:
    report, reference = outcome.report, outcome.reference_report
    assert len(report.kills) >= kills, f"only {len(report.kills)} kills landed: {report.kills}"
    assert any(kill.forced for kill in report.kills)
    # the runs together stored what the one run stored, batch by batch; a kill that lands between a
    # commit and the child's line about it hides that batch from the count, so at most one per kill
    hidden = reference.totals.batches - report.totals.batches
    assert 0 <= hidden <= len(report.kills)
    assert report.totals.new + report.totals.edited <= reference.totals.new + reference.totals.edited
    assert check_sound(outcome.killed) == []
    assert check_sound(outcome.reference) == []
    got, want = read_archive(outcome.killed), read_archive(outcome.reference)
    assert len(want.posts) == outcome.expected_posts
    assert archive_differences(got, want) == []
    found = match(outcome.killed, WORDS)
    assert found == match(outcome.reference, WORDS)
    assert any(found.values())


def test_import_survives_sigkill(imported: Outcome, request: pytest.FixtureRequest) -> None:
    check_archive(imported, request.node.callspec.params["imported"].kills)
    versions = read_archive(imported.killed).versions
    assert any(version > 1 for _, _, version in versions)  # the newer export's edits are there


def test_import_alerts_survive_sigkill(imported: Outcome) -> None:
    got, want = read_archive(imported.killed), read_archive(imported.reference)
    assert want.outbox, "the uninterrupted import queued no alerts: the test would prove nothing"
    assert outbox_differences(got, want) == []


# backfill


@pytest.fixture(scope="module", params=sizes(fast=300, slow=2_000))
def backfilled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    size: Size = request.param
    base = tmp_path_factory.mktemp(f"backfill-{size.name}")
    cpu = cpu_seconds()
    spec = Spec(size.seed, channels=4, posts=size.items, start=time.time() - 12 * 3600, log=str(base / "log"))
    telegram = spec.save(base / "telegram.json")
    killed, reference = base / "killed" / "tgmon.db", base / "reference" / "tgmon.db"
    for database in (killed, reference):
        subscribe(database)
        watch(database, spec)
    batches = 4 * size.items // 100
    report = run_with_kills(
        ["backfill"], killed, kills=size.kills, expected_batches=batches, seed=size.seed,
        telegram=telegram, between=lambda run: mutate_unread(spec, killed, run),
    )  # fmt: skip
    uninterrupted = run_once(["backfill"], reference, telegram=telegram)  # sees every change at once
    with sqlite3.connect(reference) as db:
        expected = db.execute("SELECT COUNT(*) FROM posts").fetchone()[0]
    outcome = Outcome(killed, reference, report, uninterrupted, expected, cpu_seconds() - cpu)
    show(outcome, f"backfill {size.name}")
    return outcome


def test_backfill_survives_sigkill(backfilled: Outcome, request: pytest.FixtureRequest) -> None:
    check_archive(backfilled, request.node.callspec.params["backfilled"].kills)
    got = read_archive(backfilled.killed)
    assert all(state[5] == 0 for state in got.channels.values())  # every backfill finished
    edited = [key for key, post in got.posts.items() if post[1].startswith("EDITED")]
    assert edited, "no post was edited between the kills"


def test_backfill_alerts_survive_sigkill(backfilled: Outcome) -> None:
    got, want = read_archive(backfilled.killed), read_archive(backfilled.reference)
    assert want.outbox
    assert outbox_differences(got, want) == []


# the bot's delivery


ALERT_WORD = re.compile(r"crash(\d+)x")


def pending_alerts(database: Path) -> set[int]:
    with sqlite3.connect(database) as db:
        found = db.execute("SELECT story_id FROM outbox WHERE status = 'pending'").fetchall()
    return {int(story.removeprefix("story-")) for (story,) in found}


def delivered(server: FakeBotAPI) -> list[set[int]]:
    """The alerts of every message Telegram accepted (a folded message carries several)."""
    return [{int(n) for n in ALERT_WORD.findall(call.text or "")} for call in server.sent("sendMessage")]


BOT_SIZES = [
    pytest.param(Size("fast", 60, 2, FAST_SEED), id="fast"),
    pytest.param(Size("slow", 300, 10, SLOW_SEED), id="slow", marks=pytest.mark.slow),
]  # a restart costs the bot about 2.5 s of CPU (importing aiogram): fewer kills than the others


@pytest.mark.parametrize("size", BOT_SIZES)
async def test_bot_fan_out_survives_sigkill(size: Size, tmp_path: Path) -> None:
    """Alerts to `size.items` chats, 3 each (folded into one message per chat), the bot SIGKILLed while
    it delivers: every alert arrives, and only the sends in flight at a kill arrive twice."""
    per_chat, step = 3, max(size.items // (size.kills + 1) // 2, 2)
    database = tmp_path / "tgmon.db"
    await fan_out(database, size.items, per_chat)
    alerts = size.items * per_chat
    rng = random.Random(size.seed)
    in_flight: list[int] = []  # per kill: messages of that run Telegram accepted, their alerts still pending
    runs, began, cpu = 0, time.monotonic(), cpu_seconds()
    async with FakeBotAPI(poll_wait=0.2) as server:
        env = child_env(database, BOT_TOKEN=DEFAULT_TOKEN, BOT_API_URL=server.url, FOLD_WINDOW="0")
        while True:
            bot = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "core.cli", "bot", cwd=tmp_path, env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            runs += 1
            before = len(server.sent("sendMessage"))
            try:
                if len(in_flight) < size.kills:
                    target = len(server.sent("sendMessage")) + rng.randint(1, step)
                    await server.wait_for("sendMessage", count=target, timeout=120)
                    if rng.random() < 0.5:  # else at once: the answer may not have reached the bot yet
                        await asyncio.sleep(rng.uniform(0, 0.03))
                    assert bot.returncode is None, await failure(bot)
                    bot.kill()
                    await bot.wait()
                    pending = pending_alerts(database)
                    in_flight.append(sum(1 for carried in delivered(server)[before:] if carried <= pending))
                    continue
                async with asyncio.timeout(120):
                    while pending_alerts(database):
                        assert bot.returncode is None, await failure(bot)
                        await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)  # nothing more goes out once the outbox is empty
                break
            finally:
                if bot.returncode is None:
                    bot.kill()
                    await bot.wait()
        messages = delivered(server)
    with sqlite3.connect(database) as db:
        statuses = dict(db.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())
    sent = Counter(alert for carried in messages for alert in carried)
    seen: set[int] = set()
    repeated = 0  # messages that brought nothing new
    for carried in messages:
        repeated += carried <= seen
        seen |= carried
    print(
        f"bot {size.name}: {len(in_flight)} SIGKILLs over {runs} runs in {time.monotonic() - began:.1f} s; "
        f"{len(messages)} messages for {alerts} alerts; {repeated} messages repeated "
        f"({sum(sent.values()) - len(sent)} alerts); accepted but not marked sent at each kill: {in_flight}; "
        f"{cpu_seconds() - cpu:.1f} s of CPU"
    )
    assert len(in_flight) == size.kills
    assert statuses == {"sent": alerts}
    assert set(sent) == set(range(alerts)), f"lost: {sorted(set(range(alerts)) - set(sent))[:10]}"
    # a repeat is a message Telegram had accepted when the process died, before it was marked sent
    assert sum(sent.values()) - len(sent) <= sum(in_flight) * FOLD_MAX_ITEMS
    assert repeated <= sum(in_flight)
    assert max(in_flight) <= 8  # the deliverer's concurrency: no more sends are ever in flight


async def failure(process: asyncio.subprocess.Process) -> str:
    """What a child that exited on its own said."""
    assert process.stderr is not None
    return (await process.stderr.read()).decode(errors="replace")[-3000:]


# two collectors on one database


def texts(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return [text for (text,) in db.execute("SELECT text FROM posts")]


def test_second_collector_refuses_and_ingests_nothing(tmp_path: Path) -> None:
    """A real collector holds the database; a second one (another process, another Telegram with
    other posts) refuses plainly and stores nothing; once the first is gone, the second collects."""
    start = time.time() - 12 * 3600
    first = Spec(21, channels=1, posts=300, start=start, tag=" first").save(tmp_path / "first.json")
    second = Spec(21, channels=1, posts=400, start=start, tag=" second").save(tmp_path / "second.json")
    database = tmp_path / "tgmon.db"
    watch(database, Spec.load(first))
    collector = start_child(["collect"], database, telegram=first)
    try:
        assert collector.stdout is not None
        first_line = collector.stdout.readline()
        assert first_line.startswith(MARK), first_line  # collecting: it holds the lock
        stored = len(texts(database))
        for command in (["collect"], ["backfill"]):
            other = start_child(command, database, telegram=second)
            out, err = other.communicate(timeout=60)
            assert other.returncode == 2, (command, err)
            assert f"another tgmon collector (pid {collector.pid}) is already running" in err
            assert "Traceback" not in err and MARK not in out
        assert not [text for text in texts(database) if text.endswith(" second")]
        assert collector.poll() is None
    finally:
        collector.send_signal(signal.SIGKILL)
        collector.wait()
    assert stored > 0
    # the first one SIGKILLed: its lock went with it, and the second one now reads its newer posts
    other = start_child(["collect"], database, telegram=second)
    try:
        assert other.stdout is not None
        while not any(text.endswith(" second") for text in texts(database)):
            line = other.stdout.readline()
            assert line, other.communicate()[1][-3000:]
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()


# stories of old posts across a restart


def test_import_of_old_posts_keeps_stories_across_a_restart(tmp_path: Path) -> None:
    """A month-old channel whose second half repeats its first: killed after the first batch, the
    import must still fold each repeat into the story of its original."""
    rng = random.Random(5)
    words = [f"{word}{n}" for word in ("river", "market", "bridge", "council", "harbour") for n in range(40)]
    texts = [" ".join(rng.choices(words, k=40)) for _ in range(300)]
    start = int(time.time()) - 30 * 86400
    messages = [
        {"id": i + 1, "type": "message", "date": "2026-01-01T00:00:00", "date_unixtime": str(start + 60 * i),
         "text": texts[i % 300], "text_entities": [{"type": "plain", "text": texts[i % 300]}]}
        for i in range(600)
    ]  # fmt: skip
    export = tmp_path / "result.json"
    chat = {"name": "Old", "type": "public_channel", "id": 5_550_001, "messages": messages}
    export.write_text(json.dumps(chat), encoding="utf-8")
    killed, reference = tmp_path / "killed" / "tgmon.db", tmp_path / "reference" / "tgmon.db"
    killed.parent.mkdir()
    reference.parent.mkdir()
    command = ["import", str(export)]
    report = run_with_kills(command, killed, kills=1, expected_batches=2, seed=1, forced_run=0)
    run_once(command, reference)
    assert [kill.forced for kill in report.kills] == [True]
    got, want = read_archive(killed), read_archive(reference)
    assert sum(post[-2] != f"5550001:{key[1]}" for key, post in want.posts.items()) == 300  # repeats fold
    assert archive_differences(got, want) == []
