"""The `tgmon` command, driven in-process through core.cli.main (plain sync tests: main calls asyncio.run)."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import types
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import __version__
from core.cli import main
from core.settings import Settings
from core.storage.sqlite import SqliteArchive
from tests.conftest import FIXTURES

TD = FIXTURES / "tdesktop"
EXPORTS = (TD / "single_chat", TD / "account.result.json")
BAD = sorted(p.name for p in TD.glob("bad_*.result.json"))

TEST_CHANNEL = 1234567890  # "Тестовый канал" in single_chat/result.json
CHANNEL_A = 1500000001  # "Канал А" in account.result.json
RECORD_KEYS = {
    "channel_id",
    "channel",
    "message_id",
    "date",
    "text",
    "lang",
    "url",
    "views",
    "forwards",
    "edited",
    "deleted",
}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@dataclass
class Result:
    code: int
    out: str
    err: str  # main's stderr argument and sys.stderr together


Tgmon = Callable[..., Result]


@pytest.fixture(autouse=True)
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh archive path; nothing read from the real environment or a .env in the cwd."""
    path = tmp_path / "tgmon.db"
    isolate(monkeypatch, tmp_path, path)
    return path


@pytest.fixture
def tgmon(capsys: pytest.CaptureFixture[str]) -> Tgmon:
    def call(*argv: str) -> Result:
        capsys.readouterr()
        err = io.StringIO()
        code = main(list(argv), stderr=err)
        out, sys_err = capsys.readouterr()
        return Result(code, out, err.getvalue() + sys_err)

    return call


