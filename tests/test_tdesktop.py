from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from collectors.tdesktop import ExportedChat, ExportFormatError, read_export
from core.models import Entity, RawPost
from tests.conftest import FIXTURES

TD = FIXTURES / "tdesktop"


def _utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _slice(text: str, entity: Entity) -> str:
    return text.encode("utf-16-le")[2 * entity.offset : 2 * (entity.offset + entity.length)].decode(
        "utf-16-le"
    )


def _single(path: Path) -> tuple[ExportedChat, dict[int, RawPost]]:
    (chat, posts), *rest = list(read_export(path))
    assert rest == []
    return chat, {p.message_id: p for p in posts}


def _write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "result.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def _chat(*messages: Any) -> dict[str, Any]:
    return {"name": "T", "type": "public_channel", "id": 77, "messages": list(messages)}


def _msg(mid: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "id": mid,
        "type": "message",
        "date": "2024-01-01T00:00:00",
        "date_unixtime": "1704067200",
    } | fields


# --- newest format, single chat ---------------------------------------------------------------------------


def test_single_chat_directory_and_file_path_read_the_same() -> None:
    assert list(read_export(TD / "single_chat")) == list(read_export(TD / "single_chat" / "result.json"))


def test_single_chat_header_and_message_set() -> None:
    chat, posts = _single(TD / "single_chat")
    assert chat == ExportedChat(id=1234567890, name="Тестовый канал", type="public_channel", username=None)
    assert list(posts) == [1, 2, 3, 4, 5, 6, 7, 9, 10]  # 8 is "unsupported": skipped
    assert all(p.channel_id == 1234567890 for p in posts.values())
    assert all(p.views is None and p.forwards is None and p.replies is None for p in posts.values())
    assert all(p.album_id is None for p in posts.values())


def test_rich_text_entities_with_utf16_offsets() -> None:
    _, posts = _single(TD / "single_chat")
    post = posts[2]
    assert post.text == "🔥 Привет, мир! Читайте статью #новости 👍\n😀 и ещё курсив"
    assert post.entities == (
        Entity("bold", 3, 6),
        Entity("text_link", 24, 6, "https://example.com/статья"),
        Entity("hashtag", 31, 8),
        Entity("custom_emoji", 40, 2),
        Entity("italic", 52, 6),
    )
    assert [_slice(post.text, e) for e in post.entities] == ["Привет", "статью", "#новости", "👍", "курсив"]
    # Python str offsets would be wrong: the 🔥 counts two UTF-16 units
    assert post.text[3:9] != "Привет"


def test_message_fields() -> None:
    _, posts = _single(TD / "single_chat")
    assert posts[2].date == _utc(1700000000)
    assert posts[2].date.tzinfo is UTC
    assert posts[2].edit_date == _utc(1700002800)
    assert posts[2].author == "Анна"
    assert posts[2].reactions == {"🔥": 12, "custom:stickers/sticker (1).webp": 3, "paid": 2, "👍": 1}
    assert posts[2].media_type is None
    assert posts[2].service_action is None

    assert posts[3] == RawPost(
        channel_id=1234567890,
        message_id=3,
        date=_utc(1700010000),
        text="Пересланное сообщение",
        media_type="photo",
        forwarded_from="Новости Мира",
    )
    assert posts[3].edit_date is None and posts[3].reactions is None and posts[3].author is None

    assert posts[4].reply_to == 2
    assert posts[4].media_type == "video"
    assert posts[4].text == "Ответ" and posts[4].entities == ()

    assert posts[5].media_type == "poll"
    assert posts[5].text == "" and posts[5].entities == ()

    assert posts[7].forwarded_from == "user4242"  # name is null (hidden origin): the id stands in
    assert posts[9].reply_to is None  # a reply to a post of another channel is not a reply here


def test_service_messages() -> None:
    _, posts = _single(TD / "single_chat")
    assert posts[1] == RawPost(
        channel_id=1234567890,
        message_id=1,
        date=_utc(1699999200),
        text="Тестовый канал",
        service_action="create_channel",
    )
    assert posts[6] == RawPost(
        channel_id=1234567890, message_id=6, date=_utc(1700014200), text="", service_action="pin_message"
    )


def test_entity_type_names_are_mapped_to_bot_api_names() -> None:
    _, posts = _single(TD / "single_chat")
    post = posts[10]
    assert [(e.type, _slice(post.text, e)) for e in post.entities] == [
        ("url", "https://t.me/x"),
        ("phone_number", "+79990000000"),
        ("text_mention", "Иван"),
        ("expandable_blockquote", "свёрнутая цитата"),
        ("blockquote", "цитата"),
        ("spoiler", "спойлер"),
        ("strikethrough", "зачёркнуто"),
        ("cashtag", "$USD"),
        ("bank_card", "4242424242424242"),
        ("pre", "print(1)"),
        ("fancy_new_entity", "новое"),
    ]
    assert all(e.url is None for e in post.entities)


