"""What an evidence file is, from its first and last bytes; and split images put back together.

Detection looks at signatures only (never at the whole file), so it works on the first chunk of an upload
and again at sealing time when the last bytes are known. The content decides the format; the file name
only matters when it *claims* a disk-image format whose signature is missing, which means a corrupt,
truncated or misnamed file and is refused with ``FormatError`` rather than silently stored as "raw".

Split images: for both split raw and split EWF, the evidence bytes are the *segment files concatenated in
order*, exactly as received. We seal files, not an interpretation of them: a split E01 stays an E01 (its
media is decoded later, through libewf, from the sealed bytes), and the whole-evidence hashes are of the
concatenated files. Per-segment hashes are kept too (``hashing.hash_segments``) so each segment can be
compared with a source listing such as the test corpus's MANIFEST.tsv, which lists ``ext2.split.E01`` and
``ext2.split.E02`` separately. See ``docs/intake.md``.
"""

from __future__ import annotations

import bisect
import io
import itertools
import re
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from evidence.intake import ewf
from evidence.intake.errors import FormatError

# Every signature below lies in the first 64 KiB: ISO 9660's at 32769, an embedded VMDK descriptor at
# sector 1, the VHD dynamic header after the footer copy. Callers pass at least this much as ``head``.
HEAD_SIZE = 64 * 1024
# A fixed VHD has nothing at the start; its only footer is the last 512 bytes (511 in very old images).
TAIL_SIZE = 512


class ImageFormat(StrEnum):
    RAW = "raw"
    EWF = "ewf"
    VHD = "vhd"
    VHDX = "vhdx"
    VMDK = "vmdk"
    QCOW2 = "qcow2"
    ARCHIVE = "archive"
    FILE = "file"


DISK_IMAGE_FORMATS = frozenset(
    {ImageFormat.RAW, ImageFormat.EWF, ImageFormat.VHD, ImageFormat.VHDX, ImageFormat.VMDK, ImageFormat.QCOW2}
)


@dataclass(frozen=True)
class DetectedFormat:
    format: ImageFormat
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_disk_image(self) -> bool:
        return self.format in DISK_IMAGE_FORMATS

    @property
    def warnings(self) -> list[str]:
        """What intake accepted but the custodian should know (a VHD footer failing its checksum)."""
        return list(self.details.get("warnings", []))


def detect_format(*, head: bytes, tail: bytes | None, name: str) -> DetectedFormat:
    """Recognise ``head`` (the first ``HEAD_SIZE`` bytes or all of a smaller file) and ``tail`` (the last
    ``TAIL_SIZE`` bytes, or ``None`` while they are not known yet, e.g. mid-upload).

    Without ``tail`` a fixed VHD cannot be told from a raw disk; a ``.vhd`` name then raises ``FormatError``
    asking for it, and other names come back as raw and should be detected again once the tail is known.
    """
    for detector in (_detect_ewf, _detect_vhd_dynamic, _detect_vhdx, _detect_vmdk, _detect_qcow, _detect_archive):
        found = detector(head=head, tail=tail)
        if found is not None:
            return _with_name_check(found, name=name)
    if tail is not None:
        found = _detect_vhd_fixed(tail=tail)
        if found is not None:
            return _with_name_check(found, name=name)
    claimed = _format_claimed_by_name(name)
    if claimed is ImageFormat.VHD and tail is None:
        raise FormatError(
            f"{name!r} is named like a VHD but has no dynamic-disk header at its start; a fixed VHD keeps its "
            "only footer in its last 512 bytes, which were not given"
        )
    if claimed is not None:
        raise FormatError(
            f"{name!r} is named like a {claimed.value} image but lacks the {claimed.value} signature: "
            "the file is corrupt, truncated or misnamed"
        )
    layout = _raw_layout(head)
    if layout is not None or _is_raw_name(name):
        details: dict[str, Any] = {"layout": layout or "unknown"}
        if _VMDK_FLAT_EXTENT.search(name):
            details["vmdk_flat_extent"] = True
        return DetectedFormat(ImageFormat.RAW, details)
    return DetectedFormat(ImageFormat.FILE, _mime_details(head))


