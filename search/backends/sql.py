"""The query AST compiled to the Django ORM: one compiler for SQLite and PostgreSQL.

Text terms match names, paths and the bounded text of traces; ``property:value`` matches words in a
property (case-insensitive), ``=`` matches it exactly, comparisons order numbers, ISO dates and words.
This is the reference backend: correct on both databases, and the one the Elasticsearch backend's results
are checked against. Full-text indexes (FTS5, tsvector) are a later optimisation of ``_text``.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from django.db.models import Count, Q, QuerySet

from search.models import Trace, TraceTag
from search.query.ast import And, Field, Node, Not, Or, Range, Text

_OPERATOR_LOOKUPS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def _wildcard_regex(term: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in term)


def _as_json_value(value):
    # Dates are stored as ISO-8601 strings in properties, so they compare as strings.
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _text(node: Text) -> Q:
    if node.wildcard:
        pattern = _wildcard_regex(node.term)
        return Q(name__iregex=pattern) | Q(path__iregex=pattern) | Q(text__iregex=pattern)
    return Q(name__icontains=node.term) | Q(path__icontains=node.term) | Q(text__icontains=node.term)


def _field(node: Field) -> Q:
    name, value = node.name, node.value
    if name == "type":
        return Q(types__icontains=f'"{value}"')
    if name == "evidence":
        return Q(evidence_id=value)
    if name == "deleted":
        return Q(deleted=value)
    if name == "tag":
        tags = TraceTag.objects.all()
        if node.wildcard:
            tags = tags.filter(name__iregex=f"^{_wildcard_regex(str(value))}$")
        else:
            tags = tags.filter(name=str(value).lower())
        return Q(pk__in=tags.values("trace_id"))
    column = name if name in ("name", "path", "uid", "text") else f"properties__{name}"
    if node.op in _OPERATOR_LOOKUPS:
        return Q(**{f"{column}__{_OPERATOR_LOOKUPS[node.op]}": _as_json_value(value)})
    if node.wildcard:
        return Q(**{f"{column}__iregex": f"^{_wildcard_regex(value)}$"})
    if node.op == "=" or not isinstance(value, str):
        if isinstance(value, str) and column.startswith("properties__"):
            return Q(**{f"{column}__iexact": value})
        return Q(**{column: _as_json_value(value)})
    return Q(**{f"{column}__icontains": value})


def _range(node: Range) -> Q:
    column = node.name if node.name in ("name", "path", "uid") else f"properties__{node.name}"
    q = Q()
    if node.low is not None:
        q &= Q(**{f"{column}__{'gte' if node.include_low else 'gt'}": _as_json_value(node.low)})
    if node.high is not None:
        q &= Q(**{f"{column}__{'lte' if node.include_high else 'lt'}": _as_json_value(node.high)})
    return q


def compile_q(node: Node) -> Q:
    if isinstance(node, Text):
        return _text(node)
    if isinstance(node, Field):
        return _field(node)
    if isinstance(node, Range):
        return _range(node)
    if isinstance(node, And):
        q = Q()
        for item in node.items:
            q &= compile_q(item)
        return q
    if isinstance(node, Or):
        q = Q(pk__in=[])
        for item in node.items:
            q |= compile_q(item)
        return q
    if isinstance(node, Not):
        return ~compile_q(node.item)
    raise TypeError(f"not a query node: {node!r}")


FACETS = {
    "type": None,  # computed from the types lists
    "extension": None,  # computed from the names
    "mimeType": "properties__file.mimeType",
    "evidence": "evidence_id",
    "deleted": "deleted",
    "tag": None,  # counted from the tags of the matching traces
}


def facet_counts(queryset: QuerySet[Trace], *, names: list[str], top: int = 20) -> dict[str, list[dict]]:
    facets: dict[str, list[dict]] = {}
    for name in names:
        if name in ("type", "extension"):
            counts: dict[str, int] = {}
            column = "types" if name == "type" else "name"
            for found in queryset.values_list(column, flat=True).iterator(chunk_size=2000):
                values = found or [] if name == "type" else [_extension(found)] if _extension(found) else []
                for value in values:
                    counts[value] = counts.get(value, 0) + 1
            ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
            facets[name] = [{"value": value, "count": count} for value, count in ordered]
        elif name == "tag":
            rows = (
                TraceTag.objects.filter(trace__in=queryset.order_by().values("pk"))
                .values("name")
                .annotate(count=Count("pk"))
                .order_by("-count", "name")[:top]
            )
            facets[name] = [{"value": row["name"], "count": row["count"]} for row in rows]
        elif name in FACETS:
            column = FACETS[name]
            rows = queryset.order_by().values(column).annotate(count=Count("pk")).order_by("-count", column)[:top]
            facets[name] = [{"value": row[column], "count": row["count"]} for row in rows if row[column] is not None]
    return facets


def _extension(name: str) -> str:
    stem, dot, suffix = name.rpartition(".")
    return suffix.lower() if dot and stem and len(suffix) <= 10 else ""
