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

import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction
from django.db.models import BooleanField, F, Func, Q, QuerySet, Value
from django.db.models.expressions import OrderBy
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Substr
from django.db.models.lookups import Exact, GreaterThan, GreaterThanOrEqual, LessThan, LessThanOrEqual

from search.backends import fulltext
from search.backends.base import (
    DATE_INTERVALS,
    DEFAULT_DATE_PROPERTY,
    SearchBackend,
    SearchPage,
    auto_date_interval,
    count_bound,
)
from search.models import INDEXED_DATES, INDEXED_NUMBERS, Trace, TraceTag
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


_EXTENSION_PATTERN = re.compile(r"^\.[^\W_]{1,16}$")


def _wildcard(pattern: str, column: str, *, anchored: bool) -> Q:
    """``pattern`` (``*`` any characters, ``?`` one) on a column, as LIKE where it can be: the
    database runs LIKE itself, where a regular expression on SQLite calls back into Python per row."""
    inner = pattern.strip("*")
    if "?" in pattern or "*" in inner or not inner:
        regex = _wildcard_regex(pattern)
        return Q(**{f"{column}__iregex": f"^{regex}$" if anchored else regex})
    starts, ends = pattern.startswith("*"), pattern.endswith("*")
    if column == "name" and anchored and starts and not ends and _EXTENSION_PATTERN.match(inner):
        # name:*.docx: the indexed extension column finds the candidates; the name confirms them.
        return Q(extension=inner[1:].lower()) & Q(name__iendswith=inner)
    if not anchored or (starts and ends):
        lookup = "icontains"
    elif starts:
        lookup = "iendswith"
    elif ends:
        lookup = "istartswith"
    else:
        lookup = "iexact"
    return Q(**{f"{column}__{lookup}": inner})


def _text(node: Text) -> Q:
    if node.wildcard:
        if _PREFIX.match(node.term) and (tokens := fulltext.words(node.term[:-1])):
            return _full_text(tokens, prefix=True)
        return (
            _wildcard(node.term, "name", anchored=False)
            | _wildcard(node.term, "path", anchored=False)
            | _wildcard(node.term, "text", anchored=False)
        )
    tokens = fulltext.words(node.term)
    if tokens:
        return _full_text(tokens, prefix=False)
    # Nothing to look up in a word index ("@", "--"): the characters themselves, anywhere.
    return Q(name__icontains=node.term) | Q(path__icontains=node.term) | Q(text__icontains=node.term)


def _phrase(node: Node) -> tuple[list[str], bool] | None:
    """``(tokens, prefix)`` when ``node`` is a text term the word index answers alone, else None."""
    if not isinstance(node, Text):
        return None
    if node.wildcard:
        tokens = fulltext.words(node.term[:-1]) if _PREFIX.match(node.term) else []
        return (tokens, True) if tokens else None
    tokens = fulltext.words(node.term)
    return (tokens, False) if tokens else None


def _full_text(tokens: list[str], *, prefix: bool) -> Q:
    return _match([(tokens, prefix)])


class _RowCondition(Func):
    """A condition on the trace row that Django has no lookup for, written by ``build`` around the SQL of
    one of its columns, so that it names the row right wherever the query puts the table (an alias)."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, column: str, build):
        super().__init__(F(column))
        self.build = build

    def as_sql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        sql, more = self.build(column, connection.vendor)
        return sql, [*params, *more]


def _match(phrases: list[tuple[list[str], bool]]) -> Q:
    return Q(
        _RowCondition("pk", lambda id_column, vendor: fulltext.match_condition(vendor, phrases, id_column=id_column))
    )


def _type_combinations(case_id: int) -> list:
    """Every distinct ``types`` list of a case's traces, as the database stores it.

    Traces come in few combinations (``["file"]``, ``["file", "picture"]``, …): one index seek each
    through the (case, types) index finds them all, without reading the traces in between.
    """
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    found: list = []
    with connection.cursor() as cursor:
        while True:
            after, params = ("", [case_id]) if not found else (f" AND types > %s{cast}", [case_id, found[-1]])
            cursor.execute(f"SELECT types FROM search_trace WHERE case_id = %s{after} ORDER BY types LIMIT 1", params)  # noqa: S608
            row = cursor.fetchone()
            if row is None:
                return found
            found.append(row[0] if isinstance(row[0], str) else json.dumps(row[0]))


def _combinations_holding(node: Field, *, case_id: int) -> list:
    """The stored ``types`` lists of the case's traces that a ``type:`` condition holds."""
    # ":" ignores case, "=" is exact (docs/query.md), as in Elasticsearch.
    exact = node.op == "="
    wanted = str(node.value) if exact else str(node.value).lower()
    pattern = re.compile(_wildcard_regex(wanted) if node.wildcard else re.escape(wanted))
    return [
        stored
        for stored in _type_combinations(case_id)
        if any(pattern.fullmatch(str(name) if exact else str(name).lower()) for name in json.loads(stored))
    ]


