"""The evidence itself, the walk's root trace: a storage media image (EWF, VHD, VMDK, qcow2, … decoded by
dfVFS and the libyal bindings, or raw), or one file acquired alone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dfvfs.analyzer import analyzer as dfvfs_analyzer
from dfvfs.lib import definitions as dfvfs_definitions
from dfvfs.path import factory as path_spec_factory
from dfvfs.resolver import resolver as dfvfs_resolver

from search.extraction import source
from search.extraction.traces import DataStream, TraceError, TraceRecord, root_uid
from search.extraction.walker.common import TOOL_DFVFS, reader_of
from search.extraction.walker.volumes import parent_then_children

if TYPE_CHECKING:
    from search.extraction.walker.walk import Walk

# dfVFS type indicators of storage media images (containers around a disk) we decode before anything.
_STORAGE_MEDIA_NAMES = {
    dfvfs_definitions.TYPE_INDICATOR_EWF: "ewf",
    dfvfs_definitions.TYPE_INDICATOR_QCOW: "qcow",
    dfvfs_definitions.TYPE_INDICATOR_VHDI: "vhd",
    dfvfs_definitions.TYPE_INDICATOR_VMDK: "vmdk",
    dfvfs_definitions.TYPE_INDICATOR_PHDI: "parallels",
    dfvfs_definitions.TYPE_INDICATOR_MODI: "modi",
}


def evidence_traces(*, walk: Walk) -> Iterator[TraceRecord]:
    """The root trace (the image, or the file acquired alone), then everything the image holds."""
    root_spec = source.root_path_spec(file_name=walk.options.file_name)
    name = walk.options.root_name or root_spec.location.lstrip("/")
    nested_root = walk.options.root
    if nested_root is None:
        trace = TraceRecord(
            uid=root_uid(evidence_id=walk.evidence_id), parent_uid=None, name=name, path="/" + name, types=["image"]
        )
    else:  # an image inside an archive member: its root hangs below the member
        trace = TraceRecord(
            uid=nested_root.uid,
            parent_uid=nested_root.parent_uid,
            name=nested_root.name,
            path=nested_root.path,
            types=["image"],
        )
        trace.properties["image.nested"] = True
    trace.tools["image"] = TOOL_DFVFS
    if walk.options.root_is_file:
        yield from _single_file(walk=walk, spec=root_spec, trace=trace)
        return
    media_spec, image_format = _storage_media(walk=walk, root_spec=root_spec, trace=trace)
    trace.properties["image.format"] = image_format
    try:
        media = dfvfs_resolver.Resolver.OpenFileObject(media_spec, resolver_context=walk.context)
        size = media.get_size()
        trace.properties["image.size"] = size
        trace.streams.append(DataStream(name="raw", size=size, data_path=source.serialise_path_spec(media_spec)))
    except Exception as error:
        trace.errors.append(
            TraceError(tool="dfvfs", message=_cannot_open(image_format=image_format, name=name, error=error))
        )
        yield trace
        return
    if walk.options.hash_volumes:
        walk.reader.hash_dfvfs_stream(trace=trace, stream=trace.streams[0], path_spec=media_spec)
    yield from parent_then_children(trace, walk.explore(spec=media_spec, parent=trace, depth=0))


def _cannot_open(*, image_format: str, name: str, error: Exception) -> str:
    # libewf finds segments by name and refuses any other ("invalid segment file extension"): say so plainly.
    if image_format == "ewf" and not re.search(r"\.(e|ex|s|l|lx)01$", name, re.IGNORECASE):
        return (
            f"cannot open the ewf image: its file is named {name!r}, and libewf reads EWF only from files "
            "named .E01, .E02, … (evidence.reading.presented_names names them so for extraction)"
        )
    return f"cannot open the {image_format} image: {error}"


def _storage_media(*, walk: Walk, root_spec, trace: TraceRecord) -> tuple[object, str]:
    """The path spec of the disk inside the evidence file, and the image format ("raw": the file is it)."""
    try:
        indicators = dfvfs_analyzer.Analyzer.GetStorageMediaImageTypeIndicators(
            root_spec, resolver_context=walk.context
        )
        indicators = [indicator for indicator in indicators if indicator in _STORAGE_MEDIA_NAMES]
        if len(indicators) == 1:
            media_spec = path_spec_factory.Factory.NewPathSpec(indicators[0], parent=root_spec)
            return media_spec, _STORAGE_MEDIA_NAMES[indicators[0]]
        if len(indicators) > 1:
            trace.errors.append(TraceError(tool="dfvfs", message=f"ambiguous image formats {indicators}"))
    except Exception as error:
        trace.errors.append(TraceError(tool="dfvfs", message=f"image format detection failed: {error}"))
    return root_spec, "raw"


def _single_file(*, walk: Walk, spec, trace: TraceRecord) -> Iterator[TraceRecord]:
    if walk.shard_index != 0:
        return  # one file: share 0's
    trace.types = ["file"]
    trace.tools = {"file": TOOL_DFVFS}
    try:
        file_object = dfvfs_resolver.Resolver.OpenFileObject(spec, resolver_context=walk.context)
        size = file_object.get_size()
    except Exception as error:
        trace.errors.append(TraceError(tool="dfvfs", message=f"cannot open the evidence file: {error}"))
        yield trace
        return
    trace.properties["file.size"] = size
    stream = DataStream(name="raw", size=size, data_path=source.serialise_path_spec(spec))
    trace.streams.append(stream)
    walk.reader.digest(
        trace=trace, stream=stream, read_at=reader_of(file_object), size=size, file_name=trace.name, tool="dfvfs"
    )
    yield trace
