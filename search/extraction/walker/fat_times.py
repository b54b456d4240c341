"""The times of a FAT file, decoded from its own directory entry, for files read through dfVFS (libfsfat).

A FAT directory entry stores the wall-clock time of wherever the writer was (no zone): a local time of
unknown zone (docs/extraction.md, "Time zones"), as the TSK path stores it. dfVFS's FAT back-end gives
them as UTC (``+00:00``), and libfsfat 20260826 turns a DOS date into a day count wrongly (it adds the
days of the entry's own month, and one more in a leap year from February on: 2021-06-30 becomes
2021-07-30), and the wrong count cannot be inverted (2021-01-30 and 2021-02-02 give the same value). So
the times are read from the 32-byte short entry itself, at the byte offset libfsfat gives as the entry's
identifier (dfVFS's ``inode_number``), and decoded here.

Layout (Microsoft's FAT specification, "Directory Structure"): byte 11 the attributes, 13 the creation
time's tenths (10 ms units, 0-199), 14-15 the creation time, 16-17 the creation date, 18-19 the last access
date, 22-23 the modification time, 24-25 the modification date. A date is ``year-1980 << 9 | month << 5 |
day``; a time ``hours << 11 | minutes << 5 | seconds / 2``. An exFAT File entry (type 0x85; Microsoft's
exFAT specification, 7.4) holds the same date and time pairs as 32-bit timestamps (time in the low half) at
8 (created), 12 (modified) and 16 (accessed), with 10-ms units at 20 and 21; its optional UTC offsets are
not read, as The Sleuth Kit does not read them (docs/extraction.md, "Time zones").
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import datetime, timedelta

ENTRY_SIZE = 32
_LONG_NAME_ATTRIBUTES = 0x0F
_VOLUME_LABEL = 0x08
_EXFAT_FILE_ENTRY = 0x85


def dos_date_time(date: int, time: int = 0, hundredths: int = 0) -> datetime | None:
    """A DOS date (and time, and 10-ms units past it) as a naive wall-clock time; None when unset or invalid."""
    if not date:
        return None
    year, month, day = 1980 + (date >> 9), (date >> 5) & 0x0F, date & 0x1F
    hours, minutes, seconds = time >> 11, (time >> 5) & 0x3F, (time & 0x1F) * 2
    try:
        moment = datetime(year, month, day, hours, minutes, seconds)  # a wall-clock time, no zone
    except ValueError:
        return None
    if 0 < hundredths < 200:
        moment += timedelta(milliseconds=10 * hundredths)
    return moment


def entry_times(entry: bytes) -> dict[str, datetime] | None:
    """``{"file.createdOn": …, "file.modifiedOn": …, "file.accessedOn": …}`` of a 32-byte short directory
    entry or exFAT File entry (only the times it holds); None when ``entry`` is neither."""
    if len(entry) < ENTRY_SIZE or entry[0] in (0x00, 0xE5):
        return None
    if entry[0] == _EXFAT_FILE_ENTRY:
        created, modified, accessed, created_ms, modified_ms = struct.unpack_from("<IIIBB", entry, 8)
        exfat_times = {
            "file.createdOn": dos_date_time(created >> 16, created & 0xFFFF, created_ms),
            "file.modifiedOn": dos_date_time(modified >> 16, modified & 0xFFFF, modified_ms),
            "file.accessedOn": dos_date_time(accessed >> 16, accessed & 0xFFFF),
        }
        return {name: moment for name, moment in exfat_times.items() if moment is not None}
    attributes = entry[11]
    if attributes & _LONG_NAME_ATTRIBUTES == _LONG_NAME_ATTRIBUTES or attributes & _VOLUME_LABEL:
        return None
    tenths, created_time, created_date, accessed_date = struct.unpack_from("<BHHH", entry, 13)
    modified_time, modified_date = struct.unpack_from("<HH", entry, 22)
    times = {
        "file.createdOn": dos_date_time(created_date, created_time, tenths),
        "file.modifiedOn": dos_date_time(modified_date, modified_time),
        "file.accessedOn": dos_date_time(accessed_date),
    }
    return {name: moment for name, moment in times.items() if moment is not None}


def read_entry_times(*, read_at: Callable[[int, int], bytes], offset: int) -> dict[str, datetime] | None:
    """The times of the short directory entry at byte ``offset`` of the volume ``read_at`` reads."""
    try:
        return entry_times(read_at(offset, ENTRY_SIZE))
    except (OSError, ValueError):
        return None
