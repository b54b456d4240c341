"""The sealed evidence container: round trips, random access, tamper detection, conflicts, declared hashes.

Pure tests: no database. Most run on an in-memory write-once store defined here (fast, and it lets a test
play the attacker with ``tamper``); a few run on the real LocalWormStore, tampering with its files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import stat
import threading
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evidence.container import (
    CHUNK_SIZE,
    ChunkConflict,
    ChunkIntegrityError,
    ContainerError,
    ContainerFormatError,
    ContainerIncomplete,
    ContainerReader,
    ContainerWriter,
    HashMismatch,
    ImageHashes,
    IndexIntegrityError,
    MultiHasher,
    chunk_key,
    index_key,
    manifest_key,
    open_container,
    seal_stream,
    verify_container,
)
from evidence.container.format import CHUNK_OVERHEAD, FLAG_UNCOMPRESSED, canonical_json
from evidence.storage.base import EvidenceStore, ObjectExists, ObjectMissing, RetentionViolation, StoreError
from evidence.storage.local import LocalWormStore

SMALL_CHUNK = 4096  # the smallest chunk size the format allows: many chunks from little data


class MemoryWormStore(EvidenceStore):
    """An in-memory write-once store (a test double). ``tamper`` plays the attacker with storage access."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.puts = 0

    def put(self, key: str, data: bytes | BinaryIO, *, length: int | None = None) -> None:
        payload = bytes(data) if isinstance(data, bytes | bytearray | memoryview) else data.read()
        if length is not None:
            payload = payload[:length]
        with self._lock:
            if key in self._objects:
                raise ObjectExists(f"object already written: {key}")
            self._objects[key] = payload
            self.puts += 1

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        with self._lock:
            try:
                data = self._objects[key]
            except KeyError:
                raise ObjectMissing(f"no object: {key}") from None
        return data[offset:] if length is None else data[offset : offset + length]

    def size(self, key: str) -> int:
        return len(self.read(key))

    def exists(self, key: str) -> bool:
        with self._lock:
            return key in self._objects

    def list(self, prefix: str) -> Iterator[str]:
        with self._lock:
            return iter(sorted(key for key in self._objects if key.startswith(prefix)))

    def set_retention(self, prefix: str, *, until: date | None, legal_hold: bool) -> None:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise RetentionViolation("the test store never deletes")

    # --- the attacker's side door -----------------------------------------------------------------

    def tamper(self, key: str, data: bytes) -> None:
        with self._lock:
            self._objects[key] = data

    def remove(self, key: str) -> None:
        with self._lock:
            del self._objects[key]


@pytest.fixture
def store() -> MemoryWormStore:
    return MemoryWormStore()


@pytest.fixture
def evidence_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def data_key() -> bytes:
    return os.urandom(32)