def detect_file_format(*, path: Path) -> DetectedFormat:
    """``detect_format`` for a file on disk (reads only its head and tail)."""
    with path.open("rb") as stream:
        head, tail = read_head_and_tail(stream=stream)
    return detect_format(head=head, tail=tail, name=path.name)


def read_head_and_tail(*, stream: BinaryIO) -> tuple[bytes, bytes]:
    stream.seek(0)
    head = stream.read(HEAD_SIZE)
    size = stream.seek(0, io.SEEK_END)
    stream.seek(max(0, size - TAIL_SIZE))
    tail = stream.read(TAIL_SIZE)
    stream.seek(0)
    return head, tail


# ---------------------------------------------------------------------------------------------- EWF


def _detect_ewf(*, head: bytes, tail: bytes | None) -> DetectedFormat | None:
    signature = head[:8]
    if signature in ewf.EWF1_SIGNATURES:
        if len(head) < ewf.FILE_HEADER_SIZE:
            raise FormatError("EWF segment truncated inside its 13-byte file header")
        (segment_number,) = struct.unpack_from("<H", head, 9)
        return DetectedFormat(
            ImageFormat.EWF, {"variant": ewf.EWF1_SIGNATURES[signature], "segment_number": segment_number}
        )
    if signature in ewf.EWF2_SIGNATURES:
        if len(head) < 16:
            raise FormatError("EWF2 segment truncated inside its file header")
        (segment_number,) = struct.unpack_from("<I", head, 12)
        return DetectedFormat(
            ImageFormat.EWF, {"variant": ewf.EWF2_SIGNATURES[signature], "segment_number": segment_number}
        )
    return None


# ---------------------------------------------------------------------------------------------- VHD

VHD_COOKIE = b"conectix"
VHD_DYNAMIC_COOKIE = b"cxsparse"
VHD_DISK_TYPES = {2: "fixed", 3: "dynamic", 4: "differencing"}
VHD_FOOTER_SIZE = 512
VHD_DYNAMIC_HEADER_SIZE = 1024


def _detect_vhd_dynamic(*, head: bytes, tail: bytes | None) -> DetectedFormat | None:
    # Dynamic and differencing disks start with a copy of the footer; fixed disks do not.
    if not head.startswith(VHD_COOKIE):
        return None
    footer = _parse_vhd_footer(head[:VHD_FOOTER_SIZE], where="footer copy at the start")
    if footer["disk_type"] == "fixed":
        return None
    if tail is not None:
        closing = _find_vhd_footer(tail)
        if closing is None:
            raise FormatError(f"{footer['disk_type']} VHD has no footer in its last 512 bytes: the image is truncated")
        closing_footer = _parse_vhd_footer(closing, where="footer at the end")
        if closing_footer["unique_id"] != footer["unique_id"]:
            raise FormatError("VHD footer at the end belongs to another disk than the copy at the start")
    else:
        closing_footer = {}
    data_offset = footer.pop("data_offset")
    details = dict(footer)
    warnings = [*footer.get("warnings", []), *closing_footer.get("warnings", [])]
    if warnings:
        details["warnings"] = warnings
    details.update(_parse_vhd_dynamic_header(head=head, offset=data_offset, differencing=footer["disk_type"]))
    return DetectedFormat(ImageFormat.VHD, details)


def _detect_vhd_fixed(*, tail: bytes) -> DetectedFormat | None:
    footer_bytes = _find_vhd_footer(tail)
    if footer_bytes is None:
        return None
    footer = _parse_vhd_footer(footer_bytes, where="footer at the end")
    if footer["disk_type"] != "fixed":
        raise FormatError(
            f"VHD footer says {footer['disk_type']} but the copy that such a disk keeps at its start is missing"
        )
    footer.pop("data_offset")
    return DetectedFormat(ImageFormat.VHD, footer)


def _find_vhd_footer(tail: bytes) -> bytes | None:
    for footer_size in (VHD_FOOTER_SIZE, VHD_FOOTER_SIZE - 1):
        candidate = tail[-footer_size:]
        if len(candidate) == footer_size and candidate.startswith(VHD_COOKIE):
            # Pad the old 511-byte footer so that every offset below stays the same.
            return candidate.ljust(VHD_FOOTER_SIZE, b"\0")
    return None


