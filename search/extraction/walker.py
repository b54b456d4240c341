"""Storage-media extraction: walk an image read through a Python file object and yield its traces.

Layers, each a trace: the evidence image (EWF, VHD, VHDX, VMDK, qcow2 or raw, decoded by dfVFS and the
libyal bindings) → partition tables (MBR with nested extended partitions, GPT, … via The Sleuth Kit) or
other volume systems (LVM, APFS containers, Core Storage via dfVFS) → encrypted volumes (BitLocker and
LUKS, unlocked with the evidence's escrowed secrets) → volume shadow copies → file systems → folders and
files, allocated and deleted, with every data stream (NTFS alternate data streams included).

The file-system walk uses pytsk3 directly (dfVFS's TSK back-end skips deleted names): the same listing
``fls -r -p`` gives, so The Sleuth Kit's own output is the answer key. File systems TSK cannot read
(APFS, XFS, …) are walked through dfVFS's file entries.

Every stream is read once, in large blocks, and every tool runs on that one read: MD5, SHA-1, SHA-256,
Shannon entropy and the MIME type of its first bytes.

Determinism: children are ordered by a stable key (partitions by start, directory entries by name bytes
then inode), a child's uid is its parent's uid plus its ordinal, and no value depends on time, load or
the order in which a library happens to return entries. Two walks of the same bytes give equal traces.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import mimetypes
import os
import tempfile
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

import dfvfs
import magic
import pytsk3
from dfvfs.analyzer import analyzer as dfvfs_analyzer
from dfvfs.lib import definitions as dfvfs_definitions
from dfvfs.lib import tsk_image
from dfvfs.path import factory as path_spec_factory
from dfvfs.resolver import resolver as dfvfs_resolver

from search.extraction import luks, source
from search.extraction.traces import (
    DataStream,
    RawContent,
    ToolRef,
    TraceError,
    TraceRecord,
    child_uid,
    root_uid,
)

try:  # numpy makes the byte histogram for entropy ~100x faster; the pure-Python fallback stays exact.
    import numpy
except ImportError:  # pragma: no cover - depends on the environment
    numpy = None

MIB = 1024 * 1024

TOOL_DFVFS = ToolRef("dfvfs", dfvfs.__version__)
TOOL_PYTSK3 = ToolRef("pytsk3", f"{pytsk3.get_version()} (tsk {pytsk3.TSK_VERSION_STR})")
TOOL_MAGIC = ToolRef("python-magic", getattr(magic, "__version__", "unknown"))
TOOL_HASHES = ToolRef("hashlib", "builtin")
TOOL_LUKS1 = ToolRef("custodia-luks1", "1 (cryptography)")

# dfVFS type indicators of storage media images (containers around a disk) we decode before anything.
_STORAGE_MEDIA_NAMES = {
    dfvfs_definitions.TYPE_INDICATOR_EWF: "ewf",
    dfvfs_definitions.TYPE_INDICATOR_QCOW: "qcow",
    dfvfs_definitions.TYPE_INDICATOR_VHDI: "vhd",
    dfvfs_definitions.TYPE_INDICATOR_VMDK: "vmdk",
    dfvfs_definitions.TYPE_INDICATOR_PHDI: "parallels",
    dfvfs_definitions.TYPE_INDICATOR_MODI: "modi",
}
_ENCRYPTION_NAMES = {
    dfvfs_definitions.TYPE_INDICATOR_BDE: "bitlocker",
    dfvfs_definitions.TYPE_INDICATOR_LUKSDE: "luks",
}
# Volume systems dfVFS walks for us (partition tables go through TSK, for mmls-identical results).
_DFVFS_VOLUME_SYSTEMS = {
    dfvfs_definitions.TYPE_INDICATOR_APFS_CONTAINER: "apfsContainer",
    dfvfs_definitions.TYPE_INDICATOR_CS: "coreStorage",
    dfvfs_definitions.TYPE_INDICATOR_LVM: "lvm",
}
_PARTITION_TABLE_INDICATORS = {
    dfvfs_definitions.TYPE_INDICATOR_TSK_PARTITION,
    dfvfs_definitions.TYPE_INDICATOR_GPT,
    dfvfs_definitions.TYPE_INDICATOR_APM,
}
# File systems that only dfVFS's own back-ends read (TSK reads NTFS, FAT, ext, ISO 9660 and HFS+).
_DFVFS_FILE_SYSTEMS = {
    dfvfs_definitions.TYPE_INDICATOR_APFS,
    dfvfs_definitions.TYPE_INDICATOR_XFS,
    dfvfs_definitions.TYPE_INDICATOR_EXT,
    dfvfs_definitions.TYPE_INDICATOR_FAT,
    dfvfs_definitions.TYPE_INDICATOR_HFS,
    dfvfs_definitions.TYPE_INDICATOR_NTFS,
}

_TSK_FS_TYPE_NAMES = {
    int(getattr(pytsk3, f"TSK_FS_TYPE_{name}")): name.lower()
    for name in (
        "NTFS",
        "FAT12",
        "FAT16",
        "FAT32",
        "EXFAT",
        "EXT2",
        "EXT3",
        "EXT4",
        "ISO9660",
        "HFS",
        "APFS",
        "FFS1",
        "FFS1B",
        "FFS2",
        "YAFFS2",
        "SWAP",
        "RAW",
    )
    if hasattr(pytsk3, f"TSK_FS_TYPE_{name}")
}
_TSK_VS_TYPE_NAMES = {
    int(getattr(pytsk3, f"TSK_VS_TYPE_{name}")): name.lower()
    for name in ("DOS", "GPT", "MAC", "BSD", "SUN", "APFS")
    if hasattr(pytsk3, f"TSK_VS_TYPE_{name}")
}
_TSK_DIRECTORY_TYPES = {int(pytsk3.TSK_FS_META_TYPE_DIR), int(pytsk3.TSK_FS_META_TYPE_VIRT_DIR)}
_TSK_NAME_DIRECTORY_TYPES = {int(pytsk3.TSK_FS_NAME_TYPE_DIR), int(pytsk3.TSK_FS_NAME_TYPE_VIRT_DIR)}
_NTFS_DATA = int(pytsk3.TSK_FS_ATTR_TYPE_NTFS_DATA)
NTFS_BAD_CLUSTERS_INODE = 8
_NTFS_INDEX_ROOT = int(pytsk3.TSK_FS_ATTR_TYPE_NTFS_IDXROOT)

# Secret kinds as the key store names them → the credential dfVFS/libbde/libluksde understands.
_SECRET_KINDS = {
    "password": "password",
    "passphrase": "password",
    "recovery_password": "recovery_password",
    "recoveryPassword": "recovery_password",
    "recovery-password": "recovery_password",
    "startup_key": "startup_key",
    "startupKey": "startup_key",
    "startup-key": "startup_key",
}
_CREDENTIALS_BY_ENCRYPTION = {
    dfvfs_definitions.TYPE_INDICATOR_BDE: ("password", "recovery_password", "startup_key"),
    dfvfs_definitions.TYPE_INDICATOR_LUKSDE: ("password",),
}

# MIME types too generic for an extension to "disagree" with (text/plain covers .log, .cfg, .c …).
_MIME_TYPES_WITHOUT_EXTENSION_CHECK = {"application/octet-stream", "application/x-empty", "inode/x-empty"}


@dataclass(frozen=True)
class WalkOptions:
    """How to walk one piece of evidence.

    ``file_name`` is the evidence file's name: dfVFS needs it to find an E01's next segments
    (``image.E02``…), a VMDK's extent files and a differencing VHD's parent, which are passed, by name,
    in ``related_files``. ``parents`` is accepted as another name for the same mapping.
    """

    file_name: str = "image.raw"
    related_files: Mapping[str, BinaryIO] = field(default_factory=dict)
    parents: Mapping[str, BinaryIO] = field(default_factory=dict)
    block_size: int = MIB
    mime_sniff_bytes: int = 8192
    # Hashing whole partitions reads the disk twice; the intake already hashed the image itself.
    hash_volumes: bool = False
    # A decrypted volume's hash is the proof that its secret was right: on by default.
    hash_decrypted_volumes: bool = True
    # TSK for every file system it reads (deleted files, fls-identical paths); dfVFS back-ends otherwise.
    prefer_tsk: bool = True
    max_depth: int = 16
    # libmagic threads (0: sniff in the walking thread). libmagic runs outside the GIL, so its work (the
    # most expensive per-file step) overlaps the walk; results are applied in order, output unchanged.
    mime_threads: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))
    # (index, count): walk only the share ``index`` of ``count`` worker processes. Each file system's
    # top-level entries are dealt out by ordinal (entry k to share k % count) with their whole subtree;
    # the layers above them (image, volumes, file systems) come from share 0. The union of the shares is
    # exactly the one-worker walk: same traces, uids and properties.
    shard: tuple[int, int] | None = None
    # Hand each file trace its raw stream as read here (``TraceRecord.content``), so that the content tools
    # run on this one read: the bytes themselves up to ``keep_content_max_bytes``, a reader through the
    # walk's open file beyond. Off by default: a walk that only lists and hashes keeps no bytes.
    keep_content: bool = False
    # The evidence is one file acquired alone (a mailbox, an archive, a document), not storage media:
    # its root is a file trace, which the content tools open as they would a file found on a disk.
    root_is_file: bool = False
    keep_content_max_bytes: int = 4 * MIB


@dataclass
class _Secret:
    credential: str
    value: Any
    kind: str


def normalise_secrets(secrets) -> list[_Secret]:
    """Accept the key store's ``[{kind, value}, …]``, or ``{kind: value | [values]}``; keep the order given."""
    if not secrets:
        return []
    pairs: list[tuple[str, Any]] = []
    if isinstance(secrets, Mapping) and "kind" not in secrets:
        for kind, value in secrets.items():
            values = value if isinstance(value, list | tuple) else [value]
            pairs.extend((kind, single) for single in values)
    else:
        items = [secrets] if isinstance(secrets, Mapping) else list(secrets)
        pairs.extend((item["kind"], item["value"]) for item in items)
    normalised = []
    for kind, value in pairs:
        credential = _SECRET_KINDS.get(kind)
        if credential is not None and value not in (None, ""):
            normalised.append(_Secret(credential=credential, value=value, kind=kind))
    return normalised