def _type(node: Field, *, case_id: int | None) -> Q:
    exact = node.op == "="
    wanted = str(node.value) if exact else str(node.value).lower()
    if case_id is None:
        return Q(types__contains=f'"{wanted}"') if exact else Q(types__icontains=f'"{wanted}"')
    holding = _combinations_holding(node, case_id=case_id)
    if not holding:
        # Nothing holds it: a condition no row meets (an empty IN would make Django drop the query).
        return Q(pk__isnull=True)

    # The stored values themselves, so the (case, types) index finds the traces.
    def types_in(column: str, vendor: str) -> tuple[str, list]:
        cast = "::jsonb" if vendor == "postgresql" else ""
        return f"{column} IN ({', '.join([f'%s{cast}'] * len(holding))})", holding

    return Q(_RowCondition("types", types_in))


def _field(node: Field, *, case_id: int | None = None) -> Q:
    name, value = node.name, node.value
    if name == "type":
        return _type(node, case_id=case_id)
    if name == "evidence":
        return Q(evidence_id=value)
    if name == "deleted":
        # "deleted IN (…)", not Django's bare "deleted": SQLite looks a comparison up in the (case, deleted)
        # index, a bare column it only filters by.
        return Q(deleted__in=[value])
    if name == "tag":
        tags = TraceTag.objects.all()
        if node.wildcard:
            tags = tags.filter(name__iregex=f"^{_wildcard_regex(str(value))}$")
        else:
            tags = tags.filter(name=str(value).lower())
        return Q(pk__in=tags.values("trace_id"))
    if name in INDEXED_NUMBERS and _is_number(value) and not node.wildcard:
        column = INDEXED_NUMBERS[name]
        return Q(**{f"{column}__{_OPERATOR_LOOKUPS[node.op]}" if node.op in _OPERATOR_LOOKUPS else column: value})
    if _is_number(value) and not node.wildcard and case_id is not None and name not in _ROW_FIELDS:
        # Numeric properties are in the number index (fulltext.py): equal or compared, numbers only.
        return _number(name, [("=" if node.op == ":" else node.op, value)], case_id=case_id)
    column = name if name in _ROW_FIELDS else f"properties__{name}"
    if isinstance(value, date) and column.startswith("properties__"):
        return _date_compare(name, ">=" if node.op == ":" else node.op, value, whole_day_equal=node.op in ":=")
    if node.op in _OPERATOR_LOOKUPS:
        return Q(**{f"{column}__{_OPERATOR_LOOKUPS[node.op]}": _as_json_value(value)})
    if node.wildcard:
        return _wildcard(value, column, anchored=True)
    if isinstance(value, str) and column.startswith("properties__") and (tokens := fulltext.words(value)):
        # String properties are in the word index too: look their words up there first, so the
        # property itself is only read on the traces that hold those words somewhere.
        matched = Q(**{f"{column}__iexact" if node.op == "=" else f"{column}__icontains": value})
        return _full_text(tokens, prefix=False) & matched
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
    if whole_day_equal:
        op = "="
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        width, bound = 19, moment.strftime("%Y-%m-%dT%H:%M:%S")
    else:
        width, bound = 10, value.isoformat()
    if name in INDEXED_DATES:
        return _indexed_date_compare(INDEXED_DATES[name], op, width=width, bound=bound, day=value)
    prefix = Substr(KeyTextTransform(name, "properties"), 1, width)
    return Q(_LOOKUP_EXPRESSIONS[op](prefix, Value(bound)))