def _parse_vhd_footer(footer: bytes, *, where: str) -> dict[str, Any]:
    if len(footer) < VHD_FOOTER_SIZE:
        raise FormatError(f"VHD {where} is truncated")
    stored_checksum = struct.unpack_from(">I", footer, 64)[0]
    computed = ~sum(footer[:64] + footer[68:VHD_FOOTER_SIZE]) & 0xFFFFFFFF
    warnings = []
    if computed != stored_checksum:
        # libvhdi (and Hyper-V tools that rewrite a footer by hand) read such a disk by its structure; the
        # checksum is a warning for the custodian, not a reason to refuse what extraction opens.
        warnings.append(
            f"VHD {where} fails its checksum (stored {stored_checksum:08x}, computed {computed:08x}); "
            "its structure is read as it stands"
        )
    (data_offset,) = struct.unpack_from(">Q", footer, 16)
    (current_size,) = struct.unpack_from(">Q", footer, 48)
    (disk_type_code,) = struct.unpack_from(">I", footer, 60)
    disk_type = VHD_DISK_TYPES.get(disk_type_code)
    if disk_type is None:
        raise FormatError(f"VHD {where} has unknown disk type {disk_type_code}")
    return {
        "disk_type": disk_type,
        "virtual_size": current_size,
        "unique_id": str(uuid.UUID(bytes=footer[68:84])),
        "creator_application": footer[28:32].decode("latin-1").rstrip("\0 "),
        "data_offset": data_offset,
        **({"warnings": warnings} if warnings else {}),
    }


def _parse_vhd_dynamic_header(*, head: bytes, offset: int, differencing: str) -> dict[str, Any]:
    header = head[offset : offset + VHD_DYNAMIC_HEADER_SIZE]
    if len(header) < VHD_DYNAMIC_HEADER_SIZE:
        # Not in the bytes we were given: the disk type is known, its parent is not (cheap only when near).
        return {}
    if not header.startswith(VHD_DYNAMIC_COOKIE):
        raise FormatError(f"VHD dynamic-disk header expected at offset {offset} is missing: the image is corrupt")
    (block_size,) = struct.unpack_from(">I", header, 32)
    details: dict[str, Any] = {"block_size": block_size}
    if differencing == "differencing":
        details["parent_unique_id"] = str(uuid.UUID(bytes=header[40:56]))
        details["parent_name"] = header[64:576].decode("utf-16-be", errors="replace").split("\0", 1)[0]
        details["parent_locators"] = _parse_vhd_parent_locators(head=head, header=header)
    return details


def _parse_vhd_parent_locators(*, head: bytes, header: bytes) -> list[dict[str, str]]:
    locators = []
    for entry in range(8):
        platform, _space, length, _reserved, data_offset = struct.unpack_from(">4sIIIQ", header, 576 + 24 * entry)
        if platform == b"\0\0\0\0" or not length:
            continue
        data = head[data_offset : data_offset + length]
        if len(data) < length:
            continue
        # W2ru/W2ku hold UTF-16LE Windows paths; Mac/MacX hold UTF-8 (a file URL for MacX).
        encoding = "utf-16-le" if platform in (b"W2ru", b"W2ku") else "utf-8"
        path = data.decode(encoding, errors="replace").rstrip("\0")
        locators.append({"platform": platform.decode("latin-1"), "path": path})
    return locators


# --------------------------------------------------------------------------------------------- VHDX


def _detect_vhdx(*, head: bytes, tail: bytes | None) -> DetectedFormat | None:
    if not head.startswith(b"vhdxfile"):
        return None
    creator = head[8 : 8 + 512].decode("utf-16-le", errors="replace").split("\0", 1)[0]
    return DetectedFormat(ImageFormat.VHDX, {"creator": creator})


# --------------------------------------------------------------------------------------------- VMDK

_VMDK_EXTENT_LINE = re.compile(r'^(RW|RDONLY|NOACCESS)\s+(\d+)\s+(\w+)(?:\s+"([^"]*)")?', re.MULTILINE)
_VMDK_FLAT_EXTENT = re.compile(r"-(flat|f\d{3})\.vmdk$", re.IGNORECASE)


