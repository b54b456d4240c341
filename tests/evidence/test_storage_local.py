"""LocalWormStore: write-once files, range reads, listing, and retention enforced by the store itself."""

from __future__ import annotations

import errno
import fcntl
import io
import os
import stat
import threading
from datetime import date, timedelta

import pytest

from evidence.storage.base import ObjectExists, ObjectMissing, RetentionViolation, StoreError
from evidence.storage.local import WRITE_FLUSHED, WRITE_MODES, LocalWormStore

EVIDENCE_ID = "0f6c1d2e-8a43-4c55-9b1e-3f2a7d9e0c11"
PREFIX = f"evidence/{EVIDENCE_ID}/"


@pytest.fixture
def store(tmp_path) -> LocalWormStore:
    return LocalWormStore(root=tmp_path / "evidence")


def test_put_then_read_whole_and_ranges(store):
    payload = bytes(range(256)) * 40
    store.put(PREFIX + "chunk/00000000", payload)

    assert store.exists(PREFIX + "chunk/00000000")
    assert store.size(PREFIX + "chunk/00000000") == len(payload)
    assert store.read(PREFIX + "chunk/00000000") == payload
    assert store.read(PREFIX + "chunk/00000000", 1000, 37) == payload[1000:1037]
    assert store.read(PREFIX + "chunk/00000000", 10_000) == payload[10_000:]
    assert store.read(PREFIX + "chunk/00000000", len(payload) - 3, 100) == payload[-3:]
    assert store.read(PREFIX + "chunk/00000000", len(payload) + 5, 10) == b""


def test_put_streams_a_file_object_with_length(store):
    payload = os.urandom(3 * 1024 * 1024 + 17)
    store.put(PREFIX + "image", io.BytesIO(payload + b"trailing bytes not part of the object"), length=len(payload))
    assert store.read(PREFIX + "image") == payload


def test_written_file_is_read_only(store):
    store.put(PREFIX + "manifest", b"{}")
    mode = stat.S_IMODE(os.stat(store.root / PREFIX / "manifest").st_mode)
    assert mode == 0o444


def test_existing_key_is_never_overwritten(store):
    store.put(PREFIX + "manifest", b"original")
    with pytest.raises(ObjectExists):
        store.put(PREFIX + "manifest", b"replacement")
    assert store.read(PREFIX + "manifest") == b"original"


def test_concurrent_puts_of_one_key_leave_exactly_one_winner(store):
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def writer(number: int) -> None:
        barrier.wait()
        try:
            store.put(PREFIX + "race", f"writer {number}".encode() * 10_000)
            outcomes.append("written")
        except ObjectExists:
            outcomes.append("refused")

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count("written") == 1
    assert outcomes.count("refused") == 7
    content = store.read(PREFIX + "race")
    assert len(set(content.split(b"writer ")[1:])) == 1  # one writer's bytes, whole


def test_short_stream_leaves_nothing_behind(store):
    with pytest.raises(StoreError, match="short write"):
        store.put(PREFIX + "truncated", io.BytesIO(b"only ten b"), length=100)
    assert not store.exists(PREFIX + "truncated")
    assert [name for name in os.listdir(store.root / PREFIX)] == []


def test_failing_source_leaves_nothing_behind(store):
    class BrokenUpload(io.RawIOBase):
        def read(self, size=-1):
            raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.put(PREFIX + "broken", BrokenUpload())
    assert not store.exists(PREFIX + "broken")
    assert os.listdir(store.root / PREFIX) == []


def test_missing_objects(store):
    with pytest.raises(ObjectMissing):
        store.read(PREFIX + "nothing")
    with pytest.raises(ObjectMissing):
        store.size(PREFIX + "nothing")
    with pytest.raises(ObjectMissing):
        store.delete(PREFIX + "nothing")
    assert not store.exists(PREFIX + "nothing")


