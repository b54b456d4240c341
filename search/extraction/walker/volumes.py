"""Volume systems: partition tables (MBR with nested extended partitions, GPT, … through The Sleuth Kit,
for ``mmls``-identical results) and the volume systems dfVFS walks (LVM, APFS containers, Core Storage,
volume shadow copies)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytsk3
from dfvfs.lib import definitions as dfvfs_definitions
from dfvfs.path import factory as path_spec_factory
from dfvfs.resolver import resolver as dfvfs_resolver

from search.extraction import source
from search.extraction.traces import DataStream, TraceError, TraceRecord, child_uid
from search.extraction.walker.common import TOOL_DFVFS, TOOL_PYTSK3, error_trace, natural_key, tsk_image_of
from search.extraction.walker.file_systems_dfvfs import dfvfs_file_system

if TYPE_CHECKING:
    from search.extraction.walker.walk import Walk

# Volume systems dfVFS walks for us (partition tables go through TSK, for mmls-identical results).
DFVFS_VOLUME_SYSTEMS = {
    dfvfs_definitions.TYPE_INDICATOR_APFS_CONTAINER: "apfsContainer",
    dfvfs_definitions.TYPE_INDICATOR_CS: "coreStorage",
    dfvfs_definitions.TYPE_INDICATOR_LVM: "lvm",
}
# What dfVFS calls a partition table: then TSK must find one, even with no allocated partition in it.
PARTITION_TABLE_INDICATORS = {
    dfvfs_definitions.TYPE_INDICATOR_TSK_PARTITION,
    dfvfs_definitions.TYPE_INDICATOR_GPT,
    dfvfs_definitions.TYPE_INDICATOR_APM,
}
_TSK_VS_TYPE_NAMES = {
    int(getattr(pytsk3, f"TSK_VS_TYPE_{name}")): name.lower()
    for name in ("DOS", "GPT", "MAC", "BSD", "SUN", "APFS")
    if hasattr(pytsk3, f"TSK_VS_TYPE_{name}")
}


def parent_then_children(parent: TraceRecord, children: Iterator[TraceRecord]) -> Iterator[TraceRecord]:
    """``parent``, then ``children``; but ``parent`` leaves only once the first child is made.

    A layer learns things about the bytes holding it as it opens them (two file systems in one volume, a
    depth limit), and a trace is stored as soon as it is yielded: what the first child adds to its parent
    must be there before the parent leaves. Still parents before children, in the same order."""
    first = next(children, None)
    yield parent
    if first is not None:
        yield first
        yield from children


# ---------------------------------------------------------------------- partition tables (TSK)


def tsk_partitions(*, spec, context, hinted: bool):
    """TSK's volume info of the partition table in ``spec``'s bytes, or None when there is none."""
    try:
        volume_info = pytsk3.Volume_Info(tsk_image_of(spec=spec, context=context))
    except OSError:
        return None
    allocated = [part for part in volume_info if int(part.flags) & int(pytsk3.TSK_VS_PART_FLAG_ALLOC)]
    if not allocated and not hinted:
        return None
    return volume_info


def partition_volumes(*, walk: Walk, spec, volume_info, parent: TraceRecord, depth: int) -> Iterator[TraceRecord]:
    """One volume trace per allocated partition, by start sector, each followed by what it holds."""
    block_size = int(getattr(volume_info.info, "block_size", 512) or 512)
    table = _TSK_VS_TYPE_NAMES.get(int(volume_info.info.vstype), str(volume_info.info.vstype))
    parts = [part for part in volume_info if int(part.flags) & int(pytsk3.TSK_VS_PART_FLAG_ALLOC)]
    # TSK lists parts by start sector; sort again on (start, address) so the order never depends on it.
    parts.sort(key=lambda part: (int(part.start), int(part.addr)))
    for ordinal, part in enumerate(parts):
        index = ordinal + 1
        offset = int(part.start) * block_size
        size = int(part.len) * block_size
        part_spec = path_spec_factory.Factory.NewPathSpec(
            dfvfs_definitions.TYPE_INDICATOR_TSK_PARTITION, location=f"/p{index}", start_offset=offset, parent=spec
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
        if walk.options.hash_volumes:
            walk.reader.hash_dfvfs_stream(trace=trace, stream=trace.streams[0], path_spec=part_spec)
        yield from parent_then_children(trace, walk.explore(spec=part_spec, parent=trace, depth=depth + 1))


# ---------------------------------------------------------------------- volume systems dfVFS walks


def scans_for_shadow_copies(*, spec, indicators) -> bool:
    """Whether the bytes ``spec`` names are a volume whose shadow copies the walk must list.

    A shadow copy store presents the whole volume as it was, VSS catalog included: scanned again, every
    store would hold every store down to the depth limit. Stores are listed once, under their volume."""
    if dfvfs_definitions.TYPE_INDICATOR_VSHADOW not in indicators:
        return False
    return not inside_shadow_copy(spec)


def inside_shadow_copy(spec) -> bool:
    """Whether a volume shadow copy store is among the layers of ``spec``'s chain."""
    while spec is not None:
        if spec.type_indicator == dfvfs_definitions.TYPE_INDICATOR_VSHADOW:
            return True
        spec = getattr(spec, "parent", None)
    return False


