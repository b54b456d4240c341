"""Reading a sealed container back: a seekable, read-only Python file object over the original bytes.

Only the chunks a read touches are fetched and decrypted; a small LRU cache keeps the last few plaintext
chunks, because file-system parsers (dfVFS, pytsk3) read the same metadata blocks again and again.
Nothing is ever written to disk in the clear.
"""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from array import array
from collections import OrderedDict

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from evidence.container.errors import (
    ChunkIntegrityError,
    ContainerFormatError,
    ContainerIncomplete,
    IndexIntegrityError,
)
from evidence.container.format import (
    CHUNK_OVERHEAD,
    HEADER_LENGTH,
    ContainerIndex,
    Manifest,
    check_data_key,
    chunk_associated_data,
    chunk_key,
    index_key,
    manifest_key,
    parse_format_byte,
    sha256_hex,
)
from evidence.storage.base import EvidenceStore, ObjectMissing

DEFAULT_CACHE_CHUNKS = 8
DEFAULT_BUFFER_SIZE = 64 << 10

_AUTHENTICATION_FAILED = (
    "authentication failed: the chunk was altered, truncated, moved, taken from another evidence item, "
    "or the data key is wrong"
)


class ChunkOpener:
    """Decrypts and decompresses stored chunks of one evidence item. Safe to share between threads."""

    def __init__(self, *, evidence_id: uuid.UUID, data_key: bytes) -> None:
        self.evidence_id = evidence_id
        # AESGCM keeps no per-call state, so one object serves every thread.
        self._aead = AESGCM(check_data_key(data_key))
        # A zstd decompression context must not be used by two threads at once: one per thread.
        self._per_thread = threading.local()

    def __repr__(self) -> str:  # never show the key
        return f"ChunkOpener(evidence_id={self.evidence_id})"

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        decompressor = getattr(self._per_thread, "decompressor", None)
        if decompressor is None:
            decompressor = self._per_thread.decompressor = zstandard.ZstdDecompressor()
        return decompressor

    def open(self, *, index: int, stored: bytes, plain_length: int) -> bytes:
        """The plaintext of chunk ``index``; ChunkIntegrityError(index) on any mismatch."""
        if len(stored) < CHUNK_OVERHEAD:
            raise ChunkIntegrityError(index, f"truncated: {len(stored)} bytes is shorter than any sealed chunk")
        format_byte = stored[0]
        try:
            compressed = parse_format_byte(format_byte)
        except ContainerFormatError as error:
            raise ChunkIntegrityError(index, str(error)) from None
        view = memoryview(stored)
        associated_data = chunk_associated_data(
            evidence_id=self.evidence_id, index=index, plain_length=plain_length, format_byte=format_byte
        )
        try:
            payload = self._aead.decrypt(view[1:HEADER_LENGTH], view[HEADER_LENGTH:], associated_data)
        except InvalidTag:
            raise ChunkIntegrityError(index, _AUTHENTICATION_FAILED) from None
        if compressed:
            try:
                plaintext = self._decompressor().decompress(payload, max_output_size=plain_length)
            except zstandard.ZstdError:
                # Authenticated but undecodable: written wrongly by a key holder, not tampered in storage.
                raise ChunkIntegrityError(index, "the authenticated payload is not valid zstd") from None
        else:
            plaintext = payload
        if len(plaintext) != plain_length:
            raise ChunkIntegrityError(index, f"decrypted to {len(plaintext)} bytes, expected {plain_length}")
        return plaintext


def load_manifest(*, evidence_id: uuid.UUID, store: EvidenceStore) -> tuple[Manifest, bytes]:
    """The manifest and its exact stored bytes; ContainerIncomplete when the container is not finished."""
    try:
        manifest_bytes = store.read(manifest_key(evidence_id))
    except ObjectMissing:
        raise ContainerIncomplete(f"evidence {evidence_id} has no sealed container (no manifest)") from None
    return Manifest.from_bytes(manifest_bytes, evidence_id=evidence_id), manifest_bytes


