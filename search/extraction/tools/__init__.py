"""Content ("type") tools: e-mail, pictures, documents, archives, browser history, text.

`run_tools` runs every registered tool that accepts a stream, each under `run_guarded` (errors, never
exceptions). `analyse` does that recursively: child traces with data (archive members, attachments,
mbox messages) are analysed in turn, one archive level deeper each time, until `Limits.max_archive_depth`.

    from search.extraction.tools import Limits, analyse

    node = analyse(stream_opener=lambda: open("evidence.zip", "rb"), name="evidence.zip")
    syslog = node.find("/folder/syslog")
"""

from __future__ import annotations

import io
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from search.extraction.tools.archives import CompressedTool, TarTool, ZipTool
from search.extraction.tools.base import (
    ChildTrace,
    Limits,
    StreamOpener,
    Tool,
    ToolOutcome,
    ToolResult,
    run_guarded,
)
from search.extraction.tools.browsers import BrowserHistoryTool
from search.extraction.tools.documents import OleDocumentTool, OoxmlTool, PdfTool
from search.extraction.tools.mail import EmlTool, MboxTool, MsgTool, PstTool
from search.extraction.tools.pictures import PictureTool
from search.extraction.tools.text import PlainTextTool
from search.extraction.traces import ToolRef, TraceError

# The registry, in the order tools run on a stream (and so the order of their outcomes).
TOOLS: tuple[Tool, ...] = (
    PstTool(),
    MsgTool(),
    MboxTool(),
    EmlTool(),
    PictureTool(),
    PdfTool(),
    OoxmlTool(),
    OleDocumentTool(),
    ZipTool(),
    TarTool(),
    CompressedTool(),
    BrowserHistoryTool(),
    PlainTextTool(),
)

HEAD_SIZE = 8192


def tool_versions(tools: Sequence[Tool] = TOOLS) -> dict[str, str]:
    """Name → version of every tool, for the extraction run's record."""
    return {tool.name: tool.version for tool in tools}


def accepting_tools(*, mime_type: str, name: str, head: bytes, tools: Sequence[Tool] = TOOLS) -> list[Tool] | None:
    """The tools that accept a stream, in registry order, decided before anything is opened; None when an
    ``accepts()`` failed (`run_tools` then records that failure on the trace)."""
    try:
        return [tool for tool in tools if tool.accepts(mime_type=mime_type or "", name=name, head=head)]
    except Exception:
        return None


def run_tools(
    *,
    stream_opener: StreamOpener,
    name: str,
    mime_type: str,
    head: bytes,
    limits: Limits | None = None,
    tools: Sequence[Tool] = TOOLS,
    accepted: Sequence[Tool] | None = None,
) -> list[ToolOutcome]:
    """Every tool that accepts the stream, run under its guard; each opens the stream afresh.

    ``accepted``: the tools `accepting_tools` gave for this very stream, not to be asked again."""
    limits = limits or Limits()
    if accepted is not None:
        return [run_guarded(tool=tool, stream_opener=stream_opener, name=name, limits=limits) for tool in accepted]
    outcomes = []
    for tool in tools:
        try:
            accepted = tool.accepts(mime_type=mime_type or "", name=name, head=head)
        except Exception as error:  # a faulty accepts() must not stop the others
            outcomes.append(
                ToolOutcome(
                    tool=ToolRef(name=tool.name, version=tool.version),
                    errors=[TraceError(tool=tool.name, message=f"accepts() failed: {error}")],
                )
            )
            continue
        if accepted:
            outcomes.append(run_guarded(tool=tool, stream_opener=stream_opener, name=name, limits=limits))
    return outcomes


@dataclass
class AnalysedTrace:
    """A stream and what the tools found in it, recursively: the shape a trace store turns into traces.

    `tools` maps a property prefix (``email``, ``archive``…) to the tool that wrote it; `text` is the
    bounded full-text of this trace.
    """

    name: str
    path: str
    types: list[str]
    properties: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    errors: list[TraceError] = field(default_factory=list)
    tools: dict[str, ToolRef] = field(default_factory=dict)
    children: list[AnalysedTrace] = field(default_factory=list)
    data: bytes | StreamOpener | None = None
    # libmagic's type of ``data`` (a child's), for its raw stream's ``mime_type``; None when it has no bytes.
    mime_type: str | None = None

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, path: str) -> AnalysedTrace | None:
        """The trace at `path` (``/folder/syslog``) below this one, following names."""
        node = self
        for segment in [part for part in path.split("/") if part]:
            node = next((child for child in node.children if child.name == segment), None)
            if node is None:
                return None
        return node

    def read(self) -> bytes | None:
        if self.data is None:
            return None
        if isinstance(self.data, bytes | bytearray):
            return bytes(self.data)
        with self.data() as stream:
            return stream.read()


