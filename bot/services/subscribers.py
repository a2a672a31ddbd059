"""What subscribers can do, without aiogram: handlers parse, call these, and reply."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from core.models import Channel
from core.query.matcher import compile_query
from core.query.parser import LANG_CODES
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import QueryLimitReached, SubscriptionStore
from core.subscriptions import DigestMode, Subscriber, Subscription

MAX_QUERIES = 50  # per subscriber; the default of Settings.max_queries


class ServiceError(Exception):
    """A refusal the user can fix; `key` names the text to show, `args` fill it in."""

    def __init__(self, key: str, **args: object) -> None:
        super().__init__(key)
        self.key = key
        self.args_ = args


@dataclass(frozen=True, slots=True)
class Welcome:
    subscriber: Subscriber
    created: bool


class SubscriberService:
    def __init__(
        self, archive: SqliteArchive, store: SubscriptionStore, *, max_queries: int = MAX_QUERIES
    ) -> None:
        self.archive = archive
        self.store = store
        self.max_queries = max_queries

    async def hello(self, user_id: int, chat_id: int, language_code: str | None) -> Welcome:
        ui = "ru" if (language_code or "").lower().startswith(("ru", "uk", "be", "kk")) else "en"
        subscriber, created = await self.store.upsert_subscriber(user_id, chat_id, ui)
        return Welcome(subscriber, created)

    async def subscriber(self, user_id: int) -> Subscriber:
        found = await self.store.get_subscriber(user_id)
        if found is None:
            raise ServiceError("not_started")
        return found

    async def add_query(self, user_id: int, text: str) -> Subscription:
        """Raises QuerySyntaxError for a broken query, ServiceError at the limit; nothing stored then."""
        compile_query(text)
        try:
            return await self.store.add_query(user_id, text.strip(), limit=self.max_queries)
        except QueryLimitReached:
            raise ServiceError("too_many_queries", limit=self.max_queries) from None

    async def queries(self, user_id: int) -> list[Subscription]:
        return await self.store.list_queries(user_id)

    async def _by_number(self, user_id: int, number: int) -> Subscription:
        queries = await self.store.list_queries(user_id)
        if not 1 <= number <= len(queries):
            raise ServiceError("no_such_query", number=number, count=len(queries))
        return queries[number - 1]

    async def remove_query(self, user_id: int, number: int) -> Subscription:
        """By its number in /list (1-based)."""
        query = await self._by_number(user_id, number)
        await self.store.delete_query(user_id, query.id)
        return query

    async def remove_query_id(self, user_id: int, query_id: int) -> bool:
        """By id, from a button: only the owner's own query is touched."""
        return await self.store.delete_query(user_id, query_id)

    async def pause_query_id(self, user_id: int, query_id: int, paused: bool) -> bool:
        return await self.store.set_query_paused(user_id, query_id, paused)

    async def set_langs(self, user_id: int, codes: list[str]) -> Subscriber:
        """An empty list means any language."""
        wanted = [c.lower() for c in codes]
        unknown = [c for c in wanted if c not in LANG_CODES]
        if unknown:
            raise ServiceError("unknown_lang", code=unknown[0])
        return await self.store.update_subscriber(user_id, langs=sorted(set(wanted)))

    async def watched_channels(self) -> list[Channel]:
        return await self.archive.list_channels()

    async def set_channels(self, user_id: int, channel_ids: list[int]) -> Subscriber:
        """An empty list means every watched channel."""
        known = {c.id for c in await self.archive.list_channels()}
        return await self.store.update_subscriber(user_id, channels=sorted(set(channel_ids) & known))

    async def toggle_channel(self, user_id: int, channel_id: int) -> Subscriber:
        subscriber = await self.subscriber(user_id)
        chosen = set(subscriber.channels)
        chosen ^= {channel_id}
        return await self.set_channels(user_id, sorted(chosen))

    async def set_paused(self, user_id: int, paused: bool) -> Subscriber:
        return await self.store.update_subscriber(user_id, paused=paused)

    async def set_quiet(self, user_id: int, start: int | None, end: int | None) -> Subscriber:
        return await self.store.update_subscriber(user_id, quiet_start=start, quiet_end=end)

    async def set_timezone(self, user_id: int, name: str) -> Subscriber:
        zone = resolve_timezone(name)
        if zone is None:
            raise ServiceError("unknown_timezone", name=name)
        return await self.store.update_subscriber(user_id, timezone=zone)

    async def set_digest(self, user_id: int, mode: DigestMode, at: int = 9 * 60, day: int = 0) -> Subscriber:
        return await self.store.update_subscriber(user_id, digest=mode, digest_at=at, digest_day=day)

    async def set_ui_lang(self, user_id: int, lang: str) -> Subscriber:
        if lang not in ("en", "ru"):
            raise ServiceError("unknown_ui_lang", code=lang)
        return await self.store.update_subscriber(user_id, ui_lang=lang)


def resolve_timezone(name: str) -> str | None:
    """An IANA zone name, matched without regard to case (`europe/almaty` → `Europe/Almaty`)."""
    name = name.strip()
    try:
        ZoneInfo(name)
        return name
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a folder, names too long
        pass
    lowered = name.lower()
    for zone in available_timezones():
        if zone.lower() == lowered:
            return zone
    return None
