"""`tgmon import`: Desktop exports through the same pipeline, idempotent, all-or-nothing on bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.tdesktop import ExportFormatError
from core.importer import import_exports
from core.langid import make_detector
from core.pipeline import Pipeline
from core.storage.sqlite import SqliteArchive
from tests.conftest import FIXTURES
from tests.fakes.memory import RecordingSink

EXPORTS = FIXTURES / "tdesktop"

# file → (messages, of which service), as Telegram Desktop wrote them
SHARED_COUNTS = {
    "ar_en_upon_path_of_salaf.result.json": (213, 5),
    "ru_tiny_guzel_reuploads.result.json": (6, 0),
    "ru_uk_ukraina24.result.json": (632, 2),
    "zh_trantor_library.result.json": (924, 16),
}


async def test_import_fixture_twice_stores_nothing_twice(
    archive: SqliteArchive, pipeline: Pipeline, sink: RecordingSink
) -> None:
    first = await import_exports(pipeline, [EXPORTS / "single_chat"])
    assert first.new == first.messages > 0 and first.unchanged == 0
    handed = len(sink.new)
    second = await import_exports(pipeline, [EXPORTS / "single_chat" / "result.json"])
    assert second.new == 0 and second.edited == 0 and second.unchanged == first.messages
    assert len(sink.new) == handed  # nothing alerted twice
    assert await archive.count_posts() == first.messages
    assert await archive.fts_consistent()


async def test_imported_channels_are_archived_not_watched(archive: SqliteArchive, pipeline: Pipeline) -> None:
    report = await import_exports(pipeline, [EXPORTS / "account.result.json"], alerts=False)
    assert report.chats == 2 and report.skipped_chats == ["Пётр (personal_chat)"]
    assert await archive.list_channels() == []
    archived = await archive.list_channels(watched_only=False)
    assert len(archived) == 2 and all(not c.watched for c in archived)
    for channel in archived:  # watching it later catches up from the newest imported post
        newest = max([p.message_id async for p in archive.iter_posts() if p.channel_id == channel.id])
        assert channel.last_seen_id == newest


@pytest.mark.parametrize(
    ("chat_id", "stored_as"), [(-1001234567890, 1234567890), (-62135596801, 62135596801)]
)
async def test_a_chat_id_with_a_minus_sign_is_stored_as_the_bare_channel_id(
    archive: SqliteArchive, pipeline: Pipeline, tmp_path: Path, chat_id: int, stored_as: int
) -> None:
    export = json.loads((EXPORTS / "single_chat" / "result.json").read_text(encoding="utf-8"))
    export["id"] = chat_id  # Bot API style, or a hand-edited file
    path = tmp_path / "result.json"
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    report = await import_exports(pipeline, [path], alerts=False)
    assert report.new == report.messages > 0 and list(report.per_chat) == [stored_as]
    channels = await archive.list_channels(watched_only=False)
    assert [c.id for c in channels] == [stored_as]  # the posts' channel, and no other
    assert {p.channel_id async for p in archive.iter_posts()} == {stored_as}
    assert channels[0].last_seen_id == max([p.message_id async for p in archive.iter_posts()])


@pytest.mark.parametrize("bad", sorted(p.name for p in EXPORTS.glob("bad_*.json")))
async def test_a_malformed_file_changes_nothing(archive: SqliteArchive, pipeline: Pipeline, bad: str) -> None:
    await import_exports(pipeline, [EXPORTS / "single_chat"])
    before = await archive.count_posts()
    with pytest.raises(ExportFormatError) as info:
        # a good file first, then the bad one: all files are read before anything is written
        await import_exports(pipeline, [EXPORTS / "account.result.json", EXPORTS / bad])
    assert bad in str(info.value)
    assert await archive.count_posts() == before
    assert len(await archive.list_channels(watched_only=False)) == 1


@pytest.mark.shared_data
async def test_shared_exports_import_with_exact_counts(shared_data: Path, archive: SqliteArchive) -> None:
    pipeline = Pipeline(archive, make_detector("fasttext"))
    for name, (messages, service) in SHARED_COUNTS.items():
        report = await import_exports(pipeline, [shared_data / "exports" / name], alerts=False)
        assert (report.messages, report.service, report.new) == (messages, service, messages), name
        channel_id = next(iter(report.per_chat))
        assert await archive.count_posts(channel_id) == messages
    assert await archive.fts_consistent() and await archive.integrity_ok()
    again = await import_exports(pipeline, [shared_data / "exports" / n for n in SHARED_COUNTS], alerts=False)
    assert again.new == 0 and again.edited == 0
    langs: dict[str, int] = {}
    async for post in archive.iter_posts():
        langs[post.lang] = langs.get(post.lang, 0) + 1
    assert langs["zh"] > 500 and langs["uk"] > 200 and langs["en"] > 100 and langs["ru"] > 100
