"""Pure conversion of Telethon TL objects into our `RawPost`: no client, no network.

Telethon ships no type information, so every attribute read here is `Any` to mypy; the helpers below
narrow values with `isinstance` checks against `telethon.tl.types` and explicit conversions.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from telethon.tl import types

from core.models import Entity, RawPost

__all__ = [
    "action_name",
    "channel_ref_from_peer",
    "convert_entities",
    "convert_entity",
    "forwarded_from",
    "media_type",
    "message_to_raw",
    "reactions_to_dict",
    "to_utc",
]

# Bot API names for Telegram's entity classes. Order does not matter: the classes are disjoint.
_ENTITY_TYPES: tuple[tuple[type[Any], str], ...] = (
    (types.MessageEntityBold, "bold"),
    (types.MessageEntityItalic, "italic"),
    (types.MessageEntityUnderline, "underline"),
    (types.MessageEntityStrike, "strikethrough"),
    (types.MessageEntitySpoiler, "spoiler"),
    (types.MessageEntityCode, "code"),
    (types.MessageEntityPre, "pre"),
    (types.MessageEntityUrl, "url"),
    (types.MessageEntityTextUrl, "text_link"),
    (types.MessageEntityMention, "mention"),
    (types.MessageEntityMentionName, "text_mention"),
    (types.InputMessageEntityMentionName, "text_mention"),
    (types.MessageEntityHashtag, "hashtag"),
    (types.MessageEntityCashtag, "cashtag"),
    (types.MessageEntityBotCommand, "bot_command"),
    (types.MessageEntityEmail, "email"),
    (types.MessageEntityPhone, "phone_number"),
    (types.MessageEntityBankCard, "bank_card"),
    (types.MessageEntityCustomEmoji, "custom_emoji"),
)

# Media classes whose kind does not depend on their content.
_MEDIA_TYPES: tuple[tuple[type[Any], str], ...] = (
    (types.MessageMediaPhoto, "photo"),
    (types.MessageMediaWebPage, "webpage"),
    (types.MessageMediaPoll, "poll"),
    (types.MessageMediaGeo, "location"),
    (types.MessageMediaGeoLive, "location"),
    (types.MessageMediaVenue, "location"),
    (types.MessageMediaContact, "contact"),
    (types.MessageMediaDice, "dice"),
    (types.MessageMediaGame, "game"),
    (types.MessageMediaInvoice, "invoice"),
    (types.MessageMediaStory, "story"),
)

_NO_MEDIA: tuple[type[Any], ...] = (types.MessageMediaEmpty, types.MessageMediaUnsupported)


def _strip_prefix(name: str, prefix: str) -> str:
    return name[len(prefix) :] if name.startswith(prefix) and len(name) > len(prefix) else name


def _snake_case(name: str) -> str:
    """`ChatEditTitle` → `chat_edit_title`; acronyms stay together (`SetMessagesTTL` → `set_messages_ttl`)."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return name.lower()


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def to_utc(value: object) -> datetime | None:
    """A timezone-aware UTC datetime; naive values (as some dumps hold) are taken to be UTC already."""
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def channel_ref_from_peer(peer: object) -> int | None:
    """The bare channel id of a `PeerChannel`; None for users, basic groups and anything else."""
    if isinstance(peer, types.PeerChannel):
        return _opt_int(peer.channel_id)
    return None


def convert_entity(entity: object) -> Entity | None:
    """One `MessageEntity*` as a Bot-API-named `Entity`; offsets stay in UTF-16 code units."""
    offset = _opt_int(getattr(entity, "offset", None))
    length = _opt_int(getattr(entity, "length", None))
    if offset is None or length is None:
        return None
    if isinstance(entity, types.MessageEntityTextUrl):
        return Entity("text_link", offset, length, _opt_str(entity.url))
    if isinstance(entity, types.MessageEntityBlockquote):
        kind = "expandable_blockquote" if entity.collapsed else "blockquote"
        return Entity(kind, offset, length)
    for cls, name in _ENTITY_TYPES:
        if isinstance(entity, cls):
            return Entity(name, offset, length)
    return Entity(_strip_prefix(type(entity).__name__, "MessageEntity").lower(), offset, length)


def convert_entities(entities: object) -> tuple[Entity, ...]:
    if not isinstance(entities, list | tuple):
        return ()
    converted = (convert_entity(e) for e in entities)
    return tuple(e for e in converted if e is not None)