def _indexed_date_compare(column: str, op: str, *, width: int, bound: str, day: date) -> Q:
    """The comparison of ``_date_compare`` on a column holding the first 19 characters of the date,
    written so the column's index answers it: a whole day becomes the range from its start to the
    next day's start, which is the same for every string that begins with an ISO date."""
    if width == 19:
        return Q(_LOOKUP_EXPRESSIONS[op](F(column), Value(bound)))
    if day >= date.max:
        # No next day to bound by: the plain prefix comparison.
        return Q(_LOOKUP_EXPRESSIONS[op](Substr(F(column), 1, width), Value(bound)))
    next_day = (day + timedelta(days=1)).isoformat()
    if op == ">=":
        return Q(**{f"{column}__gte": bound})
    if op == "<":
        return Q(**{f"{column}__lt": bound})
    if op == ">":
        return Q(**{f"{column}__gte": next_day})
    if op == "<=":
        return Q(**{f"{column}__lt": next_day})
    return Q(**{f"{column}__gte": bound, f"{column}__lt": next_day})


_ROW_FIELDS = ("name", "path", "uid", "text")


def _number(name: str, comparisons: list[tuple[str, float]], *, case_id: int) -> Q:
    def condition(id_column: str, vendor: str) -> tuple[str, list]:
        return fulltext.number_condition(
            vendor, case_id=case_id, name=name, comparisons=comparisons, id_column=id_column
        )

    return Q(_RowCondition("pk", condition))


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _range(node: Range, *, case_id: int | None = None) -> Q:
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
    numbers = all(_is_number(v) for v in (node.low, node.high) if v is not None)
    if numbers and case_id is not None and node.name not in INDEXED_NUMBERS and column.startswith("properties__"):
        comparisons = []
        if node.low is not None:
            comparisons.append((">=" if node.include_low else ">", node.low))
        if node.high is not None:
            comparisons.append(("<=" if node.include_high else "<", node.high))
        return _number(node.name, comparisons, case_id=case_id)
    if node.name in INDEXED_NUMBERS and numbers:
        column = INDEXED_NUMBERS[node.name]
    q = Q()
    if node.low is not None:
        q &= Q(**{f"{column}__{'gte' if node.include_low else 'gt'}": _as_json_value(node.low)})
    if node.high is not None:
        q &= Q(**{f"{column}__{'lte' if node.include_high else 'lt'}": _as_json_value(node.high)})
    return q


def compile_q(node: Node, *, case_id: int | None = None) -> Q:
    """``node`` as a filter on traces; with ``case_id``, it may look up what the case holds first."""
    if isinstance(node, Text):
        return _text(node)
    if isinstance(node, Field):
        return _field(node, case_id=case_id)
    if isinstance(node, Range):
        return _range(node, case_id=case_id)
    if isinstance(node, And):
        q = Q()
        for item in node.items:
            q &= compile_q(item, case_id=case_id)
        return q
    if isinstance(node, Or):
        phrases = [_phrase(item) for item in node.items]
        if all(phrases):
            # Words only: one look-up of the word index for all of them.
            return _match(phrases)
        q = Q(pk__in=[])
        for item in node.items:
            q |= compile_q(item, case_id=case_id)
        return q
    if isinstance(node, Not):
        return ~compile_q(node.item, case_id=case_id)
    raise TypeError(f"not a query node: {node!r}")


# Facets counted by grouping one column of the matching traces.
_COLUMN_FACETS = {"mimeType": "mime_type", "extension": "extension", "evidence": "evidence_id", "deleted": "deleted"}
_EMPTY_VALUES = {"mimeType": "", "extension": ""}
# ISO-8601 prefixes: 2019 | 2019-03 | 2019-03-07 | 2019-03-07T10.
_DATE_PREFIX = {"year": 4, "month": 7, "day": 10, "hour": 13}
_DATE_KEY = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T\d{2})?)?)?$")


