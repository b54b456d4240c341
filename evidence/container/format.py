"""The sealed evidence container's at-rest format: constants, store keys, chunk framing, JSON documents.

Everything that decides how bytes look in the evidence store lives here, so the writer, the reader and the
verifier cannot drift apart. ``docs/container.md`` is the prose version of this module; change both together.

A stored chunk is::

    format byte (1) | nonce (12) | AES-256-GCM( payload ) || tag (16)

where the payload is ``zstd(plaintext)``, or the plaintext itself when the format byte carries
``FLAG_UNCOMPRESSED`` (zstd did not make it smaller). The associated data of every chunk is
``CHUNK_MAGIC | evidence UUID (16) | chunk index (8, big-endian) | plaintext length (8, big-endian) |
format byte (1)``, so a chunk cannot be swapped, moved, truncated, re-flagged or reused in another item.
"""

from __future__ import annotations

import datetime as _datetime
import hashlib
import json
import struct
import uuid
from dataclasses import dataclass
from typing import Any

from evidence.container.errors import ContainerFormatError

# --- chunks ---------------------------------------------------------------------------------------

CHUNK_SIZE = 1 << 20
"""Default plaintext bytes per chunk. A container records its own chunk size in its index."""

MIN_CHUNK_SIZE = 4 << 10
MAX_CHUNK_SIZE = 64 << 20
# Bounds keep a tampered index from making the reader allocate absurd buffers, and keep the chunk
# count (and so the index) of a multi-terabyte image within reason.

FORMAT_VERSION = 1
"""Version of the chunk framing and of the index and manifest documents."""

FLAG_UNCOMPRESSED = 0x80
"""Set in the format byte when the payload is the plaintext itself (zstd would not have shrunk it)."""

_VERSION_MASK = 0x7F

NONCE_LENGTH = 12
TAG_LENGTH = 16
HEADER_LENGTH = 1 + NONCE_LENGTH
CHUNK_OVERHEAD = HEADER_LENGTH + TAG_LENGTH
"""Stored bytes that carry no payload: format byte, nonce and GCM tag."""

DATA_KEY_LENGTH = 32
"""AES-256."""

CHUNK_MAGIC = b"CUSTODIA-CHUNK-v1"

ZSTD_LEVEL = 1
"""zstd level 1: on this kind of machine it compresses text ~4 GB/s and gives up on random data fast;
higher levels cost throughput for a few percent of disk, and evidence is mostly read, never rewritten."""

_AAD_TAIL = struct.Struct(">QQB")


def chunk_associated_data(*, evidence_id: uuid.UUID, index: int, plain_length: int, format_byte: int) -> bytes:
    """The associated data that binds one chunk to its evidence item, position, length and framing."""
    return CHUNK_MAGIC + evidence_id.bytes + _AAD_TAIL.pack(index, plain_length, format_byte)


def format_byte_for(*, compressed: bool) -> int:
    return FORMAT_VERSION if compressed else FORMAT_VERSION | FLAG_UNCOMPRESSED


def parse_format_byte(format_byte: int) -> bool:
    """Return whether the payload is compressed; refuse unknown versions and flags."""
    if format_byte & _VERSION_MASK != FORMAT_VERSION:
        raise ContainerFormatError(f"unknown chunk format version {format_byte & _VERSION_MASK}")
    return not format_byte & FLAG_UNCOMPRESSED


def check_chunk_size(chunk_size: int) -> int:
    if not isinstance(chunk_size, int) or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ContainerFormatError(f"chunk size must be an integer from {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} bytes")
    return chunk_size


def check_data_key(data_key: bytes) -> bytes:
    # Say what is wrong with the key without ever echoing it.
    if not isinstance(data_key, bytes | bytearray) or len(data_key) != DATA_KEY_LENGTH:
        raise ContainerFormatError(f"the data key must be {DATA_KEY_LENGTH} bytes (AES-256)")
    return bytes(data_key)


