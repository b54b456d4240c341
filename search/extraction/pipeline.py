"""The extraction pipeline: from the walker's records to the trace rows the publisher writes.

An extraction walks the evidence's acquired files (:func:`walk_options` says how), runs the content tools
on each file the walker found (:func:`analyse_file`, on the bytes the walker already read when it kept
them), and turns each record into a row (:func:`trace_row`) followed by a row for every trace the tools
found inside it (:func:`tool_children`); :func:`trace_rows` does the three for one record. A row is the
dict :class:`search.publisher.Publisher` takes: uid, parent_uid, name, path, types, properties, streams,
tools, errors, deleted, text.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Iterator

from evidence.reading import AcquiredEvidence, disk_image_format, presented_names
from search.extraction import source as media_source
from search.extraction.budget import BUDGET_TOOL, BudgetExceeded, ExtractionBudget
from search.extraction.tools import HEAD_SIZE, TOOLS, accepting_tools, analyse
from search.extraction.tools.base import Limits
from search.extraction.traces import DataStream, TraceRecord, child_uid
from search.extraction.walker import NestedRoot, StreamDigest, Walk, WalkOptions

# Files larger than this are hashed and typed by the walker, but not opened by the content tools.
TOOL_MAX_BYTES = 256 * 1024 * 1024
TEXT_MAX_CHARS = 1_000_000
# Contents whose tools' findings are remembered (a copy of one is not analysed again), and how many bytes
# of child data those findings may hold in all.
MEMO_ENTRIES = 512
MEMO_MAX_BYTES = 64 * 1024 * 1024
# How much of an archive member is looked at for a disk image's signature.
HEAD_SIZE_IMAGES = 64 * 1024


def walk_options(*, acquired: AcquiredEvidence, shard: tuple[int, int] | None = None) -> WalkOptions:
    """How extraction walks the evidence: from its first file as acquired, with the other files (E01
    segments, VMDK extents) found beside it by name, keeping each file's bytes for the content tools. A file
    acquired alone (intake found no storage media in it) is one file trace for the tools."""
    return WalkOptions(
        file_name=acquired.first_name,
        # Named as acquired (the first segment's or the uploaded file's name), read under first_name.
        root_name=acquired.original_names[0] if acquired.original_names else "",
        related_files=acquired.related_files,
        shard=shard,
        keep_content=True,
        root_is_file=acquired.acquired_alone,
        budget=ExtractionBudget.from_settings(),
    )


def child_streams(data: bytes, *, mime_type: str | None = None) -> list[dict]:
    """The stream of a trace a content tool found: hashed, measured and typed (``mime_type``, libmagic's, as
    its ``file.mimeType``) as the walker does its files."""
    digest = StreamDigest(head_size=0)
    for start in range(0, len(data), 1 << 20):
        digest.update(data[start : start + (1 << 20)])
    stream = DataStream(name="raw", size=len(data), data_path="")
    digest.fill(stream)
    stream.mime_type = mime_type or None
    return [stream_dict(stream)]


def tool_children(
    *, record: TraceRecord, analysed, budget: ExtractionBudget | None = None, nesting: int = 0
) -> Iterator[dict]:
    """The rows of the traces the content tools found inside a file (archive members, e-mails, visits…),
    depth first, each with its uid derived from its parent's and its ordinal. A member that is a disk image
    is walked as a child source (``image_member_rows``) when there is a ``budget`` to bound it by;
    ``nesting`` is how many images enclose ``record``."""

    def walk(node, uid: str, path: str) -> Iterator[dict]:
        for ordinal, child in enumerate(node.children, start=1):
            uid_child = child_uid(parent_uid=uid, ordinal=ordinal)
            path_child = path.rstrip("/") + "/" + child.name
            data = child.read() if child.data is not None else None
            image_format = None
            budget_errors: list[dict] = []
            if data is not None and budget is not None:
                image_format = disk_image_format(head=data[:HEAD_SIZE_IMAGES], tail=data[-512:], name=child.name)
                if image_format is not None:
                    what = f"{image_format} image {child.name!r}"
                    try:
                        budget.check_nesting(nesting + 1, what=what)
                        budget.check_time(what=what)
                    except BudgetExceeded as error:
                        budget_errors.append({"tool": BUDGET_TOOL, "message": str(error), "stream": None})
                        image_format = None
            yield {
                "uid": uid_child,
                "parent_uid": uid,
                "name": child.name[:1000],
                "path": path_child,
                "types": list(child.types),
                "properties": child.properties,
                "streams": child_streams(data, mime_type=child.mime_type) if data is not None else [],
                "tools": {k: [v.name, v.version] for k, v in child.tools.items()},
                "errors": [{"tool": e.tool, "message": e.message, "stream": e.stream} for e in child.errors]
                + budget_errors,
                "deleted": record.deleted,
                "text": (child.text or "")[:TEXT_MAX_CHARS],
            }
            yield from walk(child, uid_child, path_child)
            if image_format is not None and data is not None and budget is not None:
                yield from image_member_rows(
                    data=data,
                    name=child.name,
                    image_format=image_format,
                    root=NestedRoot(
                        uid=child_uid(parent_uid=uid_child, ordinal=0),
                        parent_uid=uid_child,
                        name=image_format,
                        path=f"{path_child}/{image_format}",
                        nesting=nesting + 1,
                    ),
                    budget=budget,
                    deleted=record.deleted,
                )

    yield from walk(analysed, record.uid, record.path)


def image_member_rows(
    *, data: bytes, name: str, image_format: str, root: NestedRoot, budget: ExtractionBudget, deleted: bool
) -> Iterator[dict]:
    """The rows of a disk image found inside an archive member (or a .gz, .xz, .bz2 stream): walked as the
    evidence's own image is, its root hanging below the member (``root``), the content tools run on its
    files. Its bytes were decompressed in memory and are gone when the run ends, so its streams carry no
    data path: their hashes, sizes and types are kept, their bytes are read again from the archive."""
    (presented,) = presented_names(image_format=image_format, names=[name])
    options = WalkOptions(file_name=presented, keep_content=True, budget=budget, root=root)
    image_walk = Walk(
        file_object=io.BytesIO(data), evidence_id=root.uid.partition(":")[0], secrets=None, options=options
    )
    for record in image_walk.run():
        for row in trace_rows(record=record, resolver_context=image_walk.context, budget=budget, nesting=root.nesting):
            for stream in row["streams"]:
                stream["data_path"] = ""
            row["deleted"] = row["deleted"] or deleted
            yield row


class ContentMemo:
    """What the content tools found in a content, by its SHA-256 with the file's name and MIME type (the
    tools decide by all three, and read nothing else): a copy of a file (the same DLL in a hundred folders,
    an attachment saved twice) is analysed once per walk. Only findings that are the same however often
    they are made are remembered: those without an error (a time limit is one), whose child data are bytes.
    Findings are shared between the rows of the copies, never changed."""

    def __init__(self, *, entries: int = MEMO_ENTRIES, max_bytes: int = MEMO_MAX_BYTES):
        self._found: OrderedDict[tuple[str, str, str], tuple[object, int]] = OrderedDict()
        self._entries = entries
        self._max_bytes = max_bytes
        self._bytes = 0

    @staticmethod
    def key(record: TraceRecord) -> tuple[str, str, str] | None:
        raw = record.stream("raw")
        if raw is None or not raw.sha256 or record.content is None or record.content.data is None:
            return None
        return (raw.sha256, record.name, raw.mime_type or "")

    def get(self, key: tuple[str, str, str]) -> object | None:
        found = self._found.get(key)
        if found is None:
            return None
        self._found.move_to_end(key)
        return found[0]

    def put(self, key: tuple[str, str, str], analysed) -> None:
        size = 0
        for node in analysed.walk():
            if node.errors or not (node.data is None or isinstance(node.data, bytes)):
                return
            size += len(node.data or b"")
        if size > self._max_bytes // 4:
            return
        self._found[key] = (analysed, size)
        self._bytes += size
        while len(self._found) > self._entries or self._bytes > self._max_bytes:
            _, (_, dropped) = self._found.popitem(last=False)
            self._bytes -= dropped


def analyse_file(*, record: TraceRecord, resolver_context, budget: ExtractionBudget | None = None) -> object | None:
    """The content tools on one file: on the bytes the walker read (``record.content``) when it kept them,
    else on the file opened again through its data path. Files no tool accepts (by MIME type, name or
    first bytes) are never opened: None then, as for a record that is no file or too large."""
    raw = record.stream("raw")
    if raw is None or "file" not in record.types or not raw.size or raw.size > TOOL_MAX_BYTES:
        return None
    mime_type = raw.mime_type or ""
    content = record.content
    if content is not None:
        # The tools' head is HEAD_SIZE bytes; the walker's is its MIME sniff's (the same by default).
        # (A shorter sniff: the tools read their head themselves, and decide on it.)
        head = content.head[:HEAD_SIZE] if len(content.head) >= min(HEAD_SIZE, content.size) else None
        accepted = None
        if head is not None:
            accepted = accepting_tools(mime_type=mime_type, name=record.name, head=head)
            if accepted is not None and not accepted:
                return None  # no tool wants it: never opened
        return analyse(
            stream_opener=content.open,
            name=record.name,
            mime_type=mime_type,
            head=head,
            accepted_tools=accepted,
            limits=Limits(budget=budget),
            path=record.path,
        )
    if not any(tool.accepts(mime_type=mime_type, name=record.name, head=b"") for tool in TOOLS):
        return None

    def opener():
        file_object = media_source.open_stream(
            data_path=raw.data_path, data_location=raw.data_location, size=raw.size, resolver_context=resolver_context
        )
        return io.BufferedReader(media_source.DfvfsFileObject(file_object), buffer_size=1 << 20)

    return analyse(
        stream_opener=opener, name=record.name, mime_type=mime_type, limits=Limits(budget=budget), path=record.path
    )


def stream_dict(stream: DataStream) -> dict:
    """``dataclasses.asdict(stream)`` (same keys, same order), without its deep copy of every value."""
    return {
        "name": stream.name,
        "size": stream.size,
        "data_path": stream.data_path,
        "md5": stream.md5,
        "sha1": stream.sha1,
        "sha256": stream.sha256,
        "entropy": stream.entropy,
        "mime_type": stream.mime_type,
        "data_location": stream.data_location,
    }


def trace_row(*, record: TraceRecord, analysed) -> dict:
    """The row of one walker record, with what the content tools found in it (``analysed``, or None)
    merged in: the walker's properties win over the tools', the tools' types, tools and errors are added."""
    properties = dict(record.properties)
    types = list(record.types)
    tools = {k: [v.name, v.version] for k, v in record.tools.items()}
    errors = [{"tool": e.tool, "message": e.message, "stream": e.stream} for e in record.errors]
    text = ""
    if analysed is not None:
        for key, value in analysed.properties.items():
            properties.setdefault(key, value)
        types += [t for t in analysed.types if t not in types]
        tools.update({k: [v.name, v.version] for k, v in analysed.tools.items()})
        errors += [{"tool": e.tool, "message": e.message, "stream": e.stream} for e in analysed.errors]
        text = (analysed.text or "")[:TEXT_MAX_CHARS]
    return {
        "uid": record.uid,
        "parent_uid": record.parent_uid or "",
        "name": record.name[:1000],
        "path": record.path,
        "types": types,
        "properties": properties,
        "streams": [stream_dict(stream) for stream in record.streams],
        "tools": tools,
        "errors": errors,
        "deleted": record.deleted,
        "text": text,
    }


def trace_rows(
    *,
    record: TraceRecord,
    resolver_context,
    memo: ContentMemo | None = None,
    budget: ExtractionBudget | None = None,
    nesting: int = 0,
) -> Iterator[dict]:
    """Every row one walker record gives: its own, then those of the traces the content tools found in it.

    ``memo``: the walk's :class:`ContentMemo`, so that copies of a content are analysed once. ``budget``:
    the evidence item's (``WalkOptions.budget``), by which disk images inside archives are opened and
    bounded; ``nesting``: how many images enclose the record."""
    key = memo.key(record) if memo is not None else None
    analysed = memo.get(key) if key is not None else None
    if analysed is None:
        analysed = analyse_file(record=record, resolver_context=resolver_context, budget=budget)
        if key is not None and analysed is not None:
            memo.put(key, analysed)
    yield trace_row(record=record, analysed=analysed)
    if analysed is not None:
        yield from tool_children(record=record, analysed=analysed, budget=budget, nesting=nesting)