def _bucket_start(prefix: str) -> str:
    """``2019`` → ``2019-01-01``, ``2019-03`` → ``2019-03-01``, ``2019-03-07T10`` → ``2019-03-07T10:00``."""
    if len(prefix) == 4:
        return f"{prefix}-01-01"
    if len(prefix) == 7:
        return f"{prefix}-01"
    if len(prefix) == 13:
        return f"{prefix}:00"
    return prefix


# Properties the database keeps in indexed columns of their own (search.models).
_INDEXED_COLUMNS = {**INDEXED_NUMBERS, **INDEXED_DATES}

# Sort fields (search.backends.base.SORTS) that are columns of the trace; any other is a property.
_SORT_COLUMNS = {"id": "id", "name": "name", "path": "path"}


def _order_by(sort: tuple[str, ...]) -> list[OrderBy]:
    # Traces without the property come last either way, as in Elasticsearch (databases disagree).
    order = []
    for field in sort:
        descending, name = field.startswith("-"), field.removeprefix("-")
        if name in _SORT_COLUMNS:
            # Never null: a plain order (every index holds the id, in order within equal keys).
            column = F(_SORT_COLUMNS[name])
            order.append(column.desc() if descending else column.asc())
            continue
        column = F(_INDEXED_COLUMNS.get(name, f"properties__{name}"))
        order.append(column.desc(nulls_last=True) if descending else column.asc(nulls_last=True))
    return order


