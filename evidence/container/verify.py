"""Integrity verification of a sealed container: re-read everything, re-hash, compare, report.

Verification never repairs, rewrites or deletes anything. It reports every bad chunk by number (so an
alert and the audit trail can name it) and keeps going after the first one, so the report shows the
extent of the damage.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from evidence.container.errors import ChunkIntegrityError, ContainerError
from evidence.container.format import ContainerIndex, chunk_key, chunk_location_from_key, chunk_prefix, index_key
from evidence.container.reader import ChunkOpener, load_index, load_manifest
from evidence.storage.base import EvidenceStore, ObjectMissing, StoreError


@dataclass
class VerificationReport:
    """``ok`` only when every chunk opened and matched the index and the whole image hashed to the
    expected SHA-256. ``sha256`` is None when it could not be computed (a chunk did not open).
    ``problems`` lists failures of the container as a whole (manifest, index, whole-image hash)."""

    ok: bool
    chunks_checked: int
    bad_chunks: list[tuple[int, str]]
    sha256: str | None
    expected_sha256: str = ""
    problems: list[str] = field(default_factory=list)
    # Stored chunk copies the index does not use because another attempt of the same chunk superseded
    # them (orphans of failed upload requests): kept by the write-once store, reported, not a fault.
    orphans: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "chunks_checked": self.chunks_checked,
            "bad_chunks": [{"index": index, "problem": problem} for index, problem in self.bad_chunks],
            "sha256": self.sha256,
            "expected_sha256": self.expected_sha256,
            "problems": list(self.problems),
            "orphans": list(self.orphans),
        }


def verify_container(
    *,
    evidence_id: uuid.UUID,
    data_key: bytes,
    store: EvidenceStore,
    expected_sha256: str,
    workers: int | None = None,
) -> VerificationReport:
    """Re-read and decrypt every chunk, compare each chunk's SHA-256 with the index and the whole
    image's SHA-256 with ``expected_sha256`` (the value recorded at intake, outside the store)."""
    expected_sha256 = expected_sha256.strip().lower()
    problems: list[str] = []
    bad_chunks: list[tuple[int, str]] = []

    try:
        manifest, _ = load_manifest(evidence_id=evidence_id, store=store)
    except (ContainerError, StoreError) as error:
        return VerificationReport(False, 0, [], None, expected_sha256, [f"manifest: {error}"])
    if manifest.hashes.sha256 != expected_sha256:
        problems.append(f"the manifest records SHA-256 {manifest.hashes.sha256}, expected {expected_sha256}")
    try:
        index = load_index(evidence_id=evidence_id, store=store, manifest=manifest)
    except (ContainerError, StoreError) as error:
        problems.append(f"index: {error}")
        index = _index_without_pin(evidence_id=evidence_id, store=store)
        if index is None:
            return VerificationReport(False, 0, [], None, expected_sha256, problems)

    listed = {record.index: record.attempt for record in index.chunks}
    orphans: list[str] = []
    try:
        for key in store.list(chunk_prefix(evidence_id)):
            located = chunk_location_from_key(key)
            if located is None:
                continue
            number, attempt = located
            if number not in listed:
                bad_chunks.append((number, "stored but not listed in the index"))
            elif attempt != listed[number]:
                orphans.append(key)
    except StoreError as error:
        problems.append(f"listing the chunks failed: {error}")

    opener = ChunkOpener(evidence_id=evidence_id, data_key=data_key)
    whole_image = hashlib.sha256()
    whole_image_complete = True
    chunks_checked = 0
    worker_count = workers or max(2, min(4, 2 * (os.cpu_count() or 1)))
    window: deque[Future] = deque()

    def check_chunk(number: int) -> tuple[int, bytes | None, str | None]:
        record = index.chunks[number]
        try:
            stored = store.read(chunk_key(evidence_id, number, record.attempt))
        except ObjectMissing:
            return number, None, "missing from the evidence store"
        except StoreError as error:
            return number, None, f"could not be read: {error}"
        if len(stored) != record.stored_length:
            problem = f"stored length {len(stored)} differs from the index's {record.stored_length}"
            # Still try to open it: a wrong length always fails authentication, but say both.
        else:
            problem = None
        try:
            plaintext = opener.open(index=number, stored=stored, plain_length=record.plain_length)
        except ChunkIntegrityError as error:
            return number, None, f"{problem}; {error.problem}" if problem else error.problem
        if hashlib.sha256(plaintext).hexdigest() != record.sha256:
            return number, plaintext, "plaintext SHA-256 differs from the index"
        return number, plaintext, problem

    # Chunks are opened by a small pool, a bounded window ahead; the whole-image hash is fed in order.
    with ThreadPoolExecutor(max_workers=worker_count, thread_name_prefix="custodia-verify") as pool:
        next_number = 0
        while next_number < len(index.chunks) or window:
            while next_number < len(index.chunks) and len(window) < 2 * worker_count:
                window.append(pool.submit(check_chunk, next_number))
                next_number += 1
            number, plaintext, problem = window.popleft().result()
            chunks_checked += 1
            if problem is not None:
                bad_chunks.append((number, problem))
            if plaintext is None:
                whole_image_complete = False
            elif whole_image_complete:
                whole_image.update(plaintext)

    sha256 = whole_image.hexdigest() if whole_image_complete else None
    if sha256 is None:
        problems.append("the whole-image SHA-256 could not be computed: at least one chunk did not open")
    elif sha256 != expected_sha256:
        problems.append(f"the whole image hashes to SHA-256 {sha256}, expected {expected_sha256}")
    bad_chunks.sort()
    return VerificationReport(
        ok=not bad_chunks and not problems,
        chunks_checked=chunks_checked,
        bad_chunks=bad_chunks,
        sha256=sha256,
        expected_sha256=expected_sha256,
        problems=problems,
        orphans=sorted(orphans),
    )


def _index_without_pin(*, evidence_id: uuid.UUID, store: EvidenceStore) -> ContainerIndex | None:
    """The stored index even though the manifest does not pin it, so damage can still be located chunk
    by chunk (each chunk is authenticated on its own). None when it is missing or unreadable."""
    try:
        return ContainerIndex.from_bytes(store.read(index_key(evidence_id)), evidence_id=evidence_id)
    except (ContainerError, StoreError):
        return None
