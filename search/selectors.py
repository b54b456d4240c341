"""Reads of traces and extraction runs, through the one access policy."""

from __future__ import annotations

import base64
import binascii

from django.db.models import QuerySet

from cases import permissions as perms
from cases.models import User
from cases.selectors import case_get
from custodia.errors import NotFound, ServiceError
from evidence.models import Evidence
from search.models import ExtractionRun, Trace


def extraction_runs(*, evidence: Evidence) -> QuerySet[ExtractionRun]:
    return ExtractionRun.objects.filter(evidence=evidence).select_related("started_by", "evidence")


def trace_get(*, user: User, case_id: int, uid: str) -> Trace:
    case = case_get(user=user, case_id=case_id, permission=perms.SEARCH_TRACES)
    trace = Trace.objects.filter(case=case, uid=uid).first()
    if trace is None:
        raise NotFound("No such trace.")
    return trace


def trace_children(*, trace: Trace) -> QuerySet[Trace]:
    return Trace.objects.filter(case_id=trace.case_id, parent_uid=trace.uid).order_by("ordinal")


def trace_counts(*, evidence: Evidence) -> dict[str, int]:
    traces = Trace.objects.filter(evidence=evidence)
    return {
        "traces": traces.count(),
        "with_content": traces.exclude(sha256="").count(),
        "deleted": traces.filter(deleted=True).count(),
        "with_errors": traces.filter(has_errors=True).count(),
        # Encrypted volumes extraction could not open: the evidence page asks for their secret.
        "locked_volumes": traces.filter(**{"properties__encryptedVolume.unlocked": False}).count(),
    }


def trace_parent(*, trace: Trace) -> Trace | None:
    if not trace.parent_uid:
        return None
    return Trace.objects.filter(case_id=trace.case_id, uid=trace.parent_uid).first()


SORTS = {
    "": ("ordinal",),
    "name": ("name", "ordinal"),
    "-name": ("-name", "ordinal"),
    "path": ("path", "ordinal"),
    "-path": ("-path", "ordinal"),
    "size": ("properties__file.size", "ordinal"),
    "-size": ("-properties__file.size", "ordinal"),
    "modifiedOn": ("properties__file.modifiedOn", "ordinal"),
    "-modifiedOn": ("-properties__file.modifiedOn", "ordinal"),
}
DEFAULT_FACETS = ["type", "mimeType", "extension", "tag", "evidence", "deleted"]
MAX_LIMIT = 500


def _cursor_offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ServiceError("cursor: not a cursor this search returned.") from None
    if offset < 0:
        raise ServiceError("cursor: not a cursor this search returned.")
    return offset


def _snippet(text: str, terms: list[str], width: int = 80) -> str:
    lowered = text.lower()
    for term in terms:
        at = lowered.find(term.lower())
        if at >= 0:
            start = max(0, at - width)
            return ("…" if start else "") + text[start : at + len(term) + width] + "…"
    return ""


def _text_terms(node) -> list[str]:
    from search.query.ast import And, Not, Or, Text

    if isinstance(node, Text) and not node.wildcard:
        return [node.term]
    if isinstance(node, And | Or):
        return [term for item in node.items for term in _text_terms(item)]
    if isinstance(node, Not):
        return []
    return []


def traces_search(
    *,
    user: User,
    case_id: int,
    query: str,
    facets: list[str] | None = None,
    sort: str = "",
    limit: int = 50,
    cursor: str | None = None,
    properties: list[str] | None = None,
) -> dict:
    """Search the traces of one case: ``{total, hits, facets, cursor}``."""
    from search.backends.sql import compile_q, facet_counts
    from search.query.parser import QuerySyntaxError, parse_query

    case = case_get(user=user, case_id=case_id, permission=perms.SEARCH_TRACES)
    if sort not in SORTS:
        raise ServiceError(f"sort must be one of {', '.join(repr(s) for s in SORTS if s)} (or empty).")
    if not 1 <= limit <= MAX_LIMIT:
        raise ServiceError(f"limit must be between 1 and {MAX_LIMIT}.")
    facets = DEFAULT_FACETS if facets is None else facets
    unknown = [name for name in facets if name not in DEFAULT_FACETS]
    if unknown:
        raise ServiceError(f"Unknown facets: {', '.join(unknown)}; known: {', '.join(DEFAULT_FACETS)}.")
    traces = Trace.objects.filter(case=case)
    terms: list[str] = []
    if query.strip():
        try:
            ast = parse_query(query)
        except QuerySyntaxError as exc:
            raise ServiceError(str(exc), code="query_syntax", extra={"column": exc.column}) from None
        traces = traces.filter(compile_q(ast))
        terms = _text_terms(ast)
    offset = _cursor_offset(cursor)
    total = traces.count()
    page = list(traces.order_by(*SORTS[sort])[offset : offset + limit])
    next_offset = offset + len(page)
    hits = [
        {
            "uid": trace.uid,
            "evidence": str(trace.evidence_id),
            "types": trace.types,
            "name": trace.name,
            "path": trace.path,
            "deleted": trace.deleted,
            "properties": (
                trace.properties
                if properties is None
                else {key: trace.properties[key] for key in properties if key in trace.properties}
            ),
            "highlights": [snippet] if (snippet := _snippet(trace.text or "", terms)) else [],
        }
        for trace in page
    ]
    return {
        "total": total,
        "hits": hits,
        "facets": facet_counts(traces, names=facets),
        "cursor": base64.urlsafe_b64encode(str(next_offset).encode()).decode() if next_offset < total else None,
    }


def traces_matching(*, case, query: str) -> QuerySet[Trace]:
    """The traces of one case that match a query (all of them for an empty query), unordered."""
    from search.backends.sql import compile_q
    from search.query.parser import QuerySyntaxError, parse_query

    traces = Trace.objects.filter(case=case)
    if not query.strip():
        return traces
    try:
        ast = parse_query(query)
    except QuerySyntaxError as exc:
        raise ServiceError(str(exc), code="query_syntax", extra={"column": exc.column}) from None
    return traces.filter(compile_q(ast))


def trace_tags(*, trace: Trace) -> list[str]:
    return list(trace.tags.order_by("name").values_list("name", flat=True))


def trace_notes(*, trace: Trace):
    return trace.notes.select_related("author").order_by("created_at", "pk")


def case_tag_suggestions(*, case, limit: int = 10) -> list[str]:
    """The case's most used tags, most used first."""
    from django.db.models import Count

    from search.models import TraceTag

    rows = (
        TraceTag.objects.filter(case=case).values("name").annotate(count=Count("pk")).order_by("-count", "name")[:limit]
    )
    return [row["name"] for row in rows]


def saved_searches(*, case):
    from search.models import SavedSearch

    return SavedSearch.objects.filter(case=case).select_related("created_by").order_by("name")
