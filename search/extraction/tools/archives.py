"""Archives: zip, tar, gzip, bzip2, xz. Members become child traces; nothing is ever written to disk.

Member names are metadata, never paths to open: ``../../etc/passwd`` is kept as `archive.memberName`
and placed in the trace tree as ``/etc/passwd`` *inside the archive* (dot-dot cannot climb above the
archive's root). Decompression is streamed and counted, so a zip bomb is stopped by the compression
ratio (declared sizes are checked first, actual bytes while inflating, since headers can lie), the
member count and the output budget, before it is in memory. A member or stream whose first bytes are a
disk image (sparse images legitimately compress thousands to one) is exempt from the ratio: its bytes count
against the evidence item's absolute budget instead (``search.extraction.budget``), and the pipeline walks
the image as a child source.
"""

from __future__ import annotations

import bz2
import contextlib
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, BinaryIO

from search.extraction.budget import BudgetExceeded
from search.extraction.timezones import set_local_time, utc_text
from search.extraction.tools.base import (
    Budget,
    ChildTrace,
    LimitExceeded,
    Limits,
    Tool,
    ToolResult,
    enter_container,
    extension_of,
)

_CHUNK = 1024 * 1024
# Enough of a stream's start to find every disk-image signature intake knows but ISO 9660's.
IMAGE_HEAD_SIZE = 64 * 1024

_OFFICE_ZIP_MIME_PREFIXES = ("application/vnd.openxmlformats-officedocument", "application/vnd.oasis.opendocument")
_OFFICE_ZIP_EXTENSIONS = {"docx", "docm", "xlsx", "xlsm", "pptx", "pptm", "odt", "ods", "odp"}


def archive_member_path(raw_name: str) -> tuple[str, bool]:
    """``../../etc/passwd`` → (``/etc/passwd``, True): a path inside the archive, and whether it was unsafe.

    Unsafe means it would have left the extraction folder (absolute, drive letter, dot-dot) had anybody
    extracted it; we never do, but the flag is evidence in itself.
    """
    unified = raw_name.replace("\\", "/")
    unsafe = unified.startswith("/") or (len(unified) > 1 and unified[1] == ":")
    segments: list[str] = []
    for segment in unified.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            unsafe = True
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    if segments and len(segments[0]) == 2 and segments[0][1] == ":":
        segments = segments[1:]
    return "/" + "/".join(segments), unsafe


def is_disk_image(head: bytes, *, name: str, limits: Limits) -> bool:
    """Whether a stream starting with ``head`` is a disk image (a partition table or file system, VHD, VHDX,
    VMDK, qcow2, EWF: intake's signatures), to be bounded by the evidence item's absolute budget instead
    of the compression ratio. Never true without a budget to bound it by."""
    if limits.budget is None:
        return False
    # Imported here: the content tools also run without Django (and so without the evidence app's models
    # that its door imports); only a run with a budget, which an extraction has, looks for images.
    from evidence.reading import disk_image_format

    return disk_image_format(head=head[:IMAGE_HEAD_SIZE], tail=None, name=name) is not None


def read_decompressed(
    read: Callable[[int], bytes],
    *,
    compressed_size: int,
    budget: Budget,
    what: str,
    declared_size: int | None = None,
    name: str = "",
) -> bytes:
    """Read a decompressing stream to its end, stopping at the ratio limit or the output budget.

    A disk image (recognised by its first bytes, ``is_disk_image``) is exempt from the ratio, which sparse
    images legitimately exceed; its bytes count against the evidence item's budget instead."""
    limits = budget.limits
    ratio_cap = max(int(limits.max_compression_ratio * max(compressed_size, 1)), limits.ratio_floor_bytes)
    parts: list[bytes] = []
    total = 0
    image = False
    while True:
        budget.check_time()
        chunk = read(_CHUNK)
        if not chunk:
            break
        if total == 0:
            image = is_disk_image(chunk, name=name, limits=limits)
        total += len(chunk)
        if total > ratio_cap and not image:
            raise LimitExceeded(
                f"{what}: compression ratio limit {limits.max_compression_ratio:g}:1 exceeded "
                f"(more than {total} bytes from {compressed_size} compressed)"
            )
        if declared_size is not None and total > declared_size:
            raise LimitExceeded(f"{what}: more data than the declared {declared_size} bytes")
        if image and limits.budget is not None:
            try:
                limits.budget.spend_decompressed(len(chunk), what=what)
            except BudgetExceeded as error:
                raise LimitExceeded(str(error)) from None
        budget.spend(len(chunk))
        parts.append(chunk)
    return b"".join(parts)