def _guess_mime_type(*, name: str, head: bytes) -> str:
    """The walker gives libmagic's answer; for children inside archives we use libmagic when installed."""
    try:
        import magic

        return magic.from_buffer(head, mime=True) or ""
    except Exception:  # python-magic or libmagic missing: fall back to the name
        return mimetypes.guess_type(name)[0] or ""


def _merge(trace: AnalysedTrace, outcomes: list[ToolOutcome]) -> list[ChildTrace]:
    children: list[ChildTrace] = []
    for outcome in outcomes:
        for property_name, value in outcome.properties.items():
            trace.properties.setdefault(property_name, value)
            trace.tools.setdefault(property_name.split(".", 1)[0], outcome.tool)
        for type_name in outcome.types:
            if type_name not in trace.types:
                trace.types.append(type_name)
        if outcome.text and not trace.text:
            trace.text = outcome.text
        trace.errors.extend(outcome.errors)
        children.extend(outcome.children)
    return children


def analyse(
    *,
    stream_opener: StreamOpener,
    name: str,
    mime_type: str | None = None,
    limits: Limits | None = None,
    tools: Sequence[Tool] = TOOLS,
    path: str = "/",
    types: list[str] | None = None,
    head: bytes | None = None,
    accepted_tools: Sequence[Tool] | None = None,
) -> AnalysedTrace:
    """Run the tools on one stream and, recursively, on the data of every child trace they find.

    ``head`` is the stream's first ``HEAD_SIZE`` bytes (or all of a shorter stream) when the caller has
    them already: the stream is then not opened to read them again. ``accepted_tools`` are the tools
    `accepting_tools` gave for this stream (its children are offered to every tool)."""
    limits = limits or Limits()
    if head is None:
        with stream_opener() as stream:
            head = stream.read(HEAD_SIZE)
    if mime_type is None:
        mime_type = _guess_mime_type(name=name, head=head)
    trace = AnalysedTrace(name=name, path=path, types=list(types or []))
    outcomes = run_tools(
        stream_opener=stream_opener,
        name=name,
        mime_type=mime_type,
        head=head,
        limits=limits,
        tools=tools,
        accepted=accepted_tools,
    )
    children = _merge(trace, outcomes)
    producer = next((outcome.tool for outcome in outcomes if outcome.children), None)
    trace.children = [
        _analyse_child(child=child, parent_path=path, producer=producer, limits=limits.descend(), tools=tools)
        for child in sorted(children, key=lambda child: child.ordinal_key)
    ]
    return trace


def _analyse_child(
    *, child: ChildTrace, parent_path: str, producer: ToolRef | None, limits: Limits, tools: Sequence[Tool]
) -> AnalysedTrace:
    path = parent_path.rstrip("/") + "/" + child.name
    if child.data is not None:
        data = child.data
        opener: StreamOpener = (lambda: io.BytesIO(data)) if isinstance(data, bytes | bytearray) else data
        with opener() as stream:
            head = stream.read(HEAD_SIZE)
        mime_type = _guess_mime_type(name=child.name, head=head)
        trace = analyse(
            stream_opener=opener,
            name=child.name,
            mime_type=mime_type,
            head=head,
            limits=limits,
            tools=tools,
            path=path,
            types=child.types,
        )
        trace.data = child.data
        if head and mime_type:  # a member is typed like a file (an empty one, as the walker does, not at all)
            trace.properties.setdefault("file.mimeType", mime_type)
            trace.mime_type = mime_type
    else:
        trace = AnalysedTrace(name=child.name, path=path, types=list(child.types))
    # What the parent's tool said about the child comes first: it saw the member in its container.
    trace.properties = {**child.properties, **{k: v for k, v in trace.properties.items() if k not in child.properties}}
    if producer is not None:
        for property_name in child.properties:
            trace.tools[property_name.split(".", 1)[0]] = producer
        trace.errors[:0] = [TraceError(tool=producer.name, message=message) for message in child.errors]
    if child.text and not trace.text:
        trace.text = child.text
    structural = [
        _analyse_child(child=grandchild, parent_path=path, producer=producer, limits=limits, tools=tools)
        for grandchild in sorted(child.children, key=lambda grandchild: grandchild.ordinal_key)
    ]
    trace.children = structural + trace.children
    return trace


__all__ = [
    "TOOLS",
    "AnalysedTrace",
    "ChildTrace",
    "Limits",
    "Tool",
    "ToolOutcome",
    "ToolResult",
    "accepting_tools",
    "analyse",
    "run_tools",
    "tool_versions",
]
