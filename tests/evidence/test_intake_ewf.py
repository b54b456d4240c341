"""The hashes an E01 stores about itself, and the media decoded by libewf checked against them."""

from __future__ import annotations

import hashlib
import io
import re
import struct
import sys
import zlib

import pytest

from evidence.intake import ewf
from evidence.intake.errors import FormatError, MissingDependency
from evidence.intake.ewf import EwfInfo, read_ewf_info, verify_ewf_media, walk_sections
from evidence.intake.formats import slice_segments
from tests.corpus import require_corpus

needs_pyewf = pytest.mark.skipif(not ewf.pyewf_available(), reason="libewf-python (pyewf) is not installed")


def ewfverify_truth(name: str) -> tuple[str, str]:
    """(stored, calculated) MD5 as ewfverify printed them into the corpus's truth file."""
    text = require_corpus(f"truth/{name}.ewfinfo.txt").read_text()
    stored = re.search(r"MD5 hash stored in file:\s+([0-9a-f]{32})", text).group(1)
    calculated = re.search(r"MD5 hash calculated over data:\s+([0-9a-f]{32})", text).group(1)
    return stored, calculated


# ------------------------------------------------------------------------------------------ corpus


@pytest.mark.corpus
def test_the_stored_md5_of_ext2_e01_is_read_from_its_hash_section():
    stored, _ = ewfverify_truth("ext2.E01")

    info = read_ewf_info(segments=[require_corpus("files/dfvfs/ext2.E01")])

    assert info == EwfInfo(
        stored_md5=stored,
        stored_sha1=None,
        media_size=4194304,
        segment_count=1,
        variant="E01",
        bytes_per_sector=512,
        sector_count=8192,
    )
    assert stored == "196066add11fb71c4c49cf1bb50d6d24"  # GROUND_TRUTH.md


@pytest.mark.corpus
def test_the_split_e01_stores_the_same_md5_in_its_last_segment():
    stored, _ = ewfverify_truth("ext2.split.E01")
    segments = [require_corpus("files/dfvfs/ext2.split.E01"), require_corpus("files/dfvfs/ext2.split.E02")]

    info = read_ewf_info(segments=segments)

    assert (info.stored_md5, info.media_size, info.segment_count) == (stored, 4194304, 2)
    with pytest.raises(FormatError, match="position 1"):
        read_ewf_info(segments=segments[::-1])
    with pytest.raises(FormatError, match="which is missing"):
        read_ewf_info(segments=segments[:1])


@needs_pyewf
@pytest.mark.corpus
@pytest.mark.parametrize(
    ("truth_name", "corpus_paths"),
    [
        ("ext2.E01", ["files/dfvfs/ext2.E01"]),
        ("ext2.split.E01", ["files/dfvfs/ext2.split.E01", "files/dfvfs/ext2.split.E02"]),
        ("test.ntfs.dd.E01", ["files/velociraptor/test.ntfs.dd.E01"]),
    ],
)
def test_the_decoded_media_matches_the_stored_md5(truth_name, corpus_paths):
    stored, calculated = ewfverify_truth(truth_name)
    segments = [require_corpus(path) for path in corpus_paths]

    verification = verify_ewf_media(segments=segments)

    assert verification.matches is True
    assert (verification.stored_md5, verification.computed_md5) == (stored, calculated)


@needs_pyewf
@pytest.mark.corpus
def test_our_parse_agrees_with_libewf_and_file_objects_work_like_paths():
    import pyewf

    paths = [require_corpus("files/dfvfs/ext2.split.E01"), require_corpus("files/dfvfs/ext2.split.E02")]
    handle = pyewf.handle()
    handle.open([str(path) for path in paths])
    libewf_md5, libewf_media_size = handle.get_hash_value("MD5"), handle.get_media_size()
    handle.close()

    from_objects = [io.BytesIO(path.read_bytes()) for path in paths]
    info = read_ewf_info(segments=from_objects)
    verification = verify_ewf_media(segments=from_objects)

    assert (info.stored_md5, info.media_size) == (libewf_md5, libewf_media_size)
    assert verification.matches is True


@needs_pyewf
@pytest.mark.corpus
def test_a_flipped_byte_in_the_media_data_fails_verification():
    image = bytearray(require_corpus("files/dfvfs/ext2.E01").read_bytes())
    sections = walk_sections(stream=io.BytesIO(bytes(image)), label="ext2.E01")
    sectors = next(section for section in sections if section.type == "sectors")
    image[sectors.offset + 76 + 500] ^= 0xFF

    verification = verify_ewf_media(segments=[io.BytesIO(bytes(image))])

    assert verification.matches is False
    assert verification.computed_md5 != verification.stored_md5