class _Tree:
    """Builds the member tree of an archive: members under their folders, implicit folders made up.

    Zip and tar list ``folder/syslog`` without always listing ``folder/``; the trace tree needs the
    folder, so it is created (``file.virtual``) where the archive does not list it.
    """

    def __init__(self) -> None:
        self.roots: list[ChildTrace] = []
        self._folders: dict[str, ChildTrace] = {}

    def _container(self, folder_path: str, *, order: int) -> list[ChildTrace]:
        if folder_path == "/":
            return self.roots
        folder = self._folders.get(folder_path)
        if folder is None:
            parent_path, _, folder_name = folder_path.rpartition("/")
            folder = ChildTrace(
                name=folder_name,
                path_hint=folder_path,
                types=["file", "folder"],
                properties={"file.name": folder_name, "file.path": folder_path, "file.virtual": True},
                ordinal_key=(order,),
            )
            self._container(parent_path or "/", order=order).append(folder)
            self._folders[folder_path] = folder
        return folder.children

    def add(self, child: ChildTrace, *, order: int) -> None:
        parent_path = child.path_hint.rpartition("/")[0] or "/"
        if "folder" in child.types and child.path_hint in self._folders:
            # A listed folder after a member that made it up: the listed entry's metadata wins.
            existing = self._folders[child.path_hint]
            existing.properties = {**child.properties}
            existing.errors.extend(child.errors)
            return
        if "folder" in child.types and child.path_hint != "/":
            self._folders[child.path_hint] = child
        self._container(parent_path, order=order).append(child)


def _member_trace(*, raw_name: str, order: int, is_folder: bool, properties: dict[str, Any]) -> ChildTrace:
    path, unsafe = archive_member_path(raw_name)
    base_name = path.rsplit("/", 1)[-1] or raw_name
    member_properties = {"file.name": base_name, "file.path": path, "archive.memberName": raw_name}
    if unsafe:
        member_properties["archive.unsafeName"] = True
    member_properties.update(properties)
    return ChildTrace(
        name=base_name,
        path_hint=path,
        types=["file", "folder"] if is_folder else ["file"],
        properties=member_properties,
        ordinal_key=(order,),
    )


def _decompressed_name(name: str, suffixes: dict[str, str]) -> str:
    lowered = name.lower()
    for suffix, replacement in suffixes.items():
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)] + replacement
    return name + ".decompressed"