# --- older format and account exports ---------------------------------------------------------------------


def test_old_format_without_text_entities_or_unixtime(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="collectors.tdesktop"):
        chat, posts = _single(TD / "old_format.result.json")
    assert chat == ExportedChat(id=1098765432, name="Старый канал", type="public_channel", username=None)
    assert list(posts) == [99, 100, 101, 102]
    assert posts[99].service_action == "create_channel" and posts[99].text == "Старый канал"

    post = posts[100]
    assert post.date == datetime(2019, 5, 31, 21, 28, 30, tzinfo=UTC)  # local time read as UTC
    assert post.text == "Старый формат с https://t.me/x 🙂 тут"
    assert post.entities == (
        Entity("bold", 7, 6),
        Entity("url", 16, 14),
        Entity("text_link", 34, 3, "https://example.org/"),
    )
    assert [_slice(post.text, e) for e in post.entities] == ["формат", "https://t.me/x", "тут"]

    assert posts[101].text == "Просто текст" and posts[101].entities == ()
    assert posts[101].edit_date == datetime(2019, 6, 1, 10, 30, tzinfo=UTC)
    assert posts[102].text == "" and posts[102].media_type == "photo"
    assert "no 'date_unixtime'" in caplog.text and "chat 1098765432" in caplog.text


def test_account_export_yields_every_chat_including_left_ones() -> None:
    result = list(read_export(TD / "account.result.json"))
    assert [chat for chat, _ in result] == [
        ExportedChat(id=1500000001, name="Канал А", type="public_channel", username=None),
        ExportedChat(id=1001, name="Пётр", type="personal_chat", username=None),
        ExportedChat(id=1500000003, name="Покинутый канал", type="private_channel", username=None),
    ]
    assert [[(p.channel_id, p.message_id, p.text) for p in posts] for _, posts in result] == [
        [(1500000001, 10, "Первый пост"), (1500000001, 11, "Второй пост")],
        [(1001, 10, "Привет!")],
        [(1500000003, 5, "Старый пост")],
    ]
    assert result[0][1][0].date == _utc(1704103200)


def test_tdesktop_invalid_json_quirks_are_repaired() -> None:
    # control characters written as \xHH, and 4.1.x's unquoted custom emoji document_id
    _, posts = _single(TD / "quirks.result.json")
    post = posts[1]
    assert post.text == "a\x0bb\\x41 😮"
    assert post.entities == (Entity("custom_emoji", 8, 2),)
    assert _slice(post.text, post.entities[0]) == "😮"


def test_account_chat_without_name_and_null_type(tmp_path: Path) -> None:
    saved = {"type": "saved_messages", "id": 5005, "messages": [_msg()]}
    unknown: dict[str, Any] = {"name": None, "type": None, "id": 6, "messages": []}
    path = _write(tmp_path, {"about": "", "chats": {"about": "", "list": [saved, unknown]}})
    assert [chat for chat, _ in read_export(path)] == [
        ExportedChat(id=5005, name="", type="saved_messages", username=None),
        ExportedChat(id=6, name="", type="", username=None),
    ]


@pytest.mark.parametrize(
    ("fields", "media_type"),
    [
        ({"photo": "photos/p.jpg"}, "photo"),
        ({"file": "f", "media_type": "video_file"}, "video"),
        ({"file": "f", "media_type": "voice_message"}, "voice"),
        ({"file": "f", "media_type": "audio_file", "title": "Song"}, "audio"),
        ({"file": "f", "media_type": "sticker"}, "sticker"),
        ({"file": "f", "media_type": "animation"}, "animation"),
        ({"file": "f", "media_type": "video_message"}, "video_note"),
        ({"file": "f", "mime_type": "application/pdf"}, "document"),
        ({"poll": {"question": "?", "answers": []}}, "poll"),
        ({"location_information": {"latitude": 1.0, "longitude": 2.0}}, "location"),
        ({"contact_information": {"first_name": "A", "phone_number": "+1"}}, "contact"),
        ({}, None),
    ],
)
def test_media_types(tmp_path: Path, fields: dict[str, Any], media_type: str | None) -> None:
    _, posts = _single(_write(tmp_path, _chat(_msg(text="x", **fields))))
    assert posts[1].media_type == media_type
    assert posts[1].text == "x"  # an audio file's "title" is not text