def load_index(*, evidence_id: uuid.UUID, store: EvidenceStore, manifest: Manifest) -> ContainerIndex:
    """index.json, checked against the SHA-256 the manifest pins and against the manifest's totals."""
    try:
        index_bytes = store.read(index_key(evidence_id))
    except ObjectMissing:
        raise ContainerIncomplete(f"evidence {evidence_id} has a manifest but no index") from None
    if sha256_hex(index_bytes) != manifest.index_sha256:
        raise IndexIntegrityError(
            f"index.json of evidence {evidence_id} has SHA-256 {sha256_hex(index_bytes)}, "
            f"the manifest records {manifest.index_sha256}"
        )
    index = ContainerIndex.from_bytes(index_bytes, evidence_id=evidence_id)
    if (
        index.total_size != manifest.size
        or len(index.chunks) != manifest.chunk_count
        or index.chunk_size != manifest.chunk_size
    ):
        raise IndexIntegrityError(f"index.json of evidence {evidence_id} disagrees with the manifest's totals")
    return index


class ContainerReader(io.RawIOBase):
    """The original bytes of one sealed evidence item as a read-only, seekable raw file object.

    Offers ``read``/``readinto``/``seek``/``tell`` plus ``size`` and ``get_size()`` (what dfVFS and pytsk3
    call). A lock serialises calls, so sharing one reader between threads is safe but slow: give each
    thread its own reader (they may share the store).

    Every chunk read is authenticated by AES-GCM and, unless ``check_chunk_hashes`` is off, its plaintext
    is hashed again and compared with the index. A failure raises ChunkIntegrityError naming the chunk.
    """

    def __init__(
        self,
        *,
        evidence_id: uuid.UUID,
        data_key: bytes,
        store: EvidenceStore,
        cache_chunks: int = DEFAULT_CACHE_CHUNKS,
        check_chunk_hashes: bool = True,
    ) -> None:
        super().__init__()
        self.evidence_id = evidence_id
        self._store = store
        self._opener = ChunkOpener(evidence_id=evidence_id, data_key=data_key)
        self.manifest, _ = load_manifest(evidence_id=evidence_id, store=store)
        index = load_index(evidence_id=evidence_id, store=store, manifest=self.manifest)
        self.chunk_size = index.chunk_size
        self._size = index.total_size
        self.chunk_count = len(index.chunks)
        # Keep only what reading needs, compactly (40 bytes a chunk), not a million record objects.
        self._stored_lengths = array("Q", (record.stored_length for record in index.chunks))
        # Nearly always empty: the chunks stored as a later attempt (an upload retry past an orphan).
        self._attempts = {record.index: record.attempt for record in index.chunks if record.attempt}
        self._chunk_sha256 = (
            b"".join(bytes.fromhex(record.sha256) for record in index.chunks) if check_chunk_hashes else None
        )
        del index
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_chunks = max(1, cache_chunks)
        self._position = 0
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"ContainerReader(evidence_id={self.evidence_id}, size={self._size})"

    # --- io.RawIOBase -----------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    @property
    def size(self) -> int:
        return self._size

    def get_size(self) -> int:
        return self._size

    def tell(self) -> int:
        self._check_open()
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        with self._lock:
            if whence == io.SEEK_SET:
                target = offset
            elif whence == io.SEEK_CUR:
                target = self._position + offset
            elif whence == io.SEEK_END:
                target = self._size + offset
            else:
                raise ValueError(f"invalid whence ({whence})")
            if target < 0:
                raise ValueError(f"negative seek position {target}")
            # Past the end is allowed, as with any file; reads there return nothing.
            self._position = target
            return target

    def readinto(self, buffer) -> int:
        self._check_open()
        target = memoryview(buffer).cast("B")
        with self._lock:
            position = self._position
            end = min(position + len(target), self._size)
            filled = 0
            while position < end:
                chunk_number, within = divmod(position, self.chunk_size)
                plaintext = self._plaintext_of(chunk_number)
                count = min(len(plaintext) - within, end - position)
                target[filled : filled + count] = memoryview(plaintext)[within : within + count]
                filled += count
                position += count
            self._position = position
            return filled

    def readall(self) -> bytes:
        with self._lock:
            remaining = max(0, self._size - self._position)
            buffer = bytearray(remaining)
            count = self.readinto(buffer)
            return bytes(buffer[:count]) if count != remaining else bytes(buffer)

    # --- chunks -----------------------------------------------------------------------------------

    def read_chunk(self, chunk_number: int) -> bytes:
        """The whole plaintext of one chunk (checked like any read)."""
        self._check_open()
        with self._lock:
            return self._plaintext_of(chunk_number)

    def _plaintext_of(self, chunk_number: int) -> bytes:
        cached = self._cache.get(chunk_number)
        if cached is not None:
            self._cache.move_to_end(chunk_number)
            return cached
        plaintext = self._decrypt_chunk(chunk_number)
        self._cache[chunk_number] = plaintext
        if len(self._cache) > self._cache_chunks:
            self._cache.popitem(last=False)
        return plaintext

    def _decrypt_chunk(self, chunk_number: int) -> bytes:
        if not 0 <= chunk_number < self.chunk_count:
            raise IndexError(f"chunk {chunk_number} is outside this container")
        try:
            stored = self._store.read(chunk_key(self.evidence_id, chunk_number, self._attempts.get(chunk_number, 0)))
        except ObjectMissing:
            raise ChunkIntegrityError(chunk_number, "missing from the evidence store") from None
        plain_length = min(self.chunk_size, self._size - chunk_number * self.chunk_size)
        expected_stored_length = self._stored_lengths[chunk_number]
        try:
            # Decryption is the check that matters (and cannot be fooled); a stored length that differs
            # from the index is added to its verdict, or reported on its own should decryption pass.
            plaintext = self._opener.open(index=chunk_number, stored=stored, plain_length=plain_length)
        except ChunkIntegrityError as error:
            if len(stored) != expected_stored_length:
                raise ChunkIntegrityError(
                    chunk_number,
                    f"{error.problem}; stored length {len(stored)} differs from the index's {expected_stored_length}",
                ) from None
            raise
        if len(stored) != expected_stored_length:
            raise ChunkIntegrityError(
                chunk_number, f"stored length {len(stored)} differs from the index's {expected_stored_length}"
            )
        if (
            self._chunk_sha256 is not None
            and hashlib.sha256(plaintext).digest() != self._chunk_sha256[32 * chunk_number : 32 * chunk_number + 32]
        ):
            raise ChunkIntegrityError(chunk_number, "plaintext SHA-256 differs from the index")
        return plaintext

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed container reader")

    def close(self) -> None:
        # Also called by __del__ on a reader whose __init__ failed half-way: tolerate missing attributes.
        cache = getattr(self, "_cache", None)
        if cache is not None:
            with self._lock:
                cache.clear()
        super().close()


class SealedEvidenceFile(io.BufferedReader):
    """A buffered ContainerReader that still answers ``get_size()`` and ``size`` (for dfVFS/pytsk3)."""

    def __init__(self, raw: ContainerReader, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        super().__init__(raw, buffer_size=buffer_size)

    @property
    def size(self) -> int:
        return self.raw.size

    def get_size(self) -> int:
        return self.raw.get_size()


def open_container(
    *,
    evidence_id: uuid.UUID,
    data_key: bytes,
    store: EvidenceStore,
    cache_chunks: int = DEFAULT_CACHE_CHUNKS,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
    check_chunk_hashes: bool = True,
) -> SealedEvidenceFile:
    """Open a sealed evidence item for reading, as a buffered binary file object with ``get_size()``."""
    raw = ContainerReader(
        evidence_id=evidence_id,
        data_key=data_key,
        store=store,
        cache_chunks=cache_chunks,
        check_chunk_hashes=check_chunk_hashes,
    )
    return SealedEvidenceFile(raw, buffer_size=buffer_size)