class ZipTool(Tool):
    name = "zip"
    version = "python-zipfile"

    def accepts(self, *, mime_type: str, name: str, head: bytes) -> bool:
        if mime_type.startswith(_OFFICE_ZIP_MIME_PREFIXES) or extension_of(name) in _OFFICE_ZIP_EXTENSIONS:
            return False  # a document: the OOXML/ODF tool reads it
        return head.startswith((b"PK\x03\x04", b"PK\x05\x06")) or mime_type == "application/zip"

    def run(self, *, stream: BinaryIO, name: str, limits: Limits) -> ToolResult:
        enter_container(limits, kind="zip")
        budget = Budget(limits)
        result = ToolResult(types=["archive"])
        archive_size = stream.seek(0, 2)
        stream.seek(0)
        with zipfile.ZipFile(stream) as archive:
            members = archive.infolist()
            result.properties = {"archive.type": "zip", "archive.entries": len(members)}
            if len(members) > limits.max_member_count:
                result.errors.append(
                    f"member count {len(members)} exceeds the limit of {limits.max_member_count}: "
                    f"only the first {limits.max_member_count} are listed"
                )
                members = members[: limits.max_member_count]
            declared_total = sum(member.file_size for member in members)
            if declared_total > limits.max_compression_ratio * max(archive_size, 1) + limits.ratio_floor_bytes:
                result.errors.append(
                    f"declared size {declared_total} bytes is more than {limits.max_compression_ratio:g} times "
                    f"the archive's {archive_size} bytes: members checked one by one"
                )
            tree = _Tree()
            for order, member in enumerate(members):
                budget.count_member()
                tree.add(self._member(archive=archive, member=member, order=order, budget=budget), order=order)
        result.children = tree.roots
        return result

    def _member(self, *, archive: zipfile.ZipFile, member: zipfile.ZipInfo, order: int, budget: Budget) -> ChildTrace:
        properties: dict[str, Any] = {
            "file.size": member.file_size,
            "archive.compressedSize": member.compress_size,
            "archive.compressionMethod": member.compress_type,
            "archive.crc32": f"{member.CRC:08x}",
        }
        # The UTC times of an extra field where there is one; else the DOS time, a local time of unknown zone.
        utc_times = zip_extra_times(member.extra)
        for property_name, moment in utc_times.items():
            properties[property_name] = utc_text(moment)
        if "file.modifiedOn" not in utc_times:
            with contextlib.suppress(ValueError):
                set_local_time(properties, "file.modifiedOn", datetime(*member.date_time))
        child = _member_trace(raw_name=member.filename, order=order, is_folder=member.is_dir(), properties=properties)
        if member.is_dir():
            return child
        if member.flag_bits & 0x1:
            child.properties["archive.encrypted"] = True
            child.errors.append("encrypted member: content not read")
            return child
        ratio = member.file_size / max(member.compress_size, 1)
        limits = budget.limits
        over_ratio = member.file_size > limits.ratio_floor_bytes and ratio > limits.max_compression_ratio
        if over_ratio and not self._starts_like_disk_image(archive=archive, member=member, limits=limits):
            child.errors.append(
                f"compression ratio limit {limits.max_compression_ratio:g}:1 exceeded "
                f"(declared {member.file_size} bytes from {member.compress_size}): content not read"
            )
            return child
        if not budget.can_spend(member.file_size):
            child.errors.append(f"output limit of {limits.max_output_bytes} bytes reached: content not read")
            return child
        try:
            with archive.open(member) as member_stream:
                child.data = read_decompressed(
                    member_stream.read,
                    compressed_size=member.compress_size,
                    budget=budget,
                    what=f"zip member {member.filename!r}",
                    declared_size=member.file_size,
                    name=child.name,
                )
        except LimitExceeded as error:
            child.errors.append(str(error))
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, OSError, EOFError) as error:
            child.errors.append(f"cannot read member: {type(error).__name__}: {error}")
        return child

    @staticmethod
    def _starts_like_disk_image(*, archive: zipfile.ZipFile, member: zipfile.ZipInfo, limits: Limits) -> bool:
        """Peek at a member's first bytes: a disk image is read whatever its ratio (under the budget)."""
        if limits.budget is None:
            return False
        try:
            with archive.open(member) as member_stream:
                head = member_stream.read(IMAGE_HEAD_SIZE)
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, OSError, EOFError):
            return False
        return is_disk_image(head, name=member.filename, limits=limits)


# Zip extra fields that carry UTC times (APPNOTE 4.5, Info-ZIP's extra.fld).
_EXTRA_NTFS = 0x000A  # FILETIMEs: modified, accessed, created
_EXTRA_EXTENDED_TIMESTAMP = 0x5455  # "UT": flags, then modified/accessed/created Unix times as flagged
_EXTRA_INFOZIP_UNIX1 = 0x5855  # "UX": accessed, modified Unix times
_FILETIME_EPOCH_OFFSET = 11_644_473_600  # seconds from 1601-01-01 to 1970-01-01