def random_bytes(size: int, *, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def mixed_bytes(size: int, *, seed: int = 7) -> bytes:
    """Compressible and incompressible stretches, like a real disk image."""
    generator = random.Random(seed)
    parts, total = [], 0
    while total < size:
        kind = generator.randrange(3)
        length = generator.randrange(1, 3 * SMALL_CHUNK)
        if kind == 0:
            part = bytes(length)
        elif kind == 1:
            part = (b"The quick brown fox jumps over the lazy dog. " * (length // 45 + 1))[:length]
        else:
            part = generator.randbytes(length)
        parts.append(part)
        total += length
    return b"".join(parts)[:size]


def expected_hashes(data: bytes) -> ImageHashes:
    return ImageHashes(
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        sha1=hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


def seal(data: bytes, *, store, evidence_id, data_key, chunk_size=SMALL_CHUNK, **options):
    return seal_stream(
        evidence_id=evidence_id,
        data_key=data_key,
        store=store,
        source=io.BytesIO(data),
        facts=options.pop("facts", {"label": "test"}),
        chunk_size=chunk_size,
        **options,
    )


def read_back(*, store, evidence_id, data_key) -> bytes:
    with ContainerReader(evidence_id=evidence_id, data_key=data_key, store=store) as reader:
        return reader.read()


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 5 * CHUNK_SIZE + 12345],
    ids=["empty", "one-byte", "chunk-minus-1", "chunk", "chunk-plus-1", "several-MiB"],
)
def test_round_trip_gives_identical_bytes(size, store, evidence_id, data_key):
    data = random_bytes(size) if size > CHUNK_SIZE else mixed_bytes(size)

    result = seal(data, store=store, evidence_id=evidence_id, data_key=data_key, chunk_size=CHUNK_SIZE)

    assert result.hashes == expected_hashes(data)
    assert result.chunk_count == -(-size // CHUNK_SIZE)
    assert read_back(store=store, evidence_id=evidence_id, data_key=data_key) == data
    report = verify_container(
        evidence_id=evidence_id, data_key=data_key, store=store, expected_sha256=result.hashes.sha256
    )
    assert report.ok, report
    assert report.chunks_checked == result.chunk_count
    assert report.sha256 == hashlib.sha256(data).hexdigest()


def test_store_keys_derive_from_the_evidence_id_alone(store, evidence_id, data_key):
    seal(mixed_bytes(3 * SMALL_CHUNK + 5), store=store, evidence_id=evidence_id, data_key=data_key,
         facts={"case": "SECRET-CASE", "seized_from": "J. Doe"})  # fmt: skip

    keys = list(store.list(""))

    assert keys == [
        f"evidence/{evidence_id}/chunk/00000000",
        f"evidence/{evidence_id}/chunk/00000001",
        f"evidence/{evidence_id}/chunk/00000002",
        f"evidence/{evidence_id}/chunk/00000003",
        f"evidence/{evidence_id}/index.json",
        f"evidence/{evidence_id}/manifest.json",
    ]
    assert not any("SECRET" in key or "Doe" in key for key in keys)


def test_chunks_are_encrypted_and_compressed_or_flagged(store, evidence_id, data_key):
    text = (b"evidence text, very compressible " * 200)[:SMALL_CHUNK]
    noise = random_bytes(SMALL_CHUNK)
    seal(text + noise, store=store, evidence_id=evidence_id, data_key=data_key)

    compressed_chunk = store.read(chunk_key(evidence_id, 0))
    raw_chunk = store.read(chunk_key(evidence_id, 1))

    assert compressed_chunk[0] == 0x01 and len(compressed_chunk) < SMALL_CHUNK // 4
    assert b"evidence text" not in compressed_chunk
    # Random data does not shrink: stored as it is, flagged, and still encrypted.
    assert raw_chunk[0] == 0x01 | FLAG_UNCOMPRESSED
    assert len(raw_chunk) == SMALL_CHUNK + CHUNK_OVERHEAD
    assert noise[:64] not in raw_chunk


def test_index_and_manifest_are_canonical_and_pinned(store, evidence_id, data_key):
    data = mixed_bytes(2 * SMALL_CHUNK + 100)
    facts = {"seized_by": "custodian", "kind": "disk", "seized_at": date(2026, 1, 2)}
    result = seal(data, store=store, evidence_id=evidence_id, data_key=data_key, facts=facts)

    index_bytes = store.read(index_key(evidence_id))
    manifest_bytes = store.read(manifest_key(evidence_id))
    index = json.loads(index_bytes)
    manifest = json.loads(manifest_bytes)

    assert canonical_json(index) == index_bytes
    assert canonical_json(manifest) == manifest_bytes
    assert manifest["index_sha256"] == hashlib.sha256(index_bytes).hexdigest() == result.index_sha256
    assert result.manifest_sha256 == hashlib.sha256(manifest_bytes).hexdigest()
    assert manifest["facts"] == {"kind": "disk", "seized_at": "2026-01-02", "seized_by": "custodian"}
    assert {k: manifest[k] for k in ("md5", "sha1", "sha256", "size")} == {
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "sha1": hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    assert manifest["chunk_count"] == 3 and manifest["evidence_id"] == str(evidence_id)
    assert index["chunk_size"] == SMALL_CHUNK and index["total_size"] == len(data)
    assert [c["offset"] for c in index["chunks"]] == [0, SMALL_CHUNK, 2 * SMALL_CHUNK]
    assert [c["plain_length"] for c in index["chunks"]] == [SMALL_CHUNK, SMALL_CHUNK, 100]
    assert index["chunks"][2]["sha256"] == hashlib.sha256(data[2 * SMALL_CHUNK :]).hexdigest()
    assert [c["stored_length"] for c in index["chunks"]] == [store.size(chunk_key(evidence_id, n)) for n in range(3)]


def test_facts_that_are_not_json_are_refused_before_anything_is_finished(store, evidence_id, data_key):
    with pytest.raises(TypeError):
        seal(b"x" * 10, store=store, evidence_id=evidence_id, data_key=data_key, facts={"object": object()})
    assert not store.exists(index_key(evidence_id)) and not store.exists(manifest_key(evidence_id))


def test_seal_stream_reads_pipes_that_return_short_reads(store, evidence_id, data_key):
    data = mixed_bytes(10 * SMALL_CHUNK + 3)

    class Trickle(io.RawIOBase):
        def __init__(self):
            self._source = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, buffer):
            piece = self._source.read(min(len(buffer), 1000))
            buffer[: len(piece)] = piece
            return len(piece)

    result = seal_stream(
        evidence_id=evidence_id, data_key=data_key, store=store, source=Trickle(), facts={}, chunk_size=SMALL_CHUNK
    )

    assert result.hashes == expected_hashes(data)
    assert read_back(store=store, evidence_id=evidence_id, data_key=data_key) == data


def test_multi_hasher_in_threads_equals_hashing_in_one(evidence_id):
    data = mixed_bytes(300_000)
    serial, parallel = MultiHasher(), MultiHasher(parallel=True, queue_depth=2)
    for start in range(0, len(data), 7777):
        serial.update(data[start : start + 7777])
        parallel.update(bytearray(data[start : start + 7777]))

    assert serial.result() == parallel.result() == expected_hashes(data)


def test_a_failing_source_or_store_stops_sealing_and_seals_nothing(store, evidence_id, data_key):
    class Broken(io.RawIOBase):
        def __init__(self):
            self._served = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            if self._served > 5 * SMALL_CHUNK:
                raise OSError("connection reset")
            buffer[: len(buffer)] = bytes(len(buffer))
            self._served += len(buffer)
            return len(buffer)

    threads_before = threading.active_count()
    with pytest.raises(OSError, match="connection reset"):
        seal_stream(
            evidence_id=evidence_id, data_key=data_key, store=store, source=Broken(), facts={}, chunk_size=SMALL_CHUNK
        )

    class FullDisk(MemoryWormStore):
        def put(self, key, data, *, length=None):
            if key.endswith("00000003"):
                raise StoreError("could not write: No space left on device")
            super().put(key, data, length=length)

    full_disk, other_id = FullDisk(), uuid.uuid4()
    with pytest.raises(StoreError, match="No space left"):
        seal(mixed_bytes(40 * SMALL_CHUNK), store=full_disk, evidence_id=other_id, data_key=data_key)

    for failed_store, failed_id in ((store, evidence_id), (full_disk, other_id)):
        assert not failed_store.exists(index_key(failed_id)) and not failed_store.exists(manifest_key(failed_id))
    assert threading.active_count() == threads_before  # no hashing or sealing thread left behind


def test_the_zstd_level_changes_size_not_content(store, data_key):
    data = mixed_bytes(8 * SMALL_CHUNK)
    fast_id, default_id = uuid.uuid4(), uuid.uuid4()
    fast = seal(data, store=store, evidence_id=fast_id, data_key=data_key, zstd_level=-5)
    default = seal(data, store=store, evidence_id=default_id, data_key=data_key)

    assert fast.hashes == default.hashes
    assert read_back(store=store, evidence_id=fast_id, data_key=data_key) == data


def test_chunk_digests_from_the_hashing_lane_give_the_same_container(store, data_key):
    data = mixed_bytes(8 * SMALL_CHUNK + 17)
    lane_id, default_id = uuid.uuid4(), uuid.uuid4()
    from_lane = seal(data, store=store, evidence_id=lane_id, data_key=data_key, chunk_digests_in_hasher=True)
    default = seal(data, store=store, evidence_id=default_id, data_key=data_key)

    lane_index = json.loads(store.read(index_key(lane_id)))
    default_index = json.loads(store.read(index_key(default_id)))
    assert from_lane.hashes == default.hashes == expected_hashes(data)
    assert [c["sha256"] for c in lane_index["chunks"]] == [c["sha256"] for c in default_index["chunks"]]
    assert [c["sha256"] for c in lane_index["chunks"]] == [
        hashlib.sha256(data[offset : offset + SMALL_CHUNK]).hexdigest() for offset in range(0, len(data), SMALL_CHUNK)
    ]
    assert read_back(store=store, evidence_id=lane_id, data_key=data_key) == data


def test_update_digests_need_the_hashing_lanes_and_fail_their_waiters_on_abort():
    with pytest.raises(ContainerError):
        MultiHasher(update_digests=True)
    hasher = MultiHasher(parallel=True, queue_depth=4, update_digests=True)
    digest = hasher.update(b"x" * 5000)
    assert digest is not None and digest.result(timeout=10) == hashlib.sha256(b"x" * 5000).hexdigest()
    hasher.abort()
    without_digests = MultiHasher(parallel=True)
    assert without_digests.update(b"y" * 5000) is None
    without_digests.result()


# --- writing in any order -------------------------------------------------------------------------


def chunks_of(data: bytes, chunk_size: int = SMALL_CHUNK) -> list[tuple[int, bytes]]:
    return [(n, data[offset : offset + chunk_size]) for n, offset in enumerate(range(0, len(data), chunk_size))]


def test_chunks_written_out_of_order_read_back_in_order(store, evidence_id, data_key):
    data = mixed_bytes(20 * SMALL_CHUNK + 777)
    writer = ContainerWriter(evidence_id=evidence_id, data_key=data_key, store=store, chunk_size=SMALL_CHUNK)
    pieces = chunks_of(data)
    random.Random(3).shuffle(pieces)
    for number, plaintext in pieces:
        writer.write_chunk(index=number, plaintext=plaintext)

    manifest = writer.finish(facts={"source": "upload"}, hashes=expected_hashes(data))

    assert manifest.chunk_count == 21
    assert read_back(store=store, evidence_id=evidence_id, data_key=data_key) == data


def test_a_new_writer_resumes_and_finishes_what_another_wrote(store, evidence_id, data_key):
    # An upload spread over requests and a restart: each request has its own writer.
    data = mixed_bytes(6 * SMALL_CHUNK + 99)
    pieces = chunks_of(data)
    first = ContainerWriter(evidence_id=evidence_id, data_key=data_key, store=store, chunk_size=SMALL_CHUNK)
    for number, plaintext in pieces[4:]:  # including the short last chunk
        first.write_chunk(index=number, plaintext=plaintext)
    second = ContainerWriter(evidence_id=evidence_id, data_key=data_key, store=store, chunk_size=SMALL_CHUNK)
    for number, plaintext in pieces[:4]:
        second.write_chunk(index=number, plaintext=plaintext)

    third = ContainerWriter(evidence_id=evidence_id, data_key=data_key, store=store, chunk_size=SMALL_CHUNK)
    third.finish(facts={}, hashes=expected_hashes(data))

    assert read_back(store=store, evidence_id=evidence_id, data_key=data_key) == data


def test_chunks_written_from_several_threads_at_once(store, evidence_id, data_key):
    data = mixed_bytes(64 * SMALL_CHUNK + 5)
    writer = ContainerWriter(evidence_id=evidence_id, data_key=data_key, store=store, chunk_size=SMALL_CHUNK)
    pieces = chunks_of(data)
    random.Random(5).shuffle(pieces)
    # Every chunk twice: retried requests racing each other must neither fail nor write twice.
    work = pieces + pieces
    errors = []

    def write(share):
        try:
            for number, plaintext in share:
                writer.write_chunk(index=number, plaintext=plaintext)
        except Exception as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(work[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.finish(facts={}, hashes=expected_hashes(data))

    assert errors == []
    assert store.puts == len(pieces) + 2
    assert read_back(store=store, evidence_id=evidence_id, data_key=data_key) == data


def test_rewriting_a_chunk_with_the_same_bytes_is_a_no_op(store, evidence_id, data_key):
    writer = ContainerWriter(evidence_id=evidence_id, data_key=data_key, store=store, chunk_size=SMALL_CHUNK)
    plaintext = random_bytes(SMALL_CHUNK)
    record = writer.write_chunk(index=0, plaintext=plaintext)
    puts = store.puts

    assert writer.write_chunk(index=0, plaintext=plaintext) == record
    # A retried request handled by another writer (another worker) too.
    other = ContainerWriter(evidence_id=evidence_id, data_key=data_key, store=store, chunk_size=SMALL_CHUNK)
    assert other.write_chunk(index=0, plaintext=plaintext) == record
    assert store.puts == puts


def test_rewriting_a_chunk_with_different_bytes_is_refused(store, evidence_id, data_key):
    writer = ContainerWriter(evidence_id=evidence_id, data_key=data_key, store=store, chunk_size=SMALL_CHUNK)
    plaintext = random_bytes(SMALL_CHUNK)
    writer.write_chunk(index=2, plaintext=plaintext)
    stored_before = store.read(chunk_key(evidence_id, 2))
    changed = bytearray(plaintext)
    changed[100] ^= 1

    with pytest.raises(ChunkConflict) as raised:
        writer.write_chunk(index=2, plaintext=bytes(changed))
    assert raised.value.index == 2
    other = ContainerWriter(evidence_id=evidence_id, data_key=data_key, store=store, chunk_size=SMALL_CHUNK)
    with pytest.raises(ChunkConflict):
        other.write_chunk(index=2, plaintext=bytes(changed))
    with pytest.raises(ChunkConflict):  # a shorter rewrite (a different last chunk) conflicts too
        other.write_chunk(index=2, plaintext=plaintext[:100])
    assert store.read(chunk_key(evidence_id, 2)) == stored_before


def test_only_the_last_chunk_may_be_short(store, evidence_id, data_key):
    writer = ContainerWriter(evidence_id=evidence_id, data_key=data_key, store=store, chunk_size=SMALL_CHUNK)
    writer.write_chunk(index=1, plaintext=b"short")

    with pytest.raises(ContainerFormatError):
        writer.write_chunk(index=2, plaintext=random_bytes(SMALL_CHUNK))
    with pytest.raises(ContainerFormatError):
        writer.write_chunk(index=0, plaintext=b"also short")
    with pytest.raises(ContainerFormatError):
        writer.write_chunk(index=3, plaintext=random_bytes(SMALL_CHUNK + 1))
    with pytest.raises(ContainerFormatError):
        writer.write_chunk(index=3, plaintext=b"")


def test_finish_refuses_gaps_and_writes_nothing(store, evidence_id, data_key):
    data = mixed_bytes(4 * SMALL_CHUNK)
    writer = ContainerWriter(evidence_id=evidence_id, data_key=data_key, store=store, chunk_size=SMALL_CHUNK)
    for number, plaintext in chunks_of(data):
        if number != 2:
            writer.write_chunk(index=number, plaintext=plaintext)

    with pytest.raises(ContainerIncomplete, match=r"missing \[2\]"):
        writer.finish(facts={}, hashes=expected_hashes(data))
    with pytest.raises(ContainerIncomplete):  # a size that the chunks do not cover
        writer.finish(facts={}, hashes=expected_hashes(data + b"more"))
    assert not store.exists(index_key(evidence_id)) and not store.exists(manifest_key(evidence_id))
    with pytest.raises(ContainerIncomplete):
        ContainerReader(evidence_id=evidence_id, data_key=data_key, store=store)


def test_finishing_twice_is_idempotent_but_not_with_other_content(store, evidence_id, data_key):
    data = mixed_bytes(2 * SMALL_CHUNK)
    writer = ContainerWriter(evidence_id=evidence_id, data_key=data_key, store=store, chunk_size=SMALL_CHUNK)
    for number, plaintext in chunks_of(data):
        writer.write_chunk(index=number, plaintext=plaintext)
    first = writer.finish(facts={"a": 1}, hashes=expected_hashes(data))

    assert writer.finish(facts={"a": 1}, hashes=expected_hashes(data)) == first
    with pytest.raises(ContainerError, match="already sealed"):
        writer.finish(facts={"a": 2}, hashes=expected_hashes(data))


# --- declared hashes --------------------------------------------------------------------------------


def test_declared_hashes_that_match_are_accepted_in_any_case(store, evidence_id, data_key):
    data = mixed_bytes(3 * SMALL_CHUNK)
    truth = expected_hashes(data)
    declared = {"md5": truth.md5.upper(), "sha1": truth.sha1, "sha256": f" {truth.sha256} ", "size": len(data)}

    result = seal(data, store=store, evidence_id=evidence_id, data_key=data_key, declared=declared)

    assert result.hashes == truth


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256"])
def test_a_declared_hash_that_differs_is_refused_and_nothing_is_sealed(algorithm, store, evidence_id, data_key):
    data = mixed_bytes(3 * SMALL_CHUNK + 1)
    wrong = "0" * len(getattr(expected_hashes(data), algorithm))

    with pytest.raises(HashMismatch) as raised:
        seal(data, store=store, evidence_id=evidence_id, data_key=data_key, declared={algorithm: wrong})

    assert raised.value.algorithm == algorithm
    assert raised.value.declared == wrong
    assert raised.value.computed == getattr(expected_hashes(data), algorithm)
    # Chunks stay (write-once, unreferenced); no index, no manifest: the container is not sealed.
    assert not store.exists(index_key(evidence_id)) and not store.exists(manifest_key(evidence_id))
    assert len(list(store.list(f"evidence/{evidence_id}/chunk/"))) == 4
    with pytest.raises(ContainerIncomplete):
        ContainerReader(evidence_id=evidence_id, data_key=data_key, store=store)


def test_a_declared_size_that_differs_is_refused(store, evidence_id, data_key):
    with pytest.raises(HashMismatch) as raised:
        seal(b"abc", store=store, evidence_id=evidence_id, data_key=data_key, declared={"size": 4})
    assert raised.value.algorithm == "size"


def test_sealing_again_after_a_refusal_reuses_the_orphaned_chunks(store, evidence_id, data_key):
    data = mixed_bytes(3 * SMALL_CHUNK)
    with pytest.raises(HashMismatch):
        seal(data, store=store, evidence_id=evidence_id, data_key=data_key, declared={"sha256": "0" * 64})

    result = seal(data, store=store, evidence_id=evidence_id, data_key=data_key)

    assert result.hashes == expected_hashes(data)
    assert read_back(store=store, evidence_id=evidence_id, data_key=data_key) == data


# --- random access ------------------------------------------------------------------------------------


@pytest.fixture
def sealed_sample(store, evidence_id, data_key) -> bytes:
    data = mixed_bytes(37 * SMALL_CHUNK + 1234, seed=11)
    seal(data, store=store, evidence_id=evidence_id, data_key=data_key)
    return data


def test_a_thousand_random_reads_match_the_original(sealed_sample, store, evidence_id, data_key):
    generator = random.Random(1000)
    with ContainerReader(evidence_id=evidence_id, data_key=data_key, store=store, cache_chunks=4) as reader:
        assert reader.size == reader.get_size() == len(sealed_sample)
        for _ in range(1000):
            offset = generator.randrange(len(sealed_sample) + 10)
            length = generator.choice([1, 7, 512, 4096, SMALL_CHUNK + 3, 3 * SMALL_CHUNK])
            assert reader.seek(offset) == offset
            assert reader.read(length) == sealed_sample[offset : offset + length]
            assert reader.tell() == min(offset + length, max(offset, len(sealed_sample)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=st.integers(min_value=0, max_value=40 * SMALL_CHUNK), length=st.integers(min_value=0, max_value=20_000))
def test_any_read_matches_the_original(sealed_sample, store, evidence_id, data_key, offset, length):
    file_object = open_container(evidence_id=evidence_id, data_key=data_key, store=store, buffer_size=8192)
    with file_object:
        file_object.seek(offset)
        assert file_object.read(length) == sealed_sample[offset : offset + length]


def test_seek_and_tell_behave_like_a_file(sealed_sample, store, evidence_id, data_key):
    with ContainerReader(evidence_id=evidence_id, data_key=data_key, store=store) as reader:
        assert reader.readable() and reader.seekable() and not reader.writable()
        assert reader.seek(-10, io.SEEK_END) == len(sealed_sample) - 10
        assert reader.read() == sealed_sample[-10:]
        assert reader.read(5) == b""
        assert reader.seek(100) == 100
        assert reader.seek(50, io.SEEK_CUR) == 150
        buffer = bytearray(300)
        assert reader.readinto(buffer) == 300 and bytes(buffer) == sealed_sample[150:450]
        assert reader.seek(len(sealed_sample) + 1000) == len(sealed_sample) + 1000
        assert reader.read(10) == b""
        with pytest.raises(ValueError):
            reader.seek(-1)
    with pytest.raises(ValueError):
        reader.read(1)


def test_open_container_offers_what_dfvfs_and_pytsk3_call(sealed_sample, store, evidence_id, data_key):
    file_object = open_container(evidence_id=evidence_id, data_key=data_key, store=store)

    assert isinstance(file_object, io.BufferedReader)
    assert file_object.get_size() == file_object.size == len(sealed_sample)
    file_object.seek(SMALL_CHUNK - 2)
    assert file_object.read(4) == sealed_sample[SMALL_CHUNK - 2 : SMALL_CHUNK + 2]
    assert file_object.tell() == SMALL_CHUNK + 2
    file_object.seek(0)
    assert hashlib.sha256(file_object.read()).hexdigest() == hashlib.sha256(sealed_sample).hexdigest()


def test_readers_in_several_threads_share_one_store(sealed_sample, store, evidence_id, data_key):
    failures = []

    def read_randomly(seed: int) -> None:
        generator = random.Random(seed)
        with ContainerReader(evidence_id=evidence_id, data_key=data_key, store=store) as reader:
            for _ in range(200):
                offset = generator.randrange(len(sealed_sample))
                reader.seek(offset)
                if reader.read(999) != sealed_sample[offset : offset + 999]:
                    failures.append(offset)

    threads = [threading.Thread(target=read_randomly, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# --- tampering --------------------------------------------------------------------------------------


def flip_byte(store: MemoryWormStore, key: str, position: int) -> None:
    stored = bytearray(store.read(key))
    stored[position] ^= 0x01
    store.tamper(key, bytes(stored))


@pytest.mark.parametrize("position", [0, 5, 13, 200, -1], ids=["format-byte", "nonce", "payload", "middle", "tag"])
def test_a_flipped_byte_is_named_by_verification_and_refused_by_the_reader(
    position, sealed_sample, store, evidence_id, data_key
):
    flip_byte(store, chunk_key(evidence_id, 7), position)

    report = verify_container(
        evidence_id=evidence_id,
        data_key=data_key,
        store=store,
        expected_sha256=hashlib.sha256(sealed_sample).hexdigest(),
    )

    assert not report.ok
    assert [index for index, _ in report.bad_chunks] == [7]
    assert report.chunks_checked == 38
    assert report.sha256 is None
    with ContainerReader(evidence_id=evidence_id, data_key=data_key, store=store) as reader:
        # Other chunks still read; the damaged one is refused, by number.
        reader.seek(6 * SMALL_CHUNK)
        assert reader.read(SMALL_CHUNK) == sealed_sample[6 * SMALL_CHUNK : 7 * SMALL_CHUNK]
        with pytest.raises(ChunkIntegrityError) as raised:
            reader.read(1)
        assert raised.value.index == 7
        assert "chunk 7" in str(raised.value)


def test_a_swapped_pair_of_chunks_is_refused_by_decryption(sealed_sample, store, evidence_id, data_key):
    first, second = chunk_key(evidence_id, 3), chunk_key(evidence_id, 4)
    first_bytes, second_bytes = store.read(first), store.read(second)
    store.tamper(first, second_bytes)
    store.tamper(second, first_bytes)

    with ContainerReader(evidence_id=evidence_id, data_key=data_key, store=store) as reader:
        for number in (3, 4):
            reader.seek(number * SMALL_CHUNK)
            with pytest.raises(ChunkIntegrityError) as raised:
                reader.read(10)
            assert raised.value.index == number
            assert "authentication failed" in raised.value.problem
    report = verify_container(
        evidence_id=evidence_id,
        data_key=data_key,
        store=store,
        expected_sha256=hashlib.sha256(sealed_sample).hexdigest(),
    )
    assert [index for index, _ in report.bad_chunks] == [3, 4] and not report.ok


def test_a_chunk_from_another_evidence_item_is_refused(store, data_key):
    # Same key and same position on purpose: only the evidence id in the associated data differs.
    first_id, second_id = uuid.uuid4(), uuid.uuid4()
    first_data, second_data = mixed_bytes(3 * SMALL_CHUNK, seed=1), mixed_bytes(3 * SMALL_CHUNK, seed=2)
    seal(first_data, store=store, evidence_id=first_id, data_key=data_key)
    seal(second_data, store=store, evidence_id=second_id, data_key=data_key)
    store.tamper(chunk_key(second_id, 1), store.read(chunk_key(first_id, 1)))

    with ContainerReader(evidence_id=second_id, data_key=data_key, store=store) as reader:
        reader.seek(SMALL_CHUNK)
        with pytest.raises(ChunkIntegrityError) as raised:
            reader.read(1)
    assert raised.value.index == 1


def test_a_truncated_or_missing_chunk_is_named(sealed_sample, store, evidence_id, data_key):
    store.tamper(chunk_key(evidence_id, 2), store.read(chunk_key(evidence_id, 2))[:-1])
    store.tamper(chunk_key(evidence_id, 5), store.read(chunk_key(evidence_id, 5))[:10])
    store.remove(chunk_key(evidence_id, 9))

    report = verify_container(
        evidence_id=evidence_id,
        data_key=data_key,
        store=store,
        expected_sha256=hashlib.sha256(sealed_sample).hexdigest(),
    )

    assert [index for index, _ in report.bad_chunks] == [2, 5, 9]
    assert "missing" in dict(report.bad_chunks)[9]
    with ContainerReader(evidence_id=evidence_id, data_key=data_key, store=store) as reader:
        reader.seek(9 * SMALL_CHUNK)
        with pytest.raises(ChunkIntegrityError, match="chunk 9"):
            reader.read(1)


def test_dropping_the_last_chunk_and_rewriting_the_index_is_caught(sealed_sample, store, evidence_id, data_key):
    index = json.loads(store.read(index_key(evidence_id)))
    index["chunks"].pop()
    index["total_size"] = 37 * SMALL_CHUNK
    store.tamper(index_key(evidence_id), canonical_json(index))

    with pytest.raises(IndexIntegrityError):
        ContainerReader(evidence_id=evidence_id, data_key=data_key, store=store)
    report = verify_container(
        evidence_id=evidence_id,
        data_key=data_key,
        store=store,
        expected_sha256=hashlib.sha256(sealed_sample).hexdigest(),
    )
    assert not report.ok
    assert any("index" in problem for problem in report.problems)
    assert (37, "stored but not listed in the index") in report.bad_chunks


def test_a_wrong_key_is_refused_without_showing_any_key(sealed_sample, store, evidence_id, data_key):
    wrong_key = os.urandom(32)
    with ContainerReader(evidence_id=evidence_id, data_key=wrong_key, store=store) as reader:
        with pytest.raises(ChunkIntegrityError) as raised:
            reader.read(1)
        text = f"{raised.value} {raised.value!r} {reader!r}"
    for key in (data_key, wrong_key):
        assert key.hex() not in text and repr(key) not in text
    assert raised.value.index == 0
    report = verify_container(
        evidence_id=evidence_id,
        data_key=wrong_key,
        store=store,
        expected_sha256=hashlib.sha256(sealed_sample).hexdigest(),
    )
    assert len(report.bad_chunks) == 38 and data_key.hex() not in repr(report)


def test_verification_compares_with_the_hash_taken_at_intake(sealed_sample, store, evidence_id, data_key):
    report = verify_container(evidence_id=evidence_id, data_key=data_key, store=store, expected_sha256="ab" * 32)

    assert not report.ok and report.bad_chunks == []
    assert report.sha256 == hashlib.sha256(sealed_sample).hexdigest()
    assert any("expected" in problem for problem in report.problems)


def test_verification_never_changes_the_store(sealed_sample, store, evidence_id, data_key):
    flip_byte(store, chunk_key(evidence_id, 1), 20)
    before = {key: store.read(key) for key in store.list("")}

    verify_container(evidence_id=evidence_id, data_key=data_key, store=store, expected_sha256="0" * 64)

    assert {key: store.read(key) for key in store.list("")} == before


def test_verifying_an_unsealed_container_reports_it(store, evidence_id, data_key):
    report = verify_container(evidence_id=evidence_id, data_key=data_key, store=store, expected_sha256="0" * 64)
    assert not report.ok and report.chunks_checked == 0 and "manifest" in report.problems[0]


# --- the real local store -----------------------------------------------------------------------------


def test_seal_flip_and_verify_on_the_local_worm_store(tmp_path, evidence_id, data_key):
    local_store = LocalWormStore(root=tmp_path / "store")
    data = mixed_bytes(9 * SMALL_CHUNK + 10)
    result = seal(data, store=local_store, evidence_id=evidence_id, data_key=data_key)
    assert read_back(store=local_store, evidence_id=evidence_id, data_key=data_key) == data

    # An attacker with file-system access gets past the store's write-once rule, not past the seal.
    chunk_path = tmp_path / "store" / chunk_key(evidence_id, 4)
    chunk_path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    stored = bytearray(chunk_path.read_bytes())
    stored[len(stored) // 2] ^= 0x80
    chunk_path.write_bytes(bytes(stored))

    report = verify_container(
        evidence_id=evidence_id, data_key=data_key, store=local_store, expected_sha256=result.hashes.sha256
    )
    assert [index for index, _ in report.bad_chunks] == [4]
    with pytest.raises(ObjectExists):  # and the store itself refuses a rewrite through it
        local_store.put(chunk_key(evidence_id, 4), b"replacement")


# --- the shared corpus ---------------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS_FILES = [
    "dfvfs/ext2.E01",
    "dfvfs/ext2.split.E01",
    "dfvfs/ext2.split.E02",
    "dfvfs/ext2.vhd",
    "dfvfs/ext2.vmdk",
    "dfvfs/ext2.qcow2",
    "pytsk/tsk_volume_system.raw",
    "velociraptor/test.vhdx.zip",
]


def corpus_root() -> Path:
    return Path(os.environ.get("CUSTODIA_TESTDATA", REPO_ROOT.parent / "shared" / "testdata"))


def corpus_manifest() -> dict[str, str]:
    """``file`` → ``sha256`` from MANIFEST.tsv; skips the test when the corpus is absent."""
    manifest_path = corpus_root() / "MANIFEST.tsv"
    if not manifest_path.is_file():
        pytest.skip(f"test corpus absent: no {manifest_path} (set CUSTODIA_TESTDATA to the shared test data folder)")
    lines = manifest_path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    file_column, sha256_column = header.index("file"), header.index("sha256")
    rows = (line.split("\t") for line in lines[1:] if line.strip())
    return {row[file_column]: row[sha256_column] for row in rows}


def corpus_file(name: str) -> tuple[Path, str]:
    manifest = corpus_manifest()
    entry = next((key for key in manifest if key == name or key.endswith("/" + name)), None)
    if entry is None:
        pytest.skip(f"{name} is not listed in {corpus_root() / 'MANIFEST.tsv'}")
    path = corpus_root() / entry
    if not path.is_file():
        pytest.skip(f"test corpus file {path} is absent (set CUSTODIA_TESTDATA to the shared test data folder)")
    return path, manifest[entry]


@pytest.mark.corpus
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_files_round_trip_to_their_manifest_sha256(name, tmp_path, evidence_id, data_key):
    path, manifest_sha256 = corpus_file(name)
    local_store = LocalWormStore(root=tmp_path / "store")
    # 64 KiB chunks so even the small images span many chunks.
    with path.open("rb") as source:
        result = seal_stream(
            evidence_id=evidence_id,
            data_key=data_key,
            store=local_store,
            source=source,
            facts={"original_name": path.name},
            declared={"sha256": manifest_sha256},
            chunk_size=64 << 10,
        )

    with open_container(evidence_id=evidence_id, data_key=data_key, store=local_store) as sealed:
        read_back_sha256 = hashlib.sha256(sealed.read()).hexdigest()
    assert read_back_sha256 == manifest_sha256 == result.hashes.sha256
    report = verify_container(
        evidence_id=evidence_id, data_key=data_key, store=local_store, expected_sha256=manifest_sha256
    )
    assert report.ok, report


@pytest.mark.corpus
def test_corpus_image_random_reads_match_the_original(tmp_path, evidence_id, data_key):
    path, _ = corpus_file("dfvfs/ext2.vhd")
    original = path.read_bytes()
    local_store = LocalWormStore(root=tmp_path / "store")
    seal(original, store=local_store, evidence_id=evidence_id, data_key=data_key, chunk_size=32 << 10)
    generator = random.Random(2026)

    with open_container(evidence_id=evidence_id, data_key=data_key, store=local_store) as sealed:
        for _ in range(1000):
            offset = generator.randrange(len(original))
            length = generator.randrange(1, 70_000)
            sealed.seek(offset)
            assert sealed.read(length) == original[offset : offset + length]


@pytest.mark.corpus
def test_pytsk3_reads_a_volume_system_through_the_container(store, evidence_id, data_key):
    pytsk3 = pytest.importorskip("pytsk3")
    path, _ = corpus_file("pytsk/tsk_volume_system.raw")
    original = path.read_bytes()
    seal(original, store=store, evidence_id=evidence_id, data_key=data_key, chunk_size=64 << 10)
    sealed = open_container(evidence_id=evidence_id, data_key=data_key, store=store)

    class SealedImage(pytsk3.Img_Info):
        def __init__(self, file_object):
            self._file_object = file_object
            super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

        def read(self, offset, size):
            self._file_object.seek(offset)
            return self._file_object.read(size)

        def get_size(self):
            return self._file_object.get_size()

    def partitions(image) -> list[tuple[int, int, str]]:
        return [(part.start, part.len, part.desc.decode()) for part in pytsk3.Volume_Info(image)]

    plain = pytsk3.Img_Info(str(path))
    assert partitions(SealedImage(sealed)) == partitions(plain)
    assert len(partitions(plain)) > 1


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["dfvfs/ext2.E01", "dfvfs/ext2.vhd"])
def test_dfvfs_walks_the_sealed_image_as_it_walks_the_original(name, store, evidence_id, data_key):
    # The extraction reads evidence only through the container: it must see exactly the same traces.
    walker = pytest.importorskip("search.extraction.walker", reason="dfVFS extraction is not installed")
    path, _ = corpus_file(name)
    seal(path.read_bytes(), store=store, evidence_id=evidence_id, data_key=data_key, chunk_size=64 << 10)

    def traces_of(file_object) -> list[dict]:
        options = walker.WalkOptions(file_name=path.name)
        return [t.to_dict() for t in walker.walk_image(file_object=file_object, evidence_id="ev", options=options)]

    with path.open("rb") as original:
        expected = traces_of(original)
    with open_container(evidence_id=evidence_id, data_key=data_key, store=store) as sealed:
        assert traces_of(sealed) == expected
    assert any("passwords.txt" in trace["name"] for trace in expected)


# --- durability: one barrier before the index; a torn chunk is superseded on resume -------------------


class KilledMidSeal(BaseException):
    """What a SIGKILL looks like to the sealing code: nothing after it runs (not an Exception)."""


class KillingLocalStore(LocalWormStore):
    """The real local store, 'killed' after some chunk puts; records puts and fsyncs in order."""

    def __init__(self, *, root: Path, kill_after_chunks: int | None = None, journal: list[str] | None = None) -> None:
        super().__init__(root=root)
        self.kill_after_chunks = kill_after_chunks
        self.journal = journal if journal is not None else []  # "put <key>" when a put returns
        self.chunk_puts = 0
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def put(self, key: str, data: bytes | BinaryIO, *, length: int | None = None) -> None:
        with self.lock:
            if "/chunk/" in key:
                self.chunk_puts += 1
                if self.kill_after_chunks is not None and self.chunk_puts > self.kill_after_chunks:
                    raise KilledMidSeal()
        super().put(key, data, length=length)
        with self.lock:
            self.events.append(("put", key))
            self.journal.append(f"put {key}")


@pytest.fixture
def fsyncs(monkeypatch) -> list[str]:
    """Paths fsync'd (through any descriptor) while the test runs, in order."""
    calls: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(descriptor: int) -> None:
        path = os.readlink(f"/proc/self/fd/{descriptor}")
        # A durable put syncs its hidden temporary file before linking it under its name.
        folder, _, name = path.rpartition("/")
        calls.append(f"{folder}/.tmp" if name.startswith(".tmp-") else path)
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return calls


def test_sealing_syncs_every_chunk_once_after_the_last_put_and_before_the_index(tmp_path, data_key, fsyncs):
    evidence_id = uuid.uuid4()
    store = KillingLocalStore(root=tmp_path / "store", journal=fsyncs)  # puts and fsyncs in one order
    data = mixed_bytes(20 * SMALL_CHUNK + 77)
    result = seal(data, store=store, evidence_id=evidence_id, data_key=data_key)

    chunk_files = {str(store.root / chunk_key(evidence_id, number)) for number in range(result.chunk_count)}
    synced_chunks = [entry for entry in fsyncs if entry in chunk_files]
    assert sorted(synced_chunks) == sorted(chunk_files)  # each chunk file fsync'd exactly once
    chunk_folder = str(store.root / chunk_key(evidence_id, 0)).rpartition("/")[0]
    last_chunk_put = max(
        position for position, entry in enumerate(fsyncs) if entry.startswith("put ") and "/chunk/" in entry
    )
    index_put = fsyncs.index(f"put {index_key(evidence_id)}")
    # The barrier: every chunk file and the chunk folder are synced after the last chunk put returned and
    # before the index is written; the index and the manifest stay durable puts of their own.
    barrier = fsyncs[last_chunk_put:index_put]
    assert chunk_files <= set(barrier) and chunk_folder in barrier
    assert not any(entry.startswith(chunk_folder) for entry in fsyncs[:last_chunk_put] if not entry.startswith("put "))
    index_folder = chunk_folder.rpartition("/")[0]
    assert fsyncs[index_put - 1] == index_folder  # the index put ended with its own fsyncs
    assert fsyncs[-1] == f"put {manifest_key(evidence_id)}" and fsyncs[-2] == index_folder
    assert read_back(store=store, evidence_id=evidence_id, data_key=data_key) == data


def test_a_chunk_torn_by_a_crash_before_the_barrier_is_superseded_on_resume(tmp_path, data_key, fsyncs):
    """A killed seal, then a power loss that tore two unsynced chunk files (one cut short, one whose
    blocks never reached the disk: zeros). The resumed seal must not fail, must not reference the torn
    copies, must store the good bytes as each chunk's next attempt and say so in its result."""
    evidence_id = uuid.uuid4()
    data = mixed_bytes(12 * SMALL_CHUNK + 500)
    killed = KillingLocalStore(root=tmp_path / "store", kill_after_chunks=6)
    with pytest.raises(KilledMidSeal):
        seal(data, store=killed, evidence_id=evidence_id, data_key=data_key, workers=1)
    assert not killed.exists(index_key(evidence_id))
    stored_chunks = [key for kind, key in killed.events if kind == "put"]
    assert len(stored_chunks) == 6
    cut_short, zeroed = killed.root / chunk_key(evidence_id, 1), killed.root / chunk_key(evidence_id, 4)
    for path in (cut_short, zeroed):
        path.chmod(0o644)  # the power loss, not the store, damages these files
    full_length = zeroed.stat().st_size
    os.truncate(cut_short, 100)
    zeroed.write_bytes(bytes(full_length))

    fsyncs.clear()
    resumed_store = LocalWormStore(root=tmp_path / "store")
    result = seal(data, store=resumed_store, evidence_id=evidence_id, data_key=data_key, resume=True)

    assert result.hashes == expected_hashes(data)
    assert result.chunks_reused == 4  # the six stored, less the two torn ones
    superseded = sorted(result.chunks_superseded, key=lambda entry: entry["chunk"])
    assert [(entry["chunk"], entry["key"], entry["superseded_by"]) for entry in superseded] == [
        (1, chunk_key(evidence_id, 1), chunk_key(evidence_id, 1, 1)),
        (4, chunk_key(evidence_id, 4), chunk_key(evidence_id, 4, 1)),
    ]
    assert [entry["stored_length"] for entry in superseded] == [100, full_length]
    assert superseded[1]["stored_sha256"] == hashlib.sha256(bytes(full_length)).hexdigest()
    assert all(entry["problem"] for entry in superseded)
    # The torn copies stay (write-once), unreferenced; the index names attempt 1 for those two chunks.
    assert cut_short.stat().st_size == 100
    index = json.loads(resumed_store.read(index_key(evidence_id)))
    assert {entry["index"]: entry.get("attempt", 0) for entry in index["chunks"]} == {
        number: (1 if number in (1, 4) else 0) for number in range(13)
    }
    # The barrier covered the chunks reused from the killed run too (it may have died before syncing them).
    for number in (0, 2, 3, 5):
        assert str(resumed_store.root / chunk_key(evidence_id, number)) in fsyncs
    report = verify_container(
        evidence_id=evidence_id, data_key=data_key, store=resumed_store, expected_sha256=result.hashes.sha256
    )
    assert report.ok and report.sha256 == hashlib.sha256(data).hexdigest() and not report.bad_chunks
    assert read_back(store=resumed_store, evidence_id=evidence_id, data_key=data_key) == data


def test_a_resumed_seal_still_refuses_a_stored_chunk_that_opens_with_other_bytes(tmp_path, data_key):
    evidence_id = uuid.uuid4()
    data = mixed_bytes(8 * SMALL_CHUNK)
    killed = KillingLocalStore(root=tmp_path / "store", kill_after_chunks=4)
    with pytest.raises(KilledMidSeal):
        seal(data, store=killed, evidence_id=evidence_id, data_key=data_key, workers=1)
    changed = bytearray(data)
    changed[2 * SMALL_CHUNK + 10] ^= 1  # a sector that reads differently now: never merged silently
    with pytest.raises(ChunkConflict):
        seal(
            bytes(changed),
            store=LocalWormStore(root=tmp_path / "store"),
            evidence_id=evidence_id,
            data_key=data_key,
            resume=True,
        )
