"""aiogram's HTTP session with the bot token cut out of its network errors.

aiohttp names the request URL in some errors (an invalid URL, too many redirects), and a Bot API URL
holds the token. The errors reach logs, the outbox's error column and replies, so the token is removed
where they are made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods.base import TelegramMethod, TelegramType

from core.redaction import Redactor, token_parts

if TYPE_CHECKING:
    from aiogram import Bot

__all__ = ["RedactingSession"]


class RedactingSession(AiohttpSession):
    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 -- aiogram's signature
    ) -> TelegramType:
        try:
            return await super().make_request(bot, method, timeout)
        except TelegramNetworkError as error:
            clean = Redactor(token_parts(bot.token))(error.message)
            if clean == error.message:
                raise
            raise TelegramNetworkError(method=method, message=clean) from None
