"""MD5, SHA-1 and SHA-256 of the acquired bytes, computed while they are received — never by a second read.

``MultiHasher`` (from ``evidence.container.writer``, re-exported here) is for one process that sees every
byte (server-side import, sealing a stream). It uses hashlib (OpenSSL), the fastest option here.

``ResumableHasher`` is for resumable uploads, where the bytes of one image arrive over many HTTP requests
handled by different processes: after each request its running state is saved (``to_state``) and the next
request picks it up (``from_state``). hashlib objects cannot be serialised, so it uses ``rehashes``
(CERT Polska; RustCrypto's MD5/SHA-1/SHA-256, whose compression state is serialisable by design).

Why not the alternatives:
- ``rehash`` (pickleable hashlib) reads OpenSSL's private EVP_MD_CTX layout and refuses OpenSSL 3
  ("OpenSSL 3 is not yet supported"); this Debian 12 Python links OpenSSL 3.0.
- Pure-Python MD5/SHA in a loop run at a few MB/s: hours for a disk image.
- ctypes over OpenSSL's deprecated ``MD5_Init``/``SHA256_Update`` with caller-owned ``MD5_CTX`` structs is
  as fast as hashlib and its structs are public ABI, but the functions are deprecated in OpenSSL 3 and may
  go; a maintained library with a documented serialisation is the safer bet.

The saved state is bound to the exact ``rehashes`` version (its serialisation is not promised stable across
versions): resuming under another version raises ``HashStateError`` — the upload must restart, as re-reading
the received bytes would break the one-pass rule. States stay server-side: deserialising is only safe for
states we wrote, and a SHA-256 over the state catches corruption in storage.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import BinaryIO

from evidence.container.writer import MultiHasher  # the one MD5/SHA-1/SHA-256 hasher of the project
from evidence.intake.errors import HashStateError, MissingDependency

ALGORITHMS = ("md5", "sha1", "sha256")
READ_SIZE = 4 * 1024 * 1024


def hash_stream(*, stream: BinaryIO, read_size: int = READ_SIZE) -> dict[str, str]:
    """Hash a stream from its current position to its end (one read of each byte)."""
    hasher = MultiHasher()
    for block in _blocks(stream=stream, read_size=read_size):
        hasher.update(block)
    return hasher.hexdigests()


@dataclass(frozen=True)
class SegmentedDigests:
    """Hashes of a split image: of the whole (the concatenated segment files, i.e. the evidence bytes) and the
    SHA-256 of each segment file, so that each can be matched with a listing of the source files."""

    whole: dict[str, str]
    segment_sha256: tuple[str, ...]
    size: int


def hash_segments(*, paths: Sequence[Path], read_size: int = READ_SIZE) -> SegmentedDigests:
    """Hash segment files in one pass: each byte is read once and fed to the whole and its segment's hasher."""
    whole = MultiHasher()
    segment_sha256 = []
    for path in paths:
        segment = hashlib.sha256()
        with path.open("rb", buffering=0) as stream:
            for block in _blocks(stream=stream, read_size=read_size):
                whole.update(block)
                segment.update(block)
        segment_sha256.append(segment.hexdigest())
    return SegmentedDigests(whole=whole.hexdigests(), segment_sha256=tuple(segment_sha256), size=whole.bytes_hashed)


def _blocks(*, stream: BinaryIO, read_size: int) -> Iterable[bytes]:
    while block := stream.read(read_size):
        yield block


# ------------------------------------------------------------------------------------------ resumable

_STATE_MAGIC = b"CUSTODIA-HASHSTATE\x01"
_DIGEST_SIZE = 32


