"""The data service: a trace's bytes, read again from the sealed container along its data path.

Nothing is copied: the sealed container decrypts chunks on demand, the evidence resolver context hands its
file object to dfVFS, and dfVFS opens the layers the trace's data path names (E01 → partition → BitLocker →
ext4 → file). Encrypted layers get the evidence's escrowed secret in dfVFS's key chain just long enough to
open them, as the extraction walker does; the key chain keeps nothing afterwards.

Traces that a content tool found inside a file (archive members, e-mail attachments) carry no data path:
their bytes are re-derived by running the tools again on the nearest ancestor that has one, when that
ancestor is small enough (``REDERIVE_MAX_BYTES``), and only if they hash to what extraction recorded.

Also here: a page of the hex view and a safely re-encoded picture thumbnail (never the original bytes).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from typing import TYPE_CHECKING, BinaryIO, cast

from dfvfs.resolver import resolver as dfvfs_resolver

from custodia.errors import Conflict, NotFound, ServiceError
from evidence.reading import UnlockCredential, open_acquired, unlock_credentials
from search.extraction import source as media_source
from search.extraction import unlock
from search.models import Trace

if TYPE_CHECKING:
    from dfvfs.file_io.file_io import FileIO as DfvfsFileIO

    from search.extraction.tools import AnalysedTrace

HEX_PAGE = 4096
HEX_WIDTH = 16
# Tool-produced children are re-derived in memory from an ancestor no larger than this.
REDERIVE_MAX_BYTES = 64 * 1024 * 1024
THUMBNAIL_MAX_INPUT = 32 * 1024 * 1024
THUMBNAIL_MAX_PIXELS = 64_000_000
THUMBNAIL_SIZE = 256


def stream_entry(*, trace: Trace, stream: str) -> dict:
    """The stream's record (name, size, data_path, hashes, mime_type), or NotFound naming the known ones."""
    for entry in trace.streams or []:
        if entry.get("name") == stream:
            return entry
    known = ", ".join(entry.get("name", "?") for entry in trace.streams or []) or "none"
    raise NotFound(f"This trace has no stream {stream!r} (its streams: {known}).", code="no_such_stream")


def _secrets(trace: Trace) -> list[UnlockCredential]:
    return unlock_credentials(evidence=trace.evidence)


def _open_layers(
    *, data_path: str, context: media_source.EvidenceResolverContext, trace: Trace, stack: ExitStack
) -> DfvfsFileIO:
    """Open the data path, setting the escrowed secrets of its encrypted layers for the open only.

    The key store is asked for the evidence's secrets only when the path crosses an encrypted layer; the
    key chain is put back as it was before the open returns, so nothing of the unlock outlives it
    (``stack`` holds the stream's other resources: none of them is the unlock's)."""
    path_spec = media_source.deserialise_path_spec(data_path)
    encrypted = unlock.encrypted_layers(path_spec)
    if not encrypted:
        return dfvfs_resolver.Resolver.OpenFileObject(path_spec, resolver_context=context)
    secrets = unlock.normalise_secrets(_secrets(trace))
    with unlock.KEY_CHAIN_LOCK, unlock.KeyChainCredentials() as credentials:
        for spec in encrypted:  # outermost first: an inner layer's bytes are read through the outer ones
            credential = credentials.first_unlocking(
                type_indicator=spec.type_indicator, spec=spec.parent, context=context, secrets=secrets
            )
            if credential is None:
                raise Conflict(
                    "None of the evidence's escrowed secrets opens the encrypted volume this stream lies in.",
                    code="locked",
                )
            credentials.remember(encrypted_spec=spec, credential=credential)
        return dfvfs_resolver.Resolver.OpenFileObject(path_spec, resolver_context=context)


def _open_entry(
    *, entry: dict, context: media_source.EvidenceResolverContext, trace: Trace, stack: ExitStack
) -> DfvfsFileIO | media_source.ClusterRunsFile:
    """Open a stream record's bytes: along its data path, or, when it has a data location (a deleted FAT file
    recovered from unallocated clusters), the volume it names, read along its cluster runs only."""
    location = entry.get("data_location")
    if not location:
        return _open_layers(data_path=entry["data_path"], context=context, trace=trace, stack=stack)
    volume = _open_layers(data_path=location["volume"], context=context, trace=trace, stack=stack)
    return media_source.ClusterRunsFile(volume=volume, location=location, size=int(entry.get("size") or 0))


@contextmanager
def _container_files(trace: Trace) -> Iterator[media_source.EvidenceResolverContext]:
    evidence = trace.evidence
    if not evidence.is_sealed:
        raise Conflict("The evidence is not sealed: its bytes cannot be read.", code="not_sealed")
    with open_acquired(evidence=evidence) as acquired:
        yield media_source.EvidenceResolverContext(files=acquired.files)


@contextmanager
def open_trace_stream(*, trace: Trace, stream: str) -> Iterator[tuple[BinaryIO, int]]:
    """Yield ``(file object, size)`` over the bytes of one stream of ``trace``, read from the sealed container.

    NotFound when the trace has no such stream, or when its bytes cannot be read again (a tool-produced
    child whose ancestor is too large to re-derive it from); Conflict when the evidence is not sealed or
    an encrypted layer does not open with the escrowed secrets."""
    entry = stream_entry(trace=trace, stream=stream)
    if not entry.get("data_path"):
        data = _rederive(trace=trace, entry=entry)
        yield io.BytesIO(data), len(data)
        return
    with ExitStack() as stack:
        context = stack.enter_context(_container_files(trace))
        try:
            file_object = _open_entry(entry=entry, context=context, trace=trace, stack=stack)
        except ServiceError:
            raise
        except Exception as error:
            raise ServiceError(
                f"The bytes of this stream could not be read from the sealed evidence: {error}",
                code="unreadable",
                status_code=503,
            ) from None
        size = int(entry.get("size") or file_object.get_size())
        readable = stack.enter_context(closing(media_source.DfvfsFileObject(file_object, size=size)))
        # A DfvfsFileObject is a binary file object (io.RawIOBase), which typing's nominal BinaryIO does not name.
        yield cast(BinaryIO, readable), size


