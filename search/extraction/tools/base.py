"""The content ("type") tool interface: one stream in, properties, text and child traces out, under limits.

A tool reads one data stream of one trace (a file, an archive member, an e-mail attachment) and returns
a `ToolResult`: camelCase ``<type>.<property>`` properties, the bounded text for full-text search, and
child traces (archive members, messages, visits…). Tools are pure Python and deterministic: they never
read the clock into their output, never write to disk, and order children by the data (`ordinal_key`).

Every run goes through `run_guarded`, which turns any exception and any limit breach into an error
string on the trace: a hostile or malformed input never stops extraction.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, BinaryIO

from search.extraction.budget import ExtractionBudget
from search.extraction.traces import ToolRef, TraceError

StreamOpener = Callable[[], BinaryIO]


@dataclass(frozen=True)
class Limits:
    """Bounds for one tool run. The defaults suit a 2-core worker with a few hundred MiB to spare.

    `depth` is not a setting but where we are: how many archives (or containers) enclose this stream.
    Archive tools refuse to open anything at ``depth >= max_archive_depth``; `descend()` gives the
    limits for a child stream.
    """

    max_seconds: float = 60.0
    # Bytes a single run may hand out as child data and text together; also caps what one sqlite file,
    # one PDF or one OOXML part may be read into memory.
    max_output_bytes: int = 256 * 1024 * 1024
    max_archive_depth: int = 5
    # Uncompressed / compressed, per member and per archive, enforced once the output passes
    # `ratio_floor_bytes`. Deflate bombs sit at ~1000:1, bzip2/xz bombs far beyond; ordinary text
    # compresses at 5-20:1, but zero-filled disk images reach thousands to one — the floor lets the
    # small ones (the usual test image, a USB stick's FAT) through, and the output budget bounds the rest.
    max_compression_ratio: float = 500.0
    ratio_floor_bytes: int = 64 * 1024 * 1024
    max_member_count: int = 10_000
    max_text_chars: int = 1_000_000
    depth: int = 0
    # The evidence item's absolute budget, shared by every run of the extraction (disk images inside
    # archives are bounded by it instead of by the compression ratio); None: no image is exempt.
    budget: ExtractionBudget | None = None
    # How many disk images enclose this stream (an archive inside a disk image inside a zip: 1).
    image_nesting: int = 0

    def descend(self) -> Limits:
        return replace(self, depth=self.depth + 1)


class LimitExceeded(Exception):  # it is a condition, not a programming error
    """A bound of `Limits` was reached; the message says which and by how much."""


@dataclass
class ChildTrace:
    """A trace a tool found inside its stream: an archive member, a mail folder, a message, a visit.

    `data` is the child's raw stream: bytes already read under the limits, a callable that opens it,
    or None when the child is metadata only (a folder, a visit, a member refused by a limit).
    `ordinal_key` orders siblings by the data (index in the archive, row id…), never by library
    return order, so uids are the same on every run.
    """

    name: str
    path_hint: str
    types: list[str]
    properties: dict[str, Any] = field(default_factory=dict)
    data: bytes | StreamOpener | None = None
    ordinal_key: tuple = ()
    text: str | None = None
    children: list[ChildTrace] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self) -> BinaryIO | None:
        if self.data is None:
            return None
        if isinstance(self.data, bytes | bytearray):
            return io.BytesIO(self.data)
        return self.data()


@dataclass
class ToolResult:
    properties: dict[str, Any] = field(default_factory=dict)
    children: list[ChildTrace] = field(default_factory=list)
    text: str | None = None
    errors: list[str] = field(default_factory=list)
    # Type names this stream turned out to be (``email``, ``picture``, ``archive``…) for the trace.
    types: list[str] = field(default_factory=list)


class Tool:
    """A content tool. Subclasses set `name`, `version` and implement `accepts` and `run`."""

    name: str = "tool"
    version: str = "0"

    def accepts(self, *, mime_type: str, name: str, head: bytes) -> bool:
        raise NotImplementedError

    def run(self, *, stream: BinaryIO, name: str, limits: Limits) -> ToolResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.version}>"


class Budget:
    """The running count against `Limits` inside one tool run: time, output bytes, members, text.

    Tools call `check_time()` in their loops and `spend()` for every byte they hand out; both raise
    `LimitExceeded`. Time can only be checked between steps: a library call that hangs inside C code
    is bounded by the worker's task time limit, not by this.
    """

    def __init__(self, limits: Limits):
        self.limits = limits
        self._deadline = time.monotonic() + limits.max_seconds
        self.output_bytes = 0
        self.members = 0

    def check_time(self) -> None:
        if time.monotonic() > self._deadline:
            raise LimitExceeded(f"time limit of {self.limits.max_seconds:g} s exceeded")

    def spend(self, size: int) -> None:
        if self.output_bytes + size > self.limits.max_output_bytes:
            raise LimitExceeded(
                f"output limit of {self.limits.max_output_bytes} bytes exceeded ({self.output_bytes} + {size} bytes)"
            )
        self.output_bytes += size

    def can_spend(self, size: int) -> bool:
        return self.output_bytes + size <= self.limits.max_output_bytes

    def count_member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_member_count:
            raise LimitExceeded(f"member count limit of {self.limits.max_member_count} exceeded")
        self.check_time()


class BoundedText:
    """Collects text for full-text search up to `max_chars`, then records that it was cut."""

    def __init__(self, *, max_chars: int):
        self.max_chars = max_chars
        self._parts: list[str] = []
        self._length = 0
        self.truncated = False

    def add(self, text: str | None) -> None:
        if not text:
            return
        if self._parts:
            text = "\n" + text
        room = self.max_chars - self._length
        if room <= 0:
            self.truncated = True
            return
        if len(text) > room:
            text = text[:room]
            self.truncated = True
        self._parts.append(text)
        self._length += len(text)

    @property
    def full(self) -> bool:
        return self._length >= self.max_chars

    def value(self) -> str | None:
        return "".join(self._parts) or None


def enter_container(limits: Limits, *, kind: str) -> None:
    """Refuse to open a container (archive, mailbox) nested deeper than `Limits.max_archive_depth`."""
    if limits.depth >= limits.max_archive_depth:
        raise LimitExceeded(f"archive depth limit of {limits.max_archive_depth} reached: {kind} members not expanded")


def bounded(text: str | None, *, max_chars: int) -> str | None:
    if not text:
        return None
    return text[:max_chars]


def read_bounded(stream: BinaryIO, *, max_bytes: int, what: str) -> bytes:
    """Read a whole stream into memory, refusing (not truncating) one larger than `max_bytes`."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise LimitExceeded(f"{what} larger than the limit of {max_bytes} bytes")
    return data