def chunk_count_for(*, size: int, chunk_size: int) -> int:
    return -(-size // chunk_size)


# --- store keys -----------------------------------------------------------------------------------
# Keys derive from the evidence UUID only: never a case reference, label or suspect name.


def evidence_prefix(evidence_id: uuid.UUID) -> str:
    return f"evidence/{_as_uuid(evidence_id)}/"


def chunk_prefix(evidence_id: uuid.UUID) -> str:
    return f"{evidence_prefix(evidence_id)}chunk/"


# A chunk normally lives at ``chunk/NNNNNNNN``. When that name is taken by an orphan (bytes an upload
# request wrote before it failed, never recorded) and a retry brings other bytes, the write-once store
# cannot replace it: the retry is stored as attempt ``k`` at ``chunk/NNNNNNNN.aK`` and the index records
# the attempt it chose. The orphan stays, superseded, and is named in the audit trail (docs/acquisition.md).
MAX_CHUNK_ATTEMPT = 99


def chunk_key(evidence_id: uuid.UUID, index: int, attempt: int = 0) -> str:
    if index < 0 or index > 99_999_999:
        raise ContainerFormatError("chunk index out of range")
    if not 0 <= attempt <= MAX_CHUNK_ATTEMPT:
        raise ContainerFormatError("chunk attempt out of range")
    suffix = f".a{attempt}" if attempt else ""
    return f"{chunk_prefix(evidence_id)}{index:08d}{suffix}"


def index_key(evidence_id: uuid.UUID) -> str:
    return f"{evidence_prefix(evidence_id)}index.json"


def manifest_key(evidence_id: uuid.UUID) -> str:
    return f"{evidence_prefix(evidence_id)}manifest.json"


def chunk_index_from_key(key: str) -> int | None:
    """The chunk number of a chunk key (of any attempt), or None when the key is not a chunk's."""
    located = chunk_location_from_key(key)
    return located[0] if located else None


def chunk_location_from_key(key: str) -> tuple[int, int] | None:
    """``(chunk number, attempt)`` of a chunk key, or None when the key is not a chunk's."""
    last = key.rsplit("/", 1)[-1]
    number, _, attempt = last.partition(".a")
    if len(number) != 8 or not number.isdigit():
        return None
    if not attempt:
        return None if "." in last else (int(number), 0)
    if not attempt.isdigit() or not 0 < int(attempt) <= MAX_CHUNK_ATTEMPT or attempt.startswith("0"):
        return None
    return int(number), int(attempt)


def _as_uuid(evidence_id: uuid.UUID) -> uuid.UUID:
    if not isinstance(evidence_id, uuid.UUID):
        raise ContainerFormatError("evidence_id must be a uuid.UUID")
    return evidence_id


# --- index and manifest ---------------------------------------------------------------------------

INDEX_FORMAT = "custodia-container-index"
MANIFEST_FORMAT = "custodia-container-manifest"
CIPHER_NAME = "AES-256-GCM"
COMPRESSION_NAME = "zstd"


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """One chunk as the index describes it. ``offset`` is its place in the plaintext image."""

    index: int
    offset: int
    plain_length: int
    stored_length: int
    sha256: str
    # Which stored copy holds the chunk (0: the usual key; see chunk_key). Written to the index only when
    # not 0, so that every index written before attempts existed reads, and re-writes, byte for byte.
    attempt: int = 0

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "index": self.index,
            "offset": self.offset,
            "plain_length": self.plain_length,
            "stored_length": self.stored_length,
            "sha256": self.sha256,
        }
        if self.attempt:
            document["attempt"] = self.attempt
        return document