def _detect_vmdk(*, head: bytes, tail: bytes | None) -> DetectedFormat | None:
    if head.startswith(b"KDMV"):
        if len(head) < 79:
            raise FormatError("VMDK sparse extent header is truncated")
        version, _flags, capacity, grain_size, descriptor_offset, descriptor_size = struct.unpack_from(
            "<IIQQQQ", head, 4
        )
        (compress_algorithm,) = struct.unpack_from("<H", head, 77)
        details: dict[str, Any] = {
            "variant": "stream-optimized" if compress_algorithm == 1 else "sparse",
            "version": version,
            "virtual_size": capacity * 512,
            "grain_size": grain_size * 512,
        }
        start, end = descriptor_offset * 512, (descriptor_offset + descriptor_size) * 512
        if descriptor_offset and end <= len(head):
            details.update(_parse_vmdk_descriptor(head[start:end]))
        return DetectedFormat(ImageFormat.VMDK, details)
    if head.startswith(b"COWD"):
        return DetectedFormat(ImageFormat.VMDK, {"variant": "cowd"})
    if head.startswith(b"\xbe\xba\xfe\xca\x00\x00\x00\x00"):
        return DetectedFormat(ImageFormat.VMDK, {"variant": "sesparse"})
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"# Disk DescriptorFile"):
        details = {"variant": "descriptor"}
        details.update(_parse_vmdk_descriptor(head))
        return DetectedFormat(ImageFormat.VMDK, details)
    return None


def _parse_vmdk_descriptor(raw: bytes) -> dict[str, Any]:
    text = raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")
    values = dict(re.findall(r'^\s*(\w+)\s*=\s*"?([^"\n]*)"?\s*$', text, re.MULTILINE))
    details: dict[str, Any] = {}
    if "createType" in values:
        details["create_type"] = values["createType"]
    if values.get("parentCID", "ffffffff").lower() != "ffffffff":
        details["parent_cid"] = values["parentCID"]
        details["parent_file_name_hint"] = values.get("parentFileNameHint")
    # A descriptor file names the extent files that hold the data; the importer must bring them along.
    details["extents"] = [
        {"access": access, "sectors": int(sectors), "type": extent_type, "file": file_name}
        for access, sectors, extent_type, file_name in _VMDK_EXTENT_LINE.findall(text)
    ]
    return details


# -------------------------------------------------------------------------------------------- QCOW


def _detect_qcow(*, head: bytes, tail: bytes | None) -> DetectedFormat | None:
    if not head.startswith(b"QFI\xfb"):
        return None
    if len(head) < 48:
        raise FormatError("QCOW header is truncated")
    (version,) = struct.unpack_from(">I", head, 4)
    backing_file_offset, backing_file_size = struct.unpack_from(">QI", head, 8)
    if version == 1:
        (virtual_size,) = struct.unpack_from(">Q", head, 24)
        (crypt_method,) = struct.unpack_from(">I", head, 36)
    elif version in (2, 3):
        (virtual_size,) = struct.unpack_from(">Q", head, 24)
        (crypt_method,) = struct.unpack_from(">I", head, 32)
    else:
        raise FormatError(f"QCOW image has unknown version {version}")
    details: dict[str, Any] = {"version": version, "virtual_size": virtual_size, "encrypted": crypt_method != 0}
    if backing_file_offset:
        backing = head[backing_file_offset : backing_file_offset + backing_file_size]
        if len(backing) == backing_file_size:
            details["backing_file"] = backing.decode("utf-8", errors="replace")
        else:
            details["backing_file"] = None  # it has one; its name lies beyond the bytes we were given
    return DetectedFormat(ImageFormat.QCOW2, details)


# ------------------------------------------------------------------------------------ parent chains


def has_parent(detected: DetectedFormat) -> bool:
    """Whether the image is a differencing disk: its unwritten sectors are its parent's (a qcow2 with a
    backing file, a differencing VHD, a VMDK whose descriptor names a parent CID)."""
    details = detected.details
    if detected.format is ImageFormat.QCOW2:
        return "backing_file" in details
    if detected.format is ImageFormat.VHD:
        return details.get("disk_type") == "differencing"
    if detected.format is ImageFormat.VMDK:
        return "parent_cid" in details
    return False