class SqlSearchBackend(SearchBackend):
    """The database's own search: FTS5 on SQLite, tsvector + GIN on PostgreSQL."""

    name = "sql"

    def matching(self, *, case_id: int, node: Node | None) -> QuerySet[Trace]:
        traces = Trace.objects.filter(case_id=case_id)
        return traces if node is None else traces.filter(compile_q(node, case_id=case_id))

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
        count_limit: int | None = None,
    ) -> SearchPage:
        if node is None and count_limit is None:
            # The whole case: every count comes straight from the (case, …) indexes.
            traces = self.matching(case_id=case_id, node=None)
            with connection.cursor() as cursor:
                source = _Source(cursor=cursor, table="search_trace", where="case_id = %s", params=[case_id])
                total = traces.count()
                counted, interval = source.facets(
                    facets, date_property=date_property, date_interval=date_interval, from_properties=True
                )
            page = list(traces.order_by(*_order_by(sort))[offset : offset + limit])
            return SearchPage(total=total, traces=page, facets=counted, date_interval=interval)
        # Evaluate the query once, into a temporary table of the hits' narrow columns, and count, facet
        # and page from there rather than evaluating the query again for each of them. With a count
        # limit, only the first hits in the sort order go in.
        bound = count_bound(count_limit=count_limit, offset=offset, limit=limit)
        table = f"custodia_hits_{uuid.uuid4().hex[:16]}"
        select, select_params = _hits_columns(sort=sort, date_property=date_property if "date" in facets else None)
        order = ", ".join(_hits_order(sort))

        def fill(from_where: str, params: list) -> int:
            """Create the hits table from ``FROM … WHERE …`` of search_trace; the number of its rows."""
            create = f"CREATE TEMPORARY TABLE {table} AS SELECT {select} FROM {from_where}"  # noqa: S608 (ours and Django's)
            cursor.execute(create, [*select_params, *params])
            cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 (our own table name)
            return cursor.fetchone()[0]

        # In a savepoint: if anything below fails, rolling it back also removes the table.
        with transaction.atomic(), connection.cursor() as cursor:
            # The first hits in the sort order, one past the bound to tell whether there are more; the word
            # index drives them on SQLite when it can (then the query need not be compiled whole).
            driven = None
            if bound is not None:
                driven = _word_driven_first_ids(case_id=case_id, node=node, sort=sort, count=bound + 1)
            if driven is not None:
                total = fill(*_among_ids(*driven))
            else:
                traces = self.matching(case_id=case_id, node=node)
                if bound is None:
                    total = fill(*_from_where(traces.order_by().values("pk")))
                else:
                    # Any hits up to one past the bound, in whatever order the database finds them fastest,
                    # ids only (often from an index alone): fewer than that are all of them. Asked for the
                    # first hits in order straight away, a planner that cannot tell how many rows a range
                    # holds may walk the whole table in order to find the few thousand files over 100 MB.
                    probe = f"{table}_any"
                    any_sql, any_params = traces.order_by().values("pk")[: bound + 1].query.sql_with_params()
                    cursor.execute(f"CREATE TEMPORARY TABLE {probe} AS {any_sql}", any_params)
                    cursor.execute(f"SELECT COUNT(*) FROM {probe}")  # noqa: S608 (our own table name)
                    if cursor.fetchone()[0] <= bound:
                        total = fill(*_among_ids(f"SELECT * FROM {probe}", []))  # noqa: S608 (our own table name)
                    elif driven := _type_driven_first_ids(case_id=case_id, node=node, sort=sort, count=bound + 1):
                        total = fill(*_among_ids(*driven))
                    else:
                        # More: the first ones in the sort order instead. Every index holds the id, so in
                        # id order the database finds them without reading and sorting every hit. SQLite
                        # finds their ids from an index alone, then reads their rows; PostgreSQL would
                        # look each id up again, so it reads the rows as it finds them.
                        first = traces.order_by(*_order_by(sort)).values("pk")[: bound + 1]
                        if connection.vendor == "postgresql":
                            total = fill(*_from_where(first))
                        else:
                            total = fill(*_among_ids(*first.query.sql_with_params()))
                    cursor.execute(f"DROP TABLE {probe}")
            exact = bound is None or total <= bound
            if not exact:
                # The hit past the bound only told that there are more: it is neither counted nor faceted.
                if tuple(sort) == ("id",):
                    cursor.execute(f"DELETE FROM {table} WHERE id = (SELECT MAX(id) FROM {table})")  # noqa: S608
                else:
                    cursor.execute(
                        f"DELETE FROM {table} WHERE id NOT IN (SELECT id FROM {table} ORDER BY {order} LIMIT %s)",  # noqa: S608
                        [bound],
                    )
                total = bound
            source = _Source(cursor=cursor, table=table, where="", params=[])
            counted, interval = source.facets(facets, date_property=date_property, date_interval=date_interval)
            cursor.execute(f"SELECT id FROM {table} ORDER BY {order} LIMIT %s OFFSET %s", [limit, offset])  # noqa: S608
            ids = [row[0] for row in cursor.fetchall()]
            cursor.execute(f"DROP TABLE {table}")
        found = Trace.objects.in_bulk(ids)
        return SearchPage(
            total=total,
            traces=[found[pk] for pk in ids],
            facets=counted,
            date_interval=interval,
            exact=exact,
            sampled=not exact,
        )


def _from_where(hits: QuerySet) -> tuple[str, list]:
    """``FROM search_trace WHERE …`` (without FROM) of Django's query for the ids of ``hits``, with its parameters."""
    sql, params = hits.query.sql_with_params()
    return sql.split(" FROM ", 1)[1], list(params)


def _among_ids(ids_sql: str, ids_params) -> tuple[str, list]:
    """``FROM … WHERE …`` (without FROM) of the traces whose ids ``ids_sql`` selects."""
    return f'search_trace WHERE "search_trace"."id" IN ({ids_sql})', list(ids_params)


def _full_text_conjuncts(node: Node) -> tuple[list[list[tuple[list[str], bool]]], list[Node]]:
    """The query's top-level full-text clauses (each a group of phrases, any of which may hold), and the rest."""
    groups: list[list[tuple[list[str], bool]]] = []
    rest: list[Node] = []
    for item in node.items if isinstance(node, And) else (node,):
        if phrase := _phrase(item):
            groups.append([phrase])
        elif isinstance(item, Or) and all(phrases := [_phrase(option) for option in item.items]):
            groups.append(phrases)
        else:
            rest.append(item)
    return groups, rest


