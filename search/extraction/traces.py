"""What extraction produces: traces, as plain data (no Django), ready to be stored by uid.

The shapes follow DESIGN.md §6 (Hansken's trace model): a uid ``<evidence-id>:0-3-1-7`` whose parent is
the uid without its last segment, types, camelCase ``<type>.<property>`` properties, data streams with
hashes and a data path from which the bytes can be read again, the deleted flag, and every tool failure.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO, ClassVar


@dataclass(frozen=True)
class ToolRef:
    """The tool (name, version) that produced a property or a stream: provenance for every fact."""

    name: str
    version: str


@dataclass
class TraceError:
    """One tool failure on a trace: stored and searchable; extraction goes on."""

    tool: str
    message: str
    stream: str | None = None


@dataclass
class DataStream:
    """One stream of bytes of a trace: ``raw``, ``ads:Zone.Identifier``, ``decrypted``…

    Hashes and entropy are None when the stream was listed but not read (e.g. a whole partition when
    volume hashing is off); ``data_path`` is always set, so a data service can read the bytes later.
    ``data_location`` is set when the bytes are not what ``data_path`` reads: a deleted FAT file recovered
    from unallocated clusters (``{"kind": "clusters", ...}``, see ``source.open_data_location``); readers
    of the bytes take it over ``data_path``.
    """

    name: str
    size: int
    data_path: str
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    entropy: float | None = None
    mime_type: str | None = None
    data_location: dict | None = None


class RawContent:
    """The raw stream of a file as the walker read it, handed to the content tools on that same read.

    ``data`` is the whole stream when it was small enough to keep (the blocks the walker hashed, no
    copy for a one-block file); otherwise ``read_at(offset, size)`` reads it through the walker's own open
    file (TSK's or dfVFS's), with no second open of the layers above. ``head`` is what libmagic saw.
    Valid while the walk that made it goes on.
    """

    __slots__ = ("data", "head", "read_at", "size")

    def __init__(
        self,
        *,
        head: bytes,
        size: int,
        data: bytes | None = None,
        read_at: Callable[[int, int], bytes] | None = None,
    ):
        if data is None and read_at is None:
            raise ValueError("raw content needs its bytes or a way to read them")
        self.head = head
        self.size = size
        self.data = data
        self.read_at = read_at

    def open(self) -> BinaryIO:
        """A fresh, standard, seekable file object over the stream, at its start."""
        if self.data is not None:
            return io.BytesIO(self.data)
        return io.BufferedReader(_RandomAccessFile(read_at=self.read_at, size=self.size), buffer_size=1 << 20)


class _RandomAccessFile(io.RawIOBase):
    """``read_at(offset, size)`` of a stream of ``size`` bytes as a standard raw file."""

    def __init__(self, *, read_at: Callable[[int, int], bytes], size: int):
        super().__init__()
        self._read_at = read_at
        self._size = size
        self._offset = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        wanted = min(len(buffer), self._size - self._offset)
        if wanted <= 0:
            return 0
        data = self._read_at(self._offset, wanted)
        buffer[: len(data)] = data
        self._offset += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._offset
        elif whence == io.SEEK_END:
            offset += self._size
        elif whence != io.SEEK_SET:
            raise ValueError(f"invalid whence {whence}")
        if offset < 0:
            raise ValueError("negative seek position")
        self._offset = offset
        return offset

    def tell(self) -> int:
        return self._offset


@dataclass
class TraceRecord:
    uid: str
    parent_uid: str | None
    name: str
    path: str
    types: list[str]
    properties: dict[str, Any] = field(default_factory=dict)
    streams: list[DataStream] = field(default_factory=list)
    deleted: bool = False
    errors: list[TraceError] = field(default_factory=list)
    # Which tool produced which property prefix, e.g. {"file": ToolRef("pytsk3", "4.15.0")}.
    tools: dict[str, ToolRef] = field(default_factory=dict)
    # Not a field: never stored, compared or serialised. The walker sets it on a file trace whose raw
    # stream it read, so the content tools run on that read instead of opening the file again.
    content: ClassVar[RawContent | None] = None

    def stream(self, name: str) -> DataStream | None:
        for data_stream in self.streams:
            if data_stream.name == name:
                return data_stream
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the trace store's document and the determinism check's unit)."""
        return asdict(self)


def child_uid(*, parent_uid: str, ordinal: int) -> str:
    """``<evidence>:0-3`` + ordinal 1 → ``<evidence>:0-3-1``."""
    return f"{parent_uid}-{ordinal}"


def root_uid(*, evidence_id: str) -> str:
    return f"{evidence_id}:0"


def parent_of(uid: str) -> str | None:
    evidence_id, _, segments = uid.partition(":")
    if "-" not in segments:
        return None
    return f"{evidence_id}:{segments.rsplit('-', 1)[0]}"