@pytest.mark.parametrize(
    "bad_key",
    ["", "/etc/passwd", "../outside", "evidence/../../outside", "evidence//double", "evidence/./here",
     "evidence/.retention/x", "evidence/naïve", "evidence/with space", "evidence/trailing/", "evidence\\win"],
)  # fmt: skip
def test_unsafe_keys_are_refused(store, bad_key):
    with pytest.raises(StoreError):
        store.put(bad_key, b"x")
    with pytest.raises(StoreError):
        store.read(bad_key)


def test_key_through_an_existing_object_is_a_store_error(store):
    store.put(PREFIX + "manifest", b"{}")
    with pytest.raises(StoreError, match="could not write"):
        store.put(PREFIX + "manifest/inner", b"x")


def test_list_is_sorted_and_filtered_by_prefix(store):
    keys = [PREFIX + "manifest", PREFIX + "chunk/00000002", PREFIX + "chunk/00000000", PREFIX + "chunk/00000001"]
    for key in keys:
        store.put(key, b"x")
    store.put("evidence/another-id/manifest", b"y")

    assert list(store.list(PREFIX)) == sorted(keys)
    assert list(store.list(PREFIX + "chunk/")) == sorted(keys)[:3]
    assert list(store.list(PREFIX + "chunk/0000000")) == sorted(keys)[:3]
    assert list(store.list(PREFIX + "man")) == [PREFIX + "manifest"]
    assert list(store.list("evidence/an")) == ["evidence/another-id/manifest"]
    assert list(store.list("nowhere/")) == []
    assert len(list(store.list(""))) == 5  # the retention records are not objects


def test_delete_without_protection(store):
    store.put(PREFIX + "manifest", b"{}")
    store.delete(PREFIX + "manifest")
    assert not store.exists(PREFIX + "manifest")


def test_retention_date_ahead_refuses_delete_and_covers_later_objects(store):
    store.put(PREFIX + "chunk/00000000", b"before")
    store.set_retention(PREFIX, until=date.today() + timedelta(days=30), legal_hold=False)
    store.put(PREFIX + "chunk/00000001", b"after")

    for key in (PREFIX + "chunk/00000000", PREFIX + "chunk/00000001"):
        with pytest.raises(RetentionViolation, match="retention"):
            store.delete(key)
        assert store.exists(key)

    store.put("evidence/unprotected/manifest", b"{}")
    store.delete("evidence/unprotected/manifest")


def test_retention_in_the_past_allows_delete(store):
    store.put(PREFIX + "manifest", b"{}")
    store.set_retention(PREFIX, until=date.today() - timedelta(days=1), legal_hold=False)
    store.delete(PREFIX + "manifest")


def test_retention_can_be_extended_never_shortened(store):
    later = date.today() + timedelta(days=365)
    store.set_retention(PREFIX, until=later, legal_hold=False)
    store.set_retention(PREFIX, until=later + timedelta(days=1), legal_hold=False)
    with pytest.raises(RetentionViolation, match="never shortened"):
        store.set_retention(PREFIX, until=later, legal_hold=False)
    # Leaving the date out keeps the recorded one (for example when only the legal hold changes).
    store.set_retention(PREFIX, until=None, legal_hold=False)
    store.put(PREFIX + "manifest", b"{}")
    with pytest.raises(RetentionViolation):
        store.delete(PREFIX + "manifest")


def test_legal_hold_refuses_delete_until_lifted(store):
    store.put(PREFIX + "manifest", b"{}")
    store.set_retention(PREFIX, until=None, legal_hold=True)
    with pytest.raises(RetentionViolation, match="legal hold"):
        store.delete(PREFIX + "manifest")
    store.set_retention(PREFIX, until=None, legal_hold=False)
    store.delete(PREFIX + "manifest")


