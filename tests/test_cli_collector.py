"""`tgmon channels add / backfill / collect` with the fake Telegram client in place of a live login."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from core.cli import main
from tests.fakes.telethon_client import FakeTelegramClient, serve_cli
from tests.fakes.tl_builders import FIXED_DATE, make_channel, make_message


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeTelegramClient]:
    client = FakeTelegramClient()
    client.add_channel(
        make_channel(1001, "newsroom", "Newsroom"),
        [make_message(1001, i, f"post {i}", date=FIXED_DATE + timedelta(minutes=i)) for i in range(1, 121)],
    )

    serve_cli(monkeypatch, tmp_path, client)
    yield client


def run(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    return main(list(argv), stderr=err), err.getvalue()


def posts(path: Path = Path("tgmon.db")) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM posts").fetchone()[0])


def test_add_with_backfill(fake: FakeTelegramClient, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run("channels", "add", "https://t.me/s/newsroom", "--backfill", "50")
    assert code == 0, err
    assert "watching @newsroom (Newsroom), id 1001" in capsys.readouterr().out
    assert posts() == 50 and fake.disconnected


def test_add_unknown_channel_is_a_clear_error(fake: FakeTelegramClient) -> None:
    code, err = run("channels", "add", "@nosuchchannel")
    assert code == 2 and "cannot watch @nosuchchannel: no channel has this username" in err
    assert "Traceback" not in err


def test_pending_backfill_is_finished_by_backfill(fake: FakeTelegramClient) -> None:
    fake.break_after[1001] = (10, ConnectionError("reset"))
    code, err = run("channels", "add", "@newsroom", "--backfill", "100")
    assert code != 0  # the connection dropped mid-way
    assert posts() == 0  # batches of 100: nothing was committed yet
    code, err = run("backfill")
    assert code == 0, err
    assert posts() == 100


HOLD = """
import sys, time
from pathlib import Path
from collectors.lock import CollectorLock
CollectorLock(Path(sys.argv[1])).acquire()
print("held", flush=True)
time.sleep(30)
"""


def test_a_second_collector_is_refused(fake: FakeTelegramClient, capsys: pytest.CaptureFixture[str]) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, "tgmon.db"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for command in (["collect"], ["run"], ["backfill"]):
            code, err = run(*command)
            assert code == 2 and "already running" in err, command
        # adding a channel still works; the running collector does its backfill
        code, err = run("channels", "add", "@newsroom", "--backfill", "20")
        assert code == 0, err
        assert "the running collector will backfill it" in capsys.readouterr().out
        assert posts() == 0
    finally:
        holder.kill()
        holder.wait()
