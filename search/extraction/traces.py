"""What extraction produces: traces, as plain data (no Django), ready to be stored by uid.

The shapes follow DESIGN.md §6 (Hansken's trace model): a uid ``<evidence-id>:0-3-1-7`` whose parent is
the uid without its last segment, types, camelCase ``<type>.<property>`` properties, data streams with
hashes and a data path from which the bytes can be read again, the deleted flag, and every tool failure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolRef:
    """The tool (name, version) that produced a property or a stream: provenance for every fact."""

    name: str
    version: str


@dataclass
class TraceError:
    """One tool failure on a trace: stored and searchable; extraction goes on."""

    tool: str
    message: str
    stream: str | None = None


@dataclass
class DataStream:
    """One stream of bytes of a trace: ``raw``, ``ads:Zone.Identifier``, ``decrypted``…

    Hashes and entropy are None when the stream was listed but not read (e.g. a whole partition when
    volume hashing is off); ``data_path`` is always set, so a data service can read the bytes later.
    """

    name: str
    size: int
    data_path: str
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    entropy: float | None = None
    mime_type: str | None = None


@dataclass
class TraceRecord:
    uid: str
    parent_uid: str | None
    name: str
    path: str
    types: list[str]
    properties: dict[str, Any] = field(default_factory=dict)
    streams: list[DataStream] = field(default_factory=list)
    deleted: bool = False
    errors: list[TraceError] = field(default_factory=list)
    # Which tool produced which property prefix, e.g. {"file": ToolRef("pytsk3", "4.15.0")}.
    tools: dict[str, ToolRef] = field(default_factory=dict)

    def stream(self, name: str) -> DataStream | None:
        for data_stream in self.streams:
            if data_stream.name == name:
                return data_stream
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the trace store's document and the determinism check's unit)."""
        return asdict(self)


def child_uid(*, parent_uid: str, ordinal: int) -> str:
    """``<evidence>:0-3`` + ordinal 1 → ``<evidence>:0-3-1``."""
    return f"{parent_uid}-{ordinal}"


def root_uid(*, evidence_id: str) -> str:
    return f"{evidence_id}:0"


def parent_of(uid: str) -> str | None:
    evidence_id, _, segments = uid.partition(":")
    if "-" not in segments:
        return None
    return f"{evidence_id}:{segments.rsplit('-', 1)[0]}"
