"""parse_channel_ref: every way an operator names a channel, and a clear message for everything else."""

from __future__ import annotations

import pytest

from collectors.refs import ChannelRef, ChannelRefError, parse_channel_ref

BY_NAME = ChannelRef(username="durov")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@durov", BY_NAME),
        ("durov", BY_NAME),
        ("  @durov \n", BY_NAME),
        ("t.me/durov", BY_NAME),
        ("https://t.me/durov", BY_NAME),
        ("http://t.me/durov", BY_NAME),
        ("https://www.t.me/durov", BY_NAME),
        ("HTTPS://T.ME/durov", BY_NAME),
        ("https://t.me/durov/", BY_NAME),
        ("https://t.me/s/durov", BY_NAME),
        ("t.me/s/durov/42", BY_NAME),
        ("https://t.me/durov/123", BY_NAME),
        ("https://t.me/durov/123?single", BY_NAME),
        ("https://t.me/durov?embed=1", BY_NAME),
        ("telegram.me/durov", BY_NAME),
        ("https://telegram.me/durov", BY_NAME),
        ("telegram.dog/durov", BY_NAME),
        ("@Durov_News_2", ChannelRef(username="Durov_News_2")),  # case kept; the archive compares NOCASE
        ("@" + "a" * 32, ChannelRef(username="a" * 32)),
        ("-100123", ChannelRef(channel_id=123)),
        ("-1001234567890", ChannelRef(channel_id=1234567890)),
        ("123", ChannelRef(channel_id=123)),
        ("1234567890", ChannelRef(channel_id=1234567890)),
        ("t.me/c/123/45", ChannelRef(channel_id=123)),
        ("https://t.me/c/1234567890/45", ChannelRef(channel_id=1234567890)),
        ("https://t.me/c/1234567890", ChannelRef(channel_id=1234567890)),
    ],
)
def test_parses(text: str, expected: ChannelRef) -> None:
    assert parse_channel_ref(text) == expected


@pytest.mark.parametrize(
    ("text", "shown"),
    [("@durov", "@durov"), ("t.me/durov", "@durov"), ("-100123", "-100123"), ("t.me/c/77/1", "-10077")],
)
def test_str_is_what_the_operator_would_type(text: str, shown: str) -> None:
    assert str(parse_channel_ref(text)) == shown


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("", "empty channel"),
        ("   ", "empty channel"),
        ("@a b", "is not a channel"),
        ("@durov news", "is not a channel"),
        ("t.me/+invite", "invite link"),
        ("https://t.me/+AbCdEf123", "invite link"),
        ("t.me/joinchat/xyz", "invite link"),
        ("https://telegram.me/joinchat/AAAAAE", "invite link"),
        ("-12345", "group id"),
        ("-100", "group id"),
        ("@abc", "is not a channel"),  # too short
        ("ab", "is not a channel"),
        ("@", "is not a channel"),
        ("@" + "a" * 33, "is not a channel"),  # too long
        ("@1durov", "is not a channel"),  # starts with a digit
        ("@_durov", "is not a channel"),
        ("@durov-news", "is not a channel"),
        ("@дуров_канал", "is not a channel"),
        ("https://example.com/durov", "is not a channel"),
        ("t.me/", "is not a channel"),
        ("t.me/c/", "is not a channel"),
    ],
)
def test_errors_are_clear(text: str, phrase: str) -> None:
    with pytest.raises(ChannelRefError) as info:
        parse_channel_ref(text)
    message = str(info.value)
    assert phrase in message
    assert isinstance(info.value, ValueError)
    if phrase == "is not a channel":  # says what would have been accepted
        assert "@name" in message and "t.me/name" in message and "-100" in message
        assert repr(text.strip()) in message
    if phrase == "group id":
        assert "-100" in message


@pytest.mark.parametrize("text", ["https://t.me/s/", "t.me/s"])
def test_preview_link_without_name_is_not_called_an_invite(text: str) -> None:
    with pytest.raises(ChannelRefError) as info:
        parse_channel_ref(text)
    assert "invite" not in str(info.value)
