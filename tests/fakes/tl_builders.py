"""Builders of REAL `telethon.tl.types` objects for tests: what Telethon hands us, without a network.

Every helper returns the genuine TL class (the patched `types.Message` that Telethon itself produces), so
code under test sees exactly the attributes and `isinstance` relations it sees in production.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from telethon.tl import types

FIXED_DATE = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
_BASE_PTS = 1000


def reactions_obj(reactions: dict[str, int]) -> types.MessageReactions:
    """`{"👍": 3, "custom:123": 2, "paid": 1}` as `MessageReactions`, keys as `message_to_raw` makes them."""
    results = []
    for key, count in reactions.items():
        reaction: Any
        if key == "paid":
            reaction = types.ReactionPaid()
        elif key.startswith("custom:"):
            reaction = types.ReactionCustomEmoji(document_id=int(key.removeprefix("custom:")))
        else:
            reaction = types.ReactionEmoji(emoticon=key)
        results.append(types.ReactionCount(reaction=reaction, count=count))
    return types.MessageReactions(results=results)


def make_message(
    channel_id: int,
    msg_id: int,
    text: str = "",
    *,
    date: datetime | None = None,
    edit_date: datetime | None = None,
    entities: Iterable[Any] = (),
    views: int | None = None,
    forwards: int | None = None,
    replies: int | None = None,
    reactions: dict[str, int] | None = None,
    grouped_id: int | None = None,
    reply_to: int | None = None,
    fwd_from_channel: int | tuple[int, int] | None = None,
    fwd_from_name: str | None = None,
    media: Any = None,
    post_author: str | None = None,
) -> types.Message:
    """A channel post. `fwd_from_channel` is a channel id or `(channel_id, channel_post)`."""
    fwd_from = None
    if fwd_from_channel is not None or fwd_from_name is not None:
        from_id = None
        channel_post = None
        if isinstance(fwd_from_channel, tuple):
            from_id = types.PeerChannel(channel_id=fwd_from_channel[0])
            channel_post = fwd_from_channel[1]
        elif fwd_from_channel is not None:
            from_id = types.PeerChannel(channel_id=fwd_from_channel)
        fwd_from = types.MessageFwdHeader(
            date=FIXED_DATE, from_id=from_id, from_name=fwd_from_name, channel_post=channel_post
        )
    entity_list = list(entities)
    return types.Message(
        id=msg_id,
        peer_id=types.PeerChannel(channel_id=channel_id),
        date=date or FIXED_DATE,
        message=text,
        post=True,
        entities=entity_list or None,
        views=views,
        forwards=forwards,
        replies=types.MessageReplies(replies=replies, replies_pts=0) if replies is not None else None,
        edit_date=edit_date,
        reactions=reactions_obj(reactions) if reactions is not None else None,
        grouped_id=grouped_id,
        reply_to=types.MessageReplyHeader(reply_to_msg_id=reply_to) if reply_to is not None else None,
        fwd_from=fwd_from,
        media=media,
        post_author=post_author,
    )


def make_service(
    channel_id: int,
    msg_id: int,
    action: Any,
    *,
    date: datetime | None = None,
    reply_to: int | None = None,
) -> types.MessageService:
    """A service message, e.g. `make_service(1, 2, types.MessageActionChannelCreate(title="News"))`."""
    return types.MessageService(
        id=msg_id,
        peer_id=types.PeerChannel(channel_id=channel_id),
        date=date or FIXED_DATE,
        action=action,
        post=True,
        reply_to=types.MessageReplyHeader(reply_to_msg_id=reply_to) if reply_to is not None else None,
    )


def make_user_message(user_id: int, msg_id: int, text: str = "") -> types.Message:
    """A private-chat message (not from a channel)."""
    return types.Message(id=msg_id, peer_id=types.PeerUser(user_id=user_id), date=FIXED_DATE, message=text)


def make_chat_message(chat_id: int, msg_id: int, text: str = "") -> types.Message:
    """A basic-group message (not from a channel)."""
    return types.Message(id=msg_id, peer_id=types.PeerChat(chat_id=chat_id), date=FIXED_DATE, message=text)


def new_message_update(msg: Any, *, pts: int | None = None) -> types.UpdateNewChannelMessage:
    """`pts` defaults to `1000 + msg.id`, so a run of consecutive messages has consecutive pts."""
    return types.UpdateNewChannelMessage(
        message=msg, pts=pts if pts is not None else _BASE_PTS + msg.id, pts_count=1
    )


def edit_message_update(msg: Any, *, pts: int | None = None) -> types.UpdateEditChannelMessage:
    return types.UpdateEditChannelMessage(
        message=msg, pts=pts if pts is not None else _BASE_PTS + msg.id, pts_count=1
    )


def delete_messages_update(
    channel_id: int, ids: Sequence[int], *, pts: int | None = None
) -> types.UpdateDeleteChannelMessages:
    """pts_count is the number of deleted ids, as Telegram sends it."""
    id_list = list(ids)
    return types.UpdateDeleteChannelMessages(
        channel_id=channel_id,
        messages=id_list,
        pts=pts if pts is not None else _BASE_PTS + max(id_list, default=0),
        pts_count=len(id_list),
    )


def make_channel(
    channel_id: int, username: str | None, title: str, *, access_hash: int | None = None
) -> types.Channel:
    """A public broadcast channel as `get_entity` returns it."""
    return types.Channel(
        id=channel_id,
        title=title,
        photo=types.ChatPhotoEmpty(),
        date=FIXED_DATE,
        broadcast=True,
        access_hash=access_hash if access_hash is not None else channel_id * 7 + 13,
        username=username,
        participants_count=None,
    )


def make_user(user_id: int, username: str | None, *, first_name: str = "Test") -> types.User:
    return types.User(
        id=user_id,
        access_hash=user_id * 11 + 17,
        first_name=first_name,
        username=username,
    )


# --- media ---------------------------------------------------------------------------------------


def make_document(
    attributes: Sequence[Any] = (), *, mime_type: str = "application/octet-stream"
) -> types.Document:
    return types.Document(
        id=42,
        access_hash=43,
        file_reference=b"\x00",
        date=FIXED_DATE,
        mime_type=mime_type,
        size=1024,
        dc_id=2,
        attributes=list(attributes),
    )


def photo_media() -> types.MessageMediaPhoto:
    return types.MessageMediaPhoto(photo=types.PhotoEmpty(id=1))


def document_media(attributes: Sequence[Any] = (), *, mime_type: str = "application/octet-stream") -> Any:
    return types.MessageMediaDocument(document=make_document(attributes, mime_type=mime_type))


def video_media(*, round_message: bool = False) -> Any:
    attribute = types.DocumentAttributeVideo(duration=3.0, w=320, h=320, round_message=round_message or None)
    return document_media([attribute], mime_type="video/mp4")


def audio_media(*, voice: bool = False) -> Any:
    attribute = types.DocumentAttributeAudio(duration=5, voice=voice or None, title=None if voice else "Song")
    return document_media([attribute], mime_type="audio/ogg" if voice else "audio/mpeg")


def sticker_media() -> Any:
    attributes = [
        types.DocumentAttributeImageSize(w=512, h=512),
        types.DocumentAttributeSticker(alt="😀", stickerset=types.InputStickerSetEmpty()),
    ]
    return document_media(attributes, mime_type="image/webp")


def animation_media() -> Any:
    attributes = [
        types.DocumentAttributeVideo(duration=1.5, w=200, h=200),
        types.DocumentAttributeAnimated(),
        types.DocumentAttributeFilename(file_name="a.mp4"),
    ]
    return document_media(attributes, mime_type="video/mp4")


def poll_media(question: str = "Why?", answers: Sequence[str] = ("Yes", "No")) -> types.MessageMediaPoll:
    poll = types.Poll(
        id=7,
        question=types.TextWithEntities(text=question, entities=[]),
        answers=[
            types.PollAnswer(text=types.TextWithEntities(text=a, entities=[]), option=bytes([i]))
            for i, a in enumerate(answers)
        ],
        hash=0,
    )
    return types.MessageMediaPoll(poll=poll, results=types.PollResults())


def geo_point() -> types.GeoPoint:
    return types.GeoPoint(long=37.62, lat=55.75, access_hash=1)


def webpage_media(url: str = "https://example.com") -> types.MessageMediaWebPage:
    return types.MessageMediaWebPage(webpage=types.WebPageEmpty(id=1, url=url))