def count_posts(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM posts").fetchone()[0])


def isolate(monkeypatch: pytest.MonkeyPatch, cwd: Path, database: Path) -> None:
    """Nothing read from the real environment or a .env in the cwd; the archive at `database`."""
    fields = {name.upper() for name in Settings.model_fields}
    for key in list(os.environ):
        if key.upper() in fields or key.upper().startswith(("TG_", "BOT_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("LANG_ENGINE", "fasttext")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture exports imported once per module by `tgmon import`; tests get a copy."""
    where = tmp_path_factory.mktemp("template")
    path = where / "tgmon.db"
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, where, path)
        err = io.StringIO()
        assert main(["import", *map(str, EXPORTS)], stderr=err) == 0, err.getvalue()
    return path


@pytest.fixture
def imported(template: Path, db: Path) -> int:
    """This test's archive holds the imported fixture exports; returns how many posts are stored."""
    shutil.copy2(template, db)
    stored = count_posts(db)
    assert stored > 0
    return stored


def read_jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def export(tgmon: Tgmon, tmp_path: Path) -> Callable[..., list[dict[str, Any]]]:
    """Run `export --format jsonl -o FILE [filters]` and return the parsed records."""
    runs = itertools.count()

    def call(*filters: str) -> list[dict[str, Any]]:
        target = tmp_path / f"export{next(runs)}.jsonl"
        result = tgmon("export", "--format", "jsonl", "-o", str(target), *filters)
        assert result.code == 0, result.err
        records = read_jsonl(target.read_text(encoding="utf-8"))
        assert f"exported {len(records)} posts" in result.err
        return records

    return call


# import


def test_import_prints_a_report(tgmon: Tgmon, db: Path) -> None:
    result = tgmon("import", *map(str, EXPORTS))
    assert result.code == 0, result.err
    assert result.out.startswith("imported ")
    assert " 0 already archived" in result.out
    assert count_posts(db) > 0


def test_import_with_a_worker_process_stores_what_one_process_stores(
    tgmon: Tgmon, db: Path, imported: int, template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.unlink()
    monkeypatch.setenv("PIPELINE_WORKERS", "1")
    result = tgmon("import", *map(str, EXPORTS))
    assert result.code == 0, result.err
    query = "SELECT channel_id, message_id, text, lang, tags, story_id, content_hash FROM posts ORDER BY 1, 2"
    with closing(sqlite3.connect(db)) as mine, closing(sqlite3.connect(template)) as single:
        rows = mine.execute(query).fetchall()
        assert len(rows) == imported and rows == single.execute(query).fetchall()


def test_import_twice_stores_nothing_twice(tgmon: Tgmon, db: Path, imported: int) -> None:
    again = tgmon("import", str(TD / "single_chat" / "result.json"), str(TD / "account.result.json"))
    assert again.code == 0, again.err
    assert " 0 new, 0 changed" in again.out
    assert count_posts(db) == imported


@pytest.mark.parametrize(
    ("bad", "phrase"),
    [
        ("bad_date.result.json", "'date_unixtime' is not a number"),
        ("bad_messages_not_list.result.json", "'messages' is a JSON object, not an array"),
        ("bad_truncated.result.json", "truncated"),
        ("bad_utf8.result.json", "not UTF-8"),
    ],
)
def test_import_bad_file_changes_nothing(
    tgmon: Tgmon, db: Path, imported: int, bad: str, phrase: str
) -> None:
    result = tgmon("import", str(TD / bad))
    assert result.code == 2
    assert bad in result.err and phrase in result.err
    assert "Nothing was imported" in result.err
    assert "Traceback" not in result.err
    assert count_posts(db) == imported


def test_every_bad_fixture_is_covered() -> None:
    assert BAD == [
        "bad_date.result.json",
        "bad_messages_not_list.result.json",
        "bad_truncated.result.json",
        "bad_utf8.result.json",
    ]


@pytest.mark.parametrize("bad", BAD)
def test_import_good_and_bad_together_imports_nothing(tgmon: Tgmon, db: Path, bad: str) -> None:
    result = tgmon("import", *map(str, EXPORTS), str(TD / bad))
    assert result.code == 2
    assert "Nothing was imported" in result.err
    assert count_posts(db) == 0


def test_import_missing_path(tgmon: Tgmon, tmp_path: Path) -> None:
    result = tgmon("import", str(tmp_path / "nowhere" / "result.json"))
    assert result.code == 2
    assert "cannot read the file" in result.err and "Nothing was imported" in result.err


def test_import_directory_without_result_json(tgmon: Tgmon, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = tgmon("import", str(tmp_path / "empty"))
    assert result.code == 2
    assert "no result.json" in result.err


# export


def test_export_jsonl_records(export: Callable[..., list[dict[str, Any]]], imported: int) -> None:
    records = export()
    assert len(records) == imported
    for record in records:
        assert record.keys() >= RECORD_KEYS
        assert ISO_UTC.match(record["date"]), record["date"]
        assert record["edited"] is None or ISO_UTC.match(record["edited"])
        assert isinstance(record["deleted"], bool) and not record["deleted"]
        assert isinstance(record["channel_id"], int) and isinstance(record["message_id"], int)
        assert record["url"].startswith("https://t.me/")
    assert [r["date"] for r in records] == sorted(r["date"] for r in records)  # in order of post date
    assert len({(r["channel_id"], r["message_id"]) for r in records}) == len(records)

    post = next(r for r in records if (r["channel_id"], r["message_id"]) == (TEST_CHANNEL, 2))
    assert post["channel"] == "Тестовый канал"  # no username in an export: the title
    assert post["date"] == "2023-11-14T22:13:20Z"  # date_unixtime, not the exporter's local time
    assert post["edited"] == "2023-11-14T23:00:00Z"
    assert post["text"].startswith("🔥 Привет, мир!")
    assert post["lang"] == "ru"
    assert post["url"] == f"https://t.me/c/{TEST_CHANNEL}/2"


def test_export_to_stdout(tgmon: Tgmon, imported: int) -> None:
    result = tgmon("export", "-o", "-")
    assert result.code == 0, result.err
    records = read_jsonl(result.out)
    assert len(records) == imported
    assert all(r.keys() >= RECORD_KEYS for r in records)
    assert f"exported {imported} posts" in result.err


def test_export_empty_archive(export: Callable[..., list[dict[str, Any]]]) -> None:
    assert export() == []


def test_export_lang_filter(export: Callable[..., list[dict[str, Any]]], imported: int) -> None:
    everything = export()
    russian = export("--lang", "ru")
    assert 0 < len(russian) < len(everything)
    assert russian == [r for r in everything if r["lang"] == "ru"]
    assert export("--lang", "RU") == russian
    assert export("--lang", "xx") == []


@pytest.mark.parametrize(
    ("filters", "lo", "hi"),
    [
        (("--since", "2024-01-01"), "2024-01-01T00:00:00Z", None),
        (("--until", "2024-01-01"), None, "2024-01-01T00:00:00Z"),
        (("--since", "2024-01-01", "--until", "2024-01-02"), "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"),
        (("--since", "2024-01-01T10:02"), "2024-01-01T10:02:00Z", None),
        (("--since", "2024-01-01T13:02+03:00"), "2024-01-01T10:02:00Z", None),  # converted to UTC
        (
            ("--since", "2023-11-15T00:00", "--until", "2023-11-15T02:00"),
            "2023-11-15T00:00:00Z",
            "2023-11-15T02:00:00Z",
        ),
    ],
)
def test_export_date_filters(
    export: Callable[..., list[dict[str, Any]]],
    imported: int,
    filters: tuple[str, ...],
    lo: str | None,
    hi: str | None,
) -> None:
    everything = export()
    narrowed = export(*filters)
    expected = [r for r in everything if (lo is None or r["date"] >= lo) and (hi is None or r["date"] < hi)]
    assert narrowed == expected
    assert 0 < len(narrowed) < len(everything)


def test_export_bad_date_is_a_usage_error(tgmon: Tgmon, imported: int) -> None:
    with pytest.raises(SystemExit) as info:  # argparse's own exit
        tgmon("export", "--since", "yesterday")
    assert info.value.code == 2


@pytest.mark.parametrize("ref", [str(CHANNEL_A), f"-100{CHANNEL_A}"])
def test_export_channel_filter(export: Callable[..., list[dict[str, Any]]], imported: int, ref: str) -> None:
    everything = export()
    only_a = export("--channel", ref)
    assert only_a == [r for r in everything if r["channel_id"] == CHANNEL_A]
    assert [r["text"] for r in only_a] == ["Первый пост", "Второй пост"]
    assert all(r["channel"] == "Канал А" for r in only_a)


def test_export_channel_by_username(
    db: Path, imported: int, export: Callable[..., list[dict[str, Any]]]
) -> None:
    asyncio.run(add_channel(db, TEST_CHANNEL, "testchannel", title="", watched=None))  # username learnt later
    records = export("--channel", "@testchannel")
    assert records and all(r["channel_id"] == TEST_CHANNEL for r in records)
    assert all(r["channel"] == "testchannel" and r["channel_title"] == "Тестовый канал" for r in records)
    assert [r for r in export() if r["channel_id"] == TEST_CHANNEL] == records
    assert export("--channel", "@TestChannel") == records  # usernames are case-insensitive


def test_export_unknown_channel(tgmon: Tgmon, imported: int, tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    result = tgmon("export", "-o", str(target), "--channel", "@nobody_here")
    assert result.code == 2
    assert "no channel '@nobody_here'" in result.err and "channels list" in result.err


def test_export_to_unwritable_path(tgmon: Tgmon, imported: int, tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "out.jsonl"
    result = tgmon("export", "-o", str(target))
    assert result.code == 2
    assert str(target) in result.err and "Traceback" not in result.err


# search


def test_search_by_cyrillic_word(tgmon: Tgmon, imported: int) -> None:
    result = tgmon("search", "Привет")
    assert result.code == 0, result.err
    assert f"https://t.me/c/{TEST_CHANNEL}/2" in result.out
    assert "[Привет], мир!" in result.out  # the matched word is marked in the snippet
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d Тестовый канал ru$", result.out, re.M)


@pytest.mark.parametrize(
    "query", [("привет",), ("ПРИВЕТ",), ("еще",), ("Привет", "мир"), ('"привет мир"',), ("прив*",)]
)
def test_search_folds_case_and_yo(tgmon: Tgmon, imported: int, query: tuple[str, ...]) -> None:
    result = tgmon("search", *query)
    assert result.code == 0, result.err
    assert f"https://t.me/c/{TEST_CHANNEL}/2" in result.out


def test_search_with_filters(tgmon: Tgmon, imported: int) -> None:
    everywhere = tgmon("search", "пост")
    assert f"/c/{CHANNEL_A}/10" in everywhere.out and f"/c/{TEST_CHANNEL}/9" in everywhere.out
    in_a = tgmon("search", "--channel", str(CHANNEL_A), "пост")
    assert in_a.code == 0
    links = re.findall(r"https://t\.me/c/(\d+)/(\d+)", in_a.out)
    assert sorted(links) == [(str(CHANNEL_A), "10"), (str(CHANNEL_A), "11")]
    assert "2 posts" in in_a.err
    limited = tgmon("search", "--limit", "1", "пост")
    assert len(re.findall(r"https://t\.me/", limited.out)) == 1


def test_search_nothing_found(tgmon: Tgmon, imported: int) -> None:
    result = tgmon("search", "несуществующееслово")
    assert result.code == 0
    assert result.out == "" and "0 posts" in result.err


@pytest.mark.parametrize("argv", [("--", "-пост"), ("NOT", "пост"), ("--", "-пост", "-мир")])
def test_search_only_excluded_terms(tgmon: Tgmon, imported: int, argv: tuple[str, ...]) -> None:
    result = tgmon("search", *argv)
    assert result.code == 2
    assert "A query needs at least one word to look for" in result.err


def test_search_excluded_term_after_dashdash(tgmon: Tgmon, imported: int) -> None:
    result = tgmon("search", "--", "пост", "-первый")
    assert result.code == 0, result.err
    assert f"/c/{CHANNEL_A}/11" in result.out and f"/c/{CHANNEL_A}/10" not in result.out


def test_search_excluded_term_without_dashdash(tgmon: Tgmon, imported: int) -> None:
    try:
        result = tgmon("search", "пост", "-первый")
    except SystemExit as exc:
        pytest.fail(f"argparse exited with {exc.code}")
    assert result.code == 0
    assert f"/c/{CHANNEL_A}/11" in result.out and f"/c/{CHANNEL_A}/10" not in result.out


FTS_SYNTAX = [
    "NEAR(a b)",
    "NEAR(привет мир, 2)",
    '"unbalanced',
    'a"b',
    "a AND OR",
    "AND",
    "OR",
    "NOT",
    "OR OR пост",
    "пост OR",
    "*",
    "**",
    "пост*",
    "*пост",
    "col:x",
    "body:пост",
    "{body}: пост",
    "^пост",
    "(",
    ")",
    "(пост",
    "пост)",
    '""',
    "'",
    "+",
    "a:b:c",
    "-",
    "—",
    "😀",
    "%_",
    "\\",
    "rowid=1; DROP TABLE posts",
]


@pytest.mark.parametrize("query", FTS_SYNTAX)
def test_search_syntax_never_crashes(tgmon: Tgmon, db: Path, imported: int, query: str) -> None:
    result = tgmon("search", "--", query)
    assert result.code in (0, 2), result.err
    assert "Traceback" not in result.err
    if result.code == 2:
        # one sentence for the user, then the query with a caret under the problem
        assert result.err.startswith("tgmon: ") and len(result.err.strip().splitlines()) <= 3
    assert count_posts(db) == imported


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # searches change nothing between runs
)
@given(
    query=st.lists(
        st.one_of(
            st.sampled_from(["OR", "AND", "NOT", "NEAR", "пост", "-пост", "пост*", '"пост', "NEAR(пост"]),
            st.text(alphabet='ab пё"*():^-+{},.\\', max_size=4),
        ),
        max_size=6,
    ).map(" ".join)
)
def test_search_any_text_never_crashes(tgmon: Tgmon, imported: int, query: str) -> None:
    result = tgmon("search", "--", query)
    assert result.code in (0, 2), result.err
    assert "Traceback" not in result.err


def test_search_empty_archive(tgmon: Tgmon) -> None:
    result = tgmon("search", "пост")
    assert result.code == 0 and "0 posts" in result.err


# channels


async def add_channel(
    db: Path, channel_id: int, username: str, *, title: str = "Some channel", watched: bool | None = True
) -> None:
    """What `channels add` stores once Telegram resolved the name (no network here)."""
    archive = await SqliteArchive.open(db)
    try:
        await archive.upsert_channel(channel_id, username, title, watched=watched)
    finally:
        await archive.close()


def test_channels_list_empty(tgmon: Tgmon) -> None:
    result = tgmon("channels", "list")
    assert result.code == 0
    assert "no channels yet" in result.out


def test_channels_list_shows_imported_as_archived(tgmon: Tgmon, imported: int) -> None:
    result = tgmon("channels", "list")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    for title, channel_id, posts in [
        ("Тестовый канал", TEST_CHANNEL, None),
        ("Канал А", CHANNEL_A, 2),
        ("Покинутый канал", 1500000003, 1),
    ]:
        line = next(line for line in lines if line.startswith(title))
        assert f"id={channel_id}" in line
        assert "archived (not watched)" in line
        if posts is not None:
            assert f"posts={posts} " in line


def test_channels_remove_unknown(tgmon: Tgmon, imported: int) -> None:
    result = tgmon("channels", "remove", "@unknown")
    assert result.code == 2
    assert "no channel '@unknown'" in result.err


@pytest.mark.parametrize("ref", [f"-100{CHANNEL_A}", str(CHANNEL_A)])
def test_channels_remove_keeps_posts(tgmon: Tgmon, db: Path, imported: int, ref: str) -> None:
    result = tgmon("channels", "remove", ref)
    assert result.code == 0, result.err
    assert "stopped watching Канал А; its 2 posts are kept" in result.out
    assert count_posts(db) == imported


@pytest.mark.parametrize(
    "ref", ["@somechannel", "somechannel", "t.me/somechannel", "https://t.me/s/somechannel"]
)
def test_channels_remove_by_name(tgmon: Tgmon, db: Path, ref: str) -> None:
    asyncio.run(add_channel(db, 1777000001, "somechannel"))
    result = tgmon("channels", "remove", ref)
    assert result.code == 0, result.err
    assert "stopped watching @somechannel" in result.out
    assert "archived (not watched)" in tgmon("channels", "list").out


@pytest.mark.parametrize(
    "ref",
    [
        "https://telegram.me/somechannel",
        "http://t.me/somechannel",
        "https://t.me/somechannel/5",
        "https://t.me/c/1777000001/5",
    ],
)
def test_channels_remove_accepts_what_add_accepts(tgmon: Tgmon, db: Path, ref: str) -> None:
    asyncio.run(add_channel(db, 1777000001, "somechannel"))
    result = tgmon("channels", "remove", ref)
    assert result.code == 0, result.err


# configuration errors


@pytest.mark.parametrize("command", ["run", "collect", "backfill"])
def test_collector_without_api_id(tgmon: Tgmon, command: str) -> None:
    result = tgmon(command)
    assert result.code == 2
    assert "TG_API_ID" in result.err and "my.telegram.org" in result.err


def test_channels_add_without_api_id(tgmon: Tgmon) -> None:
    result = tgmon("channels", "add", "@durov")
    assert result.code == 2
    assert "TG_API_ID" in result.err and "my.telegram.org" in result.err


def test_channels_add_bad_ref_needs_no_credentials(tgmon: Tgmon) -> None:
    result = tgmon("channels", "add", "t.me/+invite")
    assert result.code == 2
    assert "invite link" in result.err


def test_collect_without_api_hash(tgmon: Tgmon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_API_ID", "12345")
    result = tgmon("collect")
    assert result.code == 2
    assert "TG_API_HASH" in result.err and "my.telegram.org" in result.err


def test_invalid_setting_names_the_key(tgmon: Tgmon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_API_ID", "not-a-number")
    result = tgmon("channels", "list")
    assert result.code == 2
    assert "TG_API_ID" in result.err and "my.telegram.org" in result.err


@pytest.mark.parametrize("token", [None, ""])
def test_bot_without_token(tgmon: Tgmon, monkeypatch: pytest.MonkeyPatch, token: str | None) -> None:
    # bot.app pulls in aiogram (~3 s); a stand-in keeps this fast and fails if the bot would start
    async def run_bot(*_: object) -> None:
        raise AssertionError("the bot must not start without BOT_TOKEN")

    stub = types.ModuleType("bot.app")
    stub.run_bot = run_bot  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bot.app", stub)
    if token is not None:
        monkeypatch.setenv("BOT_TOKEN", token)
    result = tgmon("bot")
    assert result.code == 2
    assert "BOT_TOKEN" in result.err and "@BotFather" in result.err


def test_database_under_a_file(tgmon: Tgmon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "afile").write_text("not a directory")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'afile' / 'tgmon.db'}")
    result = tgmon("channels", "list")
    assert result.code == 2
    assert "cannot open the database" in result.err and "Traceback" not in result.err


def test_database_is_a_directory(tgmon: Tgmon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}")
    result = tgmon("search", "пост")
    assert result.code == 2
    assert "cannot open the database" in result.err


def test_database_not_sqlite(tgmon: Tgmon, db: Path) -> None:
    db.write_bytes(b"this is not a database" * 100)
    result = tgmon("channels", "list")
    assert result.code == 2
    assert "cannot open the database" in result.err


def test_database_created_owner_only(tgmon: Tgmon, db: Path) -> None:
    old = os.umask(0)  # a permissive umask: the mode must come from tgmon, not from luck
    try:
        result = tgmon("channels", "list")
    finally:
        os.umask(old)
    assert result.code == 0, result.err
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_database_in_new_subdirectory(tgmon: Tgmon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///data/archive.db")  # relative to the working directory
    assert tgmon("channels", "list").code == 0
    assert stat.S_IMODE((tmp_path / "data" / "archive.db").stat().st_mode) == 0o600


# the installed entry point


def test_version_in_a_subprocess() -> None:
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "--version"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"tgmon {__version__}"


def test_console_script(db: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("tgmon")
    if not script.exists():
        pytest.skip("the tgmon console script is not installed in this environment")
    done = subprocess.run(
        [str(script), "channels", "remove", "@nobody_here"],
        cwd=tmp_path,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2  # main's return value becomes the exit status
    assert "no channel '@nobody_here'" in done.stderr and "Traceback" not in done.stderr
    assert db.exists()
