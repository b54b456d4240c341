"""File systems only dfVFS's own back-ends read (APFS, XFS, …; and all of them when TSK is not preferred):
folders and files through dfVFS's file entries, with every data stream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dfvfs.analyzer import analyzer as dfvfs_analyzer
from dfvfs.lib import definitions as dfvfs_definitions
from dfvfs.path import factory as path_spec_factory
from dfvfs.resolver import resolver as dfvfs_resolver

from search.extraction import source
from search.extraction.timezones import set_local_time
from search.extraction.traces import DataStream, TraceError, TraceRecord, child_uid
from search.extraction.walker.common import TOOL_DFVFS, reader_of
from search.extraction.walker.fat_times import read_entry_times

if TYPE_CHECKING:
    from search.extraction.walker.walk import Walk

# File systems that only dfVFS's own back-ends read (TSK reads NTFS, FAT, ext, ISO 9660 and HFS+).
_DFVFS_FILE_SYSTEMS = {
    dfvfs_definitions.TYPE_INDICATOR_APFS,
    dfvfs_definitions.TYPE_INDICATOR_XFS,
    dfvfs_definitions.TYPE_INDICATOR_EXT,
    dfvfs_definitions.TYPE_INDICATOR_FAT,
    dfvfs_definitions.TYPE_INDICATOR_HFS,
    dfvfs_definitions.TYPE_INDICATOR_NTFS,
}


# What each of dfVFS's back-ends cannot show that The Sleuth Kit lists: recorded on every file system the
# walk reads through dfVFS, so that an examiner knows the listing is not the whole story.
_NOT_LISTED_BY_DFVFS = {
    dfvfs_definitions.TYPE_INDICATOR_NTFS: (
        "deleted files and folders, $OrphanFiles, index streams ($I30, $Secure:$SDH, …) and file slack"
    ),
    dfvfs_definitions.TYPE_INDICATOR_FAT: "deleted files and folders (and their recoverable content) and file slack",
    dfvfs_definitions.TYPE_INDICATOR_EXT: "deleted files and folders, orphan inodes and file slack",
    dfvfs_definitions.TYPE_INDICATOR_HFS: "deleted files and folders and file slack",
    dfvfs_definitions.TYPE_INDICATOR_APFS: "deleted files, snapshots other than the live one, and file slack",
    dfvfs_definitions.TYPE_INDICATOR_XFS: "deleted files and folders and file slack",
}


def dfvfs_limits_note(type_indicator: str) -> str:
    """What a file system listed through dfVFS's ``type_indicator`` back-end leaves out."""
    missing = _NOT_LISTED_BY_DFVFS.get(type_indicator, "deleted files and folders and file slack")
    return (
        f"Listed through dfVFS's {type_indicator} back-end, not The Sleuth Kit: {missing} are not shown; "
        "allocated files and their data streams are."
    )


def dfvfs_file_system(
    *, walk: Walk, spec, parent: TraceRecord, ordinal: int, known_type: str | None = None
) -> Iterator[TraceRecord]:
    """The file system in ``spec``'s bytes (of ``known_type``, or as dfVFS detects it), then its files.

    Nothing recognisable (wiped, unformatted or an unsupported format): nothing; the volume stays a leaf."""
    try:
        indicators = (
            [known_type]
            if known_type
            else dfvfs_analyzer.Analyzer.GetFileSystemTypeIndicators(spec, resolver_context=walk.context)
        )
    except Exception as error:
        parent.errors.append(TraceError(tool="dfvfs", message=f"file system detection failed: {error}"))
        return
    indicators = [indicator for indicator in indicators if indicator in _DFVFS_FILE_SYSTEMS]
    if not indicators:
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
        properties={"fileSystem.type": fs_name, "fileSystem.notListed": dfvfs_limits_note(type_indicator)},
        tools={"fileSystem": TOOL_DFVFS},
    )
    try:
        file_system = dfvfs_resolver.Resolver.OpenFileSystem(fs_spec, resolver_context=walk.context)
        root = file_system.GetRootFileEntry()
        entries = sorted(root.sub_file_entries, key=lambda entry: (entry.name or "").encode("utf-8"))
    except Exception as error:
        fs_trace.errors.append(TraceError(tool="dfvfs", message=f"cannot open the file system: {error}"))
        yield fs_trace
        return
    fat_read_at = None
    if type_indicator == dfvfs_definitions.TYPE_INDICATOR_FAT:
        # FAT times are decoded from the directory entries themselves (walker/fat_times.py says why).
        try:
            fat_read_at = reader_of(dfvfs_resolver.Resolver.OpenFileObject(spec, resolver_context=walk.context))
        except Exception as error:
            fs_trace.errors.append(TraceError(tool="dfvfs", message=f"cannot read the FAT directory entries: {error}"))
    yield fs_trace
    yield from _children(
        walk=walk, entries=entries, parent=fs_trace, fs_path="", deal_out=True, fat_read_at=fat_read_at
    )


def _children(
    *, walk: Walk, entries, parent: TraceRecord, fs_path: str, deal_out: bool = False, fat_read_at=None
) -> Iterator[TraceRecord]:
    """The traces of ``entries`` and everything below them; ``fat_read_at`` reads the volume of a FAT file
    system, whose entries' times are decoded from their directory entries."""
    for ordinal, entry in enumerate(entries):
        if deal_out and not walk.owns_top_level_entry(ordinal):
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
        trace.properties.update(
            _file_properties(entry=entry, trace=trace, path_in_fs=path_in_fs, fat_read_at=fat_read_at)
        )
        sub_entries = []
        if is_directory:
            try:
                sub_entries = sorted(entry.sub_file_entries, key=lambda child: (child.name or "").encode("utf-8"))
            except Exception as error:
                trace.errors.append(TraceError(tool="dfvfs", message=f"cannot list the folder: {error}"))
        _add_streams(walk=walk, entry=entry, trace=trace)
        yield trace
        if sub_entries:
            yield from _children(
                walk=walk, entries=sub_entries, parent=trace, fs_path=path_in_fs, fat_read_at=fat_read_at
            )


def _file_properties(*, entry, trace: TraceRecord, path_in_fs: str, fat_read_at=None) -> dict:
    properties = {"file.name": trace.name, "file.path": path_in_fs, "file.deleted": trace.deleted}
    if entry.size is not None and "folder" not in trace.types:
        properties["file.size"] = int(entry.size)
    if fat_read_at is not None:
        # A FAT entry's times are the writer's wall clock: local times of unknown zone, as the TSK path has them.
        times = read_entry_times(read_at=fat_read_at, offset=int(entry.GetStatAttribute().inode_number or 0))
        if times is None:
            trace.errors.append(TraceError(tool="dfvfs", message="cannot read the times of the FAT directory entry"))
        for property_name, moment in (times or {}).items():
            set_local_time(properties, property_name, moment)
        return properties
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
    return properties


def _add_streams(*, walk: Walk, entry, trace: TraceRecord) -> None:
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
            walk.reader.digest(
                trace=trace,
                stream=stream,
                read_at=reader_of(file_object),
                size=stream.size,
                file_name=trace.name,
                tool="dfvfs",
            )
        except Exception as error:
            trace.errors.append(TraceError(tool="dfvfs", message=str(error), stream=stream_name))