def _row_conditions(*, case_id: int, items: list[Node]) -> tuple[str, list] | None:
    """The case and ``items`` (all must hold) as the WHERE clause of a plain query on ``search_trace``,
    with its parameters, for SQL written around it; None if Django needs more than the one table."""
    others = Q()
    for item in items:
        others &= compile_q(item, case_id=case_id)
    from_where, params = _from_where(Trace.objects.filter(case_id=case_id).filter(others).order_by().values("pk"))
    table, where = from_where.split(" WHERE ", 1)
    if table != '"search_trace"':
        return None  # none of compile_q's conditions join another table, today
    return where, params


def _word_driven_first_ids(*, case_id: int, node: Node, sort: tuple[str, ...], count: int) -> tuple[str, list] | None:
    """On SQLite in id order, for a query that must hold words: SQL (and its parameters) for the ids of its
    first ``count`` hits, driven by the FTS5 table, which yields its rowids (the trace ids) in order, so
    the database reads hits until it has enough. Written as ``id IN (SELECT rowid … MATCH …)``, it would
    first collect every hit of a common word (600,000 of them). None for any other query or database.
    """
    if connection.vendor != "sqlite" or tuple(sort) != ("id",):
        return None
    groups, rest = _full_text_conjuncts(node)
    if not groups:
        return None
    conditions = _row_conditions(case_id=case_id, items=rest)
    if conditions is None:
        return None
    where, params = conditions
    fts = fulltext.FTS_TABLE
    return (
        f'SELECT "search_trace"."id" FROM {fts} JOIN "search_trace" ON "search_trace"."id" = {fts}.rowid '  # noqa: S608
        f"WHERE {fts} MATCH %s AND {where} ORDER BY {fts}.rowid LIMIT {int(count)}",
        [fulltext.fts5_expression(groups), *params],
    )


def _compares(node: Node) -> bool:
    """Whether ``node`` compares a number or a date (``picture.width>=4000``, ``file.size:[1 TO 9]``)."""
    if isinstance(node, Range):
        return True
    return isinstance(node, Field) and (
        node.op in _OPERATOR_LOOKUPS or _is_number(node.value) or isinstance(node.value, date)
    )


def _type_driven_first_ids(*, case_id: int, node: Node, sort: tuple[str, ...], count: int) -> tuple[str, list] | None:
    """On SQLite in id order, for a query that must hold a type: SQL (and its parameters) for the ids of its
    first ``count`` hits, merged from one walk of the (case, types) index per combination of types that
    holds it (``["email"]``, ``["file", "email"]``…), each in id order and each stopping at ``count``.
    The database would otherwise read every trace in id order to find the e-mails among them, or collect
    every e-mail and sort them. None for any other query or database.
    """
    if connection.vendor != "sqlite" or tuple(sort) != ("id",):
        return None
    items = list(node.items) if isinstance(node, And) else [node]
    driver = next((item for item in items if isinstance(item, Field) and item.name == "type"), None)
    if driver is None:
        return None
    if any(_compares(item) for item in items):
        # Comparisons and ranges have indexes of their own that yield candidate ids, which the database
        # takes in id order itself, checking each one's type: faster than a walk per combination.
        return None
    holding = _combinations_holding(driver, case_id=case_id)
    if not holding:
        return None  # no trace holds it: the plain query finds none at once
    conditions = _row_conditions(case_id=case_id, items=[item for item in items if item is not driver])
    if conditions is None:
        return None
    where, params = conditions
    arm = (
        'SELECT "id" FROM (SELECT "search_trace"."id" FROM "search_trace" '  # noqa: S608 (Django's SQL, constants)
        f'WHERE {where} AND "search_trace"."types" = %s ORDER BY "search_trace"."id" LIMIT {int(count)})'
    )
    # A compound SELECT with an ORDER BY is merged from its arms, each already in order.
    sql = " UNION ALL ".join([arm] * len(holding)) + f" ORDER BY 1 LIMIT {int(count)}"
    return sql, [value for stored in holding for value in (*params, stored)]


