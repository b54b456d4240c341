"""Pictures: dimensions, EXIF (camera, dates, settings) and GPS position, with Pillow.

Only the header and metadata are read: pixels are never decoded, so an image declaring 100,000 x
100,000 pixels costs nothing. EXIF dates are the camera's wall-clock time: with the offset the camera
wrote (``OffsetTimeOriginal``) they are stored in UTC; without one, the GPS receiver's UTC date and time
stamp (``gps.timeStamp``) gives the instant when the picture has one and it lies within the world's
offsets of the camera's clock; else they are local times of unknown zone (search/extraction/timezones.py),
never asserted as UTC.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, BinaryIO

from search.extraction.timezones import local_text, set_local_time, utc_text
from search.extraction.tools.base import Limits, Tool, ToolResult, clean_text, library_version, require

# Offsets from UTC run from -12:00 to +14:00: a GPS stamp further than that from the camera's clock is not
# the same moment (a stale fix, a clock never set) and is not used for it.
_MAX_UTC_OFFSET = timedelta(hours=14)

_PICTURE_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",  # TIFF little-endian
    b"MM\x00*",  # TIFF big-endian
    b"BM",
)

# EXIF tag → property name (picture.exif.<name>); strings and numbers only, no maker notes or blobs.
_EXIF_PROPERTIES = {
    "Make": "make",
    "Model": "model",
    "Software": "software",
    "Artist": "artist",
    "Copyright": "copyright",
    "ImageDescription": "description",
    "BodySerialNumber": "bodySerialNumber",
    "CameraSerialNumber": "cameraSerialNumber",
    "LensMake": "lensMake",
    "LensModel": "lensModel",
    "ImageWidth": "imageWidth",
    "ImageLength": "imageHeight",
    "Orientation": "orientation",
    "ExposureTime": "exposureTime",
    "FNumber": "fNumber",
    "ISOSpeedRatings": "isoSpeed",
    "FocalLength": "focalLength",
    "Flash": "flash",
}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return clean_text(str(value)) if value is not None else None


def _number(value: Any) -> float | int | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if number != number or number in (float("inf"), float("-inf")):  # NaN or infinite rationals
        return None
    return int(number) if number.is_integer() else round(number, 6)


def exif_moment(value: Any, offset: Any = None) -> datetime | None:
    """``2023:08:01 23:19:48`` → a naive datetime; aware when ``offset`` (``+02:00``) is given and valid."""
    text = _text(value)
    if not text:
        return None
    try:
        moment = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    offset_text = _text(offset)
    if offset_text and len(offset_text) >= 6 and offset_text[0] in "+-":
        try:
            hours, minutes = int(offset_text[1:3]), int(offset_text[4:6])
            sign = 1 if offset_text[0] == "+" else -1
            moment = moment.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
        except ValueError:
            pass
    return moment


def exif_date(value: Any, offset: Any = None) -> str | None:
    """``2023:08:01 23:19:48`` + ``+02:00`` → ``2023-08-01T21:19:48Z``; without an offset the local
    ``2023-08-01T23:19:48`` (no designator: a local time of unknown zone)."""
    moment = exif_moment(value, offset)
    if moment is None:
        return None
    return utc_text(moment) if moment.tzinfo is not None else local_text(moment)


def gps_moment(date_stamp: Any, time_stamp: Any) -> datetime | None:
    """The GPS receiver's UTC instant: ``2008:10:23`` and (14, 36, 47.23) rationals → an aware datetime."""
    date_text = _text(date_stamp)
    try:
        day = datetime.strptime((date_text or "")[:10], "%Y:%m:%d")
        hours, minutes, seconds = (float(part) for part in time_stamp)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not (0 <= hours < 24 and 0 <= minutes < 60 and 0 <= seconds < 61):
        return None
    # Rationals such as 4723/100 s come out as 47.229999…: kept to the millisecond the receiver gives.
    moment = day + timedelta(hours=hours, minutes=minutes, milliseconds=round(seconds * 1000))
    return moment.replace(tzinfo=UTC)


def set_exif_time(
    properties: dict[str, Any], name: str, *, value: Any, offset: Any, gps: datetime | None = None
) -> None:
    """Record an EXIF time as UTC (with its offset, else from ``gps`` when that is the same moment as far
    as any zone can tell) or as a local time of unknown zone."""
    moment = exif_moment(value, offset)
    if moment is None:
        return
    if moment.tzinfo is not None:
        properties[name] = utc_text(moment)
    elif gps is not None and abs(moment - gps.replace(tzinfo=None)) <= _MAX_UTC_OFFSET:
        properties[name] = utc_text(gps)
        properties[f"{name}Source"] = "gps.timeStamp"
    else:
        set_local_time(properties, name, moment)