@dataclass(frozen=True, slots=True)
class ImageHashes:
    """Whole-image hashes (lower-case hex) and size of the acquired bytes."""

    md5: str
    sha1: str
    sha256: str
    size: int

    def as_dict(self) -> dict[str, str]:
        return {"md5": self.md5, "sha1": self.sha1, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class ContainerIndex:
    evidence_id: uuid.UUID
    chunk_size: int
    total_size: int
    chunks: tuple[ChunkRecord, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "version": FORMAT_VERSION,
            "evidence_id": str(self.evidence_id),
            "cipher": CIPHER_NAME,
            "compression": COMPRESSION_NAME,
            "chunk_size": self.chunk_size,
            "total_size": self.total_size,
            "chunks": [record.as_json() for record in self.chunks],
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.as_json())

    @classmethod
    def from_bytes(cls, data: bytes, *, evidence_id: uuid.UUID) -> ContainerIndex:
        document = _load_json(data, what="index")
        try:
            if document["format"] != INDEX_FORMAT or document["version"] != FORMAT_VERSION:
                raise ContainerFormatError("the index is not a version-1 Custodia container index")
            if document["evidence_id"] != str(evidence_id):
                raise ContainerFormatError("the index belongs to another evidence item")
            chunk_size = check_chunk_size(document["chunk_size"])
            total_size = document["total_size"]
            chunks = tuple(
                ChunkRecord(
                    index=entry["index"],
                    offset=entry["offset"],
                    plain_length=entry["plain_length"],
                    stored_length=entry["stored_length"],
                    sha256=entry["sha256"],
                    attempt=entry.get("attempt", 0),
                )
                for entry in document["chunks"]
            )
        except (KeyError, TypeError) as error:
            raise ContainerFormatError(f"the index is malformed ({type(error).__name__}: {error})") from None
        index = cls(evidence_id=evidence_id, chunk_size=chunk_size, total_size=total_size, chunks=chunks)
        index.check_consistent()
        return index

    def check_consistent(self) -> None:
        """Refuse an index whose chunks do not tile ``total_size`` exactly, in order, without gaps."""
        if not isinstance(self.total_size, int) or self.total_size < 0:
            raise ContainerFormatError("the index has an invalid total size")
        expected_count = chunk_count_for(size=self.total_size, chunk_size=self.chunk_size)
        if len(self.chunks) != expected_count:
            raise ContainerFormatError(
                f"the index lists {len(self.chunks)} chunks where {expected_count} cover {self.total_size} bytes"
            )
        for position, record in enumerate(self.chunks):
            expected_length = min(self.chunk_size, self.total_size - position * self.chunk_size)
            if (
                record.index != position
                or record.offset != position * self.chunk_size
                or record.plain_length != expected_length
                or not isinstance(record.stored_length, int)
                or record.stored_length < CHUNK_OVERHEAD
                or not _is_hex(record.sha256, 64)
                or not isinstance(record.attempt, int)
                or not 0 <= record.attempt <= MAX_CHUNK_ATTEMPT
            ):
                raise ContainerFormatError(f"index entry {position} is inconsistent")


@dataclass(frozen=True, slots=True)
class Manifest:
    """Acquisition facts and whole-image hashes; ``index_sha256`` pins the exact index document."""

    evidence_id: uuid.UUID
    facts: dict[str, Any]
    hashes: ImageHashes
    chunk_size: int
    chunk_count: int
    index_sha256: str

    @property
    def size(self) -> int:
        return self.hashes.size

    def as_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "version": FORMAT_VERSION,
            "evidence_id": str(self.evidence_id),
            "facts": self.facts,
            "size": self.hashes.size,
            "md5": self.hashes.md5,
            "sha1": self.hashes.sha1,
            "sha256": self.hashes.sha256,
            "chunk_size": self.chunk_size,
            "chunk_count": self.chunk_count,
            "index_sha256": self.index_sha256,
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.as_json())

    @classmethod
    def from_bytes(cls, data: bytes, *, evidence_id: uuid.UUID) -> Manifest:
        document = _load_json(data, what="manifest")
        try:
            if document["format"] != MANIFEST_FORMAT or document["version"] != FORMAT_VERSION:
                raise ContainerFormatError("the manifest is not a version-1 Custodia container manifest")
            if document["evidence_id"] != str(evidence_id):
                raise ContainerFormatError("the manifest belongs to another evidence item")
            manifest = cls(
                evidence_id=evidence_id,
                facts=document["facts"],
                hashes=ImageHashes(
                    md5=document["md5"], sha1=document["sha1"], sha256=document["sha256"], size=document["size"]
                ),
                chunk_size=check_chunk_size(document["chunk_size"]),
                chunk_count=document["chunk_count"],
                index_sha256=document["index_sha256"],
            )
        except (KeyError, TypeError) as error:
            raise ContainerFormatError(f"the manifest is malformed ({type(error).__name__}: {error})") from None
        if not _is_hex(manifest.index_sha256, 64) or not _is_hex(manifest.hashes.sha256, 64):
            raise ContainerFormatError("the manifest's hashes are malformed")
        return manifest


def canonical_json(document: Any) -> bytes:
    """Sorted keys, no insignificant white space, ASCII only: the same document gives the same bytes,
    so the SHA-256 of an index or manifest can be recomputed by anyone from its content."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=_json_default
    ).encode("ascii")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_default(value: Any) -> Any:
    # Acquisition facts often carry times and ids; give them one fixed spelling. Anything else is refused
    # rather than turned into a repr that could change between Python versions.
    if isinstance(value, _datetime.datetime | _datetime.date | _datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"acquisition facts must be JSON values, not {type(value).__name__}")


def _load_json(data: bytes, *, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise ContainerFormatError(f"the {what} is not valid JSON") from None
    if not isinstance(document, dict):
        raise ContainerFormatError(f"the {what} is not a JSON object")
    return document


def _is_hex(value: Any, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and all(c in "0123456789abcdef" for c in value)