class ResumableHasher:
    """MD5, SHA-1 and SHA-256 whose running state survives between processes.

    Bytes must be fed in order. ``update_at`` takes the offset of each piece, skips what was already hashed
    (an overlapping retry) and refuses a gap (a later piece must wait until the bytes before it arrived).
    """

    def __init__(self) -> None:
        self._hashers = {name: hasher_class() for name, hasher_class in _rehashes_classes().items()}
        self.bytes_hashed = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        chunk = bytes(data)  # the Rust binding takes bytes only
        for hasher in self._hashers.values():
            hasher.update(chunk)
        self.bytes_hashed += len(chunk)

    def update_at(self, *, offset: int, data: bytes | bytearray | memoryview) -> int:
        """Hash the part of ``data`` (starting at ``offset`` in the image) not hashed yet; return its length.

        Whether overlapping bytes are *identical* to those received before is the upload's check, not this
        one's: here they are simply not hashed twice.
        """
        if offset < 0:
            raise ValueError(f"negative offset {offset}")
        if offset > self.bytes_hashed:
            raise ValueError(
                f"bytes {self.bytes_hashed}-{offset - 1} have not been hashed yet; hashing must proceed in order"
            )
        fresh = memoryview(data)[self.bytes_hashed - offset :]
        if len(fresh):
            self.update(fresh)
        return len(fresh)

    def hexdigests(self) -> dict[str, str]:
        """Final digests of the bytes so far. Does not end hashing: more bytes may follow."""
        classes = _rehashes_classes()
        # Finalise copies so the running state stays usable.
        return {name: classes[name].deserialize(self._hashers[name].serialize()).finalize() for name in ALGORITHMS}

    def to_state(self) -> bytes:
        """The running state as bytes, to store server-side (database row, cache) between requests."""
        version = _rehashes_version().encode()
        parts = [_STATE_MAGIC, struct.pack(">QH", self.bytes_hashed, len(version)), version]
        for name in ALGORITHMS:
            state = self._hashers[name].serialize()
            parts.append(struct.pack(">I", len(state)))
            parts.append(state)
        body = b"".join(parts)
        return body + hashlib.sha256(body).digest()

    @classmethod
    def from_state(cls, state: bytes) -> ResumableHasher:
        classes = _rehashes_classes()
        body, checksum = state[:-_DIGEST_SIZE], state[-_DIGEST_SIZE:]
        if len(state) <= len(_STATE_MAGIC) + _DIGEST_SIZE or not body.startswith(_STATE_MAGIC):
            raise HashStateError("the saved hashing state is not one of ours")
        if hashlib.sha256(body).digest() != checksum:
            raise HashStateError("the saved hashing state is corrupt (its checksum does not match)")
        position = len(_STATE_MAGIC)
        bytes_hashed, version_length = struct.unpack_from(">QH", body, position)
        position += 10
        version = body[position : position + version_length].decode()
        position += version_length
        if version != _rehashes_version():
            raise HashStateError(
                f"the hashing state was saved by rehashes {version} and this server runs {_rehashes_version()}: "
                "it cannot be resumed; restart the upload"
            )
        hasher = cls.__new__(cls)
        hasher.bytes_hashed = bytes_hashed
        hasher._hashers = {}
        try:
            for name in ALGORITHMS:
                (length,) = struct.unpack_from(">I", body, position)
                position += 4
                hasher._hashers[name] = classes[name].deserialize(body[position : position + length])
                position += length
        except (ValueError, struct.error) as error:
            raise HashStateError(f"the saved hashing state cannot be read: {error}") from error
        return hasher


def resumable_hashing_available() -> bool:
    try:
        _require_rehashes()
    except MissingDependency:
        return False
    return True


def _rehashes_classes() -> dict:
    rehashes = _require_rehashes()
    return {"md5": rehashes.PyMd5, "sha1": rehashes.PySha1, "sha256": rehashes.PySha256}


def _require_rehashes():
    try:
        import rehashes
    except ImportError as error:
        raise MissingDependency(
            "resumable hashing needs the rehashes package: pip install rehashes (see requirements.txt)"
        ) from error
    return rehashes


def _rehashes_version() -> str:
    return metadata.version("rehashes")