def test_integer_unixtime_and_custom_service_action(tmp_path: Path) -> None:
    messages = (
        _msg(1, date_unixtime=1704067200),
        {"id": 2, "type": "service", "date_unixtime": "1704067200", "information_text": "x", "text": ""},
    )
    _, posts = _single(_write(tmp_path, _chat(*messages)))
    assert posts[1].date == _utc(1704067200)
    assert posts[2].service_action == "custom_action" and posts[2].text == ""


@pytest.mark.parametrize("chat_id", [77, -10077, -77])
def test_a_reply_names_its_own_chat_by_the_bare_id(tmp_path: Path, chat_id: int) -> None:
    messages = (
        _msg(1, text="x"),
        _msg(2, text="y", reply_to_message_id=1, reply_to_peer_id="channel77"),  # this chat
        _msg(3, text="z", reply_to_message_id=9, reply_to_peer_id="channel78"),  # another chat
    )
    _, posts = _single(_write(tmp_path, _chat(*messages) | {"id": chat_id}))
    assert posts[2].reply_to == 1 and posts[3].reply_to is None


# --- malformed files --------------------------------------------------------------------------------------


def _error(path: Path) -> ExportFormatError:
    with pytest.raises(ExportFormatError) as info:
        list(read_export(path))
    return info.value


def test_truncated_json() -> None:
    path = TD / "bad_truncated.result.json"
    err = _error(path)
    assert str(err).startswith(f"{path}: the JSON ends early (truncated?)")
    assert err.path == path and err.message_id is None
    assert isinstance(err, ValueError)


def test_invalid_utf8() -> None:
    path = TD / "bad_utf8.result.json"
    err = _error(path)
    assert str(err) == f"{path}: not UTF-8 text: byte 0xff at offset 18 (line 2)"


def test_truncated_inside_a_utf8_character(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_bytes('{"name": "Тест'.encode()[:-1])
    assert "ends inside a UTF-8 character (truncated?)" in str(_error(path))


def test_messages_not_a_list() -> None:
    path = TD / "bad_messages_not_list.result.json"
    assert str(_error(path)) == f"{path}: 'messages' is a JSON object, not an array"


def test_non_numeric_date_unixtime_names_the_message() -> None:
    path = TD / "bad_date.result.json"
    err = _error(path)
    assert str(err) == f"{path}: message 123: 'date_unixtime' is not a number: 'hidden'"
    assert err.message_id == 123 and err.path == path


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([1, 2], "the top level is a JSON array, not an object"),
        ({"about": "x"}, "neither 'messages' (a chat export) nor 'chats' (an account export) is present"),
        ({"chats": {"about": "x"}}, "'chats' has no 'list' of chats"),
        ({"chats": {"list": ["x"]}}, "chats.list[0] is not a JSON object"),
        ({"id": "77", "messages": []}, "the chat 'id' is not an integer: '77'"),
        ({"name": "T", "messages": []}, "the chat 'id' is missing"),
        ({"id": 77, "name": 5, "messages": []}, "the chat 'name' is not a string"),
        ({"chats": {"list": [{"id": 77}]}}, "chat 77: 'messages' is missing"),
        ({"id": 77, "messages": None}, "'messages' is a JSON null, not an array"),
        (_chat("x"), "messages[0] is a JSON string, not an object"),
        (_chat({"id": "1", "type": "message"}), "messages[0] has no integer 'id'"),
        (
            _chat(_msg(), _msg(2, date_unixtime=None, date=None)),
            "message 2: 'date_unixtime' and 'date' are missing",
        ),
        (
            _chat(_msg(5, date_unixtime=None, date="yesterday")),
            "message 5: 'date' is not an ISO date: 'yesterday'",
        ),
        (_chat(_msg(5, date_unixtime="99999999999999999")), "message 5: 'date_unixtime' is out of range"),
        (_chat(_msg(5, edited_unixtime="soon")), "message 5: 'edited_unixtime' is not a number: 'soon'"),
        (_chat(_msg(5, text=7)), "message 5: 'text' is neither a string nor a list"),
        (_chat(_msg(5, text_entities=[{"type": "bold"}])), "message 5: an entry of 'text_entities' lacks"),
        (
            _chat(_msg(5, text_entities=[3])),
            "message 5: 'text_entities' holds a number, not a string or object",
        ),
        (_chat(_msg(5, reply_to_message_id="2")), "message 5: 'reply_to_message_id' is not an integer"),
        (_chat(_msg(5, reactions={"x": 1})), "message 5: 'reactions' is not a list"),
        (_chat(_msg(5, reactions=[{"emoji": "x"}])), "message 5: a reaction lacks an integer 'count'"),
        (_chat(_msg(5, reactions=[{"type": "emoji", "count": 1}])), "message 5: a 'emoji' reaction lacks"),
        (_chat(_msg(5, author=["a"])), "message 5: 'author' is not a string"),
        (_chat(_msg(5, media_type=1, file="f")), "message 5: 'media_type' is not a string"),
    ],
)
def test_wrong_shapes_raise_export_format_error(tmp_path: Path, document: Any, expected: str) -> None:
    path = _write(tmp_path, document)
    assert str(_error(path)).startswith(f"{path}: {expected}")


