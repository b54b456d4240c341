"""Writing a sealed container: seal chunks (any order), then the index and the manifest.

Two ways in:

* :class:`ContainerWriter` for chunks that arrive in any order (resumable uploads, data-driven
  acquisition): ``write_chunk`` each, then ``finish`` with hashes the caller computed while receiving.
* :func:`seal_stream` for a stream read once from start to end (server-side import, a finished upload):
  it hashes, compresses, encrypts and stores in one pass, overlapping the work across threads.

Finishing writes ``index.json`` and then ``manifest.json``; a container without a manifest is not sealed.
Because the store is write-once, nothing written here is ever replaced: a failed or refused seal (a declared
hash that differs) leaves its chunks behind, unreferenced, and no index or manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from evidence.container.errors import (
    ChunkConflict,
    ContainerError,
    ContainerFormatError,
    ContainerIncomplete,
    HashMismatch,
)
from evidence.container.format import (
    CHUNK_OVERHEAD,
    CHUNK_SIZE,
    MAX_CHUNK_ATTEMPT,
    NONCE_LENGTH,
    ZSTD_LEVEL,
    ChunkRecord,
    ContainerIndex,
    ImageHashes,
    Manifest,
    canonical_json,
    check_chunk_size,
    check_data_key,
    chunk_associated_data,
    chunk_key,
    chunk_location_from_key,
    chunk_prefix,
    format_byte_for,
    index_key,
    manifest_key,
    sha256_hex,
)
from evidence.container.reader import ChunkOpener
from evidence.storage.base import EvidenceStore, ObjectExists, StoreError

HASH_ALGORITHMS = ("md5", "sha1", "sha256")

# Bytes of plaintext allowed in flight in seal_stream (read but not yet hashed, or not yet stored).
# With 1 MiB chunks that is 32 chunks; plaintext, compressed and encrypted copies stay far below 300 MiB.
_IN_FLIGHT_BUDGET = 32 << 20


# --- whole-image hashes ---------------------------------------------------------------------------


class MultiHasher:
    """MD5, SHA-1 and SHA-256 of one byte stream, updated together, in stream order.

    With ``parallel=False`` each ``update`` hashes in the calling thread. With ``parallel=True`` the
    work runs in two threads (MD5 in one; SHA-1 and SHA-256 in the other, about as slow together as MD5
    alone), fed through bounded queues: ``update`` returns once the data is queued and blocks only when
    the hashers fall ``queue_depth`` updates behind. hashlib releases the GIL for buffers above 2 KiB,
    so the lanes run on other cores while the caller reads, compresses or encrypts.
    In parallel mode the caller must not change a buffer after passing it (bytes are copied if mutable).
    Call ``result()`` once at the end (or ``abort()`` to stop the threads without a result).

    With ``update_digests=True`` (parallel mode only) the SHA-1/SHA-256 lane also computes the SHA-256 of
    each update's bytes on its own, right after the stream hashes, while the buffer is hot in its core's
    cache, and ``update`` returns a Future of that hex digest: the per-chunk SHA-256 of the container
    index, taken off the threads that compress and encrypt.
    """

    _LANES: tuple[tuple[str, ...], ...] = (("md5",), ("sha1", "sha256"))
    # The lane that also digests each update: SHA-1 + SHA-256 + that digest cost ~1.8 s per GiB here, MD5
    # alone ~1.4 s, so that lane becomes the longer one (docs/benchmarks.md, "Sealing text").
    _DIGEST_LANE = 1

    def __init__(self, *, parallel: bool = False, queue_depth: int = 8, update_digests: bool = False) -> None:
        self._hashes = {
            # MD5 and SHA-1 are recorded because courts and other tools quote them, not for security.
            "md5": hashlib.md5(usedforsecurity=False),
            "sha1": hashlib.sha1(usedforsecurity=False),
            "sha256": hashlib.sha256(),
        }
        self.size = 0
        self._result: ImageHashes | None = None
        self._queues: list[queue.Queue] = []
        self._threads: list[threading.Thread] = []
        self._failure: BaseException | None = None
        if update_digests and not parallel:
            raise ContainerError("update digests are computed by the hashing lanes: use parallel=True")
        self._update_digests = update_digests
        if parallel:
            for number, lane in enumerate(self._LANES):
                lane_queue: queue.Queue = queue.Queue(maxsize=max(1, queue_depth))
                thread = threading.Thread(
                    target=self._run_lane,
                    args=(
                        lane_queue,
                        [self._hashes[name].update for name in lane],
                        update_digests and number == self._DIGEST_LANE,
                    ),
                    name=f"custodia-hash-{'-'.join(lane)}",
                    daemon=True,
                )
                self._queues.append(lane_queue)
                self._threads.append(thread)
                thread.start()

    def update(self, data: bytes | bytearray | memoryview) -> Future[str] | None:
        """Add ``data`` to the stream; with ``update_digests``, return a Future of its own SHA-256 (hex)."""
        if self._result is not None:
            raise ContainerError("this MultiHasher has already given its result")
        if not data:
            return None
        self.size += len(data)
        if not self._queues:
            for hash_object in self._hashes.values():
                hash_object.update(data)
            return None
        if self._failure is not None:
            raise ContainerError("hashing failed") from self._failure
        if not isinstance(data, bytes):
            data = bytes(data)
        digest: Future[str] | None = Future() if self._update_digests else None
        for lane_queue in self._queues:
            lane_queue.put((data, digest))
        return digest

    @property
    def bytes_hashed(self) -> int:
        return self.size

    def hexdigests(self) -> dict[str, str]:
        """Finish and return ``{"md5", "sha1", "sha256"}`` as hex."""
        return self.result().as_dict()

    def result(self) -> ImageHashes:
        """Finish and return the hashes (waits for the lanes in parallel mode)."""
        if self._result is None:
            self._stop_lanes()
            if self._failure is not None:
                raise ContainerError("hashing failed") from self._failure
            self._result = ImageHashes(
                md5=self._hashes["md5"].hexdigest(),
                sha1=self._hashes["sha1"].hexdigest(),
                sha256=self._hashes["sha256"].hexdigest(),
                size=self.size,
            )
        return self._result

    def abort(self) -> None:
        """Stop the lane threads; the hasher gives no result afterwards."""
        self._failure = self._failure or ContainerError("hashing aborted")
        for lane_queue in self._queues:
            # Drop queued work so the sentinel gets through at once.
            try:
                while True:
                    item = lane_queue.get_nowait()
                    if item is not None and item[1] is not None and not item[1].done():
                        item[1].set_exception(ContainerError("hashing aborted"))
            except queue.Empty:
                pass
        self._stop_lanes()

    def _stop_lanes(self) -> None:
        for lane_queue in self._queues:
            lane_queue.put(None)
        for thread in self._threads:
            thread.join()
        self._queues, self._threads = [], []

    def _run_lane(self, lane_queue: queue.Queue, updates: list[Callable[[bytes], None]], digests_updates: bool) -> None:
        while True:
            item = lane_queue.get()
            if item is None:
                return
            data, digest = item
            if self._failure is not None:
                # Aborted: drain until the sentinel, and release whoever waits on a digest.
                if digest is not None and not digest.done():
                    digest.set_exception(ContainerError("hashing aborted"))
                continue
            try:
                for update in updates:
                    update(data)
                if digests_updates and digest is not None:
                    digest.set_result(hashlib.sha256(data).hexdigest())
            except BaseException as error:  # pragma: no cover - hashlib does not fail on bytes
                self._failure = error
                if digests_updates and digest is not None:
                    digest.set_exception(error)


# --- chunks ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SealedChunk:
    """A chunk ready for the store: its stored bytes and its index record."""

    stored: bytes
    record: ChunkRecord


class ChunkSealer:
    """Compresses and encrypts chunks of one evidence item. Safe to share between threads."""

    def __init__(
        self, *, evidence_id: uuid.UUID, data_key: bytes, chunk_size: int = CHUNK_SIZE, zstd_level: int = ZSTD_LEVEL
    ) -> None:
        if not isinstance(evidence_id, uuid.UUID):
            raise ContainerFormatError("evidence_id must be a uuid.UUID")
        self.evidence_id = evidence_id
        self.chunk_size = check_chunk_size(chunk_size)
        self._aead = AESGCM(check_data_key(data_key))
        self._zstd_level = zstd_level
        self._per_thread = threading.local()

    def __repr__(self) -> str:  # never show the key
        return f"ChunkSealer(evidence_id={self.evidence_id}, chunk_size={self.chunk_size})"

    def _compressor(self) -> zstandard.ZstdCompressor:
        # A compression context is not thread-safe; reusing one per thread avoids re-allocating its tables
        # for every chunk. No zstd worker threads: our own pool already keeps the cores busy.
        compressor = getattr(self._per_thread, "compressor", None)
        if compressor is None:
            compressor = self._per_thread.compressor = zstandard.ZstdCompressor(
                level=self._zstd_level, write_content_size=True, write_checksum=False, threads=0
            )
        return compressor

    def seal(
        self,
        *,
        index: int,
        plaintext: bytes | bytearray | memoryview,
        plaintext_sha256: Callable[[], str] | None = None,
    ) -> SealedChunk:
        """Compress and encrypt one chunk. ``plaintext_sha256``, when given, returns the SHA-256 (hex) of
        ``plaintext`` computed elsewhere (the hashing lane of seal_stream): it is asked for last, so the
        compression and encryption here overlap that hashing."""
        plain_length = len(plaintext)
        if not 0 < plain_length <= self.chunk_size:
            raise ContainerFormatError(f"chunk {index} must hold 1 to {self.chunk_size} bytes, not {plain_length}")
        compressed = self._compressor().compress(plaintext)
        # Incompressible data (already compressed or encrypted images) is stored as it is: the flag is
        # authenticated, and reading it back then costs no decompression.
        is_compressed = len(compressed) < plain_length
        payload = compressed if is_compressed else plaintext
        format_byte = format_byte_for(compressed=is_compressed)
        nonce = os.urandom(NONCE_LENGTH)
        associated_data = chunk_associated_data(
            evidence_id=self.evidence_id, index=index, plain_length=plain_length, format_byte=format_byte
        )
        stored = bytes((format_byte,)) + nonce + self._aead.encrypt(nonce, payload, associated_data)
        digest = hashlib.sha256(plaintext).hexdigest() if plaintext_sha256 is None else plaintext_sha256()
        record = ChunkRecord(
            index=index,
            offset=index * self.chunk_size,
            plain_length=plain_length,
            stored_length=len(stored),
            sha256=digest,
        )
        return SealedChunk(stored=stored, record=record)


# --- the container ----------------------------------------------------------------------------------


class ContainerWriter:
    """Writes one evidence item's container: chunks in any order, then ``finish``.

    Rewriting a chunk number with identical bytes is a no-op (a retried upload request); with different
    bytes it raises ChunkConflict. Chunks already in the store (from an earlier process, say before a
    restart) are recognised by decrypting them, so a new writer can resume and finish any container.
    All but the last chunk must be exactly ``chunk_size`` bytes. Safe to call from several threads.
    """

    def __init__(
        self,
        *,
        evidence_id: uuid.UUID,
        data_key: bytes,
        store: EvidenceStore,
        chunk_size: int = CHUNK_SIZE,
        zstd_level: int = ZSTD_LEVEL,
    ) -> None:
        self.evidence_id = evidence_id
        self.chunk_size = check_chunk_size(chunk_size)
        self._store = store
        # The level changes only the writer's speed and the stored size: readers decode any level.
        self._sealer = ChunkSealer(
            evidence_id=evidence_id, data_key=data_key, chunk_size=chunk_size, zstd_level=zstd_level
        )
        self._opener = ChunkOpener(evidence_id=evidence_id, data_key=data_key)
        self._records: dict[int, ChunkRecord] = {}
        self._lock = threading.Lock()
        # Chunk number -> attempts an earlier run stored (note_stored_chunks), checked before writing.
        self._already_stored: dict[int, tuple[int, ...]] = {}
        self.chunks_reused = 0
        # Stored copies that do not open (torn by a crash before the durability barrier, or unreadable),
        # superseded by a later attempt: kept, never referenced, listed in the SealResult for the audit trail.
        self.superseded: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"ContainerWriter(evidence_id={self.evidence_id}, chunk_size={self.chunk_size})"

    def note_stored_chunks(self) -> int:
        """List the chunks an earlier run of this item left in the store (a worker killed mid-stream), with
        one listing, so that ``write_chunk`` checks each against the new plaintext (decrypt, compare the
        SHA-256) instead of sealing and writing it again. Returns how many there are."""
        stored: dict[int, list[int]] = {}
        for key in self._store.list(chunk_prefix(self.evidence_id)):
            located = chunk_location_from_key(key)
            if located is not None:
                stored.setdefault(located[0], []).append(located[1])
        self._already_stored = {number: tuple(sorted(attempts)) for number, attempts in stored.items()}
        return len(stored)

    @property
    def records(self) -> list[ChunkRecord]:
        """Chunks written through this writer (or recognised in the store), by index."""
        with self._lock:
            return [self._records[number] for number in sorted(self._records)]

    def adopt_records(self, records: Iterable[ChunkRecord]) -> None:
        """Take the records of chunks that earlier writers of this item stored, as they recorded them (a
        resumable upload keeps them in its database), so that ``finish`` need not decrypt those chunks to
        learn them. Chunks not given are still recognised from the store."""
        with self._lock:
            for record in records:
                self._records.setdefault(record.index, record)

    def write_chunk(
        self,
        *,
        index: int,
        plaintext: bytes | bytearray | memoryview,
        plaintext_sha256: Callable[[], str] | None = None,
    ) -> ChunkRecord:
        """Seal and store chunk ``index`` (see the class). ``plaintext_sha256``: as in ChunkSealer.seal."""
        if not isinstance(index, int) or index < 0:
            raise ContainerFormatError("a chunk index must be a non-negative integer")
        plain_length = len(plaintext)
        if not 0 < plain_length <= self.chunk_size:
            raise ContainerFormatError(f"chunk {index} must hold 1 to {self.chunk_size} bytes, not {plain_length}")
        with self._lock:
            known = self._records.get(index)
            if known is None:
                self._check_shape(index=index, plain_length=plain_length)
        if known is not None:
            return self._same_or_conflict(known, plaintext)
        record, reused = self._store_or_reuse(index=index, plaintext=plaintext, plaintext_sha256=plaintext_sha256)
        with self._lock:
            self._records[index] = record
            self.chunks_reused += int(reused)
        return record

    def _store_or_reuse(
        self,
        *,
        index: int,
        plaintext: bytes | bytearray | memoryview,
        plaintext_sha256: Callable[[], str] | None = None,
    ) -> tuple[ChunkRecord, bool]:
        """Store chunk ``index`` under its first free attempt, or reuse a stored copy of the same bytes.

        Attempts are tried in order. A copy that opens and holds these bytes is reused (nothing is written
        twice); one that opens with other bytes is a ChunkConflict (the source changed). A copy that does
        not open (AES-GCM fails: torn or emptied by a power loss before the durability barrier) or cannot
        be read is superseded: the bytes go to the next attempt, and the copy is recorded in
        ``superseded``, never referenced. A copy too long to be any sealing of this chunk's length is a
        ChunkConflict, not a torn copy (a torn file is never longer)."""
        known_attempts = self._already_stored.get(index, ())
        sealed: SealedChunk | None = None
        for attempt in range(MAX_CHUNK_ATTEMPT + 1):
            key = chunk_key(self.evidence_id, index, attempt)
            if attempt not in known_attempts:
                # A resumed seal listed what the killed run stored; every other attempt is written now.
                if sealed is None:
                    sealed = self._sealer.seal(index=index, plaintext=plaintext, plaintext_sha256=plaintext_sha256)
                try:
                    self._store.put(key, sealed.stored)
                except ObjectExists:
                    pass  # written before (another request, worker or process): check it below
                else:
                    self._name_successor(index=index, key=key)
                    return dataclasses.replace(sealed.record, attempt=attempt), False
            existing = self._open_stored(index=index, attempt=attempt, plain_length=len(plaintext))
            if existing is not None:
                record = self._same_or_conflict(existing, plaintext)
                self._name_successor(index=index, key=key)
                return record, True
        raise ChunkConflict(index)

    def _open_stored(self, *, index: int, attempt: int, plain_length: int) -> ChunkRecord | None:
        """The record of a stored copy, or None (and a ``superseded`` entry) when it does not open."""
        key = chunk_key(self.evidence_id, index, attempt)
        try:
            stored = self._store.read(key)
        except StoreError as error:
            self._note_superseded(index=index, key=key, stored=None, problem=f"unreadable: {error}")
            return None
        try:
            plaintext = self._opener.open(index=index, stored=stored, plain_length=plain_length)
        except ContainerError as error:
            if len(stored) > CHUNK_OVERHEAD + plain_length:
                # Longer than any sealing of this many bytes: not a torn copy of this chunk but a chunk of
                # another length (the last chunk of a different stream). Write-once: a conflict.
                raise ChunkConflict(index) from None
            self._note_superseded(index=index, key=key, stored=stored, problem=str(error))
            return None
        return ChunkRecord(
            index=index,
            offset=index * self.chunk_size,
            plain_length=plain_length,
            stored_length=len(stored),
            sha256=hashlib.sha256(plaintext).hexdigest(),
            attempt=attempt,
        )

    def _note_superseded(self, *, index: int, key: str, stored: bytes | None, problem: str) -> None:
        with self._lock:
            self.superseded.append(
                {
                    "chunk": index,
                    "key": key,
                    "stored_length": None if stored is None else len(stored),
                    "stored_sha256": None if stored is None else sha256_hex(stored),
                    "problem": problem,
                }
            )

    def _name_successor(self, *, index: int, key: str) -> None:
        with self._lock:
            for entry in self.superseded:
                if entry["chunk"] == index and "superseded_by" not in entry:
                    entry["superseded_by"] = key

    def chunk_keys(self) -> list[str]:
        """The store keys of the chunk copies the index will name (the attempt each record chose)."""
        return [chunk_key(self.evidence_id, record.index, record.attempt) for record in self.records]

    def finish(self, *, facts: Mapping[str, Any], hashes: ImageHashes) -> Manifest:
        """Check that the chunks cover ``hashes.size`` bytes without gaps; write index.json, then
        manifest.json. Finishing again with the same content is a no-op (a retried task)."""
        facts = dict(facts)
        canonical_json(facts)  # refuse facts that cannot be written canonically before writing anything
        self._adopt_chunks_from_store(size=hashes.size)
        with self._lock:
            records = [self._records[number] for number in sorted(self._records)]
        self._check_complete(records, size=hashes.size)
        index = ContainerIndex(
            evidence_id=self.evidence_id, chunk_size=self.chunk_size, total_size=hashes.size, chunks=tuple(records)
        )
        index_bytes = index.to_bytes()
        manifest = Manifest(
            evidence_id=self.evidence_id,
            facts=facts,
            hashes=hashes,
            chunk_size=self.chunk_size,
            chunk_count=len(records),
            index_sha256=sha256_hex(index_bytes),
        )
        # Index first: a manifest is only ever written once the index it pins is in place.
        self._put_once(index_key(self.evidence_id), index_bytes, what="index")
        self._put_once(manifest_key(self.evidence_id), manifest.to_bytes(), what="manifest")
        return manifest

    # --- helpers ----------------------------------------------------------------------------------

    def _check_shape(self, *, index: int, plain_length: int) -> None:
        # Called with the lock held. Only the highest chunk may be short; catch a misuse as early as we
        # can (finish checks again, since two threads may race past this).
        if plain_length < self.chunk_size:
            if any(number > index for number in self._records):
                raise ContainerFormatError(f"chunk {index} is short but a later chunk exists: only the last may be")
            if any(r.plain_length < self.chunk_size for r in self._records.values()):
                raise ContainerFormatError(f"chunk {index} is short but another short chunk was written")
        elif any(r.plain_length < self.chunk_size and r.index < index for r in self._records.values()):
            raise ContainerFormatError(f"chunk {index} follows a short chunk: only the last chunk may be short")

    def _same_or_conflict(self, known: ChunkRecord, plaintext: bytes | bytearray | memoryview) -> ChunkRecord:
        if known.plain_length != len(plaintext) or known.sha256 != hashlib.sha256(plaintext).hexdigest():
            raise ChunkConflict(known.index)
        return known

    def _record_from_store(self, index: int, *, plain_length: int) -> ChunkRecord:
        """Decrypt a chunk already in the store to learn its record. Its plaintext length is part of the
        associated data, so a chunk of any other length (or bytes, or position) does not open: that is a
        conflict with what the caller expects there."""
        stored = self._store.read(chunk_key(self.evidence_id, index))
        try:
            plaintext = self._opener.open(index=index, stored=stored, plain_length=plain_length)
        except ContainerError:
            raise ChunkConflict(index) from None
        return ChunkRecord(
            index=index,
            offset=index * self.chunk_size,
            plain_length=plain_length,
            stored_length=len(stored),
            sha256=hashlib.sha256(plaintext).hexdigest(),
        )

    def _adopt_chunks_from_store(self, *, size: int) -> None:
        """Recognise chunks that an earlier writer of this item stored (another request, a process before
        a restart). The total size tells what length each must have: full, and the last one the rest."""
        with self._lock:
            known = set(self._records)
        expected_count = -(-size // self.chunk_size)
        for key in self._store.list(chunk_prefix(self.evidence_id)):
            located = chunk_location_from_key(key)
            # A later attempt's copy is used only when the caller's records name it (adopt_records).
            if located is None or located[1] != 0 or located[0] in known:
                continue
            number = located[0]
            if number >= expected_count:
                raise ContainerIncomplete(f"chunk {number} is stored but lies beyond the end of {size} bytes")
            plain_length = min(self.chunk_size, size - number * self.chunk_size)
            record = self._record_from_store(number, plain_length=plain_length)
            with self._lock:
                self._records.setdefault(number, record)

    def _check_complete(self, records: list[ChunkRecord], *, size: int) -> None:
        expected_count = -(-size // self.chunk_size)
        numbers = [record.index for record in records]
        if numbers != list(range(len(numbers))) or len(numbers) != expected_count:
            missing = sorted(set(range(expected_count)) - set(numbers))[:10]
            extra = [number for number in numbers if number >= expected_count][:10]
            raise ContainerIncomplete(
                f"the chunks do not cover {size} bytes: {expected_count} expected, {len(numbers)} written"
                + (f", missing {missing}" if missing else "")
                + (f", beyond the end {extra}" if extra else "")
            )
        for record in records:
            expected_length = min(self.chunk_size, size - record.index * self.chunk_size)
            if record.plain_length != expected_length:
                raise ContainerIncomplete(
                    f"chunk {record.index} holds {record.plain_length} bytes where {expected_length} belong"
                )

    def _put_once(self, key: str, data: bytes, *, what: str) -> None:
        try:
            self._store.put(key, data)
        except ObjectExists:
            if self._store.read(key) != data:
                raise ContainerError(f"evidence {self.evidence_id} is already sealed with a different {what}") from None


# --- one pass over a stream ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SealResult:
    """What sealing produced. ``manifest_sha256`` is worth recording outside the store (database,
    audit trail): with it, the manifest, and through it the index, can be checked later."""

    manifest: Manifest
    hashes: ImageHashes
    chunk_count: int
    stored_size: int
    index_sha256: str
    manifest_sha256: str
    # Chunks found in the store from an earlier, interrupted run and checked rather than written again.
    chunks_reused: int = 0
    # Stored chunk copies that did not open (torn by a power loss before an earlier run's durability
    # barrier, or unreadable) and were superseded by a later attempt: {"chunk", "key", "stored_length",
    # "stored_sha256", "problem", "superseded_by"} each, for the audit trail. Nearly always empty.
    chunks_superseded: tuple[dict[str, Any], ...] = ()


def seal_stream(
    *,
    evidence_id: uuid.UUID,
    data_key: bytes,
    store: EvidenceStore,
    source: BinaryIO | io.RawIOBase,
    facts: Mapping[str, Any],
    declared: Mapping[str, Any] | None = None,
    chunk_size: int = CHUNK_SIZE,
    workers: int | None = None,
    zstd_level: int = ZSTD_LEVEL,
    chunk_digests_in_hasher: bool = False,
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
    more_facts: Callable[[], Mapping[str, Any]] | None = None,
) -> SealResult:
    """Read ``source`` once, to its end, and seal it as evidence ``evidence_id``.

    While reading, the MD5, SHA-1 and SHA-256 of the whole stream are computed (two hashing threads fed
    in order) and each chunk is hashed, compressed, encrypted and stored by a small pool of threads.
    Bounded queues keep memory use to a few dozen chunks whatever the size of the stream.

    ``zstd_level`` trades stored size for speed (negative levels are faster); ``workers`` sizes the pool.
    ``chunk_digests_in_hasher``: each chunk's SHA-256 (for the index) is computed by the hashing lane that
    already reads the chunk for the stream's SHA-1 and SHA-256, instead of by the sealing thread (the same
    index; measured, it moves CPU between threads without saving any, so it is off by default).
    ``declared`` may give ``md5``, ``sha1``, ``sha256`` (hex) and ``size``. When one differs from what
    was computed, HashMismatch is raised and neither index nor manifest is written: the chunks already
    stored stay, unreferenced, and the container is not sealed (the store is write-once, so nothing
    is deleted; a later seal of the same bytes under the same id reuses them).

    ``resume``: an earlier run of this evidence id may have stored chunks before it was killed. They are
    listed once, and each is checked against the plaintext read now (decrypted, SHA-256 compared) instead
    of being sealed and written again: the same stream gives the same container, and a store object is
    never written twice. Bytes that differ raise ChunkConflict. (Without ``resume`` a chunk already stored
    is still recognised, but only after it was compressed and encrypted for nothing.)
    Durability: chunk puts run inside ``store.durable_batch`` (not synced one by one); one barrier syncs
    every chunk the index names, reused ones included, before the index and the manifest, which are
    durable puts. A chunk a crash tore before that barrier does not open on resume and is superseded by
    its next attempt, listed in ``SealResult.chunks_superseded`` (docs/acquisition.md).
    ``progress(bytes_sealed)`` is called from the calling thread as chunks reach the store (in the order
    of the stream), at most once per chunk, and once at the end with the whole size.
    ``more_facts()`` is called once the stream has been read, and its facts are added to ``facts`` in the
    manifest: what only reading can tell (the read errors of an acquisition, say).
    """
    declared_values = _normalise_declared(declared or {})
    check_chunk_size(chunk_size)
    writer = ContainerWriter(
        evidence_id=evidence_id, data_key=data_key, store=store, chunk_size=chunk_size, zstd_level=zstd_level
    )
    if resume:
        writer.note_stored_chunks()
    # Enough threads to keep every core compressing and encrypting while others wait on the store (an
    # Azure put is a round trip; a waiting thread holds no CPU). Measured on 2 cores with per-chunk fsyncs:
    # 8 threads sealed 1.3-1.5x faster into the local store than 4 (docs/acquisition.md); memory is
    # bounded by in_flight_chunks, not by this.
    worker_count = workers or max(4, min(8, 4 * (os.cpu_count() or 1)))
    in_flight_chunks = max(2 * worker_count, _IN_FLIGHT_BUDGET // chunk_size)
    hasher = MultiHasher(
        parallel=True, queue_depth=max(2, in_flight_chunks // 2), update_digests=chunk_digests_in_hasher
    )
    slots = threading.BoundedSemaphore(in_flight_chunks)
    failures: list[BaseException] = []
    # Chunks finish out of order; progress reports the prefix of the stream whose chunks are all stored.
    finished: set[int] = set()
    finished_lock = threading.Lock()
    stored_through = [0, 0]  # [next chunk number not yet stored, bytes up to it]
    reported = [0]

    def chunk_done(future: Future) -> None:
        slots.release()
        error = future.exception()
        if error is not None:
            failures.append(error)
            return
        record: ChunkRecord = future.result()
        with finished_lock:
            finished.add(record.index)
            while stored_through[0] in finished:
                finished.discard(stored_through[0])
                stored_through[0] += 1
                stored_through[1] += chunk_size

    def report_progress(*, final_size: int | None = None) -> None:
        if progress is None:
            return
        with finished_lock:
            done = stored_through[1] if final_size is None else final_size
        if done != reported[0]:
            reported[0] = done
            progress(done)

    try:
        # Chunk puts skip their fsyncs; one barrier below makes every chunk the index will name durable.
        with store.durable_batch(prefix=chunk_prefix(evidence_id)) as batch:
            with ThreadPoolExecutor(max_workers=worker_count, thread_name_prefix="custodia-seal") as pool:
                chunk_number = 0
                while not failures:
                    block = _read_exactly(source, chunk_size)
                    if not block:
                        break
                    digest = hasher.update(block)
                    slots.acquire()
                    future = pool.submit(
                        writer.write_chunk,
                        index=chunk_number,
                        plaintext=block,
                        plaintext_sha256=None if digest is None else digest.result,
                    )
                    future.add_done_callback(chunk_done)
                    chunk_number += 1
                    report_progress()
            if failures:
                raise failures[0]
            hashes = hasher.result()
            # The barrier, before the index and manifest (durable puts) name the chunks. It covers the
            # chunks reused from a killed run too: that run may have died before its own barrier, leaving
            # them in the page cache only.
            batch.sync(writer.chunk_keys())
    except BaseException:
        hasher.abort()
        raise
    report_progress(final_size=hashes.size)
    _check_declared(declared_values, hashes)
    all_facts = {**facts, **(more_facts() if more_facts is not None else {})}
    manifest = writer.finish(facts=all_facts, hashes=hashes)
    manifest_bytes = manifest.to_bytes()
    return SealResult(
        manifest=manifest,
        hashes=hashes,
        chunk_count=manifest.chunk_count,
        stored_size=sum(record.stored_length for record in writer.records),
        index_sha256=manifest.index_sha256,
        manifest_sha256=sha256_hex(manifest_bytes),
        chunks_reused=writer.chunks_reused,
        chunks_superseded=tuple(writer.superseded),
    )


def _read_exactly(source: BinaryIO, count: int) -> bytes:
    """Up to ``count`` bytes; fewer only at the end of the stream (pipes and sockets return short reads)."""
    block = source.read(count)
    if not block or len(block) == count:
        return block or b""
    parts = [block]
    remaining = count - len(block)
    while remaining:
        more = source.read(remaining)
        if not more:
            break
        parts.append(more)
        remaining -= len(more)
    return b"".join(parts)


def _normalise_declared(declared: Mapping[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name, value in declared.items():
        if value is None or value == "":
            continue
        if name == "size":
            clean["size"] = int(value)
        elif name in HASH_ALGORITHMS:
            clean[name] = str(value).strip().lower()
        else:
            raise ContainerFormatError(f"unknown declared value {name!r}: use md5, sha1, sha256 or size")
    return clean


def _check_declared(declared: Mapping[str, Any], hashes: ImageHashes) -> None:
    # Size first (a truncated upload explains every hash mismatch), then the strongest hash.
    if "size" in declared and declared["size"] != hashes.size:
        raise HashMismatch("size", str(declared["size"]), str(hashes.size))
    for algorithm in ("sha256", "sha1", "md5"):
        computed = getattr(hashes, algorithm)
        if algorithm in declared and declared[algorithm] != computed:
            raise HashMismatch(algorithm, declared[algorithm], computed)