def iso8601(seconds: int | None, nanoseconds: int | None = 0) -> str | None:
    """POSIX time → ``2004-02-29T10:11:12.1234567Z`` (UTC, fraction only when there is one)."""
    if not seconds:
        return None
    try:
        moment = datetime.fromtimestamp(int(seconds), UTC)
    except (OverflowError, OSError, ValueError):
        return None
    if moment.year >= 1000:  # what strftime("%Y-%m-%dT%H:%M:%S") gives, without its cost (4 per file)
        text = (
            f"{moment.year}-{moment.month:02d}-{moment.day:02d}"
            f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
        )
    else:  # the C library's %Y does not pad years below 1000: keep exactly its text
        text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if nanoseconds:
        text += "." + f"{int(nanoseconds):09d}".rstrip("0")
    return text + "Z"


class StreamDigest:
    """MD5, SHA-1, SHA-256, byte histogram and the first bytes of a stream, all fed by the same blocks."""

    def __init__(self, *, head_size: int):
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        self._sha256 = hashlib.sha256()
        # Filled by the first block (most files are one block: no zeroed array to add to).
        self._counts = None if numpy is not None else [0] * 256
        self._head_size = head_size
        self.head = b""
        self.size = 0

    def update(self, block: bytes) -> None:
        self._md5.update(block)
        self._sha1.update(block)
        self._sha256.update(block)
        if numpy is not None:
            counts = numpy.bincount(numpy.frombuffer(block, dtype=numpy.uint8), minlength=256)
            if self._counts is None:
                self._counts = counts
            else:
                self._counts += counts
        else:  # bytes.count runs in C: 256 passes, still far faster than a Python loop over bytes
            for value in range(256):
                self._counts[value] += block.count(value)
        if len(self.head) < self._head_size:
            self.head += block[: self._head_size - len(self.head)]
        self.size += len(block)

    def entropy(self) -> float:
        if not self.size:
            return 0.0
        total = float(self.size)
        bits = 0.0
        # The byte values that occur, in order (numpy picks them out in C; a text file has few): the sum
        # runs in the same order with the same float operations as always, so the value never changes.
        if numpy is not None:
            counts = self._counts[self._counts.nonzero()].tolist()
        else:
            counts = [count for count in self._counts if count]
        log2 = math.log2
        for count in counts:
            probability = count / total
            bits -= probability * log2(probability)
        # Rounded so that the stored value is the same on every machine and run.
        return round(bits, 6)

    def fill(self, stream: DataStream) -> None:
        stream.md5 = self._md5.hexdigest()
        stream.sha1 = self._sha1.hexdigest()
        stream.sha256 = self._sha256.hexdigest()
        stream.entropy = self.entropy()


def extension_mismatch(*, file_name: str, mime_type: str | None) -> bool | None:
    """True when the name's extension is not one the detected MIME type is known by; None when unknown."""
    if not mime_type or mime_type in _MIME_TYPES_WITHOUT_EXTENSION_CHECK or mime_type.startswith("text/"):
        return None
    stem, dot, extension = file_name.rpartition(".")
    if not dot or not stem or not extension or len(extension) > 8:
        return None
    known_extensions = {known.lower() for known in mimetypes.guess_all_extensions(mime_type, strict=False)}
    if not known_extensions:
        return None
    return f".{extension.lower()}" not in known_extensions


# Heads remembered with their MIME type, at most this many bytes of them per walk.
_KNOWN_HEAD_BYTES = 16 * MIB


class _MimeSniffer:
    """libmagic on the first bytes of streams, in worker threads, each with its own libmagic cookie.

    ``magic_buffer`` is a ctypes call, which releases the GIL: with threads, libmagic (about 1 ms for 8 KiB
    of text, the walk's most expensive step) runs beside the walk instead of in between its reads.
    """

    def __init__(self, *, threads: int):
        self._per_thread = threading.local()
        # libmagic's answer depends on the bytes it is given and nothing else: identical heads (copies of
        # a file, files that start alike up to the sniffed length) are asked once.
        self._known: dict[bytes, str] = {}
        self._known_bytes = 0
        self._pool = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="custodia-magic") if threads > 0 else None
        )
        if self._pool is not None:
            # Each thread loads libmagic's database (a tenth of a second or more) while the walk opens the
            # image and lists its first folders, not when the first files wait for their MIME types.
            barrier = threading.Barrier(threads)
            for _ in range(threads):
                self._pool.submit(self._warm_up, barrier)

    def _warm_up(self, barrier: threading.Barrier) -> None:
        self._cookie()
        # Holding each thread until all have started makes the pool start them all.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=10)

    def _cookie(self) -> magic.Magic:
        cookie = getattr(self._per_thread, "cookie", None)
        if cookie is None:
            cookie = self._per_thread.cookie = magic.Magic(mime=True)
        return cookie

    def sniff(self, head: bytes) -> str:
        mime_type = self._cookie().from_buffer(head)
        if self._known_bytes < _KNOWN_HEAD_BYTES:  # dict writes are atomic: no lock between threads
            self._known[head] = mime_type
            self._known_bytes += len(head)  # a lost update under a race only bends the bound a little
        return mime_type

    def submit(self, head: bytes) -> Future:
        known = self._known.get(head)
        if known is not None:  # the same first bytes as a file sniffed before: libmagic's answer again
            answered: Future = Future()
            answered.set_result(known)
            return answered
        if self._pool is None:
            future: Future = Future()
            try:
                future.set_result(self.sniff(head))
            except Exception as error:
                future.set_exception(error)
            return future
        return self._pool.submit(self.sniff, head)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@dataclass
