"""`message_to_raw` and friends against real Telethon TL objects (built by tests/fakes/tl_builders.py)."""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from telethon.tl import types

from collectors.telethon_convert import (
    action_name,
    channel_ref_from_peer,
    convert_entity,
    forwarded_from,
    media_type,
    message_to_raw,
    reactions_to_dict,
    to_utc,
)
from core.models import Entity, RawPost
from tests.fakes import tl_builders as tb

CH = 1488156064


def convert(msg: Any) -> RawPost:
    raw = message_to_raw(msg)
    assert raw is not None
    return raw


# --- basics ---------------------------------------------------------------------------------------


def test_plain_post_fields() -> None:
    raw = convert(tb.make_message(CH, 10, "hello", views=120, forwards=3, post_author="Ann"))
    assert raw == RawPost(
        channel_id=CH,
        message_id=10,
        date=tb.FIXED_DATE,
        text="hello",
        views=120,
        forwards=3,
        author="Ann",
    )
    assert raw.date.tzinfo is not None and raw.date.utcoffset() == timedelta(0)


def test_missing_text_becomes_empty_string() -> None:
    msg = tb.make_message(CH, 1, media=tb.photo_media())
    msg.message = None
    assert convert(msg).text == ""


def test_dates_are_normalised_to_utc() -> None:
    msk = timezone(timedelta(hours=3))
    msg = tb.make_message(
        CH,
        1,
        "x",
        date=datetime(2024, 5, 1, 15, 0, tzinfo=msk),
        edit_date=datetime(2024, 5, 1, 16, 30, tzinfo=msk),
    )
    raw = convert(msg)
    assert raw.date == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert raw.date.tzinfo is UTC
    assert raw.edit_date == datetime(2024, 5, 1, 13, 30, tzinfo=UTC)
    assert raw.edit_date is not None and raw.edit_date.tzinfo is UTC


def test_naive_dates_are_taken_as_utc() -> None:
    assert to_utc(datetime(2024, 1, 2, 3, 4)) == datetime(2024, 1, 2, 3, 4, tzinfo=UTC)
    assert to_utc(None) is None


def test_edited_post_keeps_edit_date() -> None:
    edited = tb.FIXED_DATE + timedelta(minutes=5)
    raw = convert(tb.make_message(CH, 5, "fixed typo", edit_date=edited))
    assert raw.edit_date == edited
    assert convert(tb.make_message(CH, 5, "x")).edit_date is None


# --- entities -------------------------------------------------------------------------------------


def test_cyrillic_with_emoji_keeps_utf16_offsets() -> None:
    text = "🔥 Срочно: курс рубля"
    # 🔥 is two UTF-16 code units, so "Срочно" starts at 3, not at 2 (its Python index).
    bold = types.MessageEntityBold(offset=3, length=6)
    raw = convert(tb.make_message(CH, 1, text, entities=[bold]))
    assert raw.text == text
    assert raw.entities == (Entity("bold", 3, 6),)
    utf16 = text.encode("utf-16-le")
    e = raw.entities[0]
    assert utf16[e.offset * 2 : (e.offset + e.length) * 2].decode("utf-16-le") == "Срочно"
    assert text[2:8] == "Срочно"  # the Python index differs: offsets were not "fixed"


def test_text_link_keeps_url() -> None:
    link = types.MessageEntityTextUrl(offset=0, length=4, url="https://example.org/a?b=1")
    raw = convert(tb.make_message(CH, 1, "read more", entities=[link]))
    assert raw.entities == (Entity("text_link", 0, 4, "https://example.org/a?b=1"),)