def parent_reference(detected: DetectedFormat) -> str | None:
    """The file name a differencing image looks its parent up by: the base name of the name it stores
    (libqcow, libvhdi and libvmdk look beside the child), or None when it has no parent or the name is not
    among the bytes detection saw."""
    details = detected.details
    name: str | None = None
    if detected.format is ImageFormat.QCOW2:
        name = details.get("backing_file")
    elif detected.format is ImageFormat.VHD and details.get("disk_type") == "differencing":
        locators = [locator["path"] for locator in details.get("parent_locators", [])]
        name = details.get("parent_name") or next(iter(locators), None)
    elif detected.format is ImageFormat.VMDK:
        name = details.get("parent_file_name_hint")
    return chain_base_name(name) if name else None


def chain_base_name(name: str) -> str:
    """``C:\\vms\\base.vhd``, ``/srv/base.qcow2``, ``.\\base.vhd`` → ``base.vhd``: how a child names its parent's
    file once the folders it was made in are gone."""
    return name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def chain_link(detected: DetectedFormat) -> dict[str, Any]:
    """What a custody record says of one image in a parent chain: whether it has a parent, and by which
    name it looks that parent up."""
    link: dict[str, Any] = {"has_parent": has_parent(detected)}
    reference = parent_reference(detected)
    if reference:
        link["parent_reference"] = reference
    return link


def order_parent_chain(files: Sequence[tuple[Path, DetectedFormat]]) -> list[Path] | None:
    """The files of one differencing chain, child first and base last, or None when they are no chain
    (no file among them has a parent). Files that have parents but do not chain up by name raise
    ``FormatError`` naming what is missing or left over."""
    if len(files) < 2 or not any(has_parent(detected) for _path, detected in files):
        return None
    not_images = [path.name for path, detected in files if not detected.is_disk_image]
    if not_images:
        raise FormatError(f"a parent chain holds disk images only; {', '.join(not_images)} is not one")
    by_name = {path.name.lower(): (path, detected) for path, detected in files}
    referenced = {}
    for path, detected in files:
        reference = parent_reference(detected)
        if has_parent(detected):
            if reference is None:
                raise FormatError(f"{path.name} has a parent whose name it does not give: link the parent instead")
            if reference.lower() not in by_name:
                raise FormatError(f"{path.name} needs its parent {reference}, which is not among the files")
            referenced[path.name.lower()] = reference.lower()
    tops = [name for name in by_name if name not in set(referenced.values())]
    if len(tops) != 1:
        raise FormatError(f"these files are {len(tops)} chains, not one: import one child with its parents")
    chain: list[Path] = []
    name: str | None = tops[0]
    while name is not None:
        if any(path.name.lower() == name for path in chain):
            raise FormatError(f"the parent chain loops back to {by_name[name][0].name}")
        chain.append(by_name[name][0])
        name = referenced.get(name)
    if len(chain) != len(files):
        left_over = sorted({path.name for path, _ in files} - {path.name for path in chain})
        raise FormatError(f"{', '.join(left_over)} belong to no parent of {chain[0].name}")
    return chain


# ----------------------------------------------------------------------------------------- archives

_ARCHIVE_SIGNATURES = (
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),  # empty archive
    (b"PK\x07\x08", "zip"),  # spanned archive
    (b"\x1f\x8b\x08", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"Rar!\x1a\x07", "rar"),
)


def _detect_archive(*, head: bytes, tail: bytes | None) -> DetectedFormat | None:
    for signature, archive_type in _ARCHIVE_SIGNATURES:
        if head.startswith(signature):
            return DetectedFormat(ImageFormat.ARCHIVE, {"archive_type": archive_type})
    # "BZh" alone is too short to trust; the block size digit and block magic make it certain.
    if head[:3] == b"BZh" and head[3:4] in b"123456789" and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return DetectedFormat(ImageFormat.ARCHIVE, {"archive_type": "bzip2"})
    if head[257:262] == b"ustar":
        return DetectedFormat(ImageFormat.ARCHIVE, {"archive_type": "tar"})
    return None


# --------------------------------------------------------------------------------------- raw disks


