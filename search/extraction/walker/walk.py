"""The walk driver: ``walk_image`` and ``Walk``, which holds one walk's state (options, the dfVFS resolver
context, secrets and the credentials they unlocked, the stream reader, its share of a split walk) and
decides, for each run of bytes, which layer reads it: an encrypted volume, a volume system, a partition
table or a file system."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from dfvfs.analyzer import analyzer as dfvfs_analyzer
from dfvfs.lib import definitions as dfvfs_definitions

from search.extraction import source, unlock
from search.extraction.traces import TraceError, TraceRecord
from search.extraction.walker.common import error_trace
from search.extraction.walker.encrypted import ENCRYPTION_NAMES, encrypted_volume
from search.extraction.walker.file_systems_dfvfs import dfvfs_file_system
from search.extraction.walker.file_systems_tsk import open_tsk_file_system, tsk_file_system
from search.extraction.walker.images import evidence_traces
from search.extraction.walker.nested import nested_image_of, nested_image_traces
from search.extraction.walker.options import WalkOptions
from search.extraction.walker.reader import StreamReader
from search.extraction.walker.volumes import (
    DFVFS_VOLUME_SYSTEMS,
    PARTITION_TABLE_INDICATORS,
    dfvfs_volumes,
    partition_volumes,
    scans_for_shadow_copies,
    tsk_partitions,
)


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
    walk = Walk(file_object=file_object, evidence_id=evidence_id, secrets=secrets, options=options or WalkOptions())
    yield from walk.run()


class Walk:
    """One extraction of one piece of evidence. Not thread-safe; one instance per walk.

    The layer modules read its public attributes and call ``explore`` for the bytes each layer holds."""

    def __init__(self, *, file_object: BinaryIO, evidence_id: str, secrets, options: WalkOptions):
        self.evidence_id = evidence_id
        self.options = options
        related = {**options.parents, **options.related_files}
        self.context = source.new_resolver_context(
            file_object=file_object, file_name=options.file_name, related_files=related
        )
        self.secrets = unlock.normalise_secrets(secrets)
        shard_index, shard_count = options.shard or (0, 1)
        if not 0 <= shard_index < shard_count:
            raise ValueError(f"shard {options.shard} is not (index, count) with 0 <= index < count")
        self.shard_index, self.shard_count = shard_index, shard_count
        self.reader = StreamReader(options=options, context=self.context, hash_volumes_here=shard_index == 0)
        self.credentials = unlock.KeyChainCredentials()
        # How many images found inside files enclose what is being walked now (0: the evidence's own layers).
        self.nesting = 0

    def run(self) -> Iterator[TraceRecord]:
        """The walk's traces, in the walk's order, each once its MIME types are known."""
        level = self.options.root.nesting if self.options.root is not None else 0
        try:
            traces = self._with_nested_images(evidence_traces(walk=self), level=level)
            yield from self.reader.in_order(traces, keep=self._in_share)
        finally:
            self.reader.close()
            self.credentials.forget()

    def _with_nested_images(self, traces: Iterator[TraceRecord], *, level: int) -> Iterator[TraceRecord]:
        """``traces``, each file that is a disk image followed by the image's own layers and files."""
        for trace in traces:
            found = self.reader.file_heads.pop(trace.uid, None)
            image = None
            if found is not None:
                stream, head = found
                image = nested_image_of(walk=self, trace=trace, stream=stream, head=head, level=level + 1)
            yield trace
            if image is None:
                continue
            # The share that walks the file walks all of the image inside it (see owns_top_level_entry).
            self.nesting += 1
            try:
                nested = nested_image_traces(walk=self, file_trace=trace, image=image)
                yield from self._with_nested_images(nested, level=level + 1)
            finally:
                self.nesting -= 1

    def _in_share(self, trace: TraceRecord) -> bool:
        # Layers above the files are share 0's; those of an image inside a file, the file's share's.
        return self.shard_index == 0 or "file" in trace.types or self.nesting > 0

    def owns_top_level_entry(self, ordinal: int) -> bool:
        """Whether a file system's top-level entry ``ordinal`` (and its subtree) is this share's to walk.
        Inside an image found in a file, every entry is: the image belongs to the file's share."""
        return self.nesting > 0 or ordinal % self.shard_count == self.shard_index

    def explore(self, *, spec, parent: TraceRecord, depth: int) -> Iterator[TraceRecord]:
        """Yield the children of ``parent``, whose bytes ``spec`` names: volumes, a file system, …"""
        if depth > self.options.max_depth:
            parent.errors.append(TraceError(tool="custodia", message="layers nested too deep; stopped"))
            return
        ordinal = 0
        try:
            indicators = dfvfs_analyzer.Analyzer.GetVolumeSystemTypeIndicators(spec, resolver_context=self.context)
        except Exception as error:
            yield error_trace(parent=parent, ordinal=ordinal, tool="dfvfs", message=str(error))
            return

        encryption = [indicator for indicator in indicators if indicator in ENCRYPTION_NAMES]
        if encryption:
            yield from encrypted_volume(
                walk=self, spec=spec, type_indicator=encryption[0], parent=parent, ordinal=ordinal, depth=depth
            )
            return

        other_volume_systems = [indicator for indicator in indicators if indicator in DFVFS_VOLUME_SYSTEMS]
        if other_volume_systems:
            yield from dfvfs_volumes(
                walk=self,
                spec=spec,
                type_indicator=other_volume_systems[0],
                parent=parent,
                depth=depth,
                first_ordinal=ordinal,
            )
            return

        tsk_file_system_info = (
            open_tsk_file_system(spec=spec, context=self.context) if self.options.prefer_tsk else None
        )
        if tsk_file_system_info is None:
            hinted = bool(PARTITION_TABLE_INDICATORS & set(indicators))
            partitions = tsk_partitions(spec=spec, context=self.context, hinted=hinted)
            if partitions:
                yield from partition_volumes(walk=self, spec=spec, volume_info=partitions, parent=parent, depth=depth)
                return

        if scans_for_shadow_copies(spec=spec, indicators=indicators):
            for trace in dfvfs_volumes(
                walk=self,
                spec=spec,
                type_indicator=dfvfs_definitions.TYPE_INDICATOR_VSHADOW,
                parent=parent,
                depth=depth,
                first_ordinal=ordinal,
            ):
                if trace.parent_uid == parent.uid:
                    ordinal += 1
                yield trace

        if tsk_file_system_info is not None:
            yield from tsk_file_system(
                walk=self, spec=spec, fs_info=tsk_file_system_info, parent=parent, ordinal=ordinal
            )
            return
        yield from dfvfs_file_system(walk=self, spec=spec, parent=parent, ordinal=ordinal)
