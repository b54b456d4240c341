"""EWF (E01) images: the hashes the acquisition tool stored in the image, and a check of the media against them.

An E01 carries the MD5 (and, from EnCase 6 on, often the SHA-1) of the *media* it captured, in a ``hash``
and/or ``digest`` section near the end of the last segment. Those are the acquirer's own claim about the
seized disk; our intake hashes are of the *segment files* as received (see ``docs/intake.md``). Checking
both closes the loop: the files arrived unchanged, and what they decode to is what was acquired.

Reading the stored hashes needs only the section chain, parsed here in pure Python (EWF version 1: E01, S01,
L01). Decoding the media (zlib chunks, tables) is left to libewf through ``pyewf`` (``libewf-python``),
which ``verify_ewf_media`` needs; without it that function raises ``MissingDependency``.

Layout (Joachim Metz, "Expert Witness Compression Format specification"): a 13-byte file header
(signature, segment number) followed by a chain of sections, each opening with a 76-byte descriptor:
type (16 bytes, NUL padded), offset of the next section (u64, from the start of the segment file), size of
this section including the descriptor (u64), 40 bytes padding, Adler-32 of the previous 72 bytes. Every
segment but the last ends with a ``next`` section, the last with ``done``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from evidence.intake.errors import FormatError, MissingDependency

EWF1_SIGNATURES = {
    b"EVF\x09\x0d\x0a\xff\x00": "E01",
    b"LVF\x09\x0d\x0a\xff\x00": "L01",
}
EWF2_SIGNATURES = {
    b"EVF2\x0d\x0a\x81\x00": "Ex01",
    b"LEF2\x0d\x0a\x81\x00": "Lx01",
}
FILE_HEADER_SIZE = 13
SECTION_DESCRIPTOR_SIZE = 76
# A real segment has tens of sections (hundreds for huge images with many tables); a chain longer than this
# is a loop in a corrupt or hostile file, not an image.
MAX_SECTIONS_PER_SEGMENT = 1_000_000
MEDIA_READ_SIZE = 1024 * 1024

EwfSegment = Path | BinaryIO


@dataclass(frozen=True)
class EwfSection:
    type: str
    offset: int
    next_offset: int
    size: int


@dataclass(frozen=True)
class EwfInfo:
    """What an EWF image says about itself. Hashes are lowercase hex, ``None`` when the image stores none."""

    stored_md5: str | None
    stored_sha1: str | None
    media_size: int | None
    segment_count: int
    variant: str = "E01"
    bytes_per_sector: int | None = None
    sector_count: int | None = None


@dataclass(frozen=True)
class EwfVerification:
    """The stored hashes beside the hashes of the media as libewf decodes it.

    ``matches`` is ``None`` when the image stores no MD5 (nothing to compare), else whether every stored
    hash equals the computed one.
    """

    stored_md5: str | None
    computed_md5: str
    stored_sha1: str | None
    computed_sha1: str
    media_size: int
    matches: bool | None


def read_ewf_info(*, segments: Sequence[EwfSegment]) -> EwfInfo:
    """Parse the section chains of all segments, in order, and return the stored hashes and media size.

    ``segments`` are paths or seekable binary file objects, first segment first (``group_segments`` orders
    them). Raises ``FormatError`` for a missing signature, a segment out of order, a broken or looping
    section chain, a bad descriptor checksum, or a set whose last segment does not end with ``done``
    (a segment is missing).
    """
    if not segments:
        raise FormatError("an EWF image needs at least one segment")
    stored_md5: str | None = None
    stored_sha1: str | None = None
    bytes_per_sector: int | None = None
    sector_count: int | None = None
    variant = "E01"
    for expected_number, segment in enumerate(segments, start=1):
        label = _label(segment)
        with _opened(segment) as stream:
            variant, segment_number = read_segment_header(stream=stream, label=label)
            if segment_number != expected_number:
                raise FormatError(
                    f"EWF segment {label} is segment number {segment_number} but was given in position "
                    f"{expected_number}: segments are misnamed or out of order"
                )
            sections = walk_sections(stream=stream, label=label)
            last_type = sections[-1].type
            is_last = expected_number == len(segments)
            if is_last and last_type != "done":
                raise FormatError(
                    f"EWF segment {label} ends with a {last_type!r} section: the image continues in segment "
                    f"{expected_number + 1} ({_next_segment_hint(segment)}), which is missing"
                )
            if not is_last and last_type != "next":
                raise FormatError(
                    f"EWF segment {label} ends the image ({last_type!r}) but more segments were given after it"
                )
            for section in sections:
                if section.type in ("volume", "disk") and bytes_per_sector is None:
                    bytes_per_sector, sector_count = _read_volume(stream=stream, section=section, label=label)
                elif section.type == "hash":
                    md5 = _read_hash_section(stream=stream, section=section, label=label)
                    stored_md5 = md5 or stored_md5
                elif section.type == "digest":
                    md5, sha1 = _read_digest_section(stream=stream, section=section, label=label)
                    stored_md5 = md5 or stored_md5
                    stored_sha1 = sha1 or stored_sha1
    media_size = bytes_per_sector * sector_count if bytes_per_sector and sector_count is not None else None
    return EwfInfo(
        stored_md5=stored_md5,
        stored_sha1=stored_sha1,
        media_size=media_size,
        segment_count=len(segments),
        variant=variant,
        bytes_per_sector=bytes_per_sector,
        sector_count=sector_count,
    )


def verify_ewf_media(*, segments: Sequence[EwfSegment]) -> EwfVerification:
    """Decode the media with libewf, hash it, and compare with the hashes stored in the image."""
    pyewf = _require_pyewf()
    info = read_ewf_info(segments=segments)
    handle = pyewf.handle()
    if all(isinstance(segment, Path) for segment in segments):
        handle.open([str(segment) for segment in segments])
    else:
        file_objects = [segment if not isinstance(segment, Path) else segment.open("rb") for segment in segments]
        for file_object in file_objects:
            file_object.seek(0)
        handle.open_file_objects(file_objects)
    try:
        media_size = handle.get_media_size()
        md5 = hashlib.md5(usedforsecurity=False)
        sha1 = hashlib.sha1(usedforsecurity=False)
        remaining = media_size
        while remaining > 0:
            data = handle.read_buffer(min(MEDIA_READ_SIZE, remaining))
            if not data:
                raise FormatError(f"libewf stopped {remaining} bytes before the end of the media: the image is damaged")
            md5.update(data)
            sha1.update(data)
            remaining -= len(data)
    finally:
        handle.close()
    computed_md5, computed_sha1 = md5.hexdigest(), sha1.hexdigest()
    if info.stored_md5 is None:
        matches = None
    else:
        matches = info.stored_md5 == computed_md5 and info.stored_sha1 in (None, computed_sha1)
    return EwfVerification(
        stored_md5=info.stored_md5,
        computed_md5=computed_md5,
        stored_sha1=info.stored_sha1,
        computed_sha1=computed_sha1,
        media_size=media_size,
        matches=matches,
    )


def pyewf_available() -> bool:
    try:
        _require_pyewf()
    except MissingDependency:
        return False
    return True


def read_segment_header(*, stream: BinaryIO, label: str) -> tuple[str, int]:
    """Return (variant, segment number) from an EWF segment's file header."""
    stream.seek(0)
    header = stream.read(FILE_HEADER_SIZE)
    signature = header[:8]
    if signature in EWF2_SIGNATURES:
        raise FormatError(
            f"{label} is EWF version 2 ({EWF2_SIGNATURES[signature]}): its stored hashes are not parsed here; "
            "decode it with pyewf"
        )
    if signature not in EWF1_SIGNATURES:
        raise FormatError(f"{label} does not start with an EWF signature: not an E01/L01 segment, or corrupt")
    if len(header) < FILE_HEADER_SIZE:
        raise FormatError(f"EWF segment {label} is truncated inside its 13-byte file header")
    (segment_number,) = struct.unpack_from("<H", header, 9)
    return EWF1_SIGNATURES[signature], segment_number


