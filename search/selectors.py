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
    dedupe: bool = False,
    facet_properties: list[str] | None = None,
) -> dict:
    """Search the traces of one case: ``{total, exact, hits, facets, cursor}`` (and ``date_interval`` with
    ``date``).

    Hits are counted up to ``CUSTODIA_SEARCH_COUNT_LIMIT`` (or to the end of the page asked for): past it,
    ``exact`` is false, ``total`` is a lower bound, and ``facets_sampled`` tells that the facets count the
    first ``total`` hits in the sort order. ``exact=True`` counts every hit, at the cost of reading them all.

    ``dedupe`` keeps one hit per content hash (the first in extraction order; traces without content all
    stay), counting every hit. ``facet_properties`` adds a facet per property (``property:<name>``: terms, or
    ranges for numbers and dates, :func:`property_values`). ``warnings`` names properties of the query that
    no trace of the case has, with a suggestion (search/query/checks.py); each hit carries its ``tags``.
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
    facet_properties = list(dict.fromkeys(facet_properties or []))
    if len(facet_properties) > MAX_FACET_PROPERTIES:
        raise ServiceError(f"At most {MAX_FACET_PROPERTIES} facet_properties.")
    for name in facet_properties:
        _check_property_name(name, what="facet_properties")
    ast = query_parse(query)
    terms = _text_terms(ast) if ast is not None else []
    offset = _cursor_offset(cursor)
    backend = get_search_backend()
    if dedupe and not backend.deduplicates:
        raise ServiceError(f"dedupe: the {backend.name} search backend cannot de-duplicate hits.", code="unsupported")
    page = backend.search(
        case_id=case.pk,
        node=ast,
        facets=list(facets),
        sort=SORTS[sort],
        offset=offset,
        limit=limit,
        date_property=date_property,
        date_interval=date_interval,
        count_limit=None if exact or dedupe else settings.CUSTODIA_SEARCH_COUNT_LIMIT,
        dedupe=dedupe,
    )
    total = page.total
    tags_of = _tags_of([trace.pk for trace in page.traces])
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
            "tags": tags_of.get(trace.pk, []),
        }
        for trace in page.traces
    ]
    facets_by_property = {
        f"property:{name}": property_values(case_id=case.pk, node=ast, name=name, limit=20) for name in facet_properties
    }
    result = {
        "total": total,
        "exact": page.exact,
        "hits": hits,
        "facets": {**page.facets, **facets_by_property},
        "facets_sampled": page.sampled,
        "cursor": cursor_for(offset=next_offset) if more else None,
        "warnings": query_warnings(case_id=case.pk, node=ast),
    }
    if page.date_interval:
        result["date_interval"] = page.date_interval
        result["date_property"] = date_property
        # #18: hits whose date is a local time of unknown zone are drawn at their wall-clock time; say how many.
        result["date_local_unknown"] = _local_unknown_count(case_id=case.pk, query=query, date_property=date_property)
    return result


def cursor_for(*, offset: int) -> str:
    """The cursor of :func:`traces_search` that starts at hit ``offset`` (the page numbers of the search page)."""
    return base64.urlsafe_b64encode(str(min(max(offset, 0), MAX_OFFSET)).encode()).decode()


def _tags_of(trace_ids: list[int]) -> dict[int, list[str]]:
    """The tags of a page of traces, in one query."""
    from search.models import TraceTag

    tags: dict[int, list[str]] = {}
    rows = TraceTag.objects.filter(trace_id__in=trace_ids).order_by("name").values_list("trace_id", "name")
    for trace_id, name in rows:
        tags.setdefault(trace_id, []).append(name)
    return tags


def query_warnings(*, case_id: int, node: Node | None) -> list[dict]:
    """Property names of the query that no trace of the case has, each with a suggestion (issue #20 item 8)."""
    from search.models import CasePropertyName
    from search.query.checks import property_names, property_warnings

    if not property_names(node):
        return []
    known = CasePropertyName.objects.filter(case_id=case_id).values_list("name", flat=True)
    return property_warnings(node, known=list(known))


MAX_FACET_PROPERTIES = 5
MAX_VALUES = 1000
RANGE_BUCKETS = 10


def _check_property_name(name: str, *, what: str) -> None:
    from search.query.ast import property_name_error

    if not PROPERTY_NAME_RE.fullmatch(name) or "." not in name or property_name_error(name):
        raise ServiceError(f"{what}: {name[:200]!r} is not a property name such as picture.exif.Make.")


def property_values(*, case_id: int, node: Node | None, name: str, limit: int = 20) -> list[dict]:
    """The values of one property over the hits of ``node`` with their counts (hansken.py's
    ``unique_values``): terms, most frequent first (each element of a list counted); for a number
    property ``RANGE_BUCKETS`` equal ranges (``{"from", "to", "count"}``, ``to`` excluded but for the
    last); for a date property one bucket a year (``{"value": "2019", "count"}``)."""
    from django.db.models import Count
    from django.db.models.fields.json import KeyTextTransform
    from django.db.models.functions import Substr

    from search.backends.base import get_search_backend
    from search.backends.budget import search_time_budget
    from search.query.checks import is_date_property, is_number_property

    _check_property_name(name, what="property")
    if not 1 <= limit <= MAX_VALUES:
        raise ServiceError(f"limit must be between 1 and {MAX_VALUES}.")
    hits = get_search_backend().matching(case_id=case_id, node=node).order_by()
    with search_time_budget():
        if is_number_property(name):
            return _number_ranges(hits=hits, name=name)
        value = KeyTextTransform(name, "properties")
        if is_date_property(name):
            years = (
                hits.annotate(year=Substr(value, 1, 4))
                .exclude(year__isnull=True)
                .values("year")
                .annotate(count=Count("pk"))
                .order_by("year")
            )
            return [{"value": row["year"], "count": row["count"]} for row in years if row["year"].isdigit()]
        rows = list(
            hits.annotate(value_text=value)
            .exclude(value_text__isnull=True)
            .values("value_text")
            .annotate(count=Count("pk"))
            .order_by("-count", "value_text")[: max(limit, 200)]
        )
    counts: dict[str, int] = {}
    for row in rows:
        for item in _elements(row["value_text"]):
            counts[item] = counts.get(item, 0) + row["count"]
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [{"value": text, "count": count} for text, count in ordered]


def _elements(text: str) -> list[str]:
    """A property's text as values: a JSON list (``email.to``) gives each of its elements."""
    import json

    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            return [text]
        if isinstance(items, list):
            return [item if isinstance(item, str) else json.dumps(item) for item in items]
    return [text]


def _number_ranges(*, hits: QuerySet[Trace], name: str) -> list[dict]:
    """``RANGE_BUCKETS`` equal ranges from the smallest to the largest number, counted in one pass."""
    from django.db.models import Count, F, Max, Min, Q

    from search.models import INDEXED_NUMBERS, JsonNumber

    column = INDEXED_NUMBERS.get(name)
    numbers = hits.annotate(number=F(column) if column else JsonNumber(name)).exclude(number__isnull=True)
    bounds = numbers.aggregate(low=Min("number"), high=Max("number"))
    low, high = bounds["low"], bounds["high"]
    if low is None or high is None:
        return []
    if low == high:
        return [{"from": low, "to": high, "count": numbers.count()}]
    width = (high - low) / RANGE_BUCKETS
    edges = [low + position * width for position in range(RANGE_BUCKETS)] + [high]
    last = RANGE_BUCKETS - 1
    counted = numbers.aggregate(
        **{
            f"bucket{index}": Count(
                "pk",
                filter=Q(number__gte=edges[index])
                & (Q(number__lte=edges[index + 1]) if index == last else Q(number__lt=edges[index + 1])),
            )
            for index in range(RANGE_BUCKETS)
        }
    )
    return [
        {"from": edges[index], "to": edges[index + 1], "count": counted[f"bucket{index}"]}
        for index in range(RANGE_BUCKETS)
    ]


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
    """The AST of ``query`` (None for an empty query), or a 400 naming the column of the mistake (a
    number or date property compared with a word included: search/query/checks.py)."""
    from search.query.checks import type_errors
    from search.query.parser import QuerySyntaxError, parse_query

    if not query.strip():
        return None
    try:
        node = parse_query(query)
        type_errors(node, text=query)
        return node
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