def zip_extra_times(extra: bytes) -> dict[str, datetime]:
    """``file.modifiedOn``/``accessedOn``/``createdOn`` (aware, UTC) from a member's extra fields, the
    NTFS field first, then ``UT``, then ``UX``; malformed fields are skipped. A central directory's ``UT``
    holds the modification time only, whatever its flags say."""
    fields: dict[int, bytes] = {}
    offset = 0
    while offset + 4 <= len(extra):
        header_id, size = struct.unpack_from("<HH", extra, offset)
        fields.setdefault(header_id, extra[offset + 4 : offset + 4 + size])
        offset += 4 + size
    times: dict[str, datetime] = {}

    def put(name: str, seconds: float) -> None:
        if name not in times and seconds > 0:
            with contextlib.suppress(OverflowError, OSError, ValueError):
                times[name] = datetime.fromtimestamp(seconds, UTC)

    ntfs = fields.get(_EXTRA_NTFS, b"")
    position = 4  # after 4 reserved bytes: tagged attributes
    while position + 4 <= len(ntfs):
        tag, size = struct.unpack_from("<HH", ntfs, position)
        if tag == 1 and size >= 24:
            for name, filetime in zip(
                ("file.modifiedOn", "file.accessedOn", "file.createdOn"),
                struct.unpack_from("<QQQ", ntfs, position + 4),
                strict=True,
            ):
                put(name, filetime / 10_000_000 - _FILETIME_EPOCH_OFFSET)
        position += 4 + size
    extended = fields.get(_EXTRA_EXTENDED_TIMESTAMP, b"")
    if len(extended) >= 5 and extended[0] & 1:
        put("file.modifiedOn", struct.unpack_from("<i", extended, 1)[0])
        position = 5
        for flag, name in ((2, "file.accessedOn"), (4, "file.createdOn")):
            if extended[0] & flag and position + 4 <= len(extended):
                put(name, struct.unpack_from("<i", extended, position)[0])
                position += 4
    unix1 = fields.get(_EXTRA_INFOZIP_UNIX1, b"")
    if len(unix1) >= 8:
        accessed, modified = struct.unpack_from("<ii", unix1, 0)
        put("file.modifiedOn", modified)
        put("file.accessedOn", accessed)
    return times


