"""Reads of traces and extraction runs, through the one access policy."""

from __future__ import annotations

import base64
import binascii

from django.conf import settings
from django.db.models import QuerySet

from cases import permissions as perms
from cases.models import Case, User
from cases.selectors import case_get
from custodia.errors import NotFound, ServiceError
from evidence.models import Evidence
from search.backends.base import DEFAULT_DATE_PROPERTY, FACETS, SORTS
from search.models import ExtractionRun, SavedSearch, Trace, TraceNote
from search.query.ast import PROPERTY_NAME_RE, Node


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
    """One pass over the evidence's traces (the evidence page polls this while extraction runs)."""
    from django.db.models import Count, Q

    return Trace.objects.filter(evidence=evidence).aggregate(
        traces=Count("pk"),
        with_content=Count("pk", filter=~Q(sha256="")),
        deleted=Count("pk", filter=Q(deleted=True)),
        with_errors=Count("pk", filter=Q(has_errors=True)),
        # Encrypted volumes extraction could not open: the evidence page asks for their secret.
        locked_volumes=Count("pk", filter=Q(**{"properties__encryptedVolume.unlocked": False})),
    )


def trace_parent(*, trace: Trace) -> Trace | None:
    if not trace.parent_uid:
        return None
    return Trace.objects.filter(case_id=trace.case_id, uid=trace.parent_uid).first()


KNOWN_FACETS = list(FACETS)
# The date histogram of the timeline is asked for by name: it is the one facet that costs two queries.
DEFAULT_FACETS = [name for name in FACETS if name != "date"]
MAX_LIMIT = 500


# A cursor is the base64 of the next offset; no search pages further than this (500 hits a page, a
# million pages), and no cursor this search returns is longer than MAX_CURSOR_CHARS.
MAX_OFFSET = 500_000_000
MAX_CURSOR_CHARS = 16


def _cursor_offset(cursor: str | None) -> int:
    """The offset a cursor of :func:`traces_search` stands for; a 400 for anything else (forged, oversized)."""
    if not cursor:
        return 0
    refused = ServiceError("cursor: not a cursor this search returned.", code="invalid_cursor")
    if len(cursor) > MAX_CURSOR_CHARS or not cursor.isascii():
        raise refused
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode("ascii")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise refused from None
    if not text.isdigit() or (len(text) > 1 and text.startswith("0")):
        raise refused
    offset = int(text)
    if offset > MAX_OFFSET:
        raise refused
    return offset


def _snippet(text: str, terms: list[str], width: int = 80) -> str:
    lowered = text.lower()
    for term in terms:
        at = lowered.find(term.lower())
        if at >= 0:
            start = max(0, at - width)
            return ("…" if start else "") + text[start : at + len(term) + width] + "…"
    return ""