def walk_sections(*, stream: BinaryIO, label: str) -> list[EwfSection]:
    """Follow the section chain of one segment from just after its file header to ``next`` or ``done``."""
    size = _stream_size(stream)
    sections: list[EwfSection] = []
    offset = FILE_HEADER_SIZE
    while True:
        if len(sections) >= MAX_SECTIONS_PER_SEGMENT:
            raise FormatError(f"EWF segment {label} has an endless section chain: corrupt")
        if offset + SECTION_DESCRIPTOR_SIZE > size:
            raise FormatError(
                f"EWF segment {label} is truncated: a section descriptor at offset {offset} lies past its "
                f"end ({size} bytes)"
            )
        stream.seek(offset)
        descriptor = stream.read(SECTION_DESCRIPTOR_SIZE)
        (stored_checksum,) = struct.unpack_from("<I", descriptor, 72)
        if zlib.adler32(descriptor[:72]) != stored_checksum:
            raise FormatError(f"EWF segment {label}: the section descriptor at offset {offset} fails its checksum")
        section_type = descriptor[:16].rstrip(b"\0").decode("ascii", errors="replace")
        next_offset, section_size = struct.unpack_from("<QQ", descriptor, 16)
        section = EwfSection(type=section_type, offset=offset, next_offset=next_offset, size=section_size)
        sections.append(section)
        if section_type in ("next", "done"):
            return sections
        # The chain only moves forward; anything else is a loop or garbage that would never end.
        if next_offset <= offset:
            raise FormatError(
                f"EWF segment {label}: section {section_type!r} at offset {offset} points back to {next_offset}"
            )
        offset = next_offset


