"""The Telethon adapter's pure update mapping and its error translation."""

from __future__ import annotations

from telethon import errors

from collectors.source import (
    ChannelUnavailable,
    DeletedPosts,
    EditedPost,
    FloodWait,
    NewPost,
    translate_error,
    update_to_event,
)
from tests.fakes.tl_builders import (
    delete_messages_update,
    edit_message_update,
    make_message,
    make_user_message,
    new_message_update,
)


def test_updates_become_events() -> None:
    message = make_message(10, 5, "hello")
    new = update_to_event(new_message_update(message))
    assert isinstance(new, NewPost) and (new.post.channel_id, new.post.message_id, new.post.text) == (
        10,
        5,
        "hello",
    )
    edited = update_to_event(edit_message_update(message))
    assert isinstance(edited, EditedPost) and edited.post.message_id == 5
    assert update_to_event(delete_messages_update(10, [5, 6])) == DeletedPosts(10, (5, 6))


def test_private_chats_and_other_updates_are_ignored() -> None:
    from telethon.tl import types

    assert update_to_event(types.UpdateNewMessage(make_user_message(3, 1, "hi"), 1, 1)) is None
    assert update_to_event(types.UpdateUserTyping(user_id=3, action=types.SendMessageTypingAction())) is None


def test_error_translation() -> None:
    wait = translate_error(errors.FloodWaitError(request=None, capture=42))
    assert isinstance(wait, FloodWait) and wait.seconds == 42
    gone = translate_error(errors.ChannelPrivateError(request=None))
    assert isinstance(gone, ChannelUnavailable) and "private" in str(gone)
    other = ConnectionError("reset")
    assert translate_error(other) is other