def reactions_to_dict(reactions: object) -> dict[str, int] | None:
    """`MessageReactions` as emoji → count (`custom:<document_id>` for custom emoji, `paid` for stars)."""
    if not isinstance(reactions, types.MessageReactions):
        return None
    counts: dict[str, int] = {}
    for result in reactions.results or ():
        if not isinstance(result, types.ReactionCount):
            continue
        count = _opt_int(result.count)
        reaction = result.reaction
        key: str | None
        if isinstance(reaction, types.ReactionEmoji):
            key = _opt_str(reaction.emoticon)
        elif isinstance(reaction, types.ReactionCustomEmoji):
            key = f"custom:{reaction.document_id}"
        elif isinstance(reaction, types.ReactionPaid):
            key = "paid"
        else:  # ReactionEmpty or a kind newer than this code
            key = None
        if key is None or count is None:
            continue
        counts[key] = counts.get(key, 0) + count
    return counts or None


def _document_kind(document: object) -> str:
    attributes = getattr(document, "attributes", None) or ()
    if any(isinstance(a, types.DocumentAttributeSticker) for a in attributes):
        return "sticker"
    # A GIF carries both Animated and Video attributes: Animated wins.
    if any(isinstance(a, types.DocumentAttributeAnimated) for a in attributes):
        return "animation"
    for attribute in attributes:
        if isinstance(attribute, types.DocumentAttributeVideo):
            return "video_note" if attribute.round_message else "video"
        if isinstance(attribute, types.DocumentAttributeAudio):
            return "voice" if attribute.voice else "audio"
    return "document"


def media_type(media: object) -> str | None:
    """Our media kind for a `MessageMedia*`: photo, video, voice, sticker, poll, webpage, location, ..."""
    if media is None or isinstance(media, _NO_MEDIA):
        return None
    if isinstance(media, types.MessageMediaDocument):
        kind = _document_kind(media.document)
        if kind == "document":  # no telling attributes (e.g. an expired DocumentEmpty): trust the flags
            if media.round:
                return "video_note"
            if media.voice:
                return "voice"
            if media.video:
                return "video"
        return kind
    for cls, name in _MEDIA_TYPES:
        if isinstance(media, cls):
            return name
    return _strip_prefix(type(media).__name__, "MessageMedia").lower()


def forwarded_from(fwd: object) -> str | None:
    """The origin of a forward: the hidden sender's name or `channel<id>`/`user<id>`, plus `/<post id>`."""
    if not isinstance(fwd, types.MessageFwdHeader):
        return None
    origin = _opt_str(fwd.from_name)
    if origin is None:
        peer = fwd.from_id
        if isinstance(peer, types.PeerChannel):
            origin = f"channel{peer.channel_id}"
        elif isinstance(peer, types.PeerUser):
            origin = f"user{peer.user_id}"
        elif isinstance(peer, types.PeerChat):
            origin = f"chat{peer.chat_id}"
        else:  # Telegram always sends one of the two; keep the fact that this is a forward anyway
            origin = "unknown"
    post = _opt_int(fwd.channel_post)
    return f"{origin}/{post}" if post is not None else origin


def action_name(action: object) -> str:
    """`MessageActionChatEditTitle` → `chat_edit_title`."""
    return _snake_case(_strip_prefix(type(action).__name__, "MessageAction"))


def _reply_to(header: object) -> int | None:
    if isinstance(header, types.MessageReplyHeader):
        return _opt_int(header.reply_to_msg_id)
    return None


def message_to_raw(msg: types.Message | types.MessageService) -> RawPost | None:
    """A channel message as a `RawPost`; None for an empty message, a non-channel one or one without date."""
    if not isinstance(msg, types.Message | types.MessageService):  # MessageEmpty and anything else
        return None
    channel_id = channel_ref_from_peer(msg.peer_id)
    message_id = _opt_int(msg.id)
    date = to_utc(msg.date)
    if channel_id is None or message_id is None or date is None:
        return None
    if isinstance(msg, types.MessageService):
        action = msg.action
        return RawPost(
            channel_id=channel_id,
            message_id=message_id,
            date=date,
            text=_opt_str(getattr(action, "title", None)) or "",
            edit_date=to_utc(msg.edit_date),
            reply_to=_reply_to(msg.reply_to),
            service_action=action_name(action) if action is not None else "empty",
        )
    replies = msg.replies
    return RawPost(
        channel_id=channel_id,
        message_id=message_id,
        date=date,
        text=msg.message if isinstance(msg.message, str) else "",
        entities=convert_entities(msg.entities),
        edit_date=to_utc(msg.edit_date),
        views=_opt_int(msg.views),
        forwards=_opt_int(msg.forwards),
        replies=_opt_int(replies.replies) if isinstance(replies, types.MessageReplies) else None,
        reactions=reactions_to_dict(msg.reactions),
        media_type=media_type(msg.media),
        forwarded_from=forwarded_from(msg.fwd_from),
        reply_to=_reply_to(msg.reply_to),
        album_id=_opt_int(msg.grouped_id),
        author=_opt_str(msg.post_author),
    )