def iso8601(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with ``Z``, a fraction only when there is one (as the walker writes dates)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str | None) -> str | None:
    """Strip NULs and control characters (stores and search indexes choke on them); keep newlines/tabs."""
    if text is None:
        return None
    return _CONTROL_CHARACTERS.sub("", text).strip() or None


def extension_of(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def library_version(module_name: str) -> str:
    """The installed version of an optional library, or ``missing`` (the tool then reports an error)."""
    from importlib import metadata

    try:
        return metadata.version(module_name)
    except metadata.PackageNotFoundError:
        return "missing"


class MissingLibrary(Exception):  # reported as an error on the trace, not raised further
    pass


def require(module_name: str, *, package: str):
    """Import an optional library or raise `MissingLibrary` naming the package to install."""
    import importlib

    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise MissingLibrary(f"optional library {package} is not installed ({error})") from error


@dataclass
class ToolOutcome:
    """What one tool made of one stream, with its provenance; errors are `TraceError`s for the trace."""

    tool: ToolRef
    properties: dict[str, Any] = field(default_factory=dict)
    children: list[ChildTrace] = field(default_factory=list)
    text: str | None = None
    errors: list[TraceError] = field(default_factory=list)
    types: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def run_guarded(*, tool: Tool, stream_opener: StreamOpener, name: str, limits: Limits) -> ToolOutcome:
    """Run one tool; every exception or limit breach becomes an error on the outcome, never a raise.

    Whatever the tool reports before failing is lost with the exception (a half-parsed mailbox is not
    kept), except what the tool saved itself: tools that loop over members catch per-member failures
    and keep going.
    """
    outcome = ToolOutcome(tool=ToolRef(name=tool.name, version=tool.version))
    try:
        with stream_opener() as stream:
            result = tool.run(stream=stream, name=name, limits=limits)
    except (LimitExceeded, MissingLibrary) as error:
        outcome.errors.append(TraceError(tool=tool.name, message=str(error)))
        return outcome
    except RecursionError:
        outcome.errors.append(TraceError(tool=tool.name, message="input nested too deeply (recursion limit)"))
        return outcome
    except MemoryError:
        outcome.errors.append(TraceError(tool=tool.name, message="out of memory while parsing"))
        return outcome
    except Exception as error:  # hostile input may raise anything; it becomes an error
        outcome.errors.append(TraceError(tool=tool.name, message=f"{type(error).__name__}: {error}"))
        return outcome
    outcome.properties = result.properties
    outcome.children = result.children
    outcome.text = bounded(result.text, max_chars=limits.max_text_chars)
    outcome.types = result.types
    outcome.errors = [TraceError(tool=tool.name, message=message) for message in result.errors]
    return outcome
