"""Typing streams: libmagic's MIME type of their first bytes (``MimeSniffer``, in worker threads), and
whether a file's extension disagrees with it."""

from __future__ import annotations

import contextlib
import mimetypes
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import magic

from search.extraction.traces import DataStream, ToolRef, TraceError, TraceRecord
from search.extraction.walker.options import MIB

TOOL_MAGIC = ToolRef("python-magic", getattr(magic, "__version__", "unknown"))

# The type of a file system's own structures ($MFT, $UpCase, $Secure, a FAT's $FAT1…): their bytes are
# tables, not content, whatever libmagic makes of them ($UpCase looks like a Targa picture to it).
FILE_SYSTEM_METADATA_TYPE = "fileSystemMetadata"
FILE_SYSTEM_METADATA_MIME_TYPE = "application/x-file-system-metadata"
# The type of the trace a named data stream's content (an NTFS alternate data stream) becomes.
ALTERNATE_DATA_STREAM_TYPE = "alternateDataStream"

# MIME types too generic for an extension to "disagree" with (text/plain covers .log, .cfg, .c …).
_MIME_TYPES_WITHOUT_EXTENSION_CHECK = {"application/octet-stream", "application/x-empty", "inode/x-empty"}
# Heads remembered with their MIME type, at most this many bytes of them per walk.
_KNOWN_HEAD_BYTES = 16 * MIB


def extension_mismatch(*, file_name: str, mime_type: str | None) -> bool | None:
    """True when the name's extension is not one the detected MIME type is known by; None when unknown."""
    if not mime_type or mime_type in _MIME_TYPES_WITHOUT_EXTENSION_CHECK or mime_type.startswith("text/"):
        return None
    stem, dot, extension = file_name.rpartition(".")
    if not dot or not stem or not extension or len(extension) > 8:
        return None
    known_extensions = {known.lower() for known in mimetypes.guess_all_extensions(mime_type, strict=False)}
    if not known_extensions:
        return None
    return f".{extension.lower()}" not in known_extensions


class MimeSniffer:
    """libmagic on the first bytes of streams, in worker threads, each with its own libmagic cookie.

    ``magic_buffer`` is a ctypes call, which releases the GIL: with threads, libmagic (about 1 ms for 8 KiB
    of text, the walk's most expensive step) runs beside the walk instead of in between its reads.
    """

    def __init__(self, *, threads: int):
        self._per_thread = threading.local()
        # libmagic's answer depends on the bytes it is given and nothing else: identical heads (copies of
        # a file, files that start alike up to the sniffed length) are asked once.
        self._known: dict[bytes, str] = {}
        self._known_bytes = 0
        self._pool = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="custodia-magic") if threads > 0 else None
        )
        if self._pool is not None:
            # Each thread loads libmagic's database (a tenth of a second or more) while the walk opens the
            # image and lists its first folders, not when the first files wait for their MIME types.
            barrier = threading.Barrier(threads)
            for _ in range(threads):
                self._pool.submit(self._warm_up, barrier)

    def _warm_up(self, barrier: threading.Barrier) -> None:
        self._cookie()
        # Holding each thread until all have started makes the pool start them all.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=10)

    def _cookie(self) -> magic.Magic:
        cookie = getattr(self._per_thread, "cookie", None)
        if cookie is None:
            cookie = self._per_thread.cookie = magic.Magic(mime=True)
        return cookie

    def sniff(self, head: bytes) -> str:
        mime_type = self._cookie().from_buffer(head)
        if self._known_bytes < _KNOWN_HEAD_BYTES:  # dict writes are atomic: no lock between threads
            self._known[head] = mime_type
            self._known_bytes += len(head)  # a lost update under a race only bends the bound a little
        return mime_type

    def submit(self, head: bytes) -> Future:
        known = self._known.get(head)
        if known is not None:  # the same first bytes as a file sniffed before: libmagic's answer again
            answered: Future = Future()
            answered.set_result(known)
            return answered
        if self._pool is None:
            future: Future = Future()
            try:
                future.set_result(self.sniff(head))
            except Exception as error:
                future.set_exception(error)
            return future
        return self._pool.submit(self.sniff, head)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@dataclass
class PendingMime:
    """A MIME type being sniffed for one stream of a trace not yet yielded."""

    trace: TraceRecord
    stream: DataStream
    file_name: str | None
    future: Future
    error_index: int  # where a libmagic error goes in trace.errors, as if it had been found at once


def apply_mime(pending: list[PendingMime]) -> None:
    """Set the sniffed MIME types on their streams (and files), libmagic's errors where they belong."""
    errors_inserted: dict[int, int] = {}
    for item in pending:
        trace, stream = item.trace, item.stream
        try:
            stream.mime_type = item.future.result()
            if FILE_SYSTEM_METADATA_TYPE in trace.types:
                stream.mime_type = FILE_SYSTEM_METADATA_MIME_TYPE
        except Exception as error:
            shift = errors_inserted.get(id(trace), 0)
            trace.errors.insert(
                item.error_index + shift, TraceError(tool="python-magic", message=str(error), stream=stream.name)
            )
            errors_inserted[id(trace)] = shift + 1
        if stream.name == "raw" and item.file_name is not None:
            _set_file_mime_type(trace=trace, file_name=item.file_name, mime_type=stream.mime_type)


def _set_file_mime_type(*, trace: TraceRecord, file_name: str, mime_type: str | None) -> None:
    """``file.mimeType`` (whose place was taken when the stream was read) and ``file.extensionMismatch``."""
    properties = trace.properties
    properties["file.mimeType"] = mime_type
    mismatch = extension_mismatch(file_name=file_name, mime_type=mime_type)
    if mismatch is None:
        return
    if next(reversed(properties)) == "file.mimeType":
        properties["file.extensionMismatch"] = mismatch
        return
    # Something was added after the MIME type's place: put the mismatch right after it, as always.
    items = list(properties.items())
    position = next(index for index, (key, _) in enumerate(items) if key == "file.mimeType") + 1
    items.insert(position, ("file.extensionMismatch", mismatch))
    properties.clear()
    properties.update(items)