_HIT_COLUMNS = ("id", "evidence_id", "types", "extension", "mime_type", "deleted")


def _hits_columns(*, sort: tuple[str, ...], date_property: str | None) -> tuple[str, list]:
    """The hits table's columns as SQL: the narrow ones facets need, sort keys ``_s0`` …, ``_date``."""
    columns = [f'"search_trace"."{column}" AS {column}' for column in _HIT_COLUMNS]
    params: list = []
    for position, field in enumerate(sort):
        name = field.removeprefix("-")
        if name in ("name", "path"):
            columns.append(f'"search_trace"."{name}" AS _s{position}')
        elif name in _INDEXED_COLUMNS:
            columns.append(f'"search_trace"."{_INDEXED_COLUMNS[name]}" AS _s{position}')
        elif name not in _SORT_COLUMNS:
            # The JSON value itself, so numbers order as numbers and strings as strings.
            expression, expression_params = _property_sql(name, table='"search_trace".', typed=True)
            columns.append(f"{expression} AS _s{position}")
            params += expression_params
    if date_property:
        expression, expression_params = _property_sql(date_property, table='"search_trace".')
        columns.append(f"substr({expression}, 1, 13) AS _date")
        params += expression_params
    return ", ".join(columns), params


def _hits_order(sort: tuple[str, ...]) -> list[str]:
    order = []
    for position, field in enumerate(sort):
        name = field.removeprefix("-")
        column = "id" if name == "id" else f"_s{position}"
        order.append(f"{column} {'DESC' if field.startswith('-') else 'ASC'} NULLS LAST")
    return order


