"""Time, one way (issue #20 item 13): every time a page shows is written ``2026-03-07 10:15:02 CET``, in the
signed-in user's time zone (``User.time_zone``, activated per request by :class:`UserTimeZoneMiddleware`;
the server's ``TIME_ZONE`` when the user chose none), with its zone.

A time whose zone nobody knows (a FAT timestamp, a naive EXIF date: local time of a machine whose zone
was not recorded) is never converted: it is shown as it was recorded, marked ``local (zone unknown)``. Such
a value is a naive ``datetime``, an ISO string without an offset, or a mapping ``{"value": …, "zone":
"local, unknown"}`` (the marker the file-system metadata of issue #18 writes).
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, date, datetime
from functools import lru_cache

from django.conf import settings
from django.utils import timezone

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
UNKNOWN_ZONE = "local (zone unknown)"
# The marker of a value whose zone is not known, as a property carries it.
UNKNOWN_ZONE_MARKERS = frozenset({"local, unknown", "local", "unknown"})
# A date and a time of day, as extraction writes them (a bare number or a date alone is no time to convert).
ISO_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


@lru_cache(maxsize=1)
def time_zone_names() -> tuple[str, ...]:
    """Every IANA zone name this machine knows, sorted (the account page offers them)."""
    return tuple(sorted(zoneinfo.available_timezones()))


def is_time_zone(name: str) -> bool:
    return name in time_zone_names()


def _parse(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return None


def format_time(value: object) -> str:
    """``value`` as every page writes a time: in the active time zone with its abbreviation, or as recorded
    with ``local (zone unknown)``. A date alone stays a date; what is no time is returned as text."""
    if value is None or value == "":
        return ""
    if isinstance(value, Mapping):
        inner = value.get("value")
        if str(value.get("zone", "")).strip().lower() in UNKNOWN_ZONE_MARKERS:
            parsed = _parse(str(inner)) if isinstance(inner, str) else inner
            if isinstance(parsed, datetime):
                return f"{parsed.replace(tzinfo=None).strftime(TIME_FORMAT)} {UNKNOWN_ZONE}"
            return f"{inner} {UNKNOWN_ZONE}"
        value = inner
    if isinstance(value, str):
        parsed = _parse(value)
        if parsed is None:
            return value
        value = parsed
    if isinstance(value, datetime):
        if timezone.is_naive(value):
            return f"{value.strftime(TIME_FORMAT)} {UNKNOWN_ZONE}"
        local = timezone.localtime(value)
        return f"{local.strftime(TIME_FORMAT)} {local.tzname() or local.strftime('%z')}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def recorded_instant(value: str, zone: str) -> datetime | None:
    """The instant an event's time stands for — the wall-clock text and, apart, the clock it was read on
    (``UTC``, an offset ``+02:00``, an IANA name) — as an aware ``datetime``; None for a local time of
    unknown zone (never converted), an unknown clock, or text that is no time."""
    zone = (zone or "").strip()
    if not zone or zone.lower() in UNKNOWN_ZONE_MARKERS:
        return None
    parsed = _parse(value)
    if parsed is None:
        return None
    if timezone.is_aware(parsed):
        return parsed
    if zone.upper() in ("UTC", "Z"):
        return parsed.replace(tzinfo=UTC)
    offset = _parse(f"2000-01-01T00:00:00{zone}")
    if offset is not None and offset.tzinfo is not None:
        return parsed.replace(tzinfo=offset.tzinfo)
    if is_time_zone(zone):
        return parsed.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    return None


def format_recorded_time(value: str, zone: str) -> str:
    """An event's time as the events table stores it (the wall-clock text and its clock, see
    :func:`recorded_instant`) written as every page writes a time. A local time of unknown zone stays as
    recorded."""
    instant = recorded_instant(value, zone)
    if instant is not None:
        return format_time(instant)
    known_clock = (zone or "").strip() and (zone or "").strip().lower() not in UNKNOWN_ZONE_MARKERS
    if known_clock and _parse(value) is None:
        return value
    return format_time({"value": value, "zone": "local, unknown"})


def user_time_zone(user: object) -> zoneinfo.ZoneInfo:
    """The zone a user reads times in: the one chosen on the account page, else the server's ``TIME_ZONE``
    (for what is written outside a request, such as an export made over the API with a token)."""
    name = getattr(user, "time_zone", "") or ""
    return zoneinfo.ZoneInfo(name if name and is_time_zone(name) else settings.TIME_ZONE)


def iso_utc(instant: datetime) -> str:
    """An instant as ISO 8601 in UTC with ``Z``, to the second: what files written for other tools carry."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def zone_offset_text(instant: datetime) -> str:
    """The UTC offset an aware instant has in its zone, written ``+05:30`` (``+00:00`` for UTC)."""
    offset = instant.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def format_property_time(properties: Mapping, name: str) -> str | None:
    """A trace property's value written as a time, when it is one (an ISO 8601 date and time); None for any
    other value. Its companion ``<name>TimeZone`` (docs/extraction.md "Time zones") says whether a value
    without an offset is a local time of unknown zone; one with ``Z`` or an offset is converted."""
    value = properties.get(name)
    if not isinstance(value, str) or not ISO_TIME_RE.match(value):
        return None
    companion = properties.get(f"{name}TimeZone")
    if isinstance(companion, str) and companion.strip().lower() in UNKNOWN_ZONE_MARKERS:
        return format_time({"value": value, "zone": companion})
    return format_time(value)


class UserTimeZoneMiddleware:
    """Activates the signed-in user's time zone for the request (Django's ``timezone.activate``): pages,
    forms (a "seized at" typed in is read in that zone) and the ``when`` filter follow it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        name = getattr(user, "time_zone", "") if user is not None and user.is_authenticated else ""
        if name and is_time_zone(name):
            timezone.activate(zoneinfo.ZoneInfo(name))
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
