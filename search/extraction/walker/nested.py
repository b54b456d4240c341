"""Disk images inside the evidence: a file of a seized disk that is itself a disk image (a ``.vhd``, an
``.E01``, a ``.qcow2``, a raw disk or partition image) is walked as a child source, its layers below the
file's trace as if it were evidence of its own; and the walk of an image found inside an archive member
(``search.extraction.pipeline``) starts from a root named by ``NestedRoot``.

A file is recognised by intake's signatures (``evidence.reading.disk_image_format``) on the first bytes
the walker read anyway; a fixed VHD, whose only signature is its last sector, by its name and then that
sector. Each image opened counts one level against the evidence item's budget (``ExtractionBudget``),
and none is opened once the budget's time is spent: the file's trace then says so. A walk without a
budget (``WalkOptions.budget`` None) opens no nested image.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dfvfs.lib import definitions as dfvfs_definitions
from dfvfs.path import factory as path_spec_factory
from dfvfs.resolver import resolver as dfvfs_resolver

from search.extraction import source
from search.extraction.budget import BUDGET_TOOL, BudgetExceeded
from search.extraction.traces import DataStream, TraceError, TraceRecord, child_uid
from search.extraction.walker.common import TOOL_DFVFS
from search.extraction.walker.volumes import parent_then_children

if TYPE_CHECKING:
    from search.extraction.walker.walk import Walk

# The dfVFS layer that decodes each format intake names (raw: the file's bytes are the disk).
MEDIA_TYPE_INDICATORS = {
    "ewf": dfvfs_definitions.TYPE_INDICATOR_EWF,
    "vhd": dfvfs_definitions.TYPE_INDICATOR_VHDI,
    "vhdx": dfvfs_definitions.TYPE_INDICATOR_VHDI,
    "vmdk": dfvfs_definitions.TYPE_INDICATOR_VMDK,
    "qcow2": dfvfs_definitions.TYPE_INDICATOR_QCOW,
    "raw": None,
}
# A stream shorter than this holds no partition table or file system worth a walk.
MIN_IMAGE_BYTES = 4096
FOOTER_BYTES = 512


@dataclass(frozen=True)
class NestedRoot:
    """Where the walk of an image found inside an archive member hangs in the evidence's trace tree: its
    root trace's uid, parent uid and path, and how many images enclose it (1: the member of an archive
    that is a file of the evidence)."""

    uid: str
    parent_uid: str
    name: str
    path: str
    nesting: int = 1


@dataclass(frozen=True)
class NestedImage:
    image_format: str
    file_spec: object


def nested_image_of(
    *, walk: Walk, trace: TraceRecord, stream: DataStream, head: bytes, level: int
) -> NestedImage | None:
    """The image a file trace holds, to be walked below it, or None. A budget that forbids opening it is
    recorded on ``trace`` (which has not left the walk yet)."""
    if trace.deleted or "folder" in trace.types or stream.size < MIN_IMAGE_BYTES or not stream.data_path:
        return None
    if trace.properties.get("file.virtual") or _is_file_system_metadata(trace):
        return None  # NTFS's $Boot starts with the very boot sector of the volume it belongs to
    # Imported here: the walker itself runs without Django (determinism checks, benchmarks), and only a
    # walk with a budget (an extraction run, which has Django) opens nested images.
    from evidence.reading import disk_image_format

    image_format = disk_image_format(head=head, tail=None, name=trace.name)
    file_spec = None
    if image_format is None and trace.name.lower().endswith((".vhd", ".avhd")):
        file_spec = source.deserialise_path_spec(stream.data_path)
        image_format = disk_image_format(head=head, tail=_last_bytes(walk=walk, spec=file_spec), name=trace.name)
    if image_format is None:
        return None
    budget = walk.options.budget
    if budget is not None:
        try:
            budget.check_nesting(level, what=f"{image_format} image {trace.name!r}")
            budget.check_time(what=f"{image_format} image {trace.name!r}")
        except BudgetExceeded as error:
            trace.errors.append(TraceError(tool=BUDGET_TOOL, message=str(error)))
            return None
    return NestedImage(image_format, file_spec or source.deserialise_path_spec(stream.data_path))


def _is_file_system_metadata(trace: TraceRecord) -> bool:
    path = str(trace.properties.get("file.path", ""))
    return trace.name.startswith("$") and path.count("/") <= 1


def _last_bytes(*, walk: Walk, spec) -> bytes | None:
    try:
        file_object = dfvfs_resolver.Resolver.OpenFileObject(spec, resolver_context=walk.context)
        size = file_object.get_size()
        file_object.seek(max(0, size - FOOTER_BYTES))
        return file_object.read(FOOTER_BYTES)
    except Exception:  # an unreadable file is no image we can walk; its own trace says why
        return None


def nested_image_traces(*, walk: Walk, file_trace: TraceRecord, image: NestedImage) -> Iterator[TraceRecord]:
    """The image layer below ``file_trace`` (its uid the file's with ordinal 0, which no content tool's
    child takes), then everything the image holds, as the evidence's own image is walked."""
    indicator = MEDIA_TYPE_INDICATORS[image.image_format]
    media_spec = (
        path_spec_factory.Factory.NewPathSpec(indicator, parent=image.file_spec) if indicator else image.file_spec
    )
    trace = TraceRecord(
        uid=child_uid(parent_uid=file_trace.uid, ordinal=0),
        parent_uid=file_trace.uid,
        name=image.image_format,
        path=f"{file_trace.path}/{image.image_format}",
        types=["image"],
        deleted=file_trace.deleted,
    )
    trace.tools["image"] = TOOL_DFVFS
    trace.properties.update({"image.format": image.image_format, "image.nested": True})
    try:
        media = dfvfs_resolver.Resolver.OpenFileObject(media_spec, resolver_context=walk.context)
        size = media.get_size()
    except Exception as error:
        trace.errors.append(TraceError(tool="dfvfs", message=f"cannot open the {image.image_format} image: {error}"))
        yield trace
        return
    trace.properties["image.size"] = size
    trace.streams.append(DataStream(name="raw", size=size, data_path=source.serialise_path_spec(media_spec)))
    yield from parent_then_children(trace, walk.explore(spec=media_spec, parent=trace, depth=0))
