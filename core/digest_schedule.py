"""When each subscriber's next digest is due: pure functions of the subscriber's settings and a time.

Slots are wall-clock times in the subscriber's timezone (`Subscriber.timezone`, IANA name; an unknown
name falls back to UTC):

    hourly  every full local hour (in a +05:30 zone that is hh:30 UTC)
    daily   every day at `digest_at` (minutes after local midnight)
    weekly  every `digest_day` (0 = Monday) at `digest_at`

Daylight-saving time: a local time that does not exist (the spring-forward gap, 02:30 in Berlin on
2026-03-29) is taken as the same wall-clock time plus the gap (03:30 local), so the day still gets its
digest; a local time that exists twice (the autumn fold, 02:30 on 2026-10-25) is its first occurrence
only. All results are timezone-aware UTC datetimes; naive inputs are taken as UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.subscriptions import DigestMode, Subscriber

__all__ = ["digest_period", "due", "last_slot", "next_digest_at", "zone"]

_PERIODS = {
    DigestMode.HOURLY: timedelta(hours=1),
    DigestMode.DAILY: timedelta(days=1),
    DigestMode.WEEKLY: timedelta(days=7),
}
_HOUR = timedelta(hours=1)


def zone(name: str) -> tzinfo:
    """The IANA timezone of that name; UTC for an empty or unknown name."""
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def digest_period(mode: DigestMode | str) -> timedelta:
    """How much time one digest covers: hourly 1 h, daily 24 h, weekly 7 d (ValueError for off)."""
    found = _PERIODS.get(DigestMode(mode))
    if found is None:
        raise ValueError(f"digest mode {mode!r} has no period")
    return found


def _at(day: date, minutes: int, tz: tzinfo) -> datetime:
    """UTC instant of a local wall-clock time; fold=0: a gap time moves forward by the gap length, a fold
    time is its first occurrence."""
    minutes = min(max(minutes, 0), 24 * 60 - 1)
    local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=tz)
    return local.astimezone(UTC)


def next_digest_at(subscriber: Subscriber, after: datetime) -> datetime | None:
    """The first digest slot strictly after `after` (UTC), or None when digests are off."""
    after = _utc(after)
    tz = zone(subscriber.timezone)
    mode = DigestMode(subscriber.digest)
    if mode is DigestMode.OFF:
        return None
    local = after.astimezone(tz)
    if mode is DigestMode.HOURLY:
        floor = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        # Adding in UTC keeps local full hours (also across DST changes by whole hours).
        candidate = floor + _HOUR
        while candidate <= after:  # zones whose offset is not whole hours on a DST change
            candidate += _HOUR
        return candidate
    today = local.date()
    if mode is DigestMode.DAILY:
        for ahead in range(3):
            candidate = _at(today + timedelta(days=ahead), subscriber.digest_at, tz)
            if candidate > after:
                return candidate
    else:
        first = today + timedelta(days=(subscriber.digest_day % 7 - today.weekday()) % 7)
        for weeks in range(3):
            candidate = _at(first + timedelta(weeks=weeks), subscriber.digest_at, tz)
            if candidate > after:
                return candidate
    raise AssertionError("unreachable: a slot always follows within three periods")  # pragma: no cover


def due(subscriber: Subscriber, now: datetime) -> bool:
    """True when the slot after the last digest (else after `created_at`, else after now - period) has
    come: the subscriber should get a digest now."""
    if DigestMode(subscriber.digest) is DigestMode.OFF:
        return False
    now = _utc(now)
    base = subscriber.last_digest_at or subscriber.created_at or now - digest_period(subscriber.digest)
    slot = next_digest_at(subscriber, base)
    return slot is not None and slot <= now


def last_slot(subscriber: Subscriber, now: datetime) -> datetime | None:
    """The latest slot at or before `now`: the `until` of the digest that is due (after downtime the
    missed slots are skipped, not sent one by one). None when digests are off."""
    if DigestMode(subscriber.digest) is DigestMode.OFF:
        return None
    now = _utc(now)
    # Slots are at most one period plus one DST hour apart, so one lies in this window.
    slot = next_digest_at(subscriber, now - digest_period(subscriber.digest) - 2 * _HOUR)
    found = None
    while slot is not None and slot <= now:
        found = slot
        slot = next_digest_at(subscriber, slot)
    return found