@pytest.mark.corpus
def test_a_tampered_stored_hash_or_section_chain_is_refused():
    original = require_corpus("files/dfvfs/ext2.E01").read_bytes()
    sections = walk_sections(stream=io.BytesIO(original), label="ext2.E01")
    hash_section = next(section for section in sections if section.type == "hash")

    stored_hash_changed = bytearray(original)
    stored_hash_changed[hash_section.offset + 76] ^= 0x01
    descriptor_changed = bytearray(original)
    descriptor_changed[hash_section.offset + 20] ^= 0x01

    with pytest.raises(FormatError, match="hash section fails its checksum"):
        read_ewf_info(segments=[io.BytesIO(bytes(stored_hash_changed))])
    with pytest.raises(FormatError, match="descriptor at offset 11934 fails its checksum"):
        read_ewf_info(segments=[io.BytesIO(bytes(descriptor_changed))])
    with pytest.raises(FormatError, match="truncated"):
        read_ewf_info(segments=[io.BytesIO(original[: hash_section.offset + 40])])


# ------------------------------------------------------------------------------ synthetic segments


def section(section_type: str, *, offset: int, data: bytes, last: bool = False) -> bytes:
    size = 0 if last else 76 + len(data)
    next_offset = offset if last else offset + size
    descriptor = section_type.encode().ljust(16, b"\0") + struct.pack("<QQ", next_offset, size) + bytes(40)
    return descriptor + struct.pack("<I", zlib.adler32(descriptor)) + data


def synthetic_segment(*, md5: bytes, sha1: bytes, sector_count: int = 2048, loop: bool = False) -> bytes:
    """A minimal EWF segment: file header, volume, digest, done. Enough for the stored-hash parser."""
    image = b"EVF\x09\x0d\x0a\xff\x00" + b"\x01" + struct.pack("<H", 1) + b"\x00\x00"
    volume = bytearray(1052)
    struct.pack_into("<IIIQ", volume, 4, 32, 64, 512, sector_count)
    volume[1048:1052] = struct.pack("<I", zlib.adler32(bytes(volume[:1048])))
    image += section("volume", offset=len(image), data=bytes(volume))
    digest = md5 + sha1 + bytes(40)
    digest += struct.pack("<I", zlib.adler32(digest))
    if loop:
        # A descriptor pointing back at the volume section: a loop a naive walker would follow forever.
        descriptor = b"digest".ljust(16, b"\0") + struct.pack("<QQ", 13, 76 + len(digest)) + bytes(40)
        return image + descriptor + struct.pack("<I", zlib.adler32(descriptor)) + digest
    image += section("digest", offset=len(image), data=digest)
    return image + section("done", offset=len(image), data=b"", last=True)


def test_a_digest_section_gives_md5_and_sha1():
    md5, sha1 = hashlib.md5(b"media").digest(), hashlib.sha1(b"media").digest()  # noqa: S324 (evidence ids)

    info = read_ewf_info(segments=[io.BytesIO(synthetic_segment(md5=md5, sha1=sha1))])

    assert (info.stored_md5, info.stored_sha1) == (md5.hex(), sha1.hex())
    assert (info.media_size, info.sector_count, info.segment_count) == (2048 * 512, 2048, 1)


def test_a_zeroed_stored_hash_is_no_hash_at_all():
    info = read_ewf_info(segments=[io.BytesIO(synthetic_segment(md5=bytes(16), sha1=bytes(20)))])

    assert (info.stored_md5, info.stored_sha1) == (None, None)


def test_a_looping_section_chain_is_refused():
    looping = synthetic_segment(md5=bytes(range(16)), sha1=bytes(20), loop=True)

    with pytest.raises(FormatError, match="points back"):
        read_ewf_info(segments=[io.BytesIO(looping)])


def test_not_an_ewf_segment_is_refused():
    with pytest.raises(FormatError, match="does not start with an EWF signature"):
        read_ewf_info(segments=[io.BytesIO(b"PK\x03\x04" + bytes(100))])
    with pytest.raises(FormatError, match="EWF version 2"):
        read_ewf_info(segments=[io.BytesIO(b"EVF2\x0d\x0a\x81\x00" + bytes(100))])
    with pytest.raises(FormatError, match="at least one segment"):
        read_ewf_info(segments=[])


def test_without_pyewf_media_verification_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyewf", None)  # makes "import pyewf" fail

    assert not ewf.pyewf_available()
    with pytest.raises(MissingDependency, match="pip install libewf-python"):
        verify_ewf_media(segments=[io.BytesIO(synthetic_segment(md5=bytes(16), sha1=bytes(20)))])


@needs_pyewf
@pytest.mark.corpus
def test_a_split_e01_sealed_as_one_stream_is_verified_through_slices(tmp_path):
    # How a sealed split E01 is checked later: one stream of concatenated files, cut by the segment sizes.
    paths = [require_corpus("files/dfvfs/ext2.split.E01"), require_corpus("files/dfvfs/ext2.split.E02")]
    sealed = io.BytesIO(b"".join(path.read_bytes() for path in paths))

    segments = slice_segments(stream=sealed, sizes=[path.stat().st_size for path in paths], names=["E01", "E02"])

    assert read_ewf_info(segments=segments).segment_count == 2
    assert verify_ewf_media(segments=segments).matches is True
