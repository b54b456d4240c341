"""What the walk's layers share: the tools they name in traces, the trace of an unreadable layer, and small
helpers to read, name and order what the libraries return."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime

import dfvfs
import pytsk3
from dfvfs.lib import tsk_image
from dfvfs.resolver import resolver as dfvfs_resolver

from search.extraction.traces import ToolRef, TraceError, TraceRecord, child_uid

TOOL_DFVFS = ToolRef("dfvfs", dfvfs.__version__)
TOOL_PYTSK3 = ToolRef("pytsk3", f"{pytsk3.get_version()} (tsk {pytsk3.TSK_VERSION_STR})")


def error_trace(*, parent: TraceRecord, ordinal: int, tool: str, message: str) -> TraceRecord:
    """The child of ``parent`` standing for a layer that could not be read."""
    trace = TraceRecord(
        uid=child_uid(parent_uid=parent.uid, ordinal=ordinal),
        parent_uid=parent.uid,
        name="unreadable",
        path=f"{parent.path}/unreadable",
        types=["unreadable"],
    )
    trace.errors.append(TraceError(tool=tool, message=message))
    return trace


def reader_of(file_object) -> Callable[[int, int], bytes]:
    """``read_at(offset, size)`` over a seekable file object (a dfVFS one included)."""

    def read_at(offset: int, size: int) -> bytes:
        file_object.seek(offset, os.SEEK_SET)
        return file_object.read(size)

    return read_at


def tsk_image_of(*, spec, context) -> tsk_image.TSKFileSystemImage:
    """The bytes ``spec`` names as an image The Sleuth Kit reads (partition tables, file systems)."""
    file_object = dfvfs_resolver.Resolver.OpenFileObject(spec, resolver_context=context)
    return tsk_image.TSKFileSystemImage(file_object)


def natural_key(name: str) -> tuple:
    """``p2`` before ``p10``: names are compared by their text and numbers by their value."""
    head = name.rstrip("0123456789")
    tail = name[len(head) :]
    return (head, int(tail) if tail else -1, name)


def decode_name(raw_name) -> str:
    """A name as TSK gives it (bytes or text) as text; undecodable bytes become U+FFFD."""
    if isinstance(raw_name, bytes):
        return raw_name.decode("utf-8", "replace")
    return str(raw_name)


def iso8601(seconds: int | None, nanoseconds: int | None = 0) -> str | None:
    """POSIX time → ``2004-02-29T10:11:12.1234567Z`` (UTC, fraction only when there is one)."""
    if not seconds:
        return None
    try:
        moment = datetime.fromtimestamp(int(seconds), UTC)
    except (OverflowError, OSError, ValueError):
        return None
    if moment.year >= 1000:  # what strftime("%Y-%m-%dT%H:%M:%S") gives, without its cost (4 per file)
        text = (
            f"{moment.year}-{moment.month:02d}-{moment.day:02d}"
            f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
        )
    else:  # the C library's %Y does not pad years below 1000: keep exactly its text
        text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if nanoseconds:
        text += "." + f"{int(nanoseconds):09d}".rstrip("0")
    return text + "Z"


def local_wall_clock(seconds: int | None, nanoseconds: int | None = 0) -> datetime | None:
    """The wall-clock time The Sleuth Kit read from a FAT entry, from the POSIX time it made of it.

    TSK turns a FAT date and time into POSIX time with ``mktime``, in this process's local zone (Django's
    ``TIME_ZONE``); ``fromtimestamp`` in that same zone undoes it, whatever the zone is."""
    if not seconds:
        return None
    try:
        moment = datetime.fromtimestamp(int(seconds))  # the process's zone, as in TSK's mktime
    except (OverflowError, OSError, ValueError):
        return None
    return moment.replace(microsecond=int(nanoseconds or 0) // 1000)
