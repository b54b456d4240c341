"""Local times of an unknown zone, kept apart from UTC ones, and their conversion with a source time zone.

Most formats store UTC (NTFS, ext, the Info-ZIP ``UT``/``UX`` and NTFS zip extra fields, the EXIF GPS
stamp) or say their offset (EXIF ``OffsetTime*``). Some store the wall-clock time of wherever the device
was set to (FAT, zip DOS times, EXIF ``DateTime*`` without an offset): asserting those as UTC would put
them off by an unknown number of hours. The representation (docs/extraction.md, "Time zones"):

* a UTC time: ``2004-02-29T10:11:12Z`` (a fraction only when there is one), as every date;
* a local time of unknown zone: ``2004-02-29T10:11:12`` — ISO 8601 without a designator, which the
  standard defines as local time — with the companion property ``<name>TimeZone`` = ``local, unknown``
  (``file.modifiedOn`` → ``file.modifiedOnTimeZone``);
* once the custodian set a source time zone on the evidence item, the same local time converted:
  ``2004-02-29T09:11:12Z`` with ``<name>TimeZone`` = ``Europe/Amsterdam`` (the zone it was converted with).

A property without a companion is UTC from its source.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

LOCAL_UNKNOWN = "local, unknown"
TIME_ZONE_SUFFIX = "TimeZone"


def time_zone_property(name: str) -> str:
    """``file.modifiedOn`` → ``file.modifiedOnTimeZone``: where a date property's zone is said."""
    return name + TIME_ZONE_SUFFIX


def local_text(moment: datetime) -> str:
    """A wall-clock time as ISO 8601 without a designator: ``2004-02-29T10:11:12`` (fraction when one)."""
    text = moment.replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text


def utc_text(moment: datetime) -> str:
    """An aware time as ISO 8601 UTC with ``Z`` (fraction when one)."""
    moment = moment.astimezone(UTC)
    return local_text(moment) + "Z"


def set_local_time(properties: dict[str, Any], name: str, moment: datetime) -> None:
    """Record ``moment`` (a naive wall-clock time) as a local time of unknown zone."""
    properties[name] = local_text(moment)
    properties[time_zone_property(name)] = LOCAL_UNKNOWN


def is_known_time_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows (``Europe/Amsterdam``, ``UTC``)."""
    if not name or len(name) > 64 or name not in available_timezones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def parse_local(text: str) -> datetime | None:
    """``2004-02-29T10:11:12[.5]`` → a naive datetime; None for anything else (a value with a zone)."""
    if not isinstance(text, str) or text.endswith("Z") or "+" in text[10:] or "-" in text[10:]:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def convert_local_times(properties: dict[str, Any], *, time_zone: str | None) -> dict[str, Any]:
    """``properties`` with every local time of unknown zone converted to UTC with ``time_zone`` (an IANA
    name), each converted value's companion naming the zone; unchanged (the same dict) without a zone or
    without local times. A wall-clock time that the zone skips or repeats (a DST change) takes the first
    of its readings (``fold=0``), as the custodian's zone cannot tell more."""
    if not time_zone:
        return properties
    companions = [key for key, value in properties.items() if key.endswith(TIME_ZONE_SUFFIX) and value == LOCAL_UNKNOWN]
    if not companions:
        return properties
    zone = ZoneInfo(time_zone)
    converted = dict(properties)
    for companion in companions:
        name = companion[: -len(TIME_ZONE_SUFFIX)]
        moment = parse_local(converted.get(name))  # type: ignore[arg-type]
        if moment is None:
            continue
        converted[name] = utc_text(moment.replace(tzinfo=zone))
        converted[companion] = time_zone
    return converted


def zone_note(properties: dict[str, Any], name: str) -> str | None:
    """What a page says beside a date property whose zone is not its source's UTC: ``local (zone unknown)``
    (the words of every page, ``cases.times.UNKNOWN_ZONE``), or ``UTC, converted from local time with
    Europe/Amsterdam``; None for any other property."""
    zone = properties.get(time_zone_property(name))
    if not isinstance(zone, str) or name.endswith(TIME_ZONE_SUFFIX):
        return None
    if zone == LOCAL_UNKNOWN:
        return "local (zone unknown)"
    return f"UTC, converted from local time with {zone}"
