"""One byte range of an HTTP ``Range`` header (RFC 9110 §14), for every view that serves bytes in parts:
the download behind a link (``/l/<token>``) and a trace's stream (``/api/cases/…/data/<stream>``)."""

from __future__ import annotations

from custodia.errors import ServiceError


class RangeNotSatisfiable(ServiceError):
    """The range starts past the end of the content: answered with 416 and ``Content-Range: bytes */size``."""

    code = "range_not_satisfiable"
    status_code = 416


def parse_range(*, header: str, size: int, what: str = "content") -> tuple[int, int] | None:
    """One byte range of ``Range: bytes=...`` as (start, end) inclusive; None for the whole content
    (no header, a header we ignore as RFC 9110 allows: malformed, several ranges, another unit).
    RangeNotSatisfiable when it lies outside the content; ``what`` names the content in its message
    ("evidence", "stream")."""
    header = (header or "").strip()
    if not header.startswith("bytes=") or "," in header:
        return None
    spec = header[len("bytes=") :].strip()
    first, dash, last = spec.partition("-")
    if not dash or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()):
        return None
    if last and not last.isdigit():
        return None
    outside = f"Range {header!r} is outside the {size} bytes of this {what}."
    if not first:  # suffix: the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise RangeNotSatisfiable(outside)
        return max(0, size - count), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(outside)
    return start, min(end, size - 1)