class _PendingMime:
    """A MIME type being sniffed for one stream of a trace not yet yielded."""

    trace: TraceRecord
    stream: DataStream
    file_name: str | None
    future: Future
    error_index: int  # where a libmagic error goes in trace.errors, as if it had been found at once


# Traces held back while their MIME types are sniffed (each holds at most mime_sniff_bytes of head, and,
# with WalkOptions.keep_content, its kept bytes: those are bounded in total too).
_MAX_TRACES_IN_FLIGHT = 256
_MAX_CONTENT_BYTES_IN_FLIGHT = 64 * MIB


class _Walk:
    """One extraction of one piece of evidence. Not thread-safe; one instance per walk."""

    def __init__(self, *, file_object: BinaryIO, evidence_id: str, secrets, options: WalkOptions):
        self.evidence_id = evidence_id
        self.options = options
        related = {**options.parents, **options.related_files}
        self.context = source.new_resolver_context(
            file_object=file_object, file_name=options.file_name, related_files=related
        )
        self.secrets = normalise_secrets(secrets)
        self.sniffer = _MimeSniffer(threads=options.mime_threads)
        self._pending_mime: list[_PendingMime] = []
        self._credential_specs: list[Any] = []
        self._key_directory: tempfile.TemporaryDirectory | None = None
        shard_index, shard_count = options.shard or (0, 1)
        if not 0 <= shard_index < shard_count:
            raise ValueError(f"shard {options.shard} is not (index, count) with 0 <= index < count")
        self.shard_index, self.shard_count = shard_index, shard_count

    # ------------------------------------------------------------------ entry point

    def run(self) -> Iterator[TraceRecord]:
        """The walk's traces, in the walk's order, each once its MIME types are known."""
        waiting: deque[tuple[TraceRecord, list[_PendingMime]]] = deque()
        content_bytes = 0  # kept content of the traces waiting
        try:
            for trace in self._walk_evidence():
                pending, self._pending_mime = self._pending_mime, []
                if self.shard_index != 0 and "file" not in trace.types:
                    continue  # layers above the files are share 0's
                waiting.append((trace, pending))
                content_bytes += _kept_bytes(trace)
                while waiting and (
                    len(waiting) > _MAX_TRACES_IN_FLIGHT
                    or content_bytes > _MAX_CONTENT_BYTES_IN_FLIGHT
                    or all(item.future.done() for item in waiting[0][1])
                ):
                    ready, ready_pending = waiting.popleft()
                    content_bytes -= _kept_bytes(ready)
                    self._apply_mime(ready_pending)
                    yield ready
            while waiting:
                ready, ready_pending = waiting.popleft()
                self._apply_mime(ready_pending)
                yield ready
        finally:
            self.sniffer.close()
            self._forget_credentials()

    def _owns_top_level_entry(self, ordinal: int) -> bool:
        return ordinal % self.shard_count == self.shard_index

    @staticmethod
    def _apply_mime(pending: list[_PendingMime]) -> None:
        errors_inserted: dict[int, int] = {}
        for item in pending:
            trace, stream = item.trace, item.stream
            try:
                stream.mime_type = item.future.result()
            except Exception as error:
                shift = errors_inserted.get(id(trace), 0)
                trace.errors.insert(
                    item.error_index + shift, TraceError(tool="python-magic", message=str(error), stream=stream.name)
                )
                errors_inserted[id(trace)] = shift + 1
            if stream.name == "raw" and item.file_name is not None:
                _set_file_mime_type(trace=trace, file_name=item.file_name, mime_type=stream.mime_type)

    def _walk_evidence(self) -> Iterator[TraceRecord]:
        root_spec = source.root_path_spec(file_name=self.options.file_name)
        uid = root_uid(evidence_id=self.evidence_id)
        name = root_spec.location.lstrip("/")
        trace = TraceRecord(uid=uid, parent_uid=None, name=name, path="/" + name, types=["image"])
        trace.tools["image"] = TOOL_DFVFS
        if self.options.root_is_file:
            yield from self._single_file(spec=root_spec, trace=trace)
            return
        media_spec = root_spec
        image_format = "raw"
        try:
            indicators = dfvfs_analyzer.Analyzer.GetStorageMediaImageTypeIndicators(
                root_spec, resolver_context=self.context
            )
            indicators = [indicator for indicator in indicators if indicator in _STORAGE_MEDIA_NAMES]
            if len(indicators) == 1:
                media_spec = path_spec_factory.Factory.NewPathSpec(indicators[0], parent=root_spec)
                image_format = _STORAGE_MEDIA_NAMES[indicators[0]]
            elif len(indicators) > 1:
                trace.errors.append(TraceError(tool="dfvfs", message=f"ambiguous image formats {indicators}"))
        except Exception as error:
            trace.errors.append(TraceError(tool="dfvfs", message=f"image format detection failed: {error}"))
        trace.properties["image.format"] = image_format
        try:
            media = dfvfs_resolver.Resolver.OpenFileObject(media_spec, resolver_context=self.context)
            size = media.get_size()
            trace.properties["image.size"] = size
            trace.streams.append(DataStream(name="raw", size=size, data_path=source.serialise_path_spec(media_spec)))
        except Exception as error:
            trace.errors.append(TraceError(tool="dfvfs", message=f"cannot open the {image_format} image: {error}"))
            yield trace
            return
        if self.options.hash_volumes:
            self._hash_dfvfs_stream(trace=trace, stream=trace.streams[0], path_spec=media_spec)
        yield trace
        yield from self._explore(spec=media_spec, parent=trace, depth=0)

    def _single_file(self, *, spec, trace: TraceRecord) -> Iterator[TraceRecord]:
        if self.shard_index != 0:
            return  # one file: share 0's
        trace.types = ["file"]
        trace.tools = {"file": TOOL_DFVFS}
        try:
            file_object = dfvfs_resolver.Resolver.OpenFileObject(spec, resolver_context=self.context)
            size = file_object.get_size()
        except Exception as error:
            trace.errors.append(TraceError(tool="dfvfs", message=f"cannot open the evidence file: {error}"))
            yield trace
            return
        trace.properties["file.size"] = size
        stream = DataStream(name="raw", size=size, data_path=source.serialise_path_spec(spec))
        trace.streams.append(stream)
        self._digest_reader(
            trace=trace, stream=stream, read_at=_reader_of(file_object), size=size, file_name=trace.name, tool="dfvfs"
        )
        yield trace

    # ------------------------------------------------------------------ what is inside a run of bytes

    def _explore(self, *, spec, parent: TraceRecord, depth: int) -> Iterator[TraceRecord]:
        """Yield the children of ``parent``, whose bytes ``spec`` names: volumes, a file system, …"""
        if depth > self.options.max_depth:
            parent.errors.append(TraceError(tool="custodia", message="layers nested too deep; stopped"))
            return
        ordinal = 0
        volume_indicators: list[str] = []
        try:
            volume_indicators = dfvfs_analyzer.Analyzer.GetVolumeSystemTypeIndicators(
                spec, resolver_context=self.context
            )
        except Exception as error:
            yield self._error_trace(parent=parent, ordinal=ordinal, tool="dfvfs", message=str(error))
            return

        encryption = [indicator for indicator in volume_indicators if indicator in _ENCRYPTION_NAMES]
        if encryption:
            yield from self._encrypted_volume(
                spec=spec, type_indicator=encryption[0], parent=parent, ordinal=ordinal, depth=depth
            )
            return

        other_volume_systems = [indicator for indicator in volume_indicators if indicator in _DFVFS_VOLUME_SYSTEMS]
        if other_volume_systems:
            yield from self._dfvfs_volumes(
                spec=spec, type_indicator=other_volume_systems[0], parent=parent, depth=depth, first_ordinal=ordinal
            )
            return

        tsk_file_system = self._open_tsk_file_system(spec) if self.options.prefer_tsk else None
        if tsk_file_system is None:
            partitions = self._tsk_partitions(spec, hinted=bool(_PARTITION_TABLE_INDICATORS & set(volume_indicators)))
            if partitions:
                yield from self._partition_volumes(spec=spec, volume_info=partitions, parent=parent, depth=depth)
                return

        if dfvfs_definitions.TYPE_INDICATOR_VSHADOW in volume_indicators:
            for trace in self._dfvfs_volumes(
                spec=spec,
                type_indicator=dfvfs_definitions.TYPE_INDICATOR_VSHADOW,
                parent=parent,
                depth=depth,
                first_ordinal=ordinal,
            ):
                if trace.parent_uid == parent.uid:
                    ordinal += 1
                yield trace

        if tsk_file_system is not None:
            yield from self._tsk_file_system(spec=spec, fs_info=tsk_file_system, parent=parent, ordinal=ordinal)
            return
        yield from self._dfvfs_file_system(spec=spec, parent=parent, ordinal=ordinal)

    def _error_trace(self, *, parent: TraceRecord, ordinal: int, tool: str, message: str) -> TraceRecord:
        trace = TraceRecord(
            uid=child_uid(parent_uid=parent.uid, ordinal=ordinal),
            parent_uid=parent.uid,
            name="unreadable",
            path=f"{parent.path}/unreadable",
            types=["unreadable"],
        )
        trace.errors.append(TraceError(tool=tool, message=message))
        return trace

    # ------------------------------------------------------------------ partition tables (TSK)

    def _tsk_image(self, spec):
        file_object = dfvfs_resolver.Resolver.OpenFileObject(spec, resolver_context=self.context)
        return tsk_image.TSKFileSystemImage(file_object)

    def _tsk_partitions(self, spec, *, hinted: bool):
        try:
            volume_info = pytsk3.Volume_Info(self._tsk_image(spec))
        except OSError:
            return None
        allocated = [part for part in volume_info if int(part.flags) & int(pytsk3.TSK_VS_PART_FLAG_ALLOC)]
        if not allocated and not hinted:
            return None
        return volume_info

    def _partition_volumes(self, *, spec, volume_info, parent: TraceRecord, depth: int) -> Iterator[TraceRecord]:
        block_size = int(getattr(volume_info.info, "block_size", 512) or 512)
        table = _TSK_VS_TYPE_NAMES.get(int(volume_info.info.vstype), str(volume_info.info.vstype))
        parts = [part for part in volume_info if int(part.flags) & int(pytsk3.TSK_VS_PART_FLAG_ALLOC)]
        # TSK lists parts by start sector; sort again on (start, address) so the order never depends on it.
        parts.sort(key=lambda part: (int(part.start), int(part.addr)))
        for ordinal, part in enumerate(parts):
            index = ordinal + 1
            location = f"/p{index}"
            offset = int(part.start) * block_size
            size = int(part.len) * block_size
            part_spec = path_spec_factory.Factory.NewPathSpec(
                dfvfs_definitions.TYPE_INDICATOR_TSK_PARTITION, location=location, start_offset=offset, parent=spec
            )
            description = part.desc.decode("utf-8", "replace") if isinstance(part.desc, bytes) else str(part.desc)
            trace = TraceRecord(
                uid=child_uid(parent_uid=parent.uid, ordinal=ordinal),
                parent_uid=parent.uid,
                name=f"p{index}",
                path=f"{parent.path}/p{index}",
                types=["volume"],
                properties={
                    "volume.partitionTable": table,
                    "volume.partitionIndex": index,
                    "volume.partitionType": description,
                    "volume.offset": offset,
                    "volume.size": size,
                    "volume.startSector": int(part.start),
                    "volume.sectorCount": int(part.len),
                    "volume.sectorSize": block_size,
                    # TSK's table number: 0 is the primary table, 1… the nested extended tables.
                    "volume.tableNumber": int(part.table_num),
                    "volume.slotNumber": int(part.slot_num),
                },
                streams=[DataStream(name="raw", size=size, data_path=source.serialise_path_spec(part_spec))],
                tools={"volume": TOOL_PYTSK3},
            )
            if self.options.hash_volumes:
                self._hash_dfvfs_stream(trace=trace, stream=trace.streams[0], path_spec=part_spec)
            yield trace
            yield from self._explore(spec=part_spec, parent=trace, depth=depth + 1)

    # ------------------------------------------------------------------ volume systems dfVFS walks

    def _dfvfs_volumes(
        self, *, spec, type_indicator: str, parent: TraceRecord, depth: int, first_ordinal: int
    ) -> Iterator[TraceRecord]:
        system_spec = path_spec_factory.Factory.NewPathSpec(type_indicator, location="/", parent=spec)
        try:
            file_system = dfvfs_resolver.Resolver.OpenFileSystem(system_spec, resolver_context=self.context)
            entries = list(file_system.GetRootFileEntry().sub_file_entries)
        except Exception as error:
            yield self._error_trace(parent=parent, ordinal=first_ordinal, tool="dfvfs", message=str(error))
            return
        system_name = (
            "volumeShadowCopy"
            if type_indicator == dfvfs_definitions.TYPE_INDICATOR_VSHADOW
            else _DFVFS_VOLUME_SYSTEMS.get(type_indicator, type_indicator.lower())
        )
        entries.sort(key=lambda entry: _natural_key(entry.name or ""))
        for offset_in_siblings, entry in enumerate(entries):
            ordinal = first_ordinal + offset_in_siblings
            name = entry.name or f"volume{offset_in_siblings + 1}"
            volume_spec = entry.path_spec
            trace = TraceRecord(
                uid=child_uid(parent_uid=parent.uid, ordinal=ordinal),
                parent_uid=parent.uid,
                name=name,
                path=f"{parent.path}/{name}",
                types=["volume", "volumeShadowCopy"] if system_name == "volumeShadowCopy" else ["volume"],
                properties={"volume.system": system_name, "volume.index": offset_in_siblings + 1},
                tools={"volume": TOOL_DFVFS},
            )
            if type_indicator == dfvfs_definitions.TYPE_INDICATOR_APFS_CONTAINER:
                # An APFS volume is no run of bytes but a file system sharing the container's blocks:
                # dfVFS opens it as one (as its source scanner does), never as a stream.
                try:
                    volume = entry.GetAPFSVolume()
                    trace.properties["volume.name"] = volume.name or ""
                    trace.properties["volume.identifier"] = str(volume.identifier or "")
                    trace.properties["volume.locked"] = bool(volume.is_locked())
                except Exception as error:
                    trace.errors.append(TraceError(tool="dfvfs", message=f"cannot read the APFS volume: {error}"))
                yield trace
                yield from self._dfvfs_file_system(
                    spec=volume_spec, parent=trace, ordinal=0, known_type=dfvfs_definitions.TYPE_INDICATOR_APFS
                )
                continue
            try:
                file_object = dfvfs_resolver.Resolver.OpenFileObject(volume_spec, resolver_context=self.context)
                size = file_object.get_size()
                trace.properties["volume.size"] = size
                trace.streams.append(
                    DataStream(name="raw", size=size, data_path=source.serialise_path_spec(volume_spec))
                )
                if self.options.hash_volumes:
                    self._hash_dfvfs_stream(trace=trace, stream=trace.streams[0], path_spec=volume_spec)
            except Exception as error:
                trace.errors.append(TraceError(tool="dfvfs", message=f"cannot open volume: {error}"))
                yield trace
                continue
            yield trace
            yield from self._explore(spec=volume_spec, parent=trace, depth=depth + 1)

    # ------------------------------------------------------------------ encrypted volumes

    def _encrypted_volume(
        self, *, spec, type_indicator: str, parent: TraceRecord, ordinal: int, depth: int
    ) -> Iterator[TraceRecord]:
        kind = _ENCRYPTION_NAMES[type_indicator]
        encrypted_spec = path_spec_factory.Factory.NewPathSpec(type_indicator, parent=spec)
        trace = TraceRecord(
            uid=child_uid(parent_uid=parent.uid, ordinal=ordinal),
            parent_uid=parent.uid,
            name=kind,
            path=f"{parent.path}/{kind}",
            types=["encryptedVolume"],
            properties={"encryptedVolume.type": kind, "encryptedVolume.unlocked": False},
            tools={"encryptedVolume": TOOL_DFVFS},
        )
        try:
            encrypted_bytes = dfvfs_resolver.Resolver.OpenFileObject(spec, resolver_context=self.context)
            trace.streams.append(
                DataStream(name="raw", size=encrypted_bytes.get_size(), data_path=source.serialise_path_spec(spec))
            )
            trace.properties.update(self._describe_encrypted_volume(type_indicator, encrypted_bytes))
        except Exception as error:
            trace.errors.append(TraceError(tool="dfvfs", message=f"cannot read the encrypted volume: {error}"))
            yield trace
            return

        unlocked_with = None
        for secret in self.secrets:
            if secret.credential not in _CREDENTIALS_BY_ENCRYPTION[type_indicator]:
                continue
            try:
                if self._try_unlock(type_indicator=type_indicator, spec=spec, secret=secret):
                    unlocked_with = secret
                    break
            except Exception as error:
                trace.errors.append(TraceError(tool=kind, message=f"{secret.kind} rejected: {error}"))
        if unlocked_with is None and type_indicator == dfvfs_definitions.TYPE_INDICATOR_LUKSDE:
            unlocked_with = self._unlock_luks1_in_python(encrypted_bytes=encrypted_bytes, trace=trace)
            if unlocked_with is not None:
                encrypted_spec = path_spec_factory.Factory.NewPathSpec(luks.TYPE_INDICATOR_LUKS1, parent=spec)
                trace.tools["encryptedVolume"] = TOOL_LUKS1
        if unlocked_with is None:
            accepted = ", ".join(_CREDENTIALS_BY_ENCRYPTION[type_indicator]).replace("_", " ")
            trace.properties["encryptedVolume.hint"] = (
                f"This {kind} volume is locked: add its {accepted} to the evidence's secrets and extract again."
                if not self.secrets
                else f"None of the evidence's secrets unlocks this {kind} volume; add its {accepted} and extract again."
            )
            yield trace
            return

        self._remember_credential(encrypted_spec, unlocked_with)
        trace.properties["encryptedVolume.unlocked"] = True
        trace.properties["encryptedVolume.unlockedWith"] = unlocked_with.credential
        try:
            decrypted = dfvfs_resolver.Resolver.OpenFileObject(encrypted_spec, resolver_context=self.context)
            stream = DataStream(
                name="decrypted", size=decrypted.get_size(), data_path=source.serialise_path_spec(encrypted_spec)
            )
            trace.streams.append(stream)
            if self.options.hash_decrypted_volumes:
                self._hash_dfvfs_stream(trace=trace, stream=stream, path_spec=encrypted_spec)
        except Exception as error:
            trace.errors.append(TraceError(tool=kind, message=f"cannot read the decrypted volume: {error}"))
            yield trace
            return
        yield trace
        yield from self._explore(spec=encrypted_spec, parent=trace, depth=depth + 1)

    def _unlock_luks1_in_python(self, *, encrypted_bytes, trace: TraceRecord) -> _Secret | None:
        """libluksde refuses some LUKS1 volumes (128-bit keys): recover their master key as cryptsetup does."""
        for secret in self.secrets:
            if secret.credential != "password":
                continue
            try:
                if luks.recover_master_key(file_object=encrypted_bytes, passphrase=str(secret.value)) is not None:
                    return secret
            except (OSError, ValueError) as error:
                trace.errors.append(TraceError(tool="custodia-luks1", message=f"{secret.kind} rejected: {error}"))
        return None

    def _describe_encrypted_volume(self, type_indicator: str, encrypted_bytes) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        volume = self._new_crypto_volume(type_indicator)
        try:
            volume.open_file_object(encrypted_bytes)
            identifier = getattr(volume, "identifier", None) or getattr(volume, "volume_identifier", None)
            if identifier:
                properties["encryptedVolume.identifier"] = str(identifier)
            method = getattr(volume, "encryption_method", None)
            if method is not None:
                properties["encryptedVolume.encryptionMethod"] = int(method)
            if type_indicator == dfvfs_definitions.TYPE_INDICATOR_BDE:
                properties["encryptedVolume.keyProtectors"] = volume.number_of_key_protectors
        finally:
            volume.close()
        return properties

    @staticmethod
    def _new_crypto_volume(type_indicator: str):
        if type_indicator == dfvfs_definitions.TYPE_INDICATOR_BDE:
            import pybde

            return pybde.volume()
        import pyluksde

        return pyluksde.volume()

    def _credential_value(self, secret: _Secret):
        if secret.credential != "startup_key":
            return str(secret.value)
        # libbde reads a startup key (.BEK) only from a path: keep it in a private directory for the walk.
        data = secret.value
        if isinstance(data, str):
            data = base64.b64decode(data)
        if self._key_directory is None:
            self._key_directory = tempfile.TemporaryDirectory(prefix="custodia-keys-")
        key_path = os.path.join(self._key_directory.name, f"startup-{len(self._credential_specs)}.bek")
        with open(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as key_file:
            key_file.write(data)
        return key_path

    def _try_unlock(self, *, type_indicator: str, spec, secret: _Secret) -> bool:
        encrypted_bytes = dfvfs_resolver.Resolver.OpenFileObject(spec, resolver_context=self.context)
        volume = self._new_crypto_volume(type_indicator)
        value = self._credential_value(secret)
        secret.value = value  # a startup key is now its private path; reuse it for dfVFS
        if secret.credential == "password":
            volume.set_password(value)
        elif secret.credential == "recovery_password":
            volume.set_recovery_password(value)
        else:
            volume.read_startup_key(value)
        try:
            volume.open_file_object(encrypted_bytes)
            return not volume.is_locked()
        except OSError:
            return False
        finally:
            volume.close()

    def _remember_credential(self, encrypted_spec, secret: _Secret) -> None:
        dfvfs_resolver.Resolver.key_chain.SetCredential(encrypted_spec, secret.credential, secret.value)
        self._credential_specs.append(encrypted_spec)

    def _forget_credentials(self) -> None:
        # dfVFS's key chain is process-wide: leave no secret of this evidence behind in it.
        stored = dfvfs_resolver.Resolver.key_chain._credentials_per_path_spec
        for encrypted_spec in self._credential_specs:
            stored.pop(encrypted_spec.comparable, None)
        self._credential_specs = []
        if self._key_directory is not None:
            self._key_directory.cleanup()
            self._key_directory = None

    # ------------------------------------------------------------------ file systems through TSK

    def _open_tsk_file_system(self, spec):
        try:
            return pytsk3.FS_Info(self._tsk_image(spec), offset=0)
        except OSError:
            return None

    def _tsk_file_system(self, *, spec, fs_info, parent: TraceRecord, ordinal: int) -> Iterator[TraceRecord]:
        fs_type = _TSK_FS_TYPE_NAMES.get(int(fs_info.info.ftype), str(fs_info.info.ftype))
        is_ntfs = fs_type == "ntfs"
        fs_trace = TraceRecord(
            uid=child_uid(parent_uid=parent.uid, ordinal=ordinal),
            parent_uid=parent.uid,
            name=fs_type,
            path=f"{parent.path}/{fs_type}",
            types=["fileSystem"],
            properties={
                "fileSystem.type": fs_type,
                "fileSystem.blockSize": int(fs_info.info.block_size),
                "fileSystem.blockCount": int(fs_info.info.block_count),
                "fileSystem.rootInode": int(fs_info.info.root_inum),
            },
            tools={"fileSystem": TOOL_PYTSK3},
        )
        try:
            root_entries = self._tsk_directory_entries(fs_info, int(fs_info.info.root_inum))
        except OSError as error:
            fs_trace.errors.append(TraceError(tool="pytsk3", message=f"cannot list the root folder: {error}"))
            yield fs_trace
            return
        yield fs_trace
        walk = _TskWalk(walk=self, fs_info=fs_info, volume_spec=spec, is_ntfs=is_ntfs)
        yield from walk.children(
            entries=root_entries,
            parent=fs_trace,
            fs_path="",
            directory_stack=(int(fs_info.info.root_inum),),
            deal_out=True,
        )

    @staticmethod
    def _tsk_directory_entries(fs_info, inode: int) -> list:
        entries = []
        for entry in fs_info.open_dir(inode=inode):
            name_info = getattr(entry.info, "name", None)
            if name_info is None:
                continue
            raw_name = name_info.name
            if raw_name in (b".", b"..", ".", ".."):
                continue
            entries.append(entry)
        entries.sort(key=_tsk_sort_key)
        return entries

    # ------------------------------------------------------------------ file systems through dfVFS

    def _dfvfs_file_system(
        self, *, spec, parent: TraceRecord, ordinal: int, known_type: str | None = None
    ) -> Iterator[TraceRecord]:
        try:
            indicators = (
                [known_type]
                if known_type
                else dfvfs_analyzer.Analyzer.GetFileSystemTypeIndicators(spec, resolver_context=self.context)
            )
        except Exception as error:
            parent.errors.append(TraceError(tool="dfvfs", message=f"file system detection failed: {error}"))
            return
        indicators = [indicator for indicator in indicators if indicator in _DFVFS_FILE_SYSTEMS]
        if not indicators:
            # Nothing recognisable (wiped, unformatted or an unsupported format): the volume stays a leaf.
            return
        type_indicator = indicators[0]
        fs_name = type_indicator.lower()
        fs_spec = path_spec_factory.Factory.NewPathSpec(type_indicator, location="/", parent=spec)
        if type_indicator == dfvfs_definitions.TYPE_INDICATOR_APFS:
            fs_spec = path_spec_factory.Factory.NewPathSpec(type_indicator, location="/", identifier=2, parent=spec)
        fs_trace = TraceRecord(
            uid=child_uid(parent_uid=parent.uid, ordinal=ordinal),
            parent_uid=parent.uid,
            name=fs_name,
            path=f"{parent.path}/{fs_name}",
            types=["fileSystem"],
            properties={"fileSystem.type": fs_name},
            tools={"fileSystem": TOOL_DFVFS},
        )
        try:
            file_system = dfvfs_resolver.Resolver.OpenFileSystem(fs_spec, resolver_context=self.context)
            root = file_system.GetRootFileEntry()
            entries = sorted(root.sub_file_entries, key=lambda entry: (entry.name or "").encode("utf-8"))
        except Exception as error:
            fs_trace.errors.append(TraceError(tool="dfvfs", message=f"cannot open the file system: {error}"))
            yield fs_trace
            return
        yield fs_trace
        yield from self._dfvfs_children(entries=entries, parent=fs_trace, fs_path="", deal_out=True)

    def _dfvfs_children(
        self, *, entries, parent: TraceRecord, fs_path: str, deal_out: bool = False
    ) -> Iterator[TraceRecord]:
        for ordinal, entry in enumerate(entries):
            if deal_out and not self._owns_top_level_entry(ordinal):
                continue
            name = entry.name or ""
            path_in_fs = f"{fs_path}/{name}"
            is_directory = entry.IsDirectory()
            trace = TraceRecord(
                uid=child_uid(parent_uid=parent.uid, ordinal=ordinal),
                parent_uid=parent.uid,
                name=name,
                path=f"{parent.path}/{name}",
                types=["file", "folder"] if is_directory else ["file"],
                deleted=not entry.IsAllocated(),
                tools={"file": TOOL_DFVFS},
            )
            properties = {"file.name": name, "file.path": path_in_fs, "file.deleted": trace.deleted}
            if entry.size is not None and not is_directory:
                properties["file.size"] = int(entry.size)
            for property_name, date_time in (
                ("file.createdOn", entry.creation_time),
                ("file.modifiedOn", entry.modification_time),
                ("file.accessedOn", entry.access_time),
                ("file.changedOn", entry.change_time),
            ):
                if date_time is not None:
                    text = date_time.CopyToDateTimeStringISO8601()
                    if text:
                        properties[property_name] = text
            trace.properties.update(properties)
            sub_entries = []
            if is_directory:
                try:
                    sub_entries = sorted(entry.sub_file_entries, key=lambda child: (child.name or "").encode("utf-8"))
                except Exception as error:
                    trace.errors.append(TraceError(tool="dfvfs", message=f"cannot list the folder: {error}"))
            for data_stream in sorted(entry.data_streams, key=lambda stream: stream.name or ""):
                stream_name = "raw" if not data_stream.name else f"ads:{data_stream.name}"
                properties = path_spec_factory.Factory.GetProperties(entry.path_spec)
                properties["parent"] = entry.path_spec.parent
                if data_stream.name:
                    properties["data_stream"] = data_stream.name
                stream_spec = path_spec_factory.Factory.NewPathSpec(entry.path_spec.type_indicator, **properties)
                stream = DataStream(name=stream_name, size=0, data_path=source.serialise_path_spec(stream_spec))
                trace.streams.append(stream)
                try:
                    file_object = entry.GetFileObject(data_stream_name=data_stream.name)
                    stream.size = int(file_object.get_size())
                    self._digest_reader(
                        trace=trace,
                        stream=stream,
                        read_at=_reader_of(file_object),
                        size=stream.size,
                        file_name=name,
                        tool="dfvfs",
                    )
                except Exception as error:
                    trace.errors.append(TraceError(tool="dfvfs", message=str(error), stream=stream_name))
            yield trace
            if sub_entries:
                yield from self._dfvfs_children(entries=sub_entries, parent=trace, fs_path=path_in_fs)

    # ------------------------------------------------------------------ reading and digesting

    def _hash_dfvfs_stream(self, *, trace: TraceRecord, stream: DataStream, path_spec) -> None:
        if self.shard_index != 0:
            return  # volumes are share 0's traces: the other shares drop them
        try:
            file_object = dfvfs_resolver.Resolver.OpenFileObject(path_spec, resolver_context=self.context)
            self._digest_reader(
                trace=trace,
                stream=stream,
                read_at=_reader_of(file_object),
                size=stream.size,
                file_name=None,
                tool="dfvfs",
            )
        except Exception as error:
            trace.errors.append(TraceError(tool="dfvfs", message=str(error), stream=stream.name))

    def _digest_reader(self, *, trace, stream: DataStream, read_at, size: int, file_name: str | None, tool: str):
        """Read ``size`` bytes in blocks; every tool (hashes, entropy, MIME) sees the same single read.

        With ``WalkOptions.keep_content``, a file's raw stream also goes with its trace (its bytes, or a
        reader for a large one), for the content tools."""
        digest = StreamDigest(head_size=self.options.mime_sniff_bytes)
        keep = self.options.keep_content and stream.name == "raw" and file_name is not None
        blocks: list[bytes] | None = [] if keep and size <= self.options.keep_content_max_bytes else None
        offset = 0
        while offset < size:
            wanted = min(self.options.block_size, size - offset)
            block = read_at(offset, wanted)
            if not block:
                trace.errors.append(
                    TraceError(tool=tool, message=f"short read at {offset} of {size} bytes", stream=stream.name)
                )
                keep = False  # the tools read it again themselves, as they would any unreadable file
                break
            digest.update(block)
            if blocks is not None:
                blocks.append(block)
            offset += len(block)
        if keep:
            if blocks is None:
                trace.content = RawContent(head=digest.head, size=size, read_at=read_at)
            else:
                data = blocks[0] if len(blocks) == 1 else b"".join(blocks)
                trace.content = RawContent(head=digest.head, size=size, data=data)
        digest.fill(stream)
        if digest.size != size:
            stream.size = digest.size
        if stream.name == "raw" and file_name is not None:
            # Its place among the properties is taken now; run() fills it in before the trace is yielded.
            trace.properties["file.mimeType"] = None
            trace.tools.setdefault("data", TOOL_HASHES)
        if digest.size:
            self._pending_mime.append(
                _PendingMime(
                    trace=trace,
                    stream=stream,
                    file_name=file_name,
                    future=self.sniffer.submit(digest.head),
                    error_index=len(trace.errors),
                )
            )


def _set_file_mime_type(*, trace: TraceRecord, file_name: str, mime_type: str | None) -> None:
    """``file.mimeType`` (whose place was taken when the stream was read) and ``file.extensionMismatch``."""
    properties = trace.properties
    properties["file.mimeType"] = mime_type
    mismatch = extension_mismatch(file_name=file_name, mime_type=mime_type)
    if mismatch is None:
        return
    if next(reversed(properties)) == "file.mimeType":
        properties["file.extensionMismatch"] = mismatch
        return
    # Something was added after the MIME type's place: put the mismatch right after it, as always.
    items = list(properties.items())
    position = next(index for index, (key, _) in enumerate(items) if key == "file.mimeType") + 1
    items.insert(position, ("file.extensionMismatch", mismatch))
    properties.clear()
    properties.update(items)


def _kept_bytes(trace: TraceRecord) -> int:
    content = trace.content
    return len(content.data) if content is not None and content.data is not None else 0


def _reader_of(file_object):
    def read_at(offset: int, size: int) -> bytes:
        file_object.seek(offset, os.SEEK_SET)
        return file_object.read(size)

    return read_at


def _natural_key(name: str) -> tuple:
    """``p2`` before ``p10``: names are compared by their text and numbers by their value."""
    head = name.rstrip("0123456789")
    tail = name[len(head) :]
    return (head, int(tail) if tail else -1, name)


def _tsk_sort_key(entry) -> tuple:
    name_info = entry.info.name
    raw_name = name_info.name if isinstance(name_info.name, bytes) else str(name_info.name).encode("utf-8")
    meta_address = int(getattr(name_info, "meta_addr", 0) or 0)
    unallocated = bool(int(name_info.flags) & int(pytsk3.TSK_FS_NAME_FLAG_UNALLOC))
    return (raw_name, meta_address, unallocated)


class _TskDataPaths:
    """The data path of a TSK stream exactly as ``source.serialise_path_spec`` writes it, without a path
    spec and a JSON encoding of the whole chain per stream: the parent chain is encoded once per file
    system. Keys are in sorted order, as ``serialise_path_spec`` writes them, and the first stream of each
    file system is checked against a real serialisation.
    """

    _PROPERTY_NAMES = ("inode", "location", "data_stream")

    def __init__(self, *, volume_spec):
        self.volume_spec = volume_spec
        probe = json.loads(self._slow(inode=1, location="/probe", data_stream="probe"))
        # serialise_path_spec sorts keys, and these three sort between "__type__" and "parent".
        self._key_order = sorted(key for key in probe if key in self._PROPERTY_NAMES)
        self._parent_json = json.dumps(probe["parent"], sort_keys=True)
        self._checked = False

    def _slow(self, *, inode: int, location: str, data_stream: str | None) -> str:
        properties: dict[str, Any] = {"inode": inode, "location": location, "parent": self.volume_spec}
        if data_stream:
            properties["data_stream"] = data_stream
        return source.serialise_path_spec(
            path_spec_factory.Factory.NewPathSpec(dfvfs_definitions.TYPE_INDICATOR_TSK, **properties)
        )

    def data_path(self, *, inode: int, location: str, data_stream: str | None) -> str:
        values = {"inode": inode, "location": location, "data_stream": data_stream}
        fields = "".join(
            f"{json.dumps(key)}: {json.dumps(values[key])}, " for key in self._key_order if values[key] is not None
        )
        fast = f'{{"__type__": "PathSpec", {fields}"parent": {self._parent_json}, "type_indicator": "TSK"}}'
        if not self._checked:
            slow = self._slow(inode=inode, location=location, data_stream=data_stream)
            if slow != fast:  # never seen; should dfVFS change its encoding, be slow rather than different
                self.data_path = self._slow  # type: ignore[method-assign]
                return slow
            self._checked = True
        return fast


class _TskWalk:
    """The walk of one TSK file system: folders and files, allocated and deleted, like ``fls -r -p``."""

    def __init__(self, *, walk: _Walk, fs_info, volume_spec, is_ntfs: bool):
        self.walk = walk
        self.fs_info = fs_info
        self.volume_spec = volume_spec
        self.is_ntfs = is_ntfs
        self.data_paths = _TskDataPaths(volume_spec=volume_spec)

    def children(
        self,
        *,
        entries: Sequence,
        parent: TraceRecord,
        fs_path: str,
        directory_stack: tuple[int, ...],
        deal_out: bool = False,
    ):
        for ordinal, entry in enumerate(entries):
            if deal_out and not self.walk._owns_top_level_entry(ordinal):
                continue
            name_info = entry.info.name
            name = _decode_name(name_info.name)
            path_in_fs = f"{fs_path}/{name}"
            meta = getattr(entry.info, "meta", None)
            if meta is None and (int(name_info.meta_addr) != 0 or self.is_ntfs):
                # Orphans and some deleted names come without their metadata: look the inode up.
                try:
                    entry = self.fs_info.open_meta(inode=int(name_info.meta_addr))
                    meta = getattr(entry.info, "meta", None)
                except OSError:
                    meta = None
            name_unallocated = bool(int(name_info.flags) & int(pytsk3.TSK_FS_NAME_FLAG_UNALLOC))
            meta_unallocated = meta is not None and not (int(meta.flags) & int(pytsk3.TSK_FS_META_FLAG_ALLOC))
            deleted = name_unallocated or meta_unallocated
            meta_type = int(meta.type) if meta is not None else None
            is_directory = (
                meta_type in _TSK_DIRECTORY_TYPES
                if meta is not None
                else int(name_info.type) in _TSK_NAME_DIRECTORY_TYPES
            )
            inode = int(meta.addr) if meta is not None else int(name_info.meta_addr)
            trace = TraceRecord(
                uid=child_uid(parent_uid=parent.uid, ordinal=ordinal),
                parent_uid=parent.uid,
                name=name,
                path=f"{parent.path}/{name}",
                types=["file", "folder"] if is_directory else ["file"],
                deleted=deleted,
                tools={"file": TOOL_PYTSK3},
            )
            trace.properties.update(
                {
                    "file.name": name,
                    "file.path": path_in_fs,
                    "file.inode": inode,
                    "file.deleted": deleted,
                }
            )
            if meta is not None:
                self._add_meta_properties(trace, meta)
            if meta_type in (int(pytsk3.TSK_FS_META_TYPE_VIRT), int(pytsk3.TSK_FS_META_TYPE_VIRT_DIR)):
                trace.properties["file.virtual"] = True

            sub_entries: list = []
            # Like TSK: do not follow a deleted name to a directory whose inode was reused since.
            reused = name_unallocated and meta is not None and not meta_unallocated
            followable = meta is not None and inode not in directory_stack and not reused
            if is_directory and followable and (inode != 0 or self.is_ntfs):
                try:
                    sub_entries = self.walk._tsk_directory_entries(self.fs_info, inode)
                except OSError as error:
                    trace.errors.append(TraceError(tool="pytsk3", message=f"cannot list the folder: {error}"))

            if meta is not None:
                self._add_streams(
                    trace=trace, entry=entry, inode=inode, path_in_fs=path_in_fs, is_directory=is_directory
                )
            yield trace
            if sub_entries:
                yield from self.children(
                    entries=sub_entries,
                    parent=trace,
                    fs_path=path_in_fs,
                    directory_stack=(*directory_stack, inode),
                )

    @staticmethod
    def _add_meta_properties(trace: TraceRecord, meta) -> None:
        for property_name, seconds_field in (
            ("file.createdOn", "crtime"),
            ("file.modifiedOn", "mtime"),
            ("file.accessedOn", "atime"),
            ("file.changedOn", "ctime"),
            ("file.deletedOn", "dtime"),
        ):
            seconds = getattr(meta, seconds_field, 0)
            text = iso8601(seconds, getattr(meta, f"{seconds_field}_nano", 0))
            if text:
                trace.properties[property_name] = text
        trace.properties["file.size"] = int(meta.size)
        trace.properties["file.ownerId"] = int(meta.uid)
        trace.properties["file.groupId"] = int(meta.gid)
        trace.properties["file.mode"] = int(meta.mode)

    def _streams_of(self, entry, *, is_directory: bool) -> list[tuple[str, int, int | None, int | None]]:
        """(stream name, size, TSK attribute type, attribute id) of every stream fls would list."""
        if not self.is_ntfs:
            if is_directory:
                return []
            return [("raw", int(entry.info.meta.size), None, None)]
        streams = []
        for attribute in entry:
            info = attribute.info
            attribute_type = int(info.type)
            raw_name = info.name
            attribute_name = _decode_name(raw_name) if raw_name else ""
            if attribute_type == _NTFS_DATA:
                if attribute_name:
                    streams.append((f"ads:{attribute_name}", int(info.size), attribute_type, int(info.id)))
                elif not is_directory:
                    streams.append(("raw", int(info.size), attribute_type, int(info.id)))
            elif attribute_type == _NTFS_INDEX_ROOT and attribute_name and attribute_name != "$I30":
                # fls lists named index roots ($Secure:$SDH, $Quota:$O…) as streams of their own.
                streams.append((f"index:{attribute_name}", int(info.size), attribute_type, int(info.id)))
        streams.sort(key=lambda stream: (stream[0] != "raw", stream[0], stream[3] or 0))
        return streams

    def _add_streams(self, *, trace: TraceRecord, entry, inode: int, path_in_fs: str, is_directory: bool) -> None:
        try:
            streams = self._streams_of(entry, is_directory=is_directory)
        except (OSError, RuntimeError) as error:
            trace.errors.append(TraceError(tool="pytsk3", message=f"cannot list data streams: {error}"))
            return
        for stream_name, size, attribute_type, attribute_id in streams:
            data_stream = stream_name.split(":", 1)[1] if ":" in stream_name else None
            data_path = self.data_paths.data_path(inode=inode, location=path_in_fs, data_stream=data_stream or None)
            stream = DataStream(name=stream_name, size=size, data_path=data_path)
            trace.streams.append(stream)
            if self.is_ntfs and inode == NTFS_BAD_CLUSTERS_INODE and stream_name == "ads:$Bad":
                # $BadClus:$Bad is a sparse map as large as the volume; TSK (and icat) give no bytes for it.
                stream.size = 0
                StreamDigest(head_size=0).fill(stream)
                continue

            def read_at(offset: int, length: int, attribute_type=attribute_type, attribute_id=attribute_id) -> bytes:
                if attribute_type is None:
                    return entry.read_random(offset, length)
                return entry.read_random(offset, length, attribute_type, attribute_id)

            try:
                self.walk._digest_reader(
                    trace=trace,
                    stream=stream,
                    read_at=read_at,
                    size=size,
                    file_name=trace.name,
                    tool="pytsk3",
                )
            except OSError as error:
                trace.errors.append(TraceError(tool="pytsk3", message=str(error), stream=stream_name))


def _decode_name(raw_name) -> str:
    if isinstance(raw_name, bytes):
        return raw_name.decode("utf-8", "replace")
    return str(raw_name)


def walk_image(
    *,
    file_object: BinaryIO,
    evidence_id: str,
    secrets: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
    options: WalkOptions | None = None,
) -> Iterator[TraceRecord]:
    """Yield every trace of one piece of evidence, parents before children, in a stable order.

    ``file_object`` is read-only and never copied (the sealed container's reader, or any seekable binary
    file); ``secrets`` are the evidence's escrowed secrets (``[{"kind": "password", "value": "…"}]``);
    ``options.file_name`` names the evidence file (its extension matters for split E01 segments).
    """
    walk = _Walk(file_object=file_object, evidence_id=evidence_id, secrets=secrets, options=options or WalkOptions())
    yield from walk.run()
