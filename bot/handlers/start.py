"""/start and /help: what tgmon is and what the archive holds."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from core.storage import Archive

router = Router(name="start")

GREETING = (
    "tgmon watches public Telegram channels and keeps every post, edit and deletion in a searchable "
    "archive.\nThe archive holds {posts} posts from {channels} channels.\n/help lists the commands."
)
HELP = "/start: what tgmon is\n/help: this list\nSubscriptions, alerts and digests are coming."


@router.message(CommandStart())
async def on_start(message: Message, archive: Archive) -> None:
    channels = await archive.list_channels()
    await message.answer(GREETING.format(posts=await archive.count_posts(), channels=len(channels)))


@router.message(Command("help"))
async def on_help(message: Message) -> None:
    await message.answer(HELP)