@pytest.mark.parametrize(
    ("entity", "expected"),
    [
        (types.MessageEntityBold(0, 1), "bold"),
        (types.MessageEntityItalic(0, 1), "italic"),
        (types.MessageEntityUnderline(0, 1), "underline"),
        (types.MessageEntityStrike(0, 1), "strikethrough"),
        (types.MessageEntitySpoiler(0, 1), "spoiler"),
        (types.MessageEntityCode(0, 1), "code"),
        (types.MessageEntityPre(0, 1, language="python"), "pre"),
        (types.MessageEntityUrl(0, 1), "url"),
        (types.MessageEntityMention(0, 1), "mention"),
        (types.MessageEntityMentionName(0, 1, user_id=5), "text_mention"),
        (types.InputMessageEntityMentionName(0, 1, user_id=types.InputUserSelf()), "text_mention"),
        (types.MessageEntityHashtag(0, 1), "hashtag"),
        (types.MessageEntityCashtag(0, 1), "cashtag"),
        (types.MessageEntityBotCommand(0, 1), "bot_command"),
        (types.MessageEntityEmail(0, 1), "email"),
        (types.MessageEntityPhone(0, 1), "phone_number"),
        (types.MessageEntityBankCard(0, 1), "bank_card"),
        (types.MessageEntityBlockquote(0, 1), "blockquote"),
        (types.MessageEntityBlockquote(0, 1, collapsed=True), "expandable_blockquote"),
        (types.MessageEntityCustomEmoji(0, 1, document_id=5368324170671202286), "custom_emoji"),
        (types.MessageEntityUnknown(0, 1), "unknown"),
        (types.MessageEntityDiffInsert(0, 1), "diffinsert"),
        (types.MessageEntityFormattedDate(0, 1, date=tb.FIXED_DATE), "formatteddate"),
    ],
)
def test_entity_type_names(entity: Any, expected: str) -> None:
    assert convert_entity(entity) == Entity(expected, 0, 1)


def test_entities_keep_order_and_positions() -> None:
    text = "#news @bbc $BTC"
    ents = [
        types.MessageEntityHashtag(0, 5),
        types.MessageEntityMention(6, 4),
        types.MessageEntityCashtag(11, 4),
    ]
    raw = convert(tb.make_message(CH, 1, text, entities=ents))
    assert raw.entities == (Entity("hashtag", 0, 5), Entity("mention", 6, 4), Entity("cashtag", 11, 4))


# --- counters and reactions -----------------------------------------------------------------------


def test_replies_count() -> None:
    assert convert(tb.make_message(CH, 1, "x", replies=17)).replies == 17
    assert convert(tb.make_message(CH, 1, "x")).replies is None


def test_reactions_emoji_custom_and_paid() -> None:
    reactions = {"👍": 12, "❤": 3, "custom:5368324170671202286": 4, "paid": 250}
    raw = convert(tb.make_message(CH, 1, "x", reactions=reactions))
    assert raw.reactions == reactions


def test_reactions_built_from_tl_classes() -> None:
    obj = types.MessageReactions(
        results=[
            types.ReactionCount(reaction=types.ReactionEmoji(emoticon="🔥"), count=2),
            types.ReactionCount(reaction=types.ReactionCustomEmoji(document_id=99), count=1),
            types.ReactionCount(reaction=types.ReactionPaid(), count=5),
            types.ReactionCount(reaction=types.ReactionEmpty(), count=7),
        ]
    )
    assert reactions_to_dict(obj) == {"🔥": 2, "custom:99": 1, "paid": 5}


def test_no_reactions_is_none() -> None:
    assert convert(tb.make_message(CH, 1, "x")).reactions is None
    assert convert(tb.make_message(CH, 1, "x", reactions={})).reactions is None


# --- media ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("media", "expected"),
    [
        (tb.photo_media(), "photo"),
        (tb.document_media([types.DocumentAttributeFilename(file_name="report.pdf")]), "document"),
        (tb.document_media(), "document"),
        (types.MessageMediaDocument(document=types.DocumentEmpty(id=1)), "document"),
        (types.MessageMediaDocument(document=types.DocumentEmpty(id=1), round=True), "video_note"),
        (types.MessageMediaDocument(document=types.DocumentEmpty(id=1), voice=True), "voice"),
        (types.MessageMediaDocument(document=None, video=True), "video"),
        (tb.video_media(), "video"),
        (tb.video_media(round_message=True), "video_note"),
        (tb.audio_media(), "audio"),
        (tb.audio_media(voice=True), "voice"),
        (tb.sticker_media(), "sticker"),
        (tb.animation_media(), "animation"),
        (tb.webpage_media(), "webpage"),
        (tb.poll_media(), "poll"),
        (types.MessageMediaGeo(geo=tb.geo_point()), "location"),
        (types.MessageMediaGeoLive(geo=tb.geo_point(), period=900), "location"),
        (
            types.MessageMediaVenue(
                geo=tb.geo_point(),
                title="Кремль",
                address="Москва",
                provider="foursquare",
                venue_id="1",
                venue_type="",
            ),
            "location",
        ),
        (
            types.MessageMediaContact(
                phone_number="+100", first_name="A", last_name="B", vcard="", user_id=1
            ),
            "contact",
        ),
        (types.MessageMediaDice(value=6, emoticon="🎲"), "dice"),
        (
            types.MessageMediaGame(
                game=types.Game(
                    id=1,
                    access_hash=2,
                    short_name="g",
                    title="G",
                    description="",
                    photo=types.PhotoEmpty(id=3),
                )
            ),
            "game",
        ),
        (
            types.MessageMediaInvoice(
                title="T", description="D", currency="XTR", total_amount=5, start_param=""
            ),
            "invoice",
        ),
        (types.MessageMediaStory(peer=types.PeerChannel(channel_id=CH), id=3), "story"),
        (types.MessageMediaGiveaway(channels=[CH], quantity=3, until_date=tb.FIXED_DATE), "giveaway"),
        (types.MessageMediaUnsupported(), None),
        (types.MessageMediaEmpty(), None),
        (None, None),
    ],
)
def test_media_types(media: Any, expected: str | None) -> None:
    assert media_type(media) == expected
    assert convert(tb.make_message(CH, 1, "caption", media=media)).media_type == expected