def _text_terms(node: Node) -> list[str]:
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
    date_property: str = DEFAULT_DATE_PROPERTY,
    date_interval: str = "auto",
    exact: bool = False,
) -> dict:
    """Search the traces of one case: ``{total, exact, hits, facets, cursor}`` (and ``date_interval`` with
    ``date``).

    Hits are counted up to ``CUSTODIA_SEARCH_COUNT_LIMIT`` (or to the end of the page asked for): past it,
    ``exact`` is false, ``total`` is a lower bound, and ``facets_sampled`` tells that the facets count the
    first ``total`` hits in the sort order. ``exact=True`` counts every hit, at the cost of reading them all.
    """
    from search.backends.base import DATE_INTERVALS, get_search_backend

    case = case_get(user=user, case_id=case_id, permission=perms.SEARCH_TRACES)
    if sort not in SORTS:
        raise ServiceError(f"sort must be one of {', '.join(repr(s) for s in SORTS if s)} (or empty).")
    if not 1 <= limit <= MAX_LIMIT:
        raise ServiceError(f"limit must be between 1 and {MAX_LIMIT}.")
    facets = DEFAULT_FACETS if facets is None else facets
    unknown = [name for name in facets if name not in KNOWN_FACETS]
    if unknown:
        raise ServiceError(f"Unknown facets: {', '.join(unknown)}; known: {', '.join(KNOWN_FACETS)}.")
    if date_interval != "auto" and date_interval not in DATE_INTERVALS:
        raise ServiceError(f"date_interval must be auto or one of {', '.join(DATE_INTERVALS)}.")
    # "__" would read as an ORM lookup wherever a name reached one (docs/query.md, property names).
    if not PROPERTY_NAME_RE.fullmatch(date_property) or "__" in date_property:
        raise ServiceError("date_property must be a property name such as file.modifiedOn.")
    ast = query_parse(query)
    terms = _text_terms(ast) if ast is not None else []
    offset = _cursor_offset(cursor)
    page = get_search_backend().search(
        case_id=case.pk,
        node=ast,
        facets=list(facets),
        sort=SORTS[sort],
        offset=offset,
        limit=limit,
        date_property=date_property,
        date_interval=date_interval,
        count_limit=None if exact else settings.CUSTODIA_SEARCH_COUNT_LIMIT,
    )
    total = page.total
    next_offset = offset + len(page.traces)
    # Past a count limit there are more hits than counted, so there is always a next page.
    more = next_offset < total or (not page.exact and bool(page.traces))
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
        for trace in page.traces
    ]
    result = {
        "total": total,
        "exact": page.exact,
        "hits": hits,
        "facets": page.facets,
        "facets_sampled": page.sampled,
        "cursor": base64.urlsafe_b64encode(str(next_offset).encode()).decode() if more else None,
    }
    if page.date_interval:
        result["date_interval"] = page.date_interval
        result["date_property"] = date_property
        # #18: hits whose date is a local time of unknown zone are drawn at their wall-clock time; say how many.
        result["date_local_unknown"] = _local_unknown_count(case_id=case.pk, query=query, date_property=date_property)
    return result


def _local_unknown_count(*, case_id: int, query: str, date_property: str) -> int:
    """How many hits of ``query`` have ``date_property`` as a local time of unknown zone (counted up to the
    search's count limit; search/extraction/timezones.py)."""
    from search.backends.base import get_search_backend
    from search.extraction.timezones import LOCAL_UNKNOWN, time_zone_property

    clause = f'{time_zone_property(date_property)}:"{LOCAL_UNKNOWN}"'
    node = query_parse(f"({query}) AND {clause}" if query.strip() else clause)
    page = get_search_backend().search(
        case_id=case_id,
        node=node,
        facets=[],
        sort=SORTS[""],
        offset=0,
        limit=1,
        count_limit=settings.CUSTODIA_SEARCH_COUNT_LIMIT,
    )
    return page.total


def query_parse(query: str) -> Node | None:
    """The AST of ``query`` (None for an empty query), or a 400 naming the column of the mistake."""
    from search.query.parser import QuerySyntaxError, parse_query

    if not query.strip():
        return None
    try:
        return parse_query(query)
    except QuerySyntaxError as exc:
        raise ServiceError(str(exc), code="query_syntax", extra={"column": exc.column}) from None


def traces_matching(*, case: Case, query: str) -> QuerySet[Trace]:
    """The traces of one case that match a query (all of them for an empty query), unordered."""
    from search.backends.base import get_search_backend

    return get_search_backend().matching(case_id=case.pk, node=query_parse(query))


def trace_tags(*, trace: Trace) -> list[str]:
    return list(trace.tags.order_by("name").values_list("name", flat=True))


def trace_notes(*, trace: Trace) -> QuerySet[TraceNote]:
    return trace.notes.select_related("author").order_by("created_at", "pk")


def case_tag_suggestions(*, case: Case, limit: int = 10) -> list[str]:
    """The case's most used tags, most used first."""
    from django.db.models import Count

    from search.models import TraceTag

    rows = (
        TraceTag.objects.filter(case=case).values("name").annotate(count=Count("pk")).order_by("-count", "name")[:limit]
    )
    return [row["name"] for row in rows]


def saved_searches(*, case: Case) -> QuerySet[SavedSearch]:
    return SavedSearch.objects.filter(case=case).select_related("created_by").order_by("name")