def test_account_export_errors_name_the_chat(tmp_path: Path) -> None:
    good = _chat(_msg())
    bad = {"name": "B", "type": "public_channel", "id": 88, "messages": [_msg(3, date_unixtime="x")]}
    path = _write(tmp_path, {"chats": {"list": [good, bad]}})
    chats = read_export(path)
    assert next(chats)[0].id == 77  # errors are raised lazily, when the iteration reaches the chat
    with pytest.raises(ExportFormatError) as info:
        next(chats)
    assert str(info.value) == f"{path}: chat 88: message 3: 'date_unixtime' is not a number: 'x'"
    assert info.value.chat_id == 88 and info.value.message_id == 3


@pytest.mark.parametrize("content", [b"", b"  \n", b"not json at all", b'{"id": 1,, }'])
def test_not_json(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "result.json"
    path.write_bytes(content)
    message = str(_error(path))
    assert message.startswith(f"{path}: ")
    assert "the file is empty" in message or "not valid JSON" in message


def test_missing_file_and_directory_without_result(tmp_path: Path) -> None:
    assert "cannot read the file" in str(_error(tmp_path / "nope.json"))
    assert str(_error(tmp_path)) == f"{tmp_path}: no result.json in this directory"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_chat(_msg(text="x"))).encode())
    assert _single(path)[1][1].text == "x"


# --- real exports -----------------------------------------------------------------------------------------

REAL_COUNTS = {
    "ar_en_upon_path_of_salaf": (213, 5),
    "ru_tiny_guzel_reuploads": (6, 0),
    "ru_uk_ukraina24": (632, 2),
    "zh_trantor_library": (924, 16),
}


def _real_exports(shared_data: Path) -> dict[str, Path]:
    files = {p.name.removesuffix(".result.json"): p for p in sorted((shared_data / "exports").glob("*.json"))}
    assert set(files) == set(REAL_COUNTS)
    return files


@pytest.mark.shared_data
def test_real_exports_read_with_exact_counts_and_entity_slices(shared_data: Path) -> None:
    for name, path in _real_exports(shared_data).items():
        raw = json.loads(path.read_text(encoding="utf-8"))
        (chat, posts), *rest = list(read_export(path))
        assert rest == []
        assert (chat.id, chat.name, chat.type) == (raw["id"], raw["name"], raw["type"])
        assert (len(posts), sum(p.service_action is not None for p in posts)) == REAL_COUNTS[name], name
        assert all(p.channel_id == raw["id"] and p.date.tzinfo is UTC for p in posts)
        for post, msg in zip(posts, raw["messages"], strict=True):
            assert post.message_id == msg["id"]
            assert post.date == _utc(int(msg["date_unixtime"]))
            pieces = [e["text"] for e in msg["text_entities"] if e["type"] != "plain" and e["text"]]
            if post.service_action is None:
                assert post.text == "".join(e["text"] for e in msg["text_entities"])
                assert [_slice(post.text, e) for e in post.entities] == pieces, (name, post.message_id)
            else:
                assert post.entities == ()


@pytest.mark.shared_data
def test_real_export_details(shared_data: Path) -> None:
    files = _real_exports(shared_data)
    ar = next(read_export(files["ar_en_upon_path_of_salaf"]))[1]
    assert sum(p.edit_date is not None for p in ar) == 106
    assert sum(p.forwarded_from is not None for p in ar) == 27
    assert all(p.edit_date is None or p.edit_date >= p.date for p in ar)

    tiny = {p.message_id: p for p in next(read_export(files["ru_tiny_guzel_reuploads"]))[1]}
    assert tiny[3858].reactions == {"🔥": 12}
    assert tiny[3858].entities[0] == Entity("custom_emoji", 31, 2)

    zh = {p.message_id: p for p in next(read_export(files["zh_trantor_library"]))[1]}
    assert [p.message_id for p in zh.values() if p.media_type == "poll"] == [1010]
    assert zh[534].reply_to is None  # replies to message 207 of another channel (reply_to_peer_id)
    assert sum(p.reply_to is not None for p in zh.values()) == 83


@pytest.mark.shared_data
def test_largest_real_export_reads_whole(shared_data: Path) -> None:
    # its speed is bench/import_speed.py's business, not a test's
    path = shared_data / "exports" / "zh_trantor_library.result.json"
    posts = next(read_export(path))[1]
    assert len(posts) == 924