# --- forwards, replies, albums --------------------------------------------------------------------


def test_forward_from_channel_with_post_is_citable() -> None:
    raw = convert(tb.make_message(CH, 1, "fwd", fwd_from_channel=(123, 456)))
    assert raw.forwarded_from == "channel123/456"


def test_forward_from_channel_without_post() -> None:
    assert convert(tb.make_message(CH, 1, "fwd", fwd_from_channel=123)).forwarded_from == "channel123"


def test_forward_from_hidden_name() -> None:
    raw = convert(tb.make_message(CH, 1, "fwd", fwd_from_name="Иван Петров"))
    assert raw.forwarded_from == "Иван Петров"


def test_forward_from_user_and_unknown() -> None:
    header = types.MessageFwdHeader(date=tb.FIXED_DATE, from_id=types.PeerUser(user_id=77))
    assert forwarded_from(header) == "user77"
    assert forwarded_from(types.MessageFwdHeader(date=tb.FIXED_DATE)) == "unknown"
    assert forwarded_from(None) is None
    assert convert(tb.make_message(CH, 1, "x")).forwarded_from is None


def test_reply_to_and_album() -> None:
    raw = convert(tb.make_message(CH, 8, "reply", reply_to=5, grouped_id=13785124932589251))
    assert raw.reply_to == 5
    assert raw.album_id == 13785124932589251
    plain = convert(tb.make_message(CH, 9, "x"))
    assert plain.reply_to is None and plain.album_id is None


def test_story_reply_header_is_not_a_message_reply() -> None:
    msg = tb.make_message(CH, 1, "x")
    msg.reply_to = types.MessageReplyStoryHeader(peer=types.PeerChannel(channel_id=CH), story_id=3)
    assert convert(msg).reply_to is None


def test_album_members_share_album_id() -> None:
    album = [
        tb.make_message(CH, i, "" if i else "caption", grouped_id=42, media=tb.photo_media())
        for i in range(3)
    ]
    raws = [convert(m) for m in album]
    assert {r.album_id for r in raws} == {42}
    assert [r.message_id for r in raws] == [0, 1, 2]


# --- service messages and non-channel messages ---------------------------------------------------


def test_service_channel_create() -> None:
    raw = convert(tb.make_service(CH, 1, types.MessageActionChannelCreate(title="Новости")))
    assert raw.service_action == "channel_create"
    assert raw.text == "Новости"
    assert raw.entities == () and raw.views is None and raw.media_type is None


def test_service_pin_message_keeps_reply_to() -> None:
    raw = convert(tb.make_service(CH, 9, types.MessageActionPinMessage(), reply_to=4))
    assert raw.service_action == "pin_message"
    assert raw.text == ""
    assert raw.reply_to == 4


def test_service_edit_title() -> None:
    raw = convert(tb.make_service(CH, 2, types.MessageActionChatEditTitle(title="New title")))
    assert (raw.service_action, raw.text) == ("chat_edit_title", "New title")


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (types.MessageActionSetMessagesTTL(period=86400), "set_messages_ttl"),
        (types.MessageActionHistoryClear(), "history_clear"),
        (types.MessageActionTopicCreate(title="t", icon_color=0), "topic_create"),
        (types.MessageActionEmpty(), "empty"),
    ],
)
def test_action_names(action: Any, expected: str) -> None:
    assert action_name(action) == expected


def test_message_empty_is_none() -> None:
    assert message_to_raw(types.MessageEmpty(id=5, peer_id=types.PeerChannel(channel_id=CH))) is None