def gps_decimal(degrees_minutes_seconds: Any, reference: Any) -> float | None:
    """EXIF (degrees, minutes, seconds) rationals + N/S/E/W → signed decimal degrees (WGS-84)."""
    try:
        degrees, minutes, seconds = (float(part) for part in degrees_minutes_seconds)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = degrees + minutes / 60 + seconds / 3600
    if _text(reference) in ("S", "W"):
        value = -value
    return round(value, 7)


class PictureTool(Tool):
    name = "pillow"
    version = library_version("Pillow")

    def accepts(self, *, mime_type: str, name: str, head: bytes) -> bool:
        return mime_type.startswith("image/") or head.startswith(_PICTURE_MAGIC)

    def run(self, *, stream: BinaryIO, name: str, limits: Limits) -> ToolResult:
        image_module = require("PIL.Image", package="Pillow")
        exif_tags = require("PIL.ExifTags", package="Pillow")
        properties: dict[str, Any] = {}
        errors: list[str] = []
        with warnings.catch_warnings():
            # Pillow warns about huge declared sizes; we never decode pixels, so it is only noise.
            warnings.simplefilter("ignore")
            image = image_module.open(stream)
        with image:
            properties["picture.type"] = image.format
            properties["picture.width"], properties["picture.height"] = image.size
            properties["picture.colorMode"] = image.mode
            try:
                exif = image.getexif()
            except Exception as error:  # a broken EXIF block leaves the picture readable
                errors.append(f"cannot read EXIF: {type(error).__name__}: {error}")
                exif = None
            if exif:
                self._exif_properties(exif=exif, exif_tags=exif_tags, properties=properties, errors=errors)
        types = ["picture", "gps"] if "gps.latitude" in properties else ["picture"]
        return ToolResult(properties=properties, errors=errors, types=types)

    @staticmethod
    def _exif_properties(*, exif, exif_tags, properties: dict[str, Any], errors: list[str]) -> None:
        tags: dict[str, Any] = {exif_tags.TAGS.get(tag, str(tag)): value for tag, value in exif.items()}
        try:
            tags.update(
                {exif_tags.TAGS.get(tag, str(tag)): value for tag, value in exif.get_ifd(exif_tags.IFD.Exif).items()}
            )
            gps = {
                exif_tags.GPSTAGS.get(tag, str(tag)): value
                for tag, value in exif.get_ifd(exif_tags.IFD.GPSInfo).items()
            }
        except Exception as error:  # sub-IFDs of hostile files point anywhere
            errors.append(f"cannot read EXIF sub-IFDs: {type(error).__name__}: {error}")
            gps = {}
        for tag, property_name in _EXIF_PROPERTIES.items():
            value = tags.get(tag)
            if value is None:
                continue
            converted = _number(value) if not isinstance(value, str | bytes) else _text(value)
            if converted is not None and converted != "":
                properties[f"picture.exif.{property_name}"] = converted
        if "picture.exif.make" in properties:
            properties["picture.cameraMake"] = properties["picture.exif.make"]
        if "picture.exif.model" in properties:
            properties["picture.cameraModel"] = properties["picture.exif.model"]
        gps_time = gps_moment(gps.get("GPSDateStamp"), gps.get("GPSTimeStamp"))
        if gps_time is not None:
            properties["gps.timeStamp"] = utc_text(gps_time)
        set_exif_time(
            properties,
            "picture.takenOn",
            value=tags.get("DateTimeOriginal"),
            offset=tags.get("OffsetTimeOriginal"),
            gps=gps_time,
        )
        # The GPS stamp is the moment of the picture, not of a later edit: no GPS for the modification time.
        set_exif_time(properties, "picture.exif.modifiedOn", value=tags.get("DateTime"), offset=tags.get("OffsetTime"))
        latitude = gps_decimal(gps.get("GPSLatitude"), gps.get("GPSLatitudeRef"))
        longitude = gps_decimal(gps.get("GPSLongitude"), gps.get("GPSLongitudeRef"))
        if latitude is not None and longitude is not None and abs(latitude) <= 90 and abs(longitude) <= 180:
            properties["gps.latitude"] = latitude
            properties["gps.longitude"] = longitude
            altitude = _number(gps.get("GPSAltitude"))
            if altitude is not None:
                below_sea_level = gps.get("GPSAltitudeRef") in (b"\x01", 1)
                properties["gps.altitude"] = -altitude if below_sea_level else altitude
