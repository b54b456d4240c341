"""One-pass hashing, and hashing resumed across processes as a resumable upload does it."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from evidence.intake import hashing
from evidence.intake.errors import HashStateError, MissingDependency
from evidence.intake.formats import SegmentedReader
from evidence.intake.hashing import MultiHasher, ResumableHasher, hash_segments, hash_stream
from tests.corpus import manifest, require_corpus

REPO_ROOT = Path(__file__).resolve().parents[2]
IMPORTED_IMAGES = [
    "files/dfvfs/ext2.E01",
    "files/dfvfs/ext2.split.E01",
    "files/dfvfs/ext2.split.E02",
    "files/dfvfs/ext2.vhd",
    "files/dfvfs/ext2.vmdk",
    "files/dfvfs/ext2.qcow2",
    "files/pytsk/tsk_volume_system.raw",
    "files/velociraptor/test.vhdx.zip",
]

needs_rehashes = pytest.mark.skipif(
    not hashing.resumable_hashing_available(), reason="rehashes is not installed (pip install rehashes)"
)


def expected_digests(data: bytes) -> dict[str, str]:
    return {name: hashlib.new(name, data).hexdigest() for name in ("md5", "sha1", "sha256")}


def test_multihasher_equals_hashlib_over_uneven_chunks():
    data = random.Random(1).randbytes(3_000_001)
    hasher = MultiHasher()
    position = 0
    for size in (0, 1, 63, 64, 65, 1_000_000, 2_000_000):
        hasher.update(memoryview(data)[position : position + size])
        position += size
    hasher.update(data[position:])

    assert hasher.hexdigests() == expected_digests(data)
    assert hasher.bytes_hashed == len(data)


@pytest.mark.corpus
@pytest.mark.parametrize("corpus_path", IMPORTED_IMAGES)
def test_corpus_images_hash_to_their_manifest_sha256(corpus_path):
    path = require_corpus(corpus_path)

    with path.open("rb") as stream:
        digests = hash_stream(stream=stream, read_size=65536)

    assert digests["sha256"] == manifest()[corpus_path]["sha256"]
    assert digests == expected_digests(path.read_bytes())


@pytest.mark.corpus
def test_split_e01_hashes_each_segment_and_the_whole_in_one_pass():
    # The evidence bytes of a split image are its segment files concatenated; MANIFEST.tsv lists each
    # segment with its own sha256, so both are kept.
    names = ["files/dfvfs/ext2.split.E01", "files/dfvfs/ext2.split.E02"]
    paths = [require_corpus(name) for name in names]

    digests = hash_segments(paths=paths, read_size=100_000)

    assert list(digests.segment_sha256) == [manifest()[name]["sha256"] for name in names]
    concatenated = b"".join(path.read_bytes() for path in paths)
    assert digests.whole == expected_digests(concatenated)
    assert digests.size == len(concatenated) == 3116330 + 1083353
    with SegmentedReader(paths) as reader:
        assert hash_stream(stream=reader) == digests.whole


@pytest.mark.corpus
def test_a_stream_that_cannot_seek_hashes_too():
    # A zip member decompresses as it is read: the same one pass as an upload.
    archive = require_corpus("files/velociraptor/test.vhdx.zip")
    with zipfile.ZipFile(archive) as opened:
        inner = opened.read("test.vhdx")
        with opened.open("test.vhdx") as member:
            digests = hash_stream(stream=member, read_size=1_000_003)

    assert len(inner) == 37748736  # as listed in truth/test.vhdx.zip.listing.txt
    assert digests == expected_digests(inner)


# ------------------------------------------------------------------------------------------- resumable


@needs_rehashes
def test_resumable_hasher_equals_hashlib_and_survives_a_round_trip_through_bytes():
    data = random.Random(2).randbytes(5_000_000)
    hasher = ResumableHasher()
    for start in range(0, len(data), 777_777):
        hasher = ResumableHasher.from_state(hasher.to_state())
        hasher.update(data[start : start + 777_777])

    assert hasher.bytes_hashed == len(data)
    assert hasher.hexdigests() == expected_digests(data)
    # Reading the digests does not end hashing.
    hasher.update(b"more")
    assert hasher.hexdigests() == expected_digests(data + b"more")


RESUME_IN_CHILD = """
import sys
from pathlib import Path
from evidence.intake.hashing import ResumableHasher
state_file, data_file, start, end = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
hasher = ResumableHasher.from_state(state_file.read_bytes()) if state_file.exists() else ResumableHasher()
with data_file.open("rb") as stream:
    stream.seek(start)
    hasher.update_at(offset=start, data=stream.read(end - start))
state_file.write_bytes(hasher.to_state())
"""


@needs_rehashes
def test_an_upload_cut_after_40_percent_resumes_in_other_processes_with_the_same_hashes(tmp_path):
    data = random.Random(4).randbytes(3 * 1024 * 1024 + 17)
    data_file, state_file = tmp_path / "upload.bin", tmp_path / "hash.state"
    data_file.write_bytes(data)
    cut = int(len(data) * 0.4)
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    # Each request is a fresh interpreter: nothing survives but the saved state. The resumed request
    # repeats some bytes before the cut (an overlapping retry); they must not be hashed twice.
    for start, end in ((0, 1_000_000), (1_000_000, cut), (cut - 4096, 2_500_000), (2_500_000, len(data))):
        subprocess.run(
            [sys.executable, "-c", RESUME_IN_CHILD, state_file, data_file, str(start), str(end)],
            check=True,
            env=environment,
            cwd=REPO_ROOT,
        )

    final = ResumableHasher.from_state(state_file.read_bytes())
    assert final.bytes_hashed == len(data)
    assert final.hexdigests() == expected_digests(data)


@needs_rehashes
def test_update_at_skips_what_was_hashed_and_refuses_gaps():
    hasher = ResumableHasher()
    assert hasher.update_at(offset=0, data=b"abcdef") == 6
    assert hasher.update_at(offset=2, data=b"cdefgh") == 2
    assert hasher.update_at(offset=0, data=b"abc") == 0
    with pytest.raises(ValueError, match="in order"):
        hasher.update_at(offset=10, data=b"k")

    assert hasher.hexdigests() == expected_digests(b"abcdefgh")


@needs_rehashes
def test_a_corrupt_or_foreign_state_is_refused(monkeypatch):
    hasher = ResumableHasher()
    hasher.update(b"evidence")
    state = bytearray(hasher.to_state())

    with pytest.raises(HashStateError, match="not one of ours"):
        ResumableHasher.from_state(b"pickle me")
    state[40] ^= 0xFF
    with pytest.raises(HashStateError, match="corrupt"):
        ResumableHasher.from_state(bytes(state))
    monkeypatch.setattr(hashing, "_rehashes_version", lambda: "0.0.1")
    foreign = hasher.to_state()
    monkeypatch.undo()
    with pytest.raises(HashStateError, match=r"rehashes 0\.0\.1 .* restart the upload"):
        ResumableHasher.from_state(foreign)


def test_without_rehashes_resumable_hashing_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rehashes", None)  # makes "import rehashes" fail

    assert not hashing.resumable_hashing_available()
    with pytest.raises(MissingDependency, match="pip install rehashes"):
        ResumableHasher()