class _Source:
    """Facet counts over rows of one table: the temporary hits table, or a whole case's traces."""

    def __init__(self, *, cursor, table: str, where: str, params: list) -> None:
        self.cursor, self.table, self.params = cursor, table, params
        self.where = f"WHERE {where}" if where else ""

    def _and(self, condition: str) -> str:
        return f"{self.where} AND {condition}" if self.where else f"WHERE {condition}"

    def _rows(self, sql: str, params: list) -> list[tuple]:
        self.cursor.execute(sql, params)
        return self.cursor.fetchall()

    def facets(
        self, names: list[str], *, date_property: str, date_interval: str, from_properties: bool = False, top: int = 20
    ) -> tuple[dict[str, list[dict]], str | None]:
        facets: dict[str, list[dict]] = {}
        interval = None
        grouped = [name for name in names if name == "type" or name in _COLUMN_FACETS]
        if self.table != "search_trace" and len(grouped) > 1:
            # The hits table has no indexes: one grouping of all these columns reads it once, where one
            # grouping per facet would read and sort it once each.
            facets.update(self._grouped(grouped, top=top))
            names = [name for name in names if name not in grouped]
        for name in names:
            if name == "type":
                facets[name] = self._types(top=top)
            elif name == "tag":
                facets[name] = self._tags(top=top)
            elif name == "date":
                expression, params = _property_sql(date_property) if from_properties else ("_date", [])
                facets[name], interval = self._dates(expression, params, interval=date_interval)
            elif name in _COLUMN_FACETS:
                facets[name] = self._column(name, top=top)
        return facets, interval

    def _column(self, name: str, *, top: int) -> list[dict]:
        column = _COLUMN_FACETS[name]
        where = self._and(f"{column} <> ''") if name in _EMPTY_VALUES else self.where
        rows = self._rows(
            f"SELECT {column}, COUNT(*) FROM {self.table} {where} GROUP BY {column} "  # noqa: S608 (constants)
            f"ORDER BY COUNT(*) DESC, {column} LIMIT %s",
            [*self.params, top],
        )
        convert = {"deleted": bool, "evidence": _as_uuid}.get(name, str)
        return [{"value": convert(value), "count": count} for value, count in rows if value is not None]

    def _grouped(self, names: list[str], *, top: int) -> dict[str, list[dict]]:
        columns = ["types" if name == "type" else _COLUMN_FACETS[name] for name in names]
        listed = ", ".join(columns)
        rows = self._rows(f"SELECT {listed}, COUNT(*) FROM {self.table} {self.where} GROUP BY {listed}", self.params)  # noqa: S608
        facets = {}
        for position, name in enumerate(names):
            counts: dict = {}
            for row in rows:
                value, count = row[position], row[-1]
                if name == "type":
                    for type_name in set(json.loads(value) if isinstance(value, str) else value or []):
                        counts[type_name] = counts.get(type_name, 0) + count
                elif value is not None and not (name in _EMPTY_VALUES and value == _EMPTY_VALUES[name]):
                    counts[value] = counts.get(value, 0) + count
            convert = {"deleted": bool, "evidence": _as_uuid}.get(name, str)
            ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))[:top]
            facets[name] = [{"value": convert(value), "count": count} for value, count in ordered]
        return facets

    def _types(self, *, top: int) -> list[dict]:
        # Traces come in few combinations of types (["file"], ["file", "picture"], …): count each
        # combination by the (case, types) index, then each type over the combinations holding it.
        rows = self._rows(f"SELECT types, COUNT(*) FROM {self.table} {self.where} GROUP BY types", self.params)  # noqa: S608
        counts: dict[str, int] = {}
        for types, count in rows:
            listed = json.loads(types) if isinstance(types, str) else types
            for name in set(listed or []):
                counts[name] = counts.get(name, 0) + count
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
        return [{"value": name, "count": count} for name, count in ordered]

    def _tags(self, *, top: int) -> list[dict]:
        if self.table == "search_trace":
            sql, params = "SELECT name, COUNT(*) FROM search_tracetag WHERE case_id = %s", list(self.params)
        else:
            hits = f"SELECT id FROM {self.table}"  # noqa: S608 (our own table name)
            sql, params = f"SELECT name, COUNT(*) FROM search_tracetag WHERE trace_id IN ({hits})", []  # noqa: S608
        rows = self._rows(f"{sql} GROUP BY name ORDER BY COUNT(*) DESC, name LIMIT %s", [*params, top])
        return [{"value": name, "count": count} for name, count in rows]

    def _dates(self, expression: str, expression_params: list, *, interval: str) -> tuple[list[dict], str]:
        def buckets(width: int) -> list[tuple[str, int]]:
            rows = self._rows(
                f"SELECT substr({expression}, 1, {width}) AS d, COUNT(*) FROM {self.table} "  # noqa: S608 (constants)
                f"{self._and(f'{expression} IS NOT NULL')} GROUP BY d ORDER BY d",
                [*expression_params, *self.params, *expression_params],
            )
            # Values that are not ISO dates (a tool wrote something else) have no place on a timeline.
            return [(key, count) for key, count in rows if key and len(key) == width and _DATE_KEY.match(key)]

        by_day = buckets(10)
        if interval == "auto":
            interval = auto_date_interval(by_day[0][0], by_day[-1][0]) if by_day else "month"
        if interval not in DATE_INTERVALS:
            raise ValueError(f"date_interval must be auto or one of {', '.join(DATE_INTERVALS)}")
        if interval == "hour":
            counted = buckets(13)
        else:
            rolled: dict[str, int] = {}
            for key, count in by_day:
                rolled[key[: _DATE_PREFIX[interval]]] = rolled.get(key[: _DATE_PREFIX[interval]], 0) + count
            counted = sorted(rolled.items())
        return [{"value": _bucket_start(key), "count": count} for key, count in counted], interval


def _property_sql(name: str, *, table: str = "", typed: bool = False) -> tuple[str, list[str]]:
    """A property's value in this database's SQL, with its parameter: as text, or ``typed`` as the JSON
    value itself (numbers order as numbers). SQLite's json_extract gives the typed value either way.
    A date kept in a column of its own is that column (its first 19 characters, all a facet uses)."""
    if name in INDEXED_DATES:
        return f"{table}{INDEXED_DATES[name]}", []
    if connection.vendor == "sqlite":
        return f"json_extract({table}properties, %s)", [f'$."{name}"']
    return f"({table}properties {'->' if typed else '->>'} %s)", [name]


def _as_uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