def _ancestor_with_data(trace: Trace) -> tuple[Trace, list[int]]:
    """The nearest ancestor whose raw stream has a data path, and the ordinals leading down to ``trace``."""
    ordinals: list[int] = []
    current = trace
    while True:
        if not current.parent_uid:
            break
        ordinals.insert(0, int(current.uid.rsplit("-", 1)[-1]))
        parent = Trace.objects.filter(case_id=trace.case_id, uid=current.parent_uid).first()
        if parent is None:
            break
        raw = next((s for s in parent.streams or [] if s.get("name") == "raw"), None)
        if raw and raw.get("data_path"):
            return parent, ordinals
        current = parent
    raise NotFound(
        "The bytes of this trace were found by a content tool and are not re-readable yet.", code="not_rereadable"
    )


def _descendant(root: AnalysedTrace, ordinals: list[int]) -> AnalysedTrace | None:
    """The trace ``ordinals`` (1-based child positions) lead down to from ``root``; None if one is out of range."""
    node = root
    for ordinal in ordinals:
        if not 1 <= ordinal <= len(node.children):
            return None
        node = node.children[ordinal - 1]
    return node


def _rederive(*, trace: Trace, entry: dict) -> bytes:
    """Run the content tools again on the nearest ancestor with a data path and take this trace's bytes."""
    from search.extraction.tools import analyse
    from search.extraction.tools.base import Limits

    if entry.get("name") != "raw":
        raise NotFound(f"The {entry.get('name')} stream of this trace is not re-readable yet.", code="not_rereadable")
    ancestor, ordinals = _ancestor_with_data(trace)
    raw = stream_entry(trace=ancestor, stream="raw")
    if (raw.get("size") or 0) > REDERIVE_MAX_BYTES:
        raise NotFound(
            "The bytes of this trace were found by a content tool inside a file too large to re-derive them "
            "from on request; they are not re-readable yet.",
            code="not_rereadable",
        )
    with open_trace_stream(trace=ancestor, stream="raw") as (file_object, _size):
        content = file_object.read()
    analysed = analyse(
        stream_opener=lambda: io.BytesIO(content),
        name=ancestor.name,
        mime_type=raw.get("mime_type") or "",
        limits=Limits(),
        path=ancestor.path,
    )
    node = _descendant(analysed, ordinals)
    data = node.read() if node is not None and node.data is not None else None
    if data is None or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise NotFound(
            "The bytes of this trace could not be re-derived as extraction recorded them; not re-readable.",
            code="not_rereadable",
        )
    return data


def hex_page(*, trace: Trace, stream: str, offset: int, length: int = HEX_PAGE) -> dict:
    """One page of the hex view: rows of (offset, hex, ASCII), and the offsets of the neighbouring pages."""
    if offset < 0:
        raise ServiceError("offset must be 0 or more.")
    offset -= offset % HEX_WIDTH
    with open_trace_stream(trace=trace, stream=stream) as (file_object, size):
        if size and offset >= size:
            offset = max(0, (size - 1) - (size - 1) % length)
        file_object.seek(offset)
        data = file_object.read(min(length, max(size - offset, 0)))
    rows = []
    for at in range(0, len(data), HEX_WIDTH):
        chunk = data[at : at + HEX_WIDTH]
        rows.append(
            {
                "offset": f"{offset + at:08x}",
                "hex": " ".join(f"{byte:02x}" for byte in chunk),
                "ascii": "".join(chr(byte) if 0x20 <= byte < 0x7F else "." for byte in chunk),
            }
        )
    return {
        "stream": stream,
        "offset": offset,
        "end": offset + len(data) - 1,
        "size": size,
        "rows": rows,
        "previous": max(offset - length, 0) if offset > 0 else None,
        "next": offset + length if offset + length < size else None,
        "last": max(0, (size - 1) - (size - 1) % length) if size else 0,
    }


def thumbnail_png(*, data: bytes, size: int = THUMBNAIL_SIZE) -> bytes:
    """A picture re-encoded as a PNG of at most ``size`` pixels a side: no byte of the original survives."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > THUMBNAIL_MAX_INPUT:
        raise ServiceError("This picture is too large to make a thumbnail of.", code="too_large", status_code=413)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > THUMBNAIL_MAX_PIXELS:
                raise ServiceError(
                    "This picture has too many pixels for a thumbnail.", code="too_large", status_code=413
                )
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale
            image.thumbnail((size, size))
            converted = image.convert("RGBA" if "A" in image.getbands() or image.mode == "P" else "RGB")
            output = io.BytesIO()
            converted.save(output, format="PNG", optimize=True)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as error:
        raise ServiceError(f"Not a picture a thumbnail can be made of: {error}", code="not_a_picture") from None
    return output.getvalue()


def trace_thumbnail(*, trace: Trace, stream: str = "raw") -> bytes:
    entry = stream_entry(trace=trace, stream=stream)
    if (entry.get("size") or 0) > THUMBNAIL_MAX_INPUT:
        raise ServiceError("This picture is too large to make a thumbnail of.", code="too_large", status_code=413)
    with open_trace_stream(trace=trace, stream=stream) as (file_object, _size):
        data = file_object.read(THUMBNAIL_MAX_INPUT + 1)
    return thumbnail_png(data=data)
