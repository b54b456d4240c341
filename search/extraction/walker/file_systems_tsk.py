"""File systems through The Sleuth Kit (pytsk3 directly: dfVFS's TSK back-end skips deleted names): folders
and files, allocated and deleted, with every data stream (NTFS alternate data streams included), the same
listing ``fls -r -p`` gives, so The Sleuth Kit's own output is the answer key."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytsk3
from dfvfs.lib import definitions as dfvfs_definitions
from dfvfs.path import factory as path_spec_factory

from search.extraction import source
from search.extraction.timezones import set_local_time
from search.extraction.traces import DataStream, TraceError, TraceRecord, child_uid
from search.extraction.walker.common import TOOL_PYTSK3, decode_name, iso8601, local_wall_clock, tsk_image_of
from search.extraction.walker.fat_recovery import FatRecovery, cluster_runs, fat_recovery
from search.extraction.walker.mime import ALTERNATE_DATA_STREAM_TYPE, FILE_SYSTEM_METADATA_TYPE
from search.extraction.walker.reader import StreamDigest

if TYPE_CHECKING:
    from search.extraction.walker.walk import Walk

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
_TSK_DIRECTORY_TYPES = {int(pytsk3.TSK_FS_META_TYPE_DIR), int(pytsk3.TSK_FS_META_TYPE_VIRT_DIR)}
_TSK_NAME_DIRECTORY_TYPES = {int(pytsk3.TSK_FS_NAME_TYPE_DIR), int(pytsk3.TSK_FS_NAME_TYPE_VIRT_DIR)}
_NTFS_DATA = int(pytsk3.TSK_FS_ATTR_TYPE_NTFS_DATA)
NTFS_BAD_CLUSTERS_INODE = 8
# MFT entries below this are the system files and those reserved for them; user files come after.
NTFS_FIRST_USER_INODE = 24
_NTFS_INDEX_ROOT = int(pytsk3.TSK_FS_ATTR_TYPE_NTFS_IDXROOT)


# TSK's words when more than one file system type opens the same bytes ("… (EXT2/3/4 or NTFS)"): the CLI's
# and the library's, which differ between versions.
_AMBIGUOUS_TYPE = re.compile(r"(?:Cannot determine file system type|Multiple file system types detected) \((.+?)\)")
# The families TSK's autodetection tries, each opened alone when it cannot choose between them.
_TSK_DETECT_FAMILIES = tuple(
    int(getattr(pytsk3, f"TSK_FS_TYPE_{name}_DETECT"))
    for name in ("NTFS", "FAT", "EXT", "FFS", "ISO9660", "HFS", "APFS", "YAFFS2")
    if hasattr(pytsk3, f"TSK_FS_TYPE_{name}_DETECT")
)


@dataclass(frozen=True)
class AmbiguousFileSystems:
    """Bytes holding more than one valid file system (an NTFS formatted over an ext, …): TSK's autodetection
    refuses to choose, so each candidate that opens on its own is walked, and the volume says so."""

    tsk_candidates: str  # as TSK names them: "EXT2/3/4 or NTFS"
    file_systems: tuple  # the pytsk3 FS_Info of each candidate that opens alone


def open_tsk_file_system(*, spec, context):
    """TSK's file system in ``spec``'s bytes, ``AmbiguousFileSystems`` when it finds several, or None."""
    image = tsk_image_of(spec=spec, context=context)
    try:
        return pytsk3.FS_Info(image, offset=0)
    except OSError as error:
        ambiguous = _AMBIGUOUS_TYPE.search(str(error))
        if ambiguous is None:
            return None
    file_systems = []
    for family in _TSK_DETECT_FAMILIES:
        try:
            file_systems.append(pytsk3.FS_Info(image, 0, family))
        except OSError:
            continue
    if not file_systems:
        return None
    return AmbiguousFileSystems(tsk_candidates=ambiguous.group(1), file_systems=tuple(file_systems))


def tsk_file_system(*, walk: Walk, spec, fs_info, parent: TraceRecord, ordinal: int) -> Iterator[TraceRecord]:
    """The file system's trace, then its folders and files (top-level entries dealt out between shares).

    Ambiguous bytes (``AmbiguousFileSystems``): a warning on ``parent`` naming the candidates, then each
    candidate walked as its own file system trace, marked ambiguous."""
    if isinstance(fs_info, AmbiguousFileSystems):
        yield from _ambiguous_file_systems(walk=walk, spec=spec, ambiguous=fs_info, parent=parent, ordinal=ordinal)
        return
    yield from _one_file_system(walk=walk, spec=spec, fs_info=fs_info, parent=parent, ordinal=ordinal)


def _ambiguous_file_systems(
    *, walk: Walk, spec, ambiguous: AmbiguousFileSystems, parent: TraceRecord, ordinal: int
) -> Iterator[TraceRecord]:
    names = [_TSK_FS_TYPE_NAMES.get(int(fs.info.ftype), str(fs.info.ftype)) for fs in ambiguous.file_systems]
    parent.properties["volume.ambiguousFileSystems"] = names
    parent.errors.append(
        TraceError(
            tool="pytsk3",
            message=(
                f"warning: these bytes hold more than one file system ({ambiguous.tsk_candidates}); "
                f"each that opens is listed separately, marked ambiguous: {', '.join(names)}"
            ),
        )
    )
    for offset, fs_info in enumerate(ambiguous.file_systems):
        for trace in _one_file_system(walk=walk, spec=spec, fs_info=fs_info, parent=parent, ordinal=ordinal + offset):
            if trace.parent_uid == parent.uid:
                trace.properties["fileSystem.ambiguous"] = True
                trace.properties["fileSystem.ambiguousWith"] = [name for name in names if name != trace.name]
            yield trace


def _one_file_system(*, walk: Walk, spec, fs_info, parent: TraceRecord, ordinal: int) -> Iterator[TraceRecord]:
    fs_type = _TSK_FS_TYPE_NAMES.get(int(fs_info.info.ftype), str(fs_info.info.ftype))
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
        root_entries = _directory_entries(fs_info, int(fs_info.info.root_inum))
    except OSError as error:
        fs_trace.errors.append(TraceError(tool="pytsk3", message=f"cannot list the root folder: {error}"))
        yield fs_trace
        return
    yield fs_trace
    tsk_walk = _TskWalk(
        walk=walk,
        fs_info=fs_info,
        volume_spec=spec,
        is_ntfs=fs_type == "ntfs",
        is_fat=fs_type.startswith("fat"),
        fs_type=fs_type,
    )
    yield from tsk_walk.children(
        entries=root_entries,
        parent=fs_trace,
        fs_path="",
        directory_stack=(int(fs_info.info.root_inum),),
        deal_out=True,
    )


def _directory_entries(fs_info, inode: int) -> list:
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


@dataclass(frozen=True)
class _StreamFile:
    """A named data stream with content, read as a file of its own (`_TskWalk._stream_trace`)."""

    stream_name: str
    size: int
    data_path: str
    read_at: Any  # (offset, length) -> bytes


class _TskWalk:
    """The walk of one TSK file system: folders and files, allocated and deleted, like ``fls -r -p``."""

    def __init__(self, *, walk: Walk, fs_info, volume_spec, is_ntfs: bool, is_fat: bool = False, fs_type: str = ""):
        self.walk = walk
        self.fs_info = fs_info
        self.volume_spec = volume_spec
        self.is_ntfs = is_ntfs
        self.is_fat = is_fat
        # FAT and exFAT store the wall-clock time of wherever the writer was (exFAT's optional UTC offset is
        # one TSK does not read): local times of unknown zone.
        self.local_times = is_fat or fs_type == "exfat"
        self.data_paths = _TskDataPaths(volume_spec=volume_spec)
        self._fat_recovery: FatRecovery | bool | None = False  # False: not worked out yet
        self._volume_path: str | None = None  # the volume's data path, serialised at the first recovered file
        # The named data streams of the file just read, each to become a trace of its own.
        self._streams_as_files: list[_StreamFile] = []

    def fat_recovery(self) -> FatRecovery | None:
        """The clusters of this FAT file system's deleted files, worked out at the first deleted file."""
        if self._fat_recovery is False:
            try:
                image = tsk_image_of(spec=self.volume_spec, context=self.walk.context)
                self._fat_recovery = fat_recovery(fs_info=self.fs_info, read_at=image.read)
            except (OSError, RuntimeError):
                self._fat_recovery = None
        return self._fat_recovery  # type: ignore[return-value]

    def children(
        self,
        *,
        entries: Sequence,
        parent: TraceRecord,
        fs_path: str,
        directory_stack: tuple[int, ...],
        deal_out: bool = False,
    ) -> Iterator[TraceRecord]:
        """The traces of ``entries`` (a folder's, sorted) and of everything below them, depth first."""
        for ordinal, entry in enumerate(entries):
            if deal_out and not self.walk.owns_top_level_entry(ordinal):
                continue
            trace, sub_entries, inode, path_in_fs = self._file(
                entry=entry, ordinal=ordinal, parent=parent, fs_path=fs_path, directory_stack=directory_stack
            )
            streams_as_files, self._streams_as_files = self._streams_as_files, []
            yield trace
            # A named stream's content is typed like a file's: its trace follows its file's (after a
            # folder's entries in ordinal, so that they keep theirs).
            for offset, stream_file in enumerate(streams_as_files):
                yield self._stream_trace(host=trace, ordinal=len(sub_entries) + offset, stream_file=stream_file)
            if sub_entries:
                yield from self.children(
                    entries=sub_entries,
                    parent=trace,
                    fs_path=path_in_fs,
                    directory_stack=(*directory_stack, inode),
                )

    def _file(
        self, *, entry, ordinal: int, parent: TraceRecord, fs_path: str, directory_stack: tuple[int, ...]
    ) -> tuple[TraceRecord, list, int, str]:
        """One entry's trace, the entries of its folder (when it is one to follow), its inode and its path."""
        name_info = entry.info.name
        name = decode_name(name_info.name)
        path_in_fs = f"{fs_path}/{name}"
        entry, meta = self._with_meta(entry)
        name_unallocated = bool(int(name_info.flags) & int(pytsk3.TSK_FS_NAME_FLAG_UNALLOC))
        meta_unallocated = meta is not None and not (int(meta.flags) & int(pytsk3.TSK_FS_META_FLAG_ALLOC))
        deleted = name_unallocated or meta_unallocated
        meta_type = int(meta.type) if meta is not None else None
        is_directory = (
            meta_type in _TSK_DIRECTORY_TYPES if meta is not None else int(name_info.type) in _TSK_NAME_DIRECTORY_TYPES
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
            self._add_meta_properties(trace, meta, local_times=self.local_times)
        if meta_type in (int(pytsk3.TSK_FS_META_TYPE_VIRT), int(pytsk3.TSK_FS_META_TYPE_VIRT_DIR)):
            trace.properties["file.virtual"] = True
        if self._is_file_system_metadata(name=name, fs_path=fs_path, inode=inode, meta_type=meta_type):
            trace.types.append(FILE_SYSTEM_METADATA_TYPE)
            trace.properties["file.fileSystemMetadata"] = True

        sub_entries: list = []
        # Like TSK: do not follow a deleted name to a directory whose inode was reused since.
        reused = name_unallocated and meta is not None and not meta_unallocated
        followable = meta is not None and inode not in directory_stack and not reused
        if is_directory and followable and (inode != 0 or self.is_ntfs):
            try:
                sub_entries = _directory_entries(self.fs_info, inode)
            except OSError as error:
                trace.errors.append(TraceError(tool="pytsk3", message=f"cannot list the folder: {error}"))

        if meta is not None:
            self._add_streams(trace=trace, entry=entry, inode=inode, path_in_fs=path_in_fs, is_directory=is_directory)
        return trace, sub_entries, inode, path_in_fs

    def _is_file_system_metadata(self, *, name: str, fs_path: str, inode: int, meta_type: int | None) -> bool:
        """NTFS's system files ($MFT, $UpCase, $Secure… in the root, and those under $Extend) and TSK's
        virtual files of a FAT ($MBR, $FAT1, $FAT2): the file system's own structures, never content."""
        if self.is_ntfs:
            if not name.startswith("$"):
                return False
            return (fs_path == "" and inode < NTFS_FIRST_USER_INODE) or fs_path.startswith("/$Extend")
        return meta_type == int(pytsk3.TSK_FS_META_TYPE_VIRT)

    def _stream_trace(self, *, host: TraceRecord, ordinal: int, stream_file: _StreamFile) -> TraceRecord:
        """The trace of a named data stream's content (``file.txt:hidden.jpg``): a file of its own for the
        content tools and the MIME type, beside the stream its file keeps."""
        name = f"{host.name}:{stream_file.stream_name}"
        trace = TraceRecord(
            uid=child_uid(parent_uid=host.uid, ordinal=ordinal),
            parent_uid=host.uid,
            name=name,
            path=f"{host.path}:{stream_file.stream_name}",
            types=["file", ALTERNATE_DATA_STREAM_TYPE],
            deleted=host.deleted,
            tools={"file": TOOL_PYTSK3},
        )
        trace.properties.update(
            {
                "file.name": name,
                "file.path": f"{host.properties['file.path']}:{stream_file.stream_name}",
                "file.inode": host.properties["file.inode"],
                "file.deleted": host.deleted,
                "file.size": stream_file.size,
                "file.streamOf": host.properties["file.path"],
                "file.streamName": stream_file.stream_name,
            }
        )
        stream = DataStream(name="raw", size=stream_file.size, data_path=stream_file.data_path)
        trace.streams.append(stream)
        try:
            self.walk.reader.digest(
                trace=trace,
                stream=stream,
                read_at=stream_file.read_at,
                size=stream_file.size,
                file_name=name,
                tool="pytsk3",
            )
        except OSError as error:
            trace.errors.append(TraceError(tool="pytsk3", message=str(error), stream="raw"))
        return trace

    def _with_meta(self, entry) -> tuple[Any, Any]:
        """The entry and its metadata; orphans and some deleted names come without it: look the inode up."""
        name_info = entry.info.name
        meta = getattr(entry.info, "meta", None)
        if meta is None and (int(name_info.meta_addr) != 0 or self.is_ntfs):
            try:
                entry = self.fs_info.open_meta(inode=int(name_info.meta_addr))
                meta = getattr(entry.info, "meta", None)
            except OSError:
                meta = None
        return entry, meta

    @staticmethod
    def _add_meta_properties(trace: TraceRecord, meta, *, local_times: bool = False) -> None:
        for property_name, seconds_field in (
            ("file.createdOn", "crtime"),
            ("file.modifiedOn", "mtime"),
            ("file.accessedOn", "atime"),
            ("file.changedOn", "ctime"),
            ("file.deletedOn", "dtime"),
        ):
            seconds = getattr(meta, seconds_field, 0)
            nanoseconds = getattr(meta, f"{seconds_field}_nano", 0)
            if local_times:
                moment = local_wall_clock(seconds, nanoseconds)
                if moment is not None:
                    set_local_time(trace.properties, property_name, moment)
                continue
            text = iso8601(seconds, nanoseconds)
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
            attribute_name = decode_name(raw_name) if raw_name else ""
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

            if self.is_fat and trace.deleted and stream_name == "raw" and size:
                read_at = self._recovered_reader(trace=trace, stream=stream, inode=inode, size=size) or read_at

            try:
                self.walk.reader.digest(
                    trace=trace,
                    stream=stream,
                    read_at=read_at,
                    size=size,
                    file_name=trace.name,
                    tool="pytsk3",
                )
            except OSError as error:
                trace.errors.append(TraceError(tool="pytsk3", message=str(error), stream=stream_name))
                continue
            if stream_name.startswith("ads:") and size and FILE_SYSTEM_METADATA_TYPE not in trace.types:
                self._streams_as_files.append(
                    _StreamFile(stream_name=data_stream or "", size=size, data_path=data_path, read_at=read_at)
                )

    def _recovered_reader(self, *, trace: TraceRecord, stream: DataStream, inode: int, size: int):
        """A deleted FAT file's bytes from the clusters `fat_recovery` gave it (marked recovered on the
        trace, and the clusters kept as the stream's data location, so the data service reads them too, not
        TSK's contiguous reading its data path names), or None to read what TSK reads."""
        recovery = self.fat_recovery()
        reader = recovery.reader(inode=inode, size=size) if recovery is not None else None
        if reader is None or recovery is None:
            return None
        runs = cluster_runs(recovery.assigned[inode])
        if self._volume_path is None:
            self._volume_path = source.serialise_path_spec(self.volume_spec)
        stream.data_location = source.clusters_location(
            volume_path=self._volume_path,
            data_offset=recovery.geometry.cluster_offset(2),
            cluster_size=recovery.geometry.cluster_size,
            runs=runs,
        )
        trace.properties["file.recovered"] = True
        trace.properties["file.recoveredClusters"] = runs
        trace.properties["file.recoveredFragments"] = len(runs)
        trace.tools.setdefault("file", TOOL_PYTSK3)
        return reader
