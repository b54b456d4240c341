"""Let dfVFS read evidence through Python file objects, never through a path on disk.

The sealed container hands extraction an ``io.RawIOBase`` (read/seek/tell/get_size) that decrypts chunks
on demand. dfVFS only knows how to start from a path specification, so this module registers a small
dfVFS back-end, ``CUSTODIA_EVIDENCE``: a flat, read-only "folder" whose files are the file objects of one
piece of evidence (the image, plus its E01 segments, VMDK extents or VHD parents). Because it is a real
dfVFS file system, dfVFS's own helpers find ``image.E02`` next to ``image.E01`` and a VHD's parent by
name, exactly as they would on disk, and the layers above (EWF, VHDI, partitions, BitLocker, NTFS…)
are dfVFS's unchanged.

The file objects travel in the resolver context, not in the path specification, so a path-spec chain
serialised to JSON (the trace's data path) names the evidence file but never holds bytes or secrets:
the data service re-reads a trace by building an :class:`EvidenceResolverContext` over the same sealed
readers and calling :func:`open_data_path`.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from typing import Any, BinaryIO

from dfvfs.file_io import file_io
from dfvfs.lib import definitions as dfvfs_definitions
from dfvfs.lib import errors as dfvfs_errors
from dfvfs.path import factory as path_spec_factory
from dfvfs.path import location_path_spec
from dfvfs.resolver import context as dfvfs_context
from dfvfs.resolver import resolver as dfvfs_resolver
from dfvfs.resolver_helpers import manager as resolver_helper_manager
from dfvfs.resolver_helpers import resolver_helper
from dfvfs.serializer import json_serializer
from dfvfs.vfs import directory as dfvfs_directory
from dfvfs.vfs import file_entry as dfvfs_file_entry
from dfvfs.vfs import file_system as dfvfs_file_system

TYPE_INDICATOR_EVIDENCE = "CUSTODIA_EVIDENCE"
PATH_SEPARATOR = "/"


def evidence_location(*, file_name: str) -> str:
    """The location of an evidence file inside the flat evidence folder: ``/<basename>``."""
    base_name = file_name.replace("\\", PATH_SEPARATOR).rsplit(PATH_SEPARATOR, 1)[-1]
    if not base_name:
        raise ValueError(f"An evidence file needs a name, got {file_name!r}")
    return PATH_SEPARATOR + base_name


class EvidencePathSpec(location_path_spec.LocationPathSpec):
    """Root of every path-spec chain Custodia builds: one file of one piece of evidence, by name."""

    # Not "system level": dfVFS treats system-level locations as host paths (pyewf.glob on the disk).
    _IS_SYSTEM_LEVEL = False
    TYPE_INDICATOR = TYPE_INDICATOR_EVIDENCE

    def __init__(self, location=None, **kwargs):
        if kwargs.pop("parent", None) is not None:
            raise ValueError("An evidence path specification is a root: it cannot have a parent.")
        super().__init__(location=location, parent=None, **kwargs)


class EvidenceResolverContext(dfvfs_context.Context):
    """A dfVFS resolver context that also carries the evidence's file objects, keyed by location.

    One context per extraction (or per data-service request): dfVFS caches opened layers in it, and the
    file objects must outlive every layer opened through it.
    """

    def __init__(self, *, files: Mapping[str, BinaryIO]):
        super().__init__()
        if not files:
            raise ValueError("An evidence resolver context needs at least one file object")
        self.evidence_files: dict[str, BinaryIO] = {
            evidence_location(file_name=name): file_object for name, file_object in files.items()
        }


def _evidence_files_of(resolver_context) -> dict[str, BinaryIO]:
    evidence_files = getattr(resolver_context, "evidence_files", None)
    if evidence_files is None:
        raise dfvfs_errors.PathSpecError(
            "A CUSTODIA_EVIDENCE path specification needs an EvidenceResolverContext holding its file objects"
        )
    return evidence_files


def _size_of(file_object: BinaryIO) -> int:
    get_size = getattr(file_object, "get_size", None)
    if callable(get_size):
        return int(get_size())
    # Plain Python files: measure once by seeking to the end; the caller re-seeks before every read.
    current = file_object.tell()
    size = file_object.seek(0, os.SEEK_END)
    file_object.seek(current, os.SEEK_SET)
    return int(size)


def find_evidence_file(files: Mapping[str, BinaryIO], location: str | None) -> tuple[str, BinaryIO] | None:
    """The evidence file at ``location``, or else the one named like its last component: a differencing
    disk may name its parent by the path it had where it was made (``/vms/base.qcow2``,
    ``C:\\vms\\base.vhd``), and the libraries look that path up beside the child; the flat evidence folder
    holds the parent by its base name."""
    if not location:
        return None
    if location in files:
        return location, files[location]
    try:
        base_location = evidence_location(file_name=location)
    except ValueError:
        return None
    found = files.get(base_location)
    return (base_location, found) if found is not None else None


class EvidenceFileIO(file_io.FileIO):
    """dfVFS FileIO over a caller's Python file object.

    It keeps its own offset and seeks the underlying object before every read, because several dfVFS
    layers (and libewf, pytsk3 underneath them) may share one file object and interleave their reads.
    The underlying object is never closed here: it belongs to the caller.
    """

    def __init__(self, resolver_context, path_spec):
        super().__init__(resolver_context, path_spec)
        self._file_object: BinaryIO | None = None
        self._current_offset = 0
        self._size = 0

    def _Open(self, mode="rb"):
        location = getattr(self._path_spec, "location", None)
        found = find_evidence_file(_evidence_files_of(self._resolver_context), location)
        if found is None:
            raise OSError(f"No evidence file object named {location!r} in this resolver context")
        self._file_object = found[1]
        file_object = found[1]
        self._size = _size_of(file_object)
        self._current_offset = 0

    def _Close(self):
        self._file_object = None

    def read(self, size=None):
        if not self._is_open:
            raise OSError("Not opened.")
        remaining_in_file = max(self._size - self._current_offset, 0)
        wanted = remaining_in_file if size is None or size < 0 else min(size, remaining_in_file)
        if wanted == 0:
            return b""
        self._file_object.seek(self._current_offset, os.SEEK_SET)
        # A RawIOBase may return fewer bytes than asked; dfVFS and the libyal bindings expect full reads.
        parts = []
        collected = 0
        while collected < wanted:
            chunk = self._file_object.read(wanted - collected)
            if not chunk:
                break
            parts.append(chunk)
            collected += len(chunk)
        data = b"".join(parts)
        self._current_offset += len(data)
        return data

    def seek(self, offset, whence=os.SEEK_SET):
        if not self._is_open:
            raise OSError("Not opened.")
        if whence == os.SEEK_CUR:
            offset += self._current_offset
        elif whence == os.SEEK_END:
            offset += self._size
        elif whence != os.SEEK_SET:
            raise OSError("Unsupported whence.")
        if offset < 0:
            raise OSError("Invalid offset value less than zero.")
        self._current_offset = offset

    def get_offset(self):
        if not self._is_open:
            raise OSError("Not opened.")
        return self._current_offset

    def get_size(self):
        if not self._is_open:
            raise OSError("Not opened.")
        return self._size


class EvidenceDirectory(dfvfs_directory.Directory):
    """The flat evidence folder: every file object of the context, sorted by name for a stable order."""

    def _EntriesGenerator(self):
        for location in sorted(self._file_system.locations()):
            yield EvidencePathSpec(location=location)


class EvidenceFileEntry(dfvfs_file_entry.FileEntry):
    TYPE_INDICATOR = TYPE_INDICATOR_EVIDENCE

    def __init__(self, resolver_context, file_system, path_spec, *, is_root=False):
        super().__init__(resolver_context, file_system, path_spec, is_root=is_root, is_virtual=is_root)
        self.entry_type = (
            dfvfs_definitions.FILE_ENTRY_TYPE_DIRECTORY if is_root else dfvfs_definitions.FILE_ENTRY_TYPE_FILE
        )

    def _GetDirectory(self):
        if self.entry_type != dfvfs_definitions.FILE_ENTRY_TYPE_DIRECTORY:
            return None
        return EvidenceDirectory(self._file_system, self.path_spec)

    def _GetSubFileEntries(self):
        if self._directory is None:
            self._directory = self._GetDirectory()
        if self._directory:
            for path_spec in self._directory.entries:
                yield self._file_system.GetFileEntryByPathSpec(path_spec)

    @property
    def name(self):
        location = getattr(self.path_spec, "location", "") or ""
        return location.rsplit(PATH_SEPARATOR, 1)[-1]

    @property
    def size(self):
        if self._is_root:
            return None
        file_object = self._file_system.file_object(self.path_spec.location)
        return _size_of(file_object) if file_object is not None else None

    def GetFileObject(self, data_stream_name=""):
        if not self.IsFile() or data_stream_name:
            return None
        return dfvfs_resolver.Resolver.OpenFileObject(self.path_spec, resolver_context=self._resolver_context)

    def GetParentFileEntry(self):
        if self._is_root:
            return None
        return self._file_system.GetRootFileEntry()


class EvidenceFileSystem(dfvfs_file_system.FileSystem):
    TYPE_INDICATOR = TYPE_INDICATOR_EVIDENCE
    LOCATION_ROOT = PATH_SEPARATOR

    def _Close(self):
        return

    def _Open(self, mode="rb"):
        if self._path_spec.HasParent():
            raise dfvfs_errors.PathSpecError("Unsupported path specification with parent.")
        _evidence_files_of(self._resolver_context)

    def locations(self) -> list[str]:
        return list(_evidence_files_of(self._resolver_context))

    def file_object(self, location: str) -> BinaryIO | None:
        found = find_evidence_file(_evidence_files_of(self._resolver_context), location)
        return found[1] if found is not None else None

    def FileEntryExistsByPathSpec(self, path_spec):
        location = getattr(path_spec, "location", None)
        return location == self.LOCATION_ROOT or self.file_object(location) is not None

    def GetFileEntryByPathSpec(self, path_spec):
        location = getattr(path_spec, "location", None)
        if location == self.LOCATION_ROOT:
            return EvidenceFileEntry(self._resolver_context, self, path_spec, is_root=True)
        if self.file_object(location) is None:
            return None
        return EvidenceFileEntry(self._resolver_context, self, path_spec)

    def GetRootFileEntry(self):
        return self.GetFileEntryByPathSpec(EvidencePathSpec(location=self.LOCATION_ROOT))


class EvidenceResolverHelper(resolver_helper.ResolverHelper):
    TYPE_INDICATOR = TYPE_INDICATOR_EVIDENCE

    def NewFileObject(self, resolver_context, path_spec):
        return EvidenceFileIO(resolver_context, path_spec)

    def NewFileSystem(self, resolver_context, path_spec):
        return EvidenceFileSystem(resolver_context, path_spec)


def _register_with_dfvfs() -> None:
    # Importing this module twice (or from two apps) must not fail on dfVFS's "already registered".
    if TYPE_INDICATOR_EVIDENCE not in path_spec_factory.Factory._path_spec_types:
        path_spec_factory.Factory.RegisterPathSpec(EvidencePathSpec)
    try:
        resolver_helper_manager.ResolverHelperManager.GetHelper(TYPE_INDICATOR_EVIDENCE)
    except KeyError:
        resolver_helper_manager.ResolverHelperManager.RegisterHelper(EvidenceResolverHelper())


_register_with_dfvfs()


def new_resolver_context(*, file_object: BinaryIO, file_name: str, related_files=None) -> EvidenceResolverContext:
    """A resolver context over the main evidence file and any files dfVFS may look up beside it."""
    files: dict[str, BinaryIO] = {file_name: file_object}
    files.update(related_files or {})
    return EvidenceResolverContext(files=files)


def root_path_spec(*, file_name: str) -> EvidencePathSpec:
    return EvidencePathSpec(location=evidence_location(file_name=file_name))


def serialise_path_spec(path_spec) -> str:
    """The whole path-spec chain as JSON: the trace's data path (no bytes, no secrets).

    dfVFS writes keys in an order that follows Python's per-process hash seed; sorting them makes the same
    trace carry the same data path in every worker process (extraction must be deterministic)."""
    return json.dumps(json.loads(json_serializer.JsonPathSpecSerializer.WriteSerialized(path_spec)), sort_keys=True)


def deserialise_path_spec(data_path: str):
    return json_serializer.JsonPathSpecSerializer.ReadSerialized(data_path)


class DfvfsFileObject(io.RawIOBase):
    """A dfVFS file object as a standard Python file object, for readers that need ``tell`` and a ``seek``
    that returns the new offset (zipfile, tarfile, sqlite3, ``io.BufferedReader``): dfVFS's ``seek``
    returns None and it has ``get_offset`` instead of ``tell``.

    It starts at offset 0: dfVFS hands out the file object it cached in the resolver context, so a second
    opener of the same data path (each content tool opens the stream afresh) would otherwise start where
    the previous reader stopped. ``size`` (what ``get_size`` answers) defaults to the dfVFS object's own.
    Closing it closes the dfVFS file object.
    """

    def __init__(self, file_object, *, size: int | None = None) -> None:
        super().__init__()
        self._file_object = file_object
        self._size = size
        file_object.seek(0)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._file_object.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._file_object.seek(offset, whence)
        return self._file_object.get_offset()

    def tell(self) -> int:
        return self._file_object.get_offset()

    def get_size(self) -> int:
        return self._file_object.get_size() if self._size is None else self._size

    def close(self) -> None:
        if not self.closed:
            self._file_object.close()
        super().close()


def open_data_path(*, data_path: str, resolver_context: EvidenceResolverContext):
    """Open the bytes a trace's data path names, through the same sealed readers: no temporary copy.

    Encrypted layers (BDE, LUKSDE, CUSTODIA_LUKS1) need their secret in dfVFS's key chain first:
    ``Resolver.key_chain.SetCredential(encrypted_layer_spec, "password", value)``; the walk removes the
    secrets it set when it ends.
    """
    path_spec = deserialise_path_spec(data_path)
    return dfvfs_resolver.Resolver.OpenFileObject(path_spec, resolver_context=resolver_context)


# A stream's ``data_location`` kind: the bytes lie in runs of clusters of the volume ``volume`` names (a
# deleted FAT file recovered from unallocated clusters), not where its ``data_path`` reads.
DATA_LOCATION_CLUSTERS = "clusters"


def clusters_location(*, volume_path: str, data_offset: int, cluster_size: int, runs: list[list[int]]) -> dict:
    """The ``data_location`` of a stream read from cluster ``runs`` (``[first cluster, count]``, FAT numbering:
    cluster 2 starts at byte ``data_offset`` of the volume ``volume_path`` serialises)."""
    return {
        "kind": DATA_LOCATION_CLUSTERS,
        "volume": volume_path,
        "data_offset": data_offset,
        "cluster_size": cluster_size,
        "runs": [[int(first), int(count)] for first, count in runs],
    }


class ClusterRunsFile:
    """The bytes of a stream laid in cluster runs of an open volume, read as one file object with dfVFS's
    file-object interface (``read``, ``seek``, ``get_offset``, ``get_size``, ``close``), so
    :class:`DfvfsFileObject` wraps it as it wraps dfVFS's own. Closing it closes the volume."""

    def __init__(self, *, volume: Any, location: dict, size: int) -> None:
        if location.get("kind") != DATA_LOCATION_CLUSTERS:
            raise ValueError(f"unknown data location kind {location.get('kind')!r}")
        cluster_size = int(location["cluster_size"])
        data_offset = int(location["data_offset"])
        if cluster_size <= 0 or data_offset < 0:
            raise ValueError("invalid cluster geometry in the data location")
        # (offset in the stream, offset in the volume, length) of each run, in stream order.
        self._extents: list[tuple[int, int, int]] = []
        at = 0
        for first, count in location["runs"]:
            if int(first) < 2 or int(count) <= 0:
                raise ValueError("invalid cluster run in the data location")
            length = int(count) * cluster_size
            self._extents.append((at, data_offset + (int(first) - 2) * cluster_size, length))
            at += length
        self._volume = volume
        self._size = min(size, at)
        self._offset = 0

    def read(self, size: int | None = None) -> bytes:
        end = self._size if size is None or size < 0 else min(self._size, self._offset + size)
        parts = []
        for start, volume_offset, length in self._extents:
            if self._offset >= end:
                break
            if start + length <= self._offset:
                continue
            within = self._offset - start
            chunk = min(length - within, end - self._offset)
            self._volume.seek(volume_offset + within)
            data = self._volume.read(chunk)
            parts.append(data)
            self._offset += len(data)
            if len(data) < chunk:  # the volume ends early: return what there is
                break
        return b"".join(parts)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> None:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._offset, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError("seek before the start of the stream")
        self._offset = base + offset

    def get_offset(self) -> int:
        return self._offset

    def get_size(self) -> int:
        return self._size

    def close(self) -> None:
        self._volume.close()


def open_stream(
    *, data_path: str, data_location: Mapping | None, size: int, resolver_context: EvidenceResolverContext
) -> Any:
    """Open a stream's bytes (its ``data_location`` when it has one, else its ``data_path``) with dfVFS's
    file-object interface. Encrypted layers need their secret in the key chain first (:func:`open_data_path`)."""
    if not data_location:
        return open_data_path(data_path=data_path, resolver_context=resolver_context)
    volume = open_data_path(data_path=data_location["volume"], resolver_context=resolver_context)
    return ClusterRunsFile(volume=volume, location=dict(data_location), size=size)