def test_non_channel_messages_are_none() -> None:
    assert message_to_raw(tb.make_user_message(5, 1, "hi")) is None
    assert message_to_raw(tb.make_chat_message(6, 1, "hi")) is None
    service = types.MessageService(
        id=1, peer_id=types.PeerUser(user_id=5), date=tb.FIXED_DATE, action=types.MessageActionHistoryClear()
    )
    assert message_to_raw(service) is None


def test_channel_ref_from_peer() -> None:
    assert channel_ref_from_peer(types.PeerChannel(channel_id=CH)) == CH
    assert channel_ref_from_peer(types.PeerUser(user_id=1)) is None
    assert channel_ref_from_peer(types.PeerChat(chat_id=1)) is None
    assert channel_ref_from_peer(None) is None


# --- the builders themselves ----------------------------------------------------------------------


def test_builders_make_real_tl_objects() -> None:
    msg = tb.make_message(CH, 7, "x")
    assert isinstance(msg, types.Message)
    assert msg.to_dict()["_"] == "Message"
    new = tb.new_message_update(msg)
    assert isinstance(new, types.UpdateNewChannelMessage)
    assert (new.message, new.pts, new.pts_count) == (msg, 1007, 1)
    edit = tb.edit_message_update(msg)
    assert isinstance(edit, types.UpdateEditChannelMessage) and edit.message is msg
    deleted = tb.delete_messages_update(CH, [3, 4])
    assert (deleted.channel_id, deleted.messages, deleted.pts_count) == (CH, [3, 4], 2)
    channel = tb.make_channel(CH, "bloomberg", "Bloomberg")
    assert isinstance(channel, types.Channel) and channel.broadcast and channel.access_hash
    assert (channel.username, channel.title, channel.date) == ("bloomberg", "Bloomberg", tb.FIXED_DATE)
    user = tb.make_user(5, "ann")
    assert isinstance(user, types.User) and user.username == "ann" and user.access_hash
    service = tb.make_service(CH, 1, types.MessageActionPinMessage())
    assert isinstance(service, types.MessageService)
    # Telethon serialises them, so they are well-formed TL.
    assert bytes(msg) and bytes(channel) and bytes(user) and bytes(tb.poll_media())


# --- real data: Telethon `Message.to_dict()` dumps -----------------------------------------------

_DUMP_DATE_KEYS = {"date", "edit_date", "until_date", "close_date", "expires", "saved_date"}


def _parse_dump_date(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


def _rebuild(value: Any, key: str = "") -> Any:
    """Rebuild a TL object from `to_dict()` output: classes by the `_` name, dates from their strings."""
    if isinstance(value, list):
        return [_rebuild(v) for v in value]
    if isinstance(value, dict):
        if "_" not in value:
            return {k: _rebuild(v, k) for k, v in value.items()}
        cls = getattr(types, value["_"])
        params = inspect.signature(cls).parameters
        kwargs = {k: _rebuild(v, k) for k, v in value.items() if k in params}
        return cls(**kwargs)
    if isinstance(value, str) and key in _DUMP_DATE_KEYS:
        return _parse_dump_date(value)
    return value


@pytest.mark.shared_data
def test_real_telethon_dump_converts(shared_data: Path) -> None:
    path = shared_data / "dumps" / "telethon_to_dict" / "bloomberg_1488156064.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) == 40
    for row in rows:
        msg = _rebuild(row)
        assert isinstance(msg, types.Message)
        raw = convert(msg)
        assert raw.channel_id == row["peer_id"]["channel_id"] == CH
        assert raw.message_id == row["id"]
        assert raw.text == (row["message"] or "")
        assert raw.date == _parse_dump_date(row["date"])
        assert raw.edit_date == (_parse_dump_date(row["edit_date"]) if row["edit_date"] else None)
        assert raw.views == row["views"]
        assert raw.forwards == row["forwards"]
        assert raw.album_id == row["grouped_id"]
        assert [(e.offset, e.length) for e in raw.entities] == [
            (e["offset"], e["length"]) for e in row["entities"] or []
        ]
        assert all(
            e.type in {"url", "text_link", "bold", "italic", "hashtag", "mention"} for e in raw.entities
        )
        expected_reactions: dict[str, int] = {}
        for rc in (row["reactions"] or {}).get("results", []):
            expected_reactions[rc["reaction"]["emoticon"]] = rc["count"]
        assert raw.reactions == (expected_reactions or None)
        media_kind = {"MessageMediaPhoto": "photo", "MessageMediaWebPage": "webpage", None: None}
        assert raw.media_type == media_kind[(row["media"] or {}).get("_")]
        assert raw.forwarded_from is None and raw.service_action is None