def dfvfs_volumes(
    *, walk: Walk, spec, type_indicator: str, parent: TraceRecord, depth: int, first_ordinal: int
) -> Iterator[TraceRecord]:
    """The volumes of a volume system dfVFS reads, by natural name order, each followed by what it holds."""
    system_spec = path_spec_factory.Factory.NewPathSpec(type_indicator, location="/", parent=spec)
    try:
        file_system = dfvfs_resolver.Resolver.OpenFileSystem(system_spec, resolver_context=walk.context)
        entries = list(file_system.GetRootFileEntry().sub_file_entries)
    except Exception as error:
        yield error_trace(parent=parent, ordinal=first_ordinal, tool="dfvfs", message=str(error))
        return
    system_name = (
        "volumeShadowCopy"
        if type_indicator == dfvfs_definitions.TYPE_INDICATOR_VSHADOW
        else DFVFS_VOLUME_SYSTEMS.get(type_indicator, type_indicator.lower())
    )
    entries.sort(key=lambda entry: natural_key(entry.name or ""))
    for offset_in_siblings, entry in enumerate(entries):
        name = entry.name or f"volume{offset_in_siblings + 1}"
        trace = TraceRecord(
            uid=child_uid(parent_uid=parent.uid, ordinal=first_ordinal + offset_in_siblings),
            parent_uid=parent.uid,
            name=name,
            path=f"{parent.path}/{name}",
            types=["volume", "volumeShadowCopy"] if system_name == "volumeShadowCopy" else ["volume"],
            properties={"volume.system": system_name, "volume.index": offset_in_siblings + 1},
            tools={"volume": TOOL_DFVFS},
        )
        if system_name == "volumeShadowCopy":
            _describe_shadow_copy(entry=entry, trace=trace)
        if type_indicator == dfvfs_definitions.TYPE_INDICATOR_APFS_CONTAINER:
            yield from _apfs_volume(walk=walk, entry=entry, trace=trace)
        else:
            yield from _volume(walk=walk, entry=entry, trace=trace, depth=depth)


def _describe_shadow_copy(*, entry, trace: TraceRecord) -> None:
    """A store's creation time and identifiers (libvshadow's), which tell an examiner which snapshot it is."""
    try:
        creation_time = entry.creation_time
        text = creation_time.CopyToDateTimeStringISO8601() if creation_time is not None else None
        if text:
            trace.properties["volumeShadowCopy.createdOn"] = text
        store = entry.GetVShadowStore()
        for property_name, attribute in (
            ("volumeShadowCopy.identifier", "identifier"),
            ("volumeShadowCopy.copyIdentifier", "copy_identifier"),
            ("volumeShadowCopy.copySetIdentifier", "copy_set_identifier"),
        ):
            value = getattr(store, attribute, None)
            if value:
                trace.properties[property_name] = str(value)
    except Exception as error:  # libvshadow raises what it likes; the store is still listed
        trace.errors.append(TraceError(tool="dfvfs", message=f"cannot describe the shadow copy: {error}"))


def _apfs_volume(*, walk: Walk, entry, trace: TraceRecord) -> Iterator[TraceRecord]:
    # An APFS volume is no run of bytes but a file system sharing the container's blocks: dfVFS opens it
    # as one (as its source scanner does), never as a stream.
    try:
        volume = entry.GetAPFSVolume()
        trace.properties["volume.name"] = volume.name or ""
        trace.properties["volume.identifier"] = str(volume.identifier or "")
        trace.properties["volume.locked"] = bool(volume.is_locked())
    except Exception as error:
        trace.errors.append(TraceError(tool="dfvfs", message=f"cannot read the APFS volume: {error}"))
    yield trace
    yield from dfvfs_file_system(
        walk=walk, spec=entry.path_spec, parent=trace, ordinal=0, known_type=dfvfs_definitions.TYPE_INDICATOR_APFS
    )


def _volume(*, walk: Walk, entry, trace: TraceRecord, depth: int) -> Iterator[TraceRecord]:
    volume_spec = entry.path_spec
    try:
        file_object = dfvfs_resolver.Resolver.OpenFileObject(volume_spec, resolver_context=walk.context)
        size = file_object.get_size()
        trace.properties["volume.size"] = size
        trace.streams.append(DataStream(name="raw", size=size, data_path=source.serialise_path_spec(volume_spec)))
        if walk.options.hash_volumes:
            walk.reader.hash_dfvfs_stream(trace=trace, stream=trace.streams[0], path_spec=volume_spec)
    except Exception as error:
        trace.errors.append(TraceError(tool="dfvfs", message=f"cannot open volume: {error}"))
        yield trace
        return
    yield from parent_then_children(trace, walk.explore(spec=volume_spec, parent=trace, depth=depth + 1))
