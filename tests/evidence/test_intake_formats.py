"""Format detection, split-image grouping and the segmented reader: on the corpus and on images built here."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import random
import shutil
import struct
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from evidence.intake.errors import FormatError
from evidence.intake.ewf import ewf_segment_suffix, parse_ewf_suffix
from evidence.intake.formats import (
    HEAD_SIZE,
    TAIL_SIZE,
    DetectedFormat,
    ImageFormat,
    SegmentedReader,
    SegmentScheme,
    detect_file_format,
    detect_format,
    group_segments,
    order_parent_chain,
    parent_reference,
    slice_segments,
)
from tests.corpus import require_corpus, testdata_dir

QEMU_IMG = shutil.which("qemu-img")
needs_qemu_img = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img is not installed (Debian: qemu-utils)")


def detect_bytes(data: bytes, *, name: str, with_tail: bool = True) -> DetectedFormat:
    return detect_format(head=data[:HEAD_SIZE], tail=data[-TAIL_SIZE:] if with_tail else None, name=name)


# ------------------------------------------------------------------------------------------- corpus


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("corpus_path", "expected_format", "expected_details"),
    [
        ("files/dfvfs/ext2.E01", ImageFormat.EWF, {"variant": "E01", "segment_number": 1}),
        ("files/dfvfs/ext2.split.E01", ImageFormat.EWF, {"variant": "E01", "segment_number": 1}),
        ("files/dfvfs/ext2.split.E02", ImageFormat.EWF, {"variant": "E01", "segment_number": 2}),
        # vhdiinfo: Dynamic, media 4212736 B, identifier b61f53ca-… (truth/ext2.vhd.vhdiinfo.txt)
        (
            "files/dfvfs/ext2.vhd",
            ImageFormat.VHD,
            {"disk_type": "dynamic", "virtual_size": 4212736, "unique_id": "b61f53ca-a786-4528-90e2-55ba791a1c4c"},
        ),
        (
            "files/dfvfs/ext2.vmdk",
            ImageFormat.VMDK,
            {"variant": "sparse", "create_type": "monolithicSparse", "virtual_size": 4194304},
        ),
        ("files/dfvfs/ext2.qcow2", ImageFormat.QCOW2, {"version": 3, "virtual_size": 4194304, "encrypted": False}),
        ("files/pytsk/tsk_volume_system.raw", ImageFormat.RAW, {"layout": "mbr"}),
        ("files/velociraptor/test.vhdx.zip", ImageFormat.ARCHIVE, {"archive_type": "zip"}),
        ("files/dfvfs/iso9660.raw", ImageFormat.RAW, {"layout": "iso9660"}),
        ("files/dfvfs/syslog.bz2", ImageFormat.ARCHIVE, {"archive_type": "bzip2"}),
        ("files/dfvfs/syslog.xz", ImageFormat.ARCHIVE, {"archive_type": "xz"}),
        ("files/dfvfs/with_directory.tar", ImageFormat.ARCHIVE, {"archive_type": "tar"}),
    ],
)
def test_corpus_files_are_recognised(corpus_path, expected_format, expected_details):
    detected = detect_file_format(path=require_corpus(corpus_path))

    assert detected.format is expected_format
    assert detected.details | expected_details == detected.details


@pytest.mark.corpus
def test_the_vhdx_inside_the_velociraptor_zip_is_recognised():
    archive = require_corpus("files/velociraptor/test.vhdx.zip")
    with zipfile.ZipFile(archive) as opened, opened.open("test.vhdx") as member:
        head = member.read(HEAD_SIZE)
        member.seek(-TAIL_SIZE, io.SEEK_END)
        tail = member.read()

    detected = detect_format(head=head, tail=tail, name="test.vhdx")

    assert detected.format is ImageFormat.VHDX
    assert detected.is_disk_image


@pytest.mark.corpus
def test_split_e01_segments_are_grouped_in_order_whatever_order_they_come_in():
    first = require_corpus("files/dfvfs/ext2.split.E01")
    second = require_corpus("files/dfvfs/ext2.split.E02")
    single = require_corpus("files/dfvfs/ext2.E01")

    images = group_segments([second, single, first])

    assert [(image.scheme, image.paths) for image in images] == [
        (SegmentScheme.EWF, (single,)),
        (SegmentScheme.EWF, (first, second)),
    ]
    assert [image.is_split for image in images] == [False, True]


@pytest.mark.corpus
def test_a_split_e01_without_its_last_segment_is_refused_by_content(tmp_path):
    # Names alone cannot show that x.E02 is missing when only x.E01 is given; the section chain can.
    copied = tmp_path / "ext2.split.E01"
    shutil.copyfile(require_corpus("files/dfvfs/ext2.split.E01"), copied)

    with pytest.raises(FormatError, match=r"continues in segment 2 \(ext2\.split\.E02\), which is missing"):
        group_segments([copied])


@pytest.mark.corpus
def test_segmented_reader_over_the_split_e01_gives_the_concatenated_files():
    paths = [require_corpus("files/dfvfs/ext2.split.E01"), require_corpus("files/dfvfs/ext2.split.E02")]
    concatenated = b"".join(path.read_bytes() for path in paths)

    with SegmentedReader(paths) as reader:
        assert reader.size == len(concatenated)
        assert hashlib.sha256(reader.read()).hexdigest() == hashlib.sha256(concatenated).hexdigest()
        generator = random.Random(3)
        for _ in range(200):
            offset = generator.randrange(len(concatenated))
            length = generator.randrange(1, 200_000)
            reader.seek(offset)
            assert reader.read(length) == concatenated[offset : offset + length]


def test_corpus_tests_skip_with_a_reason_when_the_corpus_is_absent(monkeypatch, tmp_path):
    monkeypatch.setenv("CUSTODIA_TESTDATA", str(tmp_path / "nowhere"))
    assert testdata_dir() == tmp_path / "nowhere"
    with pytest.raises(pytest.skip.Exception, match="set CUSTODIA_TESTDATA"):
        require_corpus("files/dfvfs/ext2.E01")


# ---------------------------------------------------------------------------- images built with qemu-img


def qemu_img(*arguments: str | Path) -> None:
    subprocess.run([QEMU_IMG, *map(str, arguments)], check=True, capture_output=True)


def small_raw_disk(path: Path) -> Path:
    """A 4 MiB disk with an MBR and one Linux partition, so that raw detection has something to see."""
    disk = bytearray(4 * 1024 * 1024)
    disk[446 : 446 + 16] = bytes([0x00, 0, 0, 0, 0x83, 0, 0, 0]) + struct.pack("<II", 2048, 6144)
    disk[510:512] = b"\x55\xaa"
    path.write_bytes(disk)
    return path


@needs_qemu_img
def test_fixed_vhd_needs_its_tail_and_is_told_from_dynamic(tmp_path):
    raw = small_raw_disk(tmp_path / "disk.raw")
    fixed, dynamic = tmp_path / "fixed.vhd", tmp_path / "dynamic.vhd"
    qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed", raw, fixed)
    qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", raw, dynamic)

    fixed_format = detect_file_format(path=fixed)
    dynamic_format = detect_file_format(path=dynamic)

    assert (fixed_format.format, fixed_format.details["disk_type"]) == (ImageFormat.VHD, "fixed")
    assert (dynamic_format.format, dynamic_format.details["disk_type"]) == (ImageFormat.VHD, "dynamic")
    assert fixed_format.details["virtual_size"] >= 4 * 1024 * 1024
    # A fixed VHD starts like the raw disk it wraps: without the footer it cannot be told apart.
    with pytest.raises(FormatError, match="last 512 bytes"):
        detect_bytes(fixed.read_bytes(), name="fixed.vhd", with_tail=False)
    assert detect_bytes(fixed.read_bytes(), name="upload.bin", with_tail=False).details == {"layout": "mbr"}
    # The dynamic disk's closing footer is checked when the tail is known: a cut-off copy is refused.
    with pytest.raises(FormatError, match="truncated"):
        detect_bytes(dynamic.read_bytes()[:-1024], name="dynamic.vhd")


@needs_qemu_img
def test_a_differencing_vhd_names_its_parent(tmp_path):
    # qemu-img cannot create differencing VHDs, so turn a dynamic one into one as Hyper-V would write it.
    qemu_img("create", "-f", "vpc", tmp_path / "child.vhd", "4M")
    image = bytearray((tmp_path / "child.vhd").read_bytes())
    parent_id = bytes.fromhex("0123456789abcdef0123456789abcdef")
    (header_offset,) = struct.unpack_from(">Q", image, 16)
    image[header_offset + 40 : header_offset + 56] = parent_id
    image[header_offset + 64 : header_offset + 64 + 24] = "parent.vhd".encode("utf-16-be").ljust(24, b"\0")
    set_vhd_disk_type(image, offset=0, disk_type=4)
    set_vhd_disk_type(image, offset=len(image) - 512, disk_type=4)

    detected = detect_bytes(bytes(image), name="child.vhd")

    assert detected.details["disk_type"] == "differencing"
    assert detected.details["parent_unique_id"] == "01234567-89ab-cdef-0123-456789abcdef"
    assert detected.details["parent_name"] == "parent.vhd"


def set_vhd_disk_type(image: bytearray, *, offset: int, disk_type: int) -> None:
    struct.pack_into(">I", image, offset + 60, disk_type)
    struct.pack_into(">I", image, offset + 64, 0)
    checksum = ~sum(image[offset : offset + 512]) & 0xFFFFFFFF
    struct.pack_into(">I", image, offset + 64, checksum)


@needs_qemu_img
def test_a_vhd_footer_failing_its_checksum_is_accepted_with_a_warning(tmp_path):
    # Issue #18 item 5 changed this on purpose (it was refused): libvhdi reads such a disk by its
    # structure, so intake accepts it and says what is wrong.
    qemu_img("create", "-f", "vpc", tmp_path / "disk.vhd", "4M")
    image = bytearray((tmp_path / "disk.vhd").read_bytes())
    image[50] ^= 0x01  # inside the size field of the footer copy, so its checksum no longer holds

    detected = detect_bytes(bytes(image), name="disk.vhd")
    assert detected.format is ImageFormat.VHD
    assert len(detected.warnings) == 1 and "footer copy at the start fails its checksum" in detected.warnings[0]


def test_a_vhd_footer_of_unknown_disk_type_is_still_refused():
    footer = bytearray(512)
    footer[0:8] = b"conectix"
    struct.pack_into(">I", footer, 60, 9)
    with pytest.raises(FormatError, match="unknown disk type"):
        detect_bytes(bytes(1024 * 1024) + bytes(footer), name="disk.vhd")


def test_parent_chains_are_ordered_child_first_by_the_names_children_give():
    def qcow(backing: str | None) -> DetectedFormat:
        details = {"version": 3} if backing is None else {"version": 3, "backing_file": backing}
        return DetectedFormat(ImageFormat.QCOW2, details)

    files = [
        (Path("base.qcow2"), qcow(None)),
        (Path("top.qcow2"), qcow("/vms/mid.qcow2")),  # a path where it was made: looked up by base name
        (Path("mid.qcow2"), qcow("base.qcow2")),
    ]
    assert [path.name for path in order_parent_chain(files)] == ["top.qcow2", "mid.qcow2", "base.qcow2"]
    assert (
        parent_reference(DetectedFormat(ImageFormat.VHD, {"disk_type": "differencing", "parent_name": "C:\\v\\b.vhd"}))
        == "b.vhd"
    )
    assert order_parent_chain([(Path("a.qcow2"), qcow(None)), (Path("b.qcow2"), qcow(None))]) is None
    with pytest.raises(FormatError, match=r"needs its parent mid\.qcow2"):
        order_parent_chain([files[0], files[1]])
    with pytest.raises(FormatError, match="2 chains"):
        order_parent_chain([*files, (Path("other.qcow2"), qcow("base.qcow2"))])
    with pytest.raises(FormatError, match="not one"):
        order_parent_chain([files[2], (Path("base.qcow2"), DetectedFormat(ImageFormat.FILE, {}))])


@needs_qemu_img
def test_vhdx_vmdk_and_qcow2_made_by_qemu_img(tmp_path):
    raw = small_raw_disk(tmp_path / "disk.raw")
    for output_format in ("vhdx", "vmdk", "qcow2"):
        qemu_img("convert", "-f", "raw", "-O", output_format, raw, tmp_path / f"disk.{output_format}")
    qemu_img("create", "-f", "vmdk", "-b", tmp_path / "disk.vmdk", "-F", "vmdk", tmp_path / "child.vmdk")
    qemu_img("create", "-f", "qcow2", "-b", "disk.qcow2", "-F", "qcow2", tmp_path / "child.qcow2")

    vhdx = detect_file_format(path=tmp_path / "disk.vhdx")
    assert (vhdx.format, "qemu" in vhdx.details["creator"].lower()) == (ImageFormat.VHDX, True)
    vmdk = detect_file_format(path=tmp_path / "disk.vmdk")
    child_vmdk = detect_file_format(path=tmp_path / "child.vmdk")
    qcow2 = detect_file_format(path=tmp_path / "disk.qcow2")
    child_qcow2 = detect_file_format(path=tmp_path / "child.qcow2")

    assert (vmdk.format, vmdk.details["create_type"], vmdk.details["virtual_size"]) == (
        ImageFormat.VMDK,
        "monolithicSparse",
        4 * 1024 * 1024,
    )
    assert "parent_cid" not in vmdk.details
    assert child_vmdk.details["parent_file_name_hint"].endswith("disk.vmdk")
    assert (qcow2.format, qcow2.details["version"], "backing_file" in qcow2.details) == (ImageFormat.QCOW2, 3, False)
    assert child_qcow2.details["backing_file"] == "disk.qcow2"


@needs_qemu_img
def test_a_vmdk_descriptor_names_its_extents_and_the_flat_extent_is_raw(tmp_path):
    qemu_img("create", "-f", "vmdk", "-o", "subformat=monolithicFlat", tmp_path / "flat.vmdk", "4M")

    descriptor = detect_file_format(path=tmp_path / "flat.vmdk")
    extent = detect_file_format(path=tmp_path / "flat-flat.vmdk")

    assert descriptor.format is ImageFormat.VMDK
    assert descriptor.details["variant"] == "descriptor"
    assert descriptor.details["create_type"] == "monolithicFlat"
    assert [entry["file"] for entry in descriptor.details["extents"]] == ["flat-flat.vmdk"]
    # An all-zero flat extent has no signature, but its name says what it is, and it is not refused.
    assert (extent.format, extent.details.get("vmdk_flat_extent")) == (ImageFormat.RAW, True)


# ------------------------------------------------------------------------------- synthetic signatures


def test_a_name_claiming_a_disk_image_without_its_signature_is_refused():
    not_an_image = b"just some text\n" * 100
    for name in ("seized.E01", "seized.e02", "seized.vhdx", "seized.vmdk", "seized.qcow2", "seized.s01"):
        with pytest.raises(FormatError, match="corrupt, truncated or misnamed"):
            detect_bytes(not_an_image, name=name)


def test_content_wins_over_a_misleading_name_and_the_name_is_recorded():
    qcow_header = b"QFI\xfb" + struct.pack(">IQIIQ", 3, 0, 0, 16, 1 << 20) + bytes(64)

    detected = detect_bytes(qcow_header, name="image.vmdk")

    assert detected.format is ImageFormat.QCOW2
    assert detected.details["name_suggests"] == "vmdk"


def test_ordinary_extensions_are_not_mistaken_for_ewf_segments():
    text = b"From: someone\nTo: someone else\n\nhello\n"
    assert detect_bytes(text, name="message.eml").format is ImageFormat.FILE
    assert detect_bytes(text, name="notes.txt").format is ImageFormat.FILE


def test_a_truncated_ewf_header_is_refused():
    with pytest.raises(FormatError, match="truncated"):
        detect_bytes(b"EVF\x09\x0d\x0a\xff\x00\x01", name="x.E01")


def test_archives_are_recognised():
    payload = b"syslog line\n" * 50
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        member = tarfile.TarInfo("syslog")
        member.size = len(payload)
        archive.addfile(member, io.BytesIO(payload))
    zip_buffer = io.BytesIO()
    with zipfile.ZipFile(zip_buffer, "w") as archive:
        archive.writestr("syslog", payload)
    samples = {
        "zip": zip_buffer.getvalue(),
        "gzip": gzip.compress(payload),
        "bzip2": bz2.compress(payload),
        "xz": lzma.compress(payload),
        "tar": tar_buffer.getvalue(),
        "7z": b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(32),
        "zstd": b"\x28\xb5\x2f\xfd" + bytes(32),
    }
    for archive_type, data in samples.items():
        detected = detect_bytes(data, name="evidence.bin")
        assert (detected.format, detected.details["archive_type"]) == (ImageFormat.ARCHIVE, archive_type)


def test_plain_files_get_a_mime_type():
    pytest.importorskip("magic", reason="python-magic is not installed")
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"

    detected = detect_bytes(pdf, name="statement.pdf")

    assert detected == DetectedFormat(ImageFormat.FILE, {"mime": "application/pdf"})
    assert not detected.is_disk_image


def test_file_systems_without_a_partition_table_are_raw():
    ext = bytearray(4096)
    ext[1080:1082] = b"\x53\xef"
    ntfs = bytearray(4096)
    ntfs[3:11] = b"NTFS    "
    ntfs[510:512] = b"\x55\xaa"
    gpt = bytearray(4096)
    gpt[512:520] = b"EFI PART"

    assert detect_bytes(bytes(ext), name="a").details == {"layout": "ext"}
    assert detect_bytes(bytes(ntfs), name="b").details == {"layout": "ntfs"}
    assert detect_bytes(bytes(gpt), name="c").details == {"layout": "gpt"}
    assert detect_bytes(bytes(4096), name="sdb.dd").details == {"layout": "unknown"}


# -------------------------------------------------------------------------------------- segments


def make_files(folder: Path, names: list[str]) -> list[Path]:
    paths = []
    for name in names:
        path = folder / name
        path.write_bytes(name.encode())
        paths.append(path)
    return paths


def test_split_raw_is_grouped_in_order(tmp_path):
    numeric = make_files(tmp_path, ["disk.003", "disk.001", "disk.002"])
    alphabetic = make_files(tmp_path, ["usb.ab", "usb.aa", "usb.ac"])
    lone = make_files(tmp_path, ["notes.txt"])

    images = group_segments(numeric + alphabetic + lone)

    assert [(image.scheme, [path.name for path in image.paths]) for image in images] == [
        (SegmentScheme.RAW_NUMERIC, ["disk.001", "disk.002", "disk.003"]),
        (SegmentScheme.SINGLE, ["notes.txt"]),
        (SegmentScheme.RAW_ALPHABETIC, ["usb.aa", "usb.ab", "usb.ac"]),
    ]


def test_a_gap_in_a_split_image_names_the_missing_segment(tmp_path):
    with pytest.raises(FormatError, match=r"missing segment disk\.002"):
        group_segments(make_files(tmp_path, ["disk.001", "disk.003"]))
    with pytest.raises(FormatError, match=r"missing segment usb\.aa"):
        group_segments(make_files(tmp_path, ["usb.ab", "usb.ac"]))
    with pytest.raises(FormatError, match=r"missing segment case\.E01"):
        group_segments(make_files(tmp_path, ["case.E02"]), check_contents=False)


def test_ordinary_extensions_are_not_grouped_as_segments(tmp_path):
    paths = make_files(tmp_path, ["syslog.gz", "syslog.xz", "syslog.tgz", "syslog.bz2", "mail.eml"])

    images = group_segments(paths)

    assert {image.scheme for image in images} == {SegmentScheme.SINGLE}
    assert len(images) == 5


def test_ewf_names_go_past_e99_as_libewf_names_them(tmp_path):
    assert [parse_ewf_suffix(suffix) for suffix in (".E01", ".E99", ".EAA", ".EAZ", ".EBA", ".EZZ", ".FAA")] == [
        ("E", 1),
        ("E", 99),
        ("E", 100),
        ("E", 125),
        ("E", 126),
        ("E", 775),
        ("E", 776),
    ]
    for number in range(1, 3000):
        assert parse_ewf_suffix("." + ewf_segment_suffix(number=number, family="E")) == ("E", number)
    assert parse_ewf_suffix(".e01") == ("e", 1)
    assert parse_ewf_suffix(".E00") is None

    names = [f"big.{ewf_segment_suffix(number=number, family='E')}" for number in range(1, 103)]
    shuffled = names[:]
    random.Random(5).shuffle(shuffled)
    images = group_segments(make_files(tmp_path, shuffled), check_contents=False)

    assert [path.name for path in images[0].paths] == names
    assert names[98:] == ["big.E99", "big.EAA", "big.EAB", "big.EAC"]


def test_a_segment_given_twice_is_refused(tmp_path):
    first = make_files(tmp_path, ["disk.001"])
    (tmp_path / "copy").mkdir()
    again = make_files(tmp_path / "copy", ["disk.001"])

    assert len(group_segments(first + again)) == 2  # different folders: different images
    with pytest.raises(FormatError, match="given twice"):
        group_segments(first + first)


# ------------------------------------------------------------------------------------------ reader


def test_segmented_reader_reads_across_boundaries_and_seeks(tmp_path):
    generator = random.Random(7)
    contents = [generator.randbytes(size) for size in (1000, 0, 1, 4096, 333)]
    paths = []
    for index, content in enumerate(contents, start=1):
        path = tmp_path / f"x.{index:03d}"
        path.write_bytes(content)
        paths.append(path)
    whole = b"".join(contents)

    reader = SegmentedReader(paths)

    assert (reader.size, reader.readable(), reader.seekable()) == (len(whole), True, True)
    assert [(start, end) for _, start, end in reader.segments] == [
        (0, 1000),
        (1000, 1000),
        (1000, 1001),
        (1001, 5097),
        (5097, 5430),
    ]
    assert reader.read() == whole
    assert reader.read(10) == b""
    for _ in range(500):
        offset = generator.randrange(len(whole) + 10)
        length = generator.randrange(0, 3000)
        assert reader.seek(offset) == offset
        assert reader.read(length) == whole[offset : offset + length]
        assert reader.tell() == max(offset, min(offset + length, len(whole)))
    reader.seek(-10, io.SEEK_END)
    assert reader.read() == whole[-10:]
    reader.seek(5)
    reader.seek(5, io.SEEK_CUR)
    assert reader.tell() == 10
    with pytest.raises(ValueError, match="negative"):
        reader.seek(-1)
    # Buffered on top, as the sealer and dfVFS use it.
    buffered = io.BufferedReader(reader, buffer_size=64)
    buffered.seek(995)
    assert buffered.read(10) == whole[995:1005]
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read(1)


def test_segmented_reader_notices_a_segment_that_shrank(tmp_path):
    first, second = make_files(tmp_path, ["y.001", "y.002"])
    first.write_bytes(b"a" * 100)
    reader = SegmentedReader([first, second])
    first.write_bytes(b"a" * 50)

    reader.seek(40)
    with pytest.raises(OSError, match="shorter"):
        reader.read(100)


def test_slices_cut_a_concatenation_back_into_segments():
    generator = random.Random(11)
    parts = [generator.randbytes(size) for size in (700, 0, 1300)]
    stream = io.BytesIO(b"".join(parts))

    slices = slice_segments(stream=stream, sizes=[len(part) for part in parts])

    assert [piece.read() for piece in slices] == parts
    for _ in range(200):
        index = generator.randrange(len(parts))
        offset, length = generator.randrange(len(parts[index]) + 5), generator.randrange(400)
        slices[index].seek(offset)
        assert slices[index].read(length) == parts[index][offset : offset + length]
    slices[2].seek(-3, io.SEEK_END)
    assert (slices[2].read(), slices[2].get_size()) == (parts[2][-3:], 1300)