def _raw_layout(head: bytes) -> str | None:
    """Name the partitioning or file system that makes ``head`` look like the start of a raw disk."""
    if head[512:520] == b"EFI PART" or head[4096:4104] == b"EFI PART":
        return "gpt"
    if head.startswith(b"LUKS\xba\xbe"):
        return "luks"
    if head[3:11] == b"-FVE-FS-":
        return "bitlocker"
    if head[3:11] == b"NTFS    ":
        return "ntfs"
    if head[3:11] == b"EXFAT   ":
        return "exfat"
    if head[54:62] in (b"FAT12   ", b"FAT16   ") or head[82:90] == b"FAT32   ":
        return "fat"
    if head[1080:1082] == b"\x53\xef":
        return "ext"
    if head.startswith(b"XFSB"):
        return "xfs"
    if head[1024:1026] in (b"H+", b"HX"):
        return "hfs+"
    if head[32:36] == b"NXSB":
        return "apfs"
    if head[512:520] == b"LABELONE":
        return "lvm2"
    if head[32769:32774] == b"CD001":
        return "iso9660"
    if head[510:512] == b"\x55\xaa" and _plausible_mbr(head):
        return "mbr"
    return None


def _plausible_mbr(head: bytes) -> bool:
    entries = [head[446 + 16 * index : 462 + 16 * index] for index in range(4)]
    # Boot flag is 0x00 or 0x80 in every entry, and at least one entry has a partition type.
    return all(entry[0] in (0x00, 0x80) for entry in entries) and any(entry[4] for entry in entries)


_RAW_SUFFIXES = frozenset({".raw", ".dd", ".img", ".ima", ".iso", ".dmg", ".vfd", ".flp"})


def _is_raw_name(name: str) -> bool:
    suffix = Path(name).suffix.lower()
    return suffix in _RAW_SUFFIXES or bool(_NUMERIC_SEGMENT.match(suffix)) or bool(_VMDK_FLAT_EXTENT.search(name))


def _mime_details(head: bytes) -> dict[str, Any]:
    try:
        import magic

        return {"mime": magic.from_buffer(head, mime=True)}
    except ImportError:
        return {"mime": None, "mime_unavailable": "python-magic is not installed"}
    except Exception as error:  # libmagic missing or failing (python-magic raises its own types)
        return {"mime": None, "mime_unavailable": f"libmagic failed: {type(error).__name__}"}


# ------------------------------------------------------------------------------------- name checks


def _format_claimed_by_name(name: str) -> ImageFormat | None:
    lowered = name.lower()
    if _VMDK_FLAT_EXTENT.search(lowered):
        return None  # flat extents of a VMDK descriptor are raw data without any signature
    suffix = Path(lowered).suffix
    # Only the numbered forms: lettered ones (.EAA) look like ordinary extensions (.eml, .tgz).
    if _EWF_NUMBERED_NAME.match(suffix):
        return ImageFormat.EWF
    return {
        ".vhd": ImageFormat.VHD,
        ".avhd": ImageFormat.VHD,
        ".vhdx": ImageFormat.VHDX,
        ".avhdx": ImageFormat.VHDX,
        ".vmdk": ImageFormat.VMDK,
        ".qcow2": ImageFormat.QCOW2,
        ".qcow": ImageFormat.QCOW2,
    }.get(suffix)


def _with_name_check(found: DetectedFormat, *, name: str) -> DetectedFormat:
    # The bytes decide. A name claiming another image format is worth recording, not worth refusing.
    claimed = _format_claimed_by_name(name)
    if claimed is not None and claimed is not found.format:
        return DetectedFormat(found.format, {**found.details, "name_suggests": claimed.value})
    return found


# ------------------------------------------------------------------------------------ segmentation

_EWF_NUMBERED_NAME = re.compile(r"^\.(e|s|l|ex|lx)[0-9]{2}$", re.IGNORECASE)
_NUMERIC_SEGMENT = re.compile(r"^\.([0-9]{3,4})$")
_ALPHABETIC_SEGMENT = re.compile(r"^\.([a-z]{2,3})$")


class SegmentScheme(StrEnum):
    SINGLE = "single"
    EWF = "ewf"  # x.E01, x.E02 … x.E99, x.EAA …
    RAW_NUMERIC = "raw-numeric"  # x.001, x.002 … (or from x.000)
    RAW_ALPHABETIC = "raw-alphabetic"  # x.aa, x.ab … (split(1) with a dot)


