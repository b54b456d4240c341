"""The per-stream reader: every stream is read once, in large blocks, and every tool runs on that one
read (MD5, SHA-1, SHA-256, Shannon entropy, and the MIME type of its first bytes); traces wait for their
MIME types and leave in the walk's order."""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Callable, Iterator

from dfvfs.resolver import resolver as dfvfs_resolver

from search.extraction.traces import DataStream, RawContent, ToolRef, TraceError, TraceRecord
from search.extraction.walker.common import reader_of
from search.extraction.walker.mime import FILE_SYSTEM_METADATA_TYPE, MimeSniffer, PendingMime, apply_mime
from search.extraction.walker.options import MIB, WalkOptions

try:  # numpy makes the byte histogram for entropy ~100x faster; the pure-Python fallback stays exact.
    import numpy
except ImportError:  # pragma: no cover - depends on the environment
    numpy = None

TOOL_HASHES = ToolRef("hashlib", "builtin")

# Traces held back while their MIME types are sniffed (each holds at most mime_sniff_bytes of head, and,
# with WalkOptions.keep_content, its kept bytes: those are bounded in total too).
_MAX_TRACES_IN_FLIGHT = 256
_MAX_CONTENT_BYTES_IN_FLIGHT = 64 * MIB


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


class StreamReader:
    """Reads the streams of one walk, and hands its traces on in order once their MIME types are known.

    ``hash_volumes_here``: whether this walk hashes the streams of layers above the files (volumes are
    share 0's traces: the other shares of a split walk drop them)."""

    def __init__(self, *, options: WalkOptions, context, hash_volumes_here: bool):
        self.options = options
        self.context = context
        self.hash_volumes_here = hash_volumes_here
        self.sniffer = MimeSniffer(threads=options.mime_threads)
        self._pending_mime: list[PendingMime] = []
        # The raw stream and first bytes of each file just read, by trace uid, until the walk takes them to
        # look for a disk image inside (``Walk``): one or two entries at a time.
        self.file_heads: dict[str, tuple[DataStream, bytes]] = {}

    def close(self) -> None:
        self.sniffer.close()

    def in_order(self, traces: Iterator[TraceRecord], *, keep: Callable[[TraceRecord], bool]) -> Iterator[TraceRecord]:
        """``traces`` that ``keep`` keeps, in their order, each once its MIME types are known."""
        waiting: deque[tuple[TraceRecord, list[PendingMime]]] = deque()
        content_bytes = 0  # kept content of the traces waiting
        for trace in traces:
            pending, self._pending_mime = self._pending_mime, []
            if not keep(trace):
                continue
            waiting.append((trace, pending))
            content_bytes += _kept_bytes(trace)
            while waiting and (
                len(waiting) > _MAX_TRACES_IN_FLIGHT
                or content_bytes > _MAX_CONTENT_BYTES_IN_FLIGHT
                or all(item.future.done() for item in waiting[0][1])
            ):
                ready, ready_pending = waiting.popleft()
                content_bytes -= _kept_bytes(ready)
                apply_mime(ready_pending)
                yield ready
        while waiting:
            ready, ready_pending = waiting.popleft()
            apply_mime(ready_pending)
            yield ready

    def hash_dfvfs_stream(self, *, trace: TraceRecord, stream: DataStream, path_spec) -> None:
        """Digest the stream of a layer (image, volume, decrypted volume) dfVFS opens at ``path_spec``."""
        if not self.hash_volumes_here:
            return
        try:
            file_object = dfvfs_resolver.Resolver.OpenFileObject(path_spec, resolver_context=self.context)
            self.digest(
                trace=trace,
                stream=stream,
                read_at=reader_of(file_object),
                size=stream.size,
                file_name=None,
                tool="dfvfs",
            )
        except Exception as error:
            trace.errors.append(TraceError(tool="dfvfs", message=str(error), stream=stream.name))

    def digest(self, *, trace, stream: DataStream, read_at, size: int, file_name: str | None, tool: str):
        """Read ``size`` bytes in blocks; every tool (hashes, entropy, MIME) sees the same single read.

        With ``WalkOptions.keep_content``, a file's raw stream also goes with its trace (its bytes, or a
        reader for a large one), for the content tools."""
        digest = StreamDigest(head_size=self.options.mime_sniff_bytes)
        # A file system's own structures are not content: no content tool is to read them.
        keep = (
            self.options.keep_content
            and stream.name == "raw"
            and file_name is not None
            and FILE_SYSTEM_METADATA_TYPE not in trace.types
        )
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
        if stream.name == "raw" and file_name is not None and self.options.budget is not None:
            self.file_heads[trace.uid] = (stream, digest.head)
        if stream.name == "raw" and file_name is not None:
            # Its place among the properties is taken now; in_order() fills it in before the trace leaves.
            trace.properties["file.mimeType"] = None
            trace.tools.setdefault("data", TOOL_HASHES)
        if digest.size:
            self._pending_mime.append(
                PendingMime(
                    trace=trace,
                    stream=stream,
                    file_name=file_name,
                    future=self.sniffer.submit(digest.head),
                    error_index=len(trace.errors),
                )
            )


def _kept_bytes(trace: TraceRecord) -> int:
    content = trace.content
    return len(content.data) if content is not None and content.data is not None else 0