class TarTool(Tool):
    name = "tar"
    version = "python-tarfile"

    def accepts(self, *, mime_type: str, name: str, head: bytes) -> bool:
        return head[257:262] == b"ustar" or mime_type == "application/x-tar" or extension_of(name) == "tar"

    def run(self, *, stream: BinaryIO, name: str, limits: Limits) -> ToolResult:
        enter_container(limits, kind="tar")
        budget = Budget(limits)
        result = ToolResult(types=["archive"])
        tree = _Tree()
        count = 0
        # "r:" reads plain tar only: compressed tars arrive here as the child of the gzip/bzip2/xz tool,
        # so the ratio check there covers them.
        with tarfile.open(fileobj=stream, mode="r:") as archive:
            for order, member in enumerate(archive):
                if count >= limits.max_member_count:
                    result.errors.append(f"member count limit of {limits.max_member_count} reached: rest not listed")
                    break
                count += 1
                budget.count_member()
                tree.add(self._member(archive=archive, member=member, order=order, budget=budget), order=order)
                # tarfile keeps every TarInfo it has seen; forget them, the tree holds what we need.
                archive.members = []
        result.properties = {"archive.type": "tar", "archive.entries": count}
        result.children = tree.roots
        return result

    @staticmethod
    def _member(*, archive: tarfile.TarFile, member: tarfile.TarInfo, order: int, budget: Budget) -> ChildTrace:
        properties: dict[str, Any] = {
            "file.size": member.size,
            "file.modifiedOn": datetime.fromtimestamp(int(member.mtime), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "file.mode": member.mode,
            "file.ownerId": member.uid,
            "file.groupId": member.gid,
        }
        if member.uname:
            properties["file.ownerName"] = member.uname
        if member.gname:
            properties["file.groupName"] = member.gname
        if member.issym() or member.islnk():
            properties["file.linkTarget"] = member.linkname
            properties["file.linkType"] = "symbolic" if member.issym() else "hard"
        child = _member_trace(raw_name=member.name, order=order, is_folder=member.isdir(), properties=properties)
        if not member.isfile():
            return child
        if not budget.can_spend(member.size):
            child.errors.append(f"output limit of {budget.limits.max_output_bytes} bytes reached: content not read")
            return child
        try:
            member_stream = archive.extractfile(member)
            if member_stream is not None:
                child.data = read_decompressed(
                    member_stream.read,
                    # A tar member is stored, not compressed: its "compressed" size is its size.
                    compressed_size=max(member.size, 1),
                    budget=budget,
                    what=f"tar member {member.name!r}",
                    declared_size=member.size,
                )
        except LimitExceeded as error:
            child.errors.append(str(error))
        except (tarfile.TarError, OSError, EOFError) as error:
            child.errors.append(f"cannot read member: {type(error).__name__}: {error}")
        return child


class CompressedTool(Tool):
    """gzip, bzip2, xz: one child, the decompressed stream, named after the file without its suffix."""

    name = "compressed"
    version = f"zlib-{zlib.ZLIB_RUNTIME_VERSION}"

    _KINDS = {
        "gzip": (b"\x1f\x8b", {".tgz": ".tar", ".gz": "", ".gzip": ""}),
        "bzip2": (b"BZh", {".tbz2": ".tar", ".tbz": ".tar", ".bz2": "", ".bzip2": ""}),
        "xz": (b"\xfd7zXZ\x00", {".txz": ".tar", ".xz": ""}),
    }

    def _kind(self, head: bytes) -> str | None:
        for kind, (magic, _) in self._KINDS.items():
            if head.startswith(magic):
                return kind
        return None

    def accepts(self, *, mime_type: str, name: str, head: bytes) -> bool:
        return self._kind(head) is not None

    def run(self, *, stream: BinaryIO, name: str, limits: Limits) -> ToolResult:
        enter_container(limits, kind="compressed")
        budget = Budget(limits)
        compressed_size = stream.seek(0, 2)
        stream.seek(0)
        kind = self._kind(stream.read(8))
        stream.seek(0)
        if kind is None:
            raise ValueError("not a gzip, bzip2 or xz stream")
        properties: dict[str, Any] = {
            "archive.type": kind,
            "archive.entries": 1,
            "archive.compressedSize": compressed_size,
        }
        if kind == "gzip":
            original_name = _gzip_original_name(stream)
            if original_name:
                properties["archive.originalName"] = original_name
            stream.seek(0)
        opener = {"gzip": _gzip_reader, "bzip2": bz2.BZ2File, "xz": lzma.LZMAFile}[kind]
        child_name = _decompressed_name(name, self._KINDS[kind][1])
        child = ChildTrace(
            name=child_name,
            path_hint="/" + child_name,
            types=["file"],
            properties={"file.name": child_name, "file.path": "/" + child_name},
            ordinal_key=(0,),
        )
        try:
            with opener(stream) as decompressing:
                child.data = read_decompressed(
                    decompressing.read,
                    compressed_size=compressed_size,
                    budget=budget,
                    what=f"{kind} stream",
                    name=child_name,
                )
            child.properties["file.size"] = len(child.data)
            properties["archive.uncompressedSize"] = len(child.data)
        except LimitExceeded as error:
            child.errors.append(str(error))
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as error:
            child.errors.append(f"cannot decompress: {type(error).__name__}: {error}")
        return ToolResult(properties=properties, children=[child], types=["archive"])


def _gzip_reader(stream: BinaryIO):
    import gzip

    return gzip.GzipFile(fileobj=stream, mode="rb")


def _gzip_original_name(stream: BinaryIO) -> str | None:
    """The FNAME field of a gzip header (RFC 1952), if the compressor stored it."""
    header = stream.read(10)
    if len(header) < 10 or not header[3] & 0x08:
        return None
    if header[3] & 0x04:  # FEXTRA precedes FNAME
        extra_length = int.from_bytes(stream.read(2), "little")
        stream.read(extra_length)
    raw = bytearray()
    while len(raw) < 1024:
        byte = stream.read(1)
        if not byte or byte == b"\x00":
            break
        raw += byte
    return raw.decode("latin-1") or None