@dataclass(frozen=True)
class SegmentedImage:
    """One evidence item: its files in acquisition order. The evidence bytes are their concatenation."""

    scheme: SegmentScheme
    paths: tuple[Path, ...]

    @property
    def name(self) -> str:
        return self.paths[0].name

    @property
    def is_split(self) -> bool:
        return len(self.paths) > 1


def group_segments(paths: list[Path], *, check_contents: bool = True) -> list[SegmentedImage]:
    """Group files into evidence items: split EWF, split raw, or single files, each in the right order.

    A gap in a sequence raises ``FormatError`` naming the missing file. With ``check_contents`` (and the
    files present), EWF segments must carry the segment numbers their names say, and the last one must end
    the image — so a missing *final* segment is caught too, which names alone cannot show.

    Alphabetic suffixes are ambiguous (``syslog.gz`` and ``syslog.xz`` are not two segments): a group counts
    as split raw only when it holds the first suffix (``.aa``) or at least two consecutive suffixes.
    """
    groups: dict[tuple[Path, SegmentScheme, str], dict[int, Path]] = {}
    singles: list[Path] = []
    for path in map(Path, paths):
        keyed = _segment_key(path)
        if keyed is None:
            singles.append(path)
            continue
        key, index = keyed
        members = groups.setdefault(key, {})
        if index in members:
            raise FormatError(f"segment {path.name} was given twice ({members[index].name} and {path.name})")
        members[index] = path

    images = [SegmentedImage(SegmentScheme.SINGLE, (path,)) for path in singles]
    for (stem, scheme, family), members in groups.items():
        # Lettered EWF suffixes (.EAA, segment 100 on) only count beside numbered ones: alone, ".tgz" or
        # ".eml" are ordinary extensions. Likewise alphabetic raw suffixes need to look like a sequence.
        is_lettered_only_ewf = scheme is SegmentScheme.EWF and min(members) >= 100
        if is_lettered_only_ewf or (scheme is SegmentScheme.RAW_ALPHABETIC and not _looks_split(members)):
            images.extend(SegmentedImage(SegmentScheme.SINGLE, (path,)) for path in members.values())
            continue
        first = 0 if scheme is not SegmentScheme.EWF and 0 in members else 1
        if scheme is SegmentScheme.RAW_ALPHABETIC:
            first = 0
        missing = [index for index in range(first, max(members) + 1) if index not in members]
        if missing:
            names = ", ".join(_segment_name(stem=stem, scheme=scheme, family=family, index=i) for i in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise FormatError(f"split image {stem.name} is incomplete: missing segment {names}{more}")
        ordered = tuple(members[index] for index in sorted(members))
        is_ewf1 = scheme is SegmentScheme.EWF and family.upper() in ewf.EWF_FAMILIES
        if is_ewf1 and check_contents and all(path.is_file() for path in ordered):
            ewf.read_ewf_info(segments=list(ordered))
        images.append(SegmentedImage(scheme, ordered))
    return sorted(images, key=lambda image: str(image.paths[0]))


def _segment_key(path: Path) -> tuple[tuple[Path, SegmentScheme, str], int] | None:
    suffix = path.suffix
    stem = path.with_suffix("")
    parsed_ewf = ewf.parse_ewf_suffix(suffix)
    if parsed_ewf is not None:
        family, number = parsed_ewf
        return (stem, SegmentScheme.EWF, family), number
    numeric = _NUMERIC_SEGMENT.match(suffix)
    if numeric:
        digits = numeric.group(1)
        return (stem, SegmentScheme.RAW_NUMERIC, str(len(digits))), int(digits)
    alphabetic = _ALPHABETIC_SEGMENT.match(suffix)
    if alphabetic:
        letters = alphabetic.group(1)
        index = 0
        for letter in letters:
            index = index * 26 + ord(letter) - ord("a")
        return (stem, SegmentScheme.RAW_ALPHABETIC, str(len(letters))), index
    return None


def _looks_split(members: dict[int, Path]) -> bool:
    indexes = sorted(members)
    return indexes[0] == 0 or any(later - earlier == 1 for earlier, later in itertools.pairwise(indexes))


def _segment_name(*, stem: Path, scheme: SegmentScheme, family: str, index: int) -> str:
    if scheme is SegmentScheme.EWF:
        return f"{stem.name}.{ewf.ewf_segment_suffix(number=index, family=family)}"
    width = int(family)
    if scheme is SegmentScheme.RAW_NUMERIC:
        return f"{stem.name}.{index:0{width}d}"
    letters = ""
    for _ in range(width):
        index, remainder = divmod(index, 26)
        letters = chr(ord("a") + remainder) + letters
    return f"{stem.name}.{letters}"


# ----------------------------------------------------------------------------------------- reading


class SegmentedReader(io.RawIOBase):
    """A read-only, seekable file object over segment files concatenated in order.

    Reads are filled across segment boundaries (``read(n)`` returns ``n`` bytes unless at the end), because
    consumers such as libewf, dfVFS and the sealer treat a short read as the end. A segment that shrinks
    while being read raises ``OSError`` rather than shift every later byte.
    """

    def __init__(self, paths: Sequence[Path | str]) -> None:
        super().__init__()
        if not paths:
            raise ValueError("SegmentedReader needs at least one segment")
        self._paths = [Path(path) for path in paths]
        self._starts = list(itertools.accumulate((path.stat().st_size for path in self._paths), initial=0))
        self._position = 0
        self._open_index: int | None = None
        self._open_file: BinaryIO | None = None

    @property
    def size(self) -> int:
        return self._starts[-1]

    @property
    def segments(self) -> list[tuple[Path, int, int]]:
        """(path, start, end) of each segment within the concatenation."""
        return [(path, self._starts[i], self._starts[i + 1]) for i, path in enumerate(self._paths)]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_not_closed()
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_not_closed()
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def get_size(self) -> int:  # libbfio's Python file-object bridge asks for this
        return self.size

    def readinto(self, buffer) -> int:
        self._check_not_closed()
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._position < self.size:
            index = bisect.bisect_right(self._starts, self._position) - 1
            segment_file = self._segment_file(index)
            within = self._position - self._starts[index]
            wanted = min(len(view) - filled, self._starts[index + 1] - self._position)
            segment_file.seek(within)
            count = segment_file.readinto(view[filled : filled + wanted])
            if not count:
                raise OSError(f"segment {self._paths[index].name} is shorter than when it was opened")
            filled += count
            self._position += count
        return filled

    def close(self) -> None:
        if self._open_file is not None:
            self._open_file.close()
            self._open_file = None
        super().close()

    def _segment_file(self, index: int) -> BinaryIO:
        if self._open_index != index:
            if self._open_file is not None:
                self._open_file.close()
            self._open_file = self._paths[index].open("rb", buffering=0)
            self._open_index = index
        return self._open_file

    def _check_not_closed(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed SegmentedReader")


class StreamSlice(io.RawIOBase):
    """A read-only, seekable window ``[start, start + size)`` of another seekable binary stream.

    Split EWF is sealed as its concatenated segment files; to decode it again libewf needs each segment
    as its own file object. Slicing the sealed stream by the recorded segment sizes gives exactly those,
    without a decrypted temporary copy. Slices of one stream may be used alternately: each read seeks.
    """

    def __init__(self, *, stream: BinaryIO, start: int, size: int, name: str = "") -> None:
        super().__init__()
        if start < 0 or size < 0:
            raise ValueError("a slice needs a non-negative start and size")
        self._stream = stream
        self._start = start
        self._size = size
        self._position = 0
        self.name = name

    @property
    def size(self) -> int:
        return self._size

    def get_size(self) -> int:  # libbfio's Python file-object bridge asks for this
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence}")
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def readinto(self, buffer) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed StreamSlice")
        view = memoryview(buffer).cast("B")
        wanted = max(0, min(len(view), self._size - self._position))
        filled = 0
        self._stream.seek(self._start + self._position)
        while filled < wanted:
            count = self._stream.readinto(view[filled:wanted])
            if not count:
                raise OSError(f"the stream ends inside slice {self.name or self._start}")
            filled += count
        self._position += filled
        return filled


def slice_segments(*, stream: BinaryIO, sizes: Sequence[int], names: Sequence[str] = ()) -> list[StreamSlice]:
    """Cut a concatenation of segment files back into one file object per segment."""
    slices, start = [], 0
    for index, size in enumerate(sizes):
        name = names[index] if index < len(names) else f"segment {index + 1}"
        slices.append(StreamSlice(stream=stream, start=start, size=size, name=name))
        start += size
    return slices