def test_retention_is_shared_by_every_store_on_the_same_folder(tmp_path):
    first = LocalWormStore(root=tmp_path / "shared")
    second = LocalWormStore(root=tmp_path / "shared")
    first.put(PREFIX + "manifest", b"{}")
    first.set_retention(PREFIX, until=None, legal_hold=True)
    with pytest.raises(RetentionViolation):
        second.delete(PREFIX + "manifest")


def test_copy_is_write_once(store):
    store.put(PREFIX + "manifest", b"{}")
    store.copy(PREFIX + "manifest", PREFIX + "manifest-copy")
    assert store.read(PREFIX + "manifest-copy") == b"{}"
    with pytest.raises(ObjectExists):
        store.copy(PREFIX + "manifest", PREFIX + "manifest-copy")
    with pytest.raises(ObjectMissing):
        store.copy(PREFIX + "nothing", PREFIX + "other")


def test_check_ready(store):
    store.check_ready()


def test_check_ready_refuses_a_read_only_folder(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root, which writes into read-only folders: the check cannot fail here")
    read_only_root = tmp_path / "read-only"
    read_only_store = LocalWormStore(root=read_only_root)
    os.chmod(read_only_root, 0o500)
    try:
        with pytest.raises(StoreError, match="not writable"):
            read_only_store.check_ready()
    finally:
        os.chmod(read_only_root, 0o700)


def test_check_ready_refuses_a_vanished_folder(tmp_path):
    root = tmp_path / "gone"
    store = LocalWormStore(root=root)
    os.rename(root, tmp_path / "moved")
    with pytest.raises(StoreError, match="does not exist"):
        store.check_ready()


@pytest.fixture
def fsynced_paths(monkeypatch) -> list[str]:
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


def test_a_put_outside_a_durable_batch_syncs_file_and_folder(store, fsynced_paths):
    store.put("evidence/a/chunk/00000000", b"x")
    assert fsynced_paths == [str(store.root / "evidence/a/chunk/.tmp"), str(store.root / "evidence/a/chunk")]


def test_a_durable_batch_defers_the_fsyncs_of_its_prefix_to_one_barrier(store, fsynced_paths):
    with store.durable_batch(prefix="evidence/a/chunk/") as batch:
        store.put("evidence/a/chunk/00000000", b"one")
        store.put("evidence/a/chunk/00000001", b"two")
        store.put("evidence/b/chunk/00000000", b"other item: durable at once")
        assert fsynced_paths == [str(store.root / "evidence/b/chunk/.tmp"), str(store.root / "evidence/b/chunk")]
        assert store.read("evidence/a/chunk/00000001") == b"two"  # readable before the barrier
        fsynced_paths.clear()
        batch.sync()
        assert sorted(fsynced_paths) == sorted(
            [
                str(store.root / "evidence/a/chunk/00000000"),
                str(store.root / "evidence/a/chunk/00000001"),
                str(store.root / "evidence/a/chunk"),
            ]
        )
        fsynced_paths.clear()
        store.put("evidence/a/index.json", b"{}")  # outside the prefix: durable
        assert fsynced_paths == [str(store.root / "evidence/a/.tmp"), str(store.root / "evidence/a")]
    fsynced_paths.clear()
    store.put("evidence/a/chunk/00000002", b"after the batch: durable again")
    assert len(fsynced_paths) == 2


def test_a_barrier_also_syncs_objects_named_that_another_process_wrote(store, fsynced_paths):
    store.put("evidence/a/chunk/00000000", b"written earlier")
    fsynced_paths.clear()
    with store.durable_batch(prefix="evidence/a/chunk/") as batch:
        batch.sync(["evidence/a/chunk/00000000"])
    assert fsynced_paths == [str(store.root / "evidence/a/chunk/00000000"), str(store.root / "evidence/a/chunk")]
    with pytest.raises(ObjectMissing), store.durable_batch(prefix="evidence/a/chunk/") as batch:
        batch.sync(["evidence/a/chunk/00000009"])


def test_leaving_a_batch_normally_syncs_what_is_left_and_an_error_syncs_nothing(store, fsynced_paths):
    with store.durable_batch(prefix="evidence/a/"):
        store.put("evidence/a/x", b"x")
    assert str(store.root / "evidence/a/x") in fsynced_paths
    fsynced_paths.clear()
    with pytest.raises(RuntimeError), store.durable_batch(prefix="evidence/b/"):
        store.put("evidence/b/x", b"x")
        raise RuntimeError("the seal failed")
    assert fsynced_paths == []


# --- how the bytes reach the disk (write_mode) ----------------------------------------------------------

OBJECT_LENGTHS = [1, 4095, 4096, 4097, 1024 * 1024 + 29, 3 * 1024 * 1024 + 4096 + 5]


@pytest.mark.parametrize("write_mode", WRITE_MODES)
def test_every_write_mode_stores_objects_of_any_length_inside_and_outside_a_batch(tmp_path, write_mode):
    store = LocalWormStore(root=tmp_path / "evidence", write_mode=write_mode)
    payloads = {f"{PREFIX}chunk/{number:08d}": os.urandom(length) for number, length in enumerate(OBJECT_LENGTHS)}
    with store.durable_batch(prefix=PREFIX + "chunk/") as batch:
        for key, payload in payloads.items():
            store.put(key, bytearray(payload))  # any bytes-like object
        batch.sync()
    store.put(PREFIX + "index.json", memoryview(b"{}"))  # durable at once, small: no aligned part
    store.put(PREFIX + "image", os.urandom(8192) + b"tail", length=8192)  # a length shorter than the data
    for key, payload in payloads.items():
        assert store.read(key) == payload
        assert stat.S_IMODE(os.stat(store.root / key).st_mode) == 0o444
    assert store.read(PREFIX + "index.json") == b"{}"
    assert store.size(PREFIX + "image") == 8192
    assert not [name for name in os.listdir(store.root / PREFIX / "chunk") if name.startswith(".tmp-")]


def test_an_unknown_write_mode_is_refused(tmp_path):
    with pytest.raises(StoreError, match="write_mode"):
        LocalWormStore(root=tmp_path / "evidence", write_mode="fast")


def test_a_filesystem_that_refuses_o_direct_gets_the_bytes_through_the_page_cache(store, monkeypatch):
    real_fcntl = fcntl.fcntl

    def refusing_fcntl(descriptor, command, argument=0):
        if command == fcntl.F_SETFL and argument & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fcntl(descriptor, command, argument)

    monkeypatch.setattr(fcntl, "fcntl", refusing_fcntl)
    payload = os.urandom(2 * 1024 * 1024 + 3)
    with store.durable_batch(prefix=PREFIX) as batch:
        store.put(PREFIX + "chunk/00000000", payload)
        batch.sync()
    store.put(PREFIX + "chunk/00000001", payload)
    assert store.read(PREFIX + "chunk/00000000") == payload
    assert store.read(PREFIX + "chunk/00000001") == payload


def test_inside_a_batch_the_flushed_mode_syncs_data_per_object_and_leaves_names_to_the_barrier(
    tmp_path, monkeypatch, fsynced_paths
):
    store = LocalWormStore(root=tmp_path / "evidence", write_mode=WRITE_FLUSHED)
    data_synced: list[int] = []
    real_fdatasync = os.fdatasync
    monkeypatch.setattr(
        os, "fdatasync", lambda descriptor: (data_synced.append(descriptor), real_fdatasync(descriptor))
    )
    with store.durable_batch(prefix=PREFIX + "chunk/") as batch:
        store.put(PREFIX + "chunk/00000000", b"one")
        store.put(PREFIX + "chunk/00000001", b"two")
        assert len(data_synced) == 2 and fsynced_paths == []
        batch.sync()
    assert str(store.root / PREFIX / "chunk") in fsynced_paths
