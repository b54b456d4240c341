"""The query AST compiled to the Django ORM: one compiler and one backend for SQLite and PostgreSQL.

Text terms are words of a trace's name, path, text stream and string properties, found through the
database's full-text index (search/backends/fulltext.py: FTS5 on SQLite, tsvector + GIN on PostgreSQL);
``pass*`` is a word prefix there too. Other wildcards (``*.docx``, ``?ass``) scan names, paths and text.
``property:value`` matches words in a property (case-insensitive), ``=`` matches it exactly,
comparisons order numbers, ISO dates and words.

Facets group by indexed columns the database keeps itself (``extension``, ``mime_type``), types by the
JSON list of each trace, and the date histogram by a prefix of an ISO date property.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from django.db import connection
from django.db.models import Count, F, Max, Min, Q, QuerySet, Value
from django.db.models.expressions import OrderBy, RawSQL
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Substr
from django.db.models.lookups import Exact, GreaterThan, GreaterThanOrEqual, LessThan, LessThanOrEqual

from search.backends import fulltext
from search.backends.base import DATE_INTERVALS, DEFAULT_DATE_PROPERTY, SearchBackend, SearchPage, auto_date_interval
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


_PREFIX = re.compile(r"^[^*?]*[^\W_]\*$")


def _text(node: Text) -> Q:
    if node.wildcard:
        if _PREFIX.match(node.term) and (tokens := fulltext.words(node.term[:-1])):
            return _full_text(tokens, prefix=True)
        pattern = _wildcard_regex(node.term)
        return Q(name__iregex=pattern) | Q(path__iregex=pattern) | Q(text__iregex=pattern)
    tokens = fulltext.words(node.term)
    if tokens:
        return _full_text(tokens, prefix=False)
    # Nothing to look up in a word index ("@", "--"): the characters themselves, anywhere.
    return Q(name__icontains=node.term) | Q(path__icontains=node.term) | Q(text__icontains=node.term)


def _full_text(tokens: list[str], *, prefix: bool) -> Q:
    sql, params = fulltext.match_sql(connection.vendor, tokens, prefix=prefix)
    return Q(pk__in=RawSQL(sql, params))  # noqa: S611 (the words are parameters)


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
    if isinstance(value, date) and column.startswith("properties__"):
        return _date_compare(name, ">=" if node.op == ":" else node.op, value, whole_day_equal=node.op in ":=")
    if node.op in _OPERATOR_LOOKUPS:
        return Q(**{f"{column}__{_OPERATOR_LOOKUPS[node.op]}": _as_json_value(value)})
    if node.wildcard:
        return Q(**{f"{column}__iregex": f"^{_wildcard_regex(value)}$"})
    if node.op == "=" or not isinstance(value, str):
        if isinstance(value, str) and column.startswith("properties__"):
            return Q(**{f"{column}__iexact": value})
        return Q(**{column: _as_json_value(value)})
    return Q(**{f"{column}__icontains": value})


# Dates are stored as ISO-8601 strings in UTC (``2019-03-07T10:00:00Z``, sometimes with a fraction).
# A day compares with their first 10 characters, so it means the whole day on every side; a moment
# with their first 19, to the second (the fraction's "." sorts before "Z", so whole strings cannot).
_LOOKUP_EXPRESSIONS = {"<": LessThan, "<=": LessThanOrEqual, ">": GreaterThan, ">=": GreaterThanOrEqual, "=": Exact}


def _date_compare(name: str, op: str, value: date, *, whole_day_equal: bool = False) -> Q:
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        width, bound = 19, moment.strftime("%Y-%m-%dT%H:%M:%S")
        if whole_day_equal:
            op = "="
    else:
        width, bound = 10, value.isoformat()
        if whole_day_equal:
            op = "="
    prefix = Substr(KeyTextTransform(name, "properties"), 1, width)
    return Q(_LOOKUP_EXPRESSIONS[op](prefix, Value(bound)))


def _range(node: Range) -> Q:
    column = node.name if node.name in ("name", "path", "uid") else f"properties__{node.name}"
    if node.low is None and node.high is None:
        # [* TO *]: the traces that have the property at all.
        return Q() if not column.startswith("properties__") else Q(properties__has_key=node.name)
    if isinstance(node.low or node.high, date) and column.startswith("properties__"):
        q = Q()
        if node.low is not None:
            q &= _date_compare(node.name, ">=" if node.include_low else ">", node.low)
        if node.high is not None:
            q &= _date_compare(node.name, "<=" if node.include_high else "<", node.high)
        return q
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


# Facets counted by grouping one column of the matching traces.
_COLUMN_FACETS = {"mimeType": "mime_type", "extension": "extension", "evidence": "evidence_id", "deleted": "deleted"}
_EMPTY_VALUES = {"mimeType": "", "extension": ""}
# ISO-8601 prefixes: 2019 | 2019-03 | 2019-03-07 | 2019-03-07T10.
_DATE_PREFIX = {"year": 4, "month": 7, "day": 10, "hour": 13}
_DATE_KEY = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T\d{2})?)?)?$")


def facet_counts(
    queryset: QuerySet[Trace],
    *,
    names: list[str],
    top: int = 20,
    date_property: str = DEFAULT_DATE_PROPERTY,
    date_interval: str = "auto",
) -> tuple[dict[str, list[dict]], str | None]:
    """``({facet: [{"value", "count"}, …]}, the date histogram's interval or None)``, biggest first."""
    facets: dict[str, list[dict]] = {}
    interval = None
    matching = queryset.order_by()
    for name in names:
        if name == "type":
            facets[name] = _type_counts(matching, top=top)
        elif name == "tag":
            rows = (
                TraceTag.objects.filter(trace__in=matching.values("pk"))
                .values("name")
                .annotate(count=Count("pk"))
                .order_by("-count", "name")[:top]
            )
            facets[name] = [{"value": row["name"], "count": row["count"]} for row in rows]
        elif name == "date":
            facets[name], interval = _date_histogram(matching, date_property=date_property, interval=date_interval)
        elif name in _COLUMN_FACETS:
            column = _COLUMN_FACETS[name]
            rows = matching
            if name in _EMPTY_VALUES:
                rows = rows.exclude(**{column: _EMPTY_VALUES[name]})
            rows = rows.values(column).annotate(count=Count("pk")).order_by("-count", column)[:top]
            facets[name] = [{"value": row[column], "count": row["count"]} for row in rows if row[column] is not None]
    return facets, interval


def _type_counts(matching: QuerySet[Trace], *, top: int) -> list[dict]:
    # A trace counts once for each of its types: the JSON list unnested in SQL, never in Python.
    ids_sql, params = matching.values("pk").query.sql_with_params()
    each = "json_each(t.types)" if connection.vendor == "sqlite" else "jsonb_array_elements_text(t.types) AS j(value)"
    alias = "j.value" if connection.vendor == "postgresql" else "value"
    # The ids query is Django's own, with its parameters; the rest are constants.
    sql = (
        f"SELECT {alias}, COUNT(*) FROM search_trace t, {each} WHERE t.id IN ({ids_sql}) "  # noqa: S608
        f"GROUP BY {alias} ORDER BY COUNT(*) DESC, {alias} LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, top])
        return [{"value": value, "count": count} for value, count in cursor.fetchall()]


def _date_histogram(matching: QuerySet[Trace], *, date_property: str, interval: str) -> tuple[list[dict], str]:
    dates = matching.annotate(_date=KeyTextTransform(date_property, "properties")).filter(_date__isnull=False)
    if interval == "auto":
        bounds = dates.aggregate(first=Min("_date"), last=Max("_date"))
        interval = auto_date_interval(bounds["first"], bounds["last"])
    if interval not in DATE_INTERVALS:
        raise ValueError(f"date_interval must be auto or one of {', '.join(DATE_INTERVALS)}")
    rows = (
        dates.annotate(_bucket=Substr("_date", 1, _DATE_PREFIX[interval]))
        .values("_bucket")
        .annotate(count=Count("pk"))
        .order_by("_bucket")
    )
    # Values that are not ISO dates (a tool wrote something else) have no place on a timeline.
    buckets = [
        {"value": _bucket_start(row["_bucket"]), "count": row["count"]}
        for row in rows
        if _DATE_KEY.match(row["_bucket"] or "")
    ]
    return buckets, interval


def _bucket_start(prefix: str) -> str:
    """``2019`` → ``2019-01-01``, ``2019-03`` → ``2019-03-01``, ``2019-03-07T10`` → ``2019-03-07T10:00``."""
    if len(prefix) == 4:
        return f"{prefix}-01-01"
    if len(prefix) == 7:
        return f"{prefix}-01"
    if len(prefix) == 13:
        return f"{prefix}:00"
    return prefix


def _order_by(sort: tuple[str, ...]) -> list[OrderBy]:
    # Traces without the property come last either way, as in Elasticsearch (databases disagree).
    columns = {"evidence": "evidence_id", "ordinal": "ordinal", "name": "name", "path": "path"}
    order = []
    for field in sort:
        descending, name = field.startswith("-"), field.removeprefix("-")
        column = F(columns.get(name, f"properties__{name}"))
        order.append(column.desc(nulls_last=True) if descending else column.asc(nulls_last=True))
    return order


class SqlSearchBackend(SearchBackend):
    """The database's own search: FTS5 on SQLite, tsvector + GIN on PostgreSQL."""

    name = "sql"

    def matching(self, *, case_id: int, node: Node | None) -> QuerySet[Trace]:
        traces = Trace.objects.filter(case_id=case_id)
        return traces if node is None else traces.filter(compile_q(node))

    def search(
        self,
        *,
        case_id: int,
        node: Node | None,
        facets: list[str],
        sort: tuple[str, ...],
        offset: int,
        limit: int,
        date_property: str = DEFAULT_DATE_PROPERTY,
        date_interval: str = "auto",
    ) -> SearchPage:
        traces = self.matching(case_id=case_id, node=node)
        counted, interval = facet_counts(traces, names=facets, date_property=date_property, date_interval=date_interval)
        return SearchPage(
            total=traces.count(),
            traces=list(traces.order_by(*_order_by(sort))[offset : offset + limit]),
            facets=counted,
            date_interval=interval,
        )