def _read_volume(*, stream: BinaryIO, section: EwfSection, label: str) -> tuple[int, int]:
    data = _section_data(stream=stream, section=section, label=label, minimum=20)
    _, _, bytes_per_sector = struct.unpack_from("<III", data, 4)
    # EnCase volume/disk data is 1052 bytes with a 64-bit sector count; the 94-byte SMART/FTK form has 32 bits.
    if len(data) >= 1052 - 4:
        (sector_count,) = struct.unpack_from("<Q", data, 16)
    else:
        (sector_count,) = struct.unpack_from("<I", data, 16)
    return bytes_per_sector, sector_count


def _read_hash_section(*, stream: BinaryIO, section: EwfSection, label: str) -> str | None:
    data = _section_data(stream=stream, section=section, label=label, minimum=36)
    _check_adler32(data=data, covered=32, what="hash section", label=label)
    return _hex_unless_zero(data[:16])


def _read_digest_section(*, stream: BinaryIO, section: EwfSection, label: str) -> tuple[str | None, str | None]:
    data = _section_data(stream=stream, section=section, label=label, minimum=80)
    _check_adler32(data=data, covered=76, what="digest section", label=label)
    return _hex_unless_zero(data[:16]), _hex_unless_zero(data[16:36])


def _section_data(*, stream: BinaryIO, section: EwfSection, label: str, minimum: int) -> bytes:
    length = section.size - SECTION_DESCRIPTOR_SIZE
    if length < minimum:
        raise FormatError(f"EWF segment {label}: {section.type} section at {section.offset} is too short ({length})")
    stream.seek(section.offset + SECTION_DESCRIPTOR_SIZE)
    # Only the fixed-size sections (volume, hash, digest) come here, so reading them whole is small.
    data = stream.read(min(length, 4096))
    if len(data) < minimum:
        raise FormatError(f"EWF segment {label} is truncated inside its {section.type} section")
    return data


def _check_adler32(*, data: bytes, covered: int, what: str, label: str) -> None:
    (stored,) = struct.unpack_from("<I", data, covered)
    if zlib.adler32(data[:covered]) != stored:
        raise FormatError(f"EWF segment {label}: the {what} fails its checksum, so its stored hash cannot be trusted")


def _hex_unless_zero(value: bytes) -> str | None:
    # Tools that did not hash the media leave the field zeroed; that is "no claim", not a hash.
    return value.hex() if any(value) else None


def _stream_size(stream: BinaryIO) -> int:
    position = stream.tell()
    size = stream.seek(0, io.SEEK_END)
    stream.seek(position)
    return size


@contextlib.contextmanager
def _opened(segment: EwfSegment) -> Iterator[BinaryIO]:
    if isinstance(segment, Path):
        with segment.open("rb") as stream:
            yield stream
    else:
        yield segment


# ------------------------------------------------------------------------------------ segment names
# libewf's naming of segment files; the segmentation of an upload (evidence.intake.formats) uses it too.

EWF_SEGMENT_SUFFIX = re.compile(r"^\.([a-z])([0-9]{2}|[a-z]{2})$", re.IGNORECASE)
EWF2_SEGMENT_SUFFIX = re.compile(r"^\.([el]x)([0-9]{2})$", re.IGNORECASE)
EWF_FAMILIES = "ELS"  # E01 (EnCase), L01 (logical), S01 (SMART)


def parse_ewf_suffix(suffix: str) -> tuple[str, int] | None:
    """``.E01`` → ``("E", 1)``, ``.E99`` → 99, ``.EAA`` → 100, ``.EZZ`` → 775, ``.FAA`` → 776 (libewf's naming).

    The family letter keeps the file's case. Letters past a family's own (F… for E01) belong to the nearest
    family letter below them.
    """
    match = EWF2_SEGMENT_SUFFIX.match(suffix)
    if match:
        number = int(match.group(2))
        return (match.group(1), number) if number else None
    match = EWF_SEGMENT_SUFFIX.match(suffix)
    if not match:
        return None
    letter, rest = match.groups()
    if rest.isdigit():
        if letter.upper() not in EWF_FAMILIES or rest == "00":
            return None
        return letter, int(rest)
    family_upper = max((family for family in EWF_FAMILIES if family <= letter.upper()), default=None)
    if family_upper is None:
        return None
    family = family_upper if letter.isupper() else family_upper.lower()
    first, second = (ord(character) - ord("a") for character in rest.lower())
    return family, 100 + (ord(letter.upper()) - ord(family_upper)) * 676 + first * 26 + second


def ewf_segment_suffix(*, number: int, family: str) -> str:
    """The suffix (without the dot) of EWF segment ``number``: the inverse of ``parse_ewf_suffix``."""
    if number < 100:
        return f"{family}{number:02d}"
    beyond = number - 100
    letter = chr(ord(family.upper()) + beyond // 676)
    pair = chr(ord("A") + beyond % 676 // 26) + chr(ord("A") + beyond % 26)
    suffix = letter + pair
    return suffix.lower() if family.islower() else suffix


def _label(segment: EwfSegment) -> str:
    if isinstance(segment, Path):
        return segment.name
    return str(getattr(segment, "name", repr(segment)))


def _next_segment_hint(segment: EwfSegment) -> str:
    if not isinstance(segment, Path):
        return "the next segment file"
    parsed = parse_ewf_suffix(segment.suffix)
    if parsed is None:
        return "the next segment file"
    family, number = parsed
    return segment.with_suffix("." + ewf_segment_suffix(number=number + 1, family=family)).name


def _require_pyewf():
    try:
        import pyewf
    except ImportError as error:
        raise MissingDependency(
            "decoding E01 media needs libewf's Python binding: pip install libewf-python (see requirements.txt)"
        ) from error
    return pyewf
