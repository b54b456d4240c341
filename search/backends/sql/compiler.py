"""The query AST compiled to Django ``Q`` filters and SQL conditions on ``search_trace`` (SQLite and PostgreSQL).

Text terms are words of a trace's name, path, text stream and string properties, found through the
database's full-text index (schema.py: FTS5 on SQLite, tsvector + GIN on PostgreSQL; fulltext.py: the
words and the match conditions); ``pass*`` is a word prefix there too. Other wildcards (``*.docx``,
``?ass``) scan names, paths and text. ``property:value`` matches words in a property (case-insensitive),
``=`` matches it exactly, comparisons order numbers, ISO dates and words; numeric properties compare
through the number index, those kept in columns of their own (search.models) through those columns.

:func:`compile_q` is the whole query as one filter; the planner (planner.py) also uses the pieces it
drives queries by: :func:`word_phrase`, :func:`combinations_holding`, :func:`is_number`,
:data:`OPERATOR_LOOKUPS` and :func:`property_sql`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeGuard, cast

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, F, Func, Q, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Substr
from django.db.models.lookups import Exact, GreaterThan, GreaterThanOrEqual, LessThan, LessThanOrEqual
from django.db.models.sql.compiler import SQLCompiler

from hashsets.models import HashKind, HashSet
from search.backends.sql import fulltext
from search.models import INDEXED_DATES, INDEXED_NUMBERS, TraceHashMatch, TraceTag
from search.query.ast import KNOWN_FIELDS, And, Bound, Field, Node, Not, Or, Range, Text
from search.query.streams import StreamProperty, stream_property
from search.query.wildcard import LIKE_ESCAPE, glob_pattern, like_pattern, wildcard_match

# What a _RowCondition builds its SQL with: (the column's SQL, the database vendor) → (condition, parameters).
ConditionBuilder = Callable[[str, str], tuple[str, list[Any]]]

# The comparison operators of the query language as Django lookups.
OPERATOR_LOOKUPS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def _as_json_value(value: Bound) -> Bound:
    # Dates are stored as ISO-8601 strings in properties, so they compare as strings.
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


_PREFIX = re.compile(r"^[^*?]*[^\W_]\*$")


_EXTENSION_PATTERN = re.compile(r"^\.[^\W_]{1,16}$")


class _Like(Func):
    """A wildcard ``pattern`` (``*``, ``?``) on an expression, by the database's own pattern match, whose cost
    is linear in the value for any pattern (search.query.wildcard): ignoring case, SQLite's LIKE (ASCII
    letters) and PostgreSQL's ILIKE (every letter); with ``case_sensitive``, SQLite's GLOB and PostgreSQL's LIKE."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, expression: Any, pattern: str, *, case_sensitive: bool = False) -> None:
        super().__init__(expression)
        self.wildcards = pattern
        self.case_sensitive = case_sensitive

    def as_sql(  # type: ignore[override]  # Func.as_sql takes function/template/… options no caller passes here
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, list[Any]]:
        value, params = compiler.compile(self.source_expressions[0])
        if self.case_sensitive and connection.vendor == "sqlite":
            return f"({value}) GLOB %s", [*params, glob_pattern(self.wildcards)]
        operator = "LIKE" if self.case_sensitive else ("ILIKE" if connection.vendor == "postgresql" else "LIKE")
        # One backslash in both databases (PostgreSQL with standard_conforming_strings, its default).
        return f"({value}) {operator} %s ESCAPE '{LIKE_ESCAPE}'", [*params, like_pattern(self.wildcards, anchored=True)]


def _column_expression(column: str) -> Any:
    """A column of the trace (``name``) or a property's text (``properties__file.name``) as an expression."""
    if column.startswith("properties__"):
        return KeyTextTransform(column.removeprefix("properties__"), "properties")
    return F(column)


def _wildcard(pattern: str, column: str, *, anchored: bool, case_sensitive: bool = False) -> Q:
    """``pattern`` (``*`` any characters, ``?`` one) on a column, as the database's LIKE or GLOB: never a
    regular expression, whose backtracking a pattern like ``e*e*e*e*q?`` makes exponential. Unanchored,
    it matches anywhere in the value."""
    inner = pattern.strip("*")
    starts, ends = pattern.startswith("*"), pattern.endswith("*")
    if not anchored:
        pattern = f"*{pattern}*"
    matched = Q(_Like(_column_expression(column), pattern, case_sensitive=case_sensitive))
    if column == "name" and anchored and starts and not ends and _EXTENSION_PATTERN.match(inner):
        # name:*.docx: the indexed extension column finds the candidates; the pattern confirms them.
        return Q(extension=inner[1:].lower()) & matched
    return matched


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


def word_phrase(node: Node) -> tuple[list[str], bool] | None:
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

    def __init__(self, column: str, build: ConditionBuilder) -> None:
        super().__init__(F(column))
        self.build = build

    def as_sql(  # type: ignore[override]  # Func.as_sql takes function/template/… options no caller passes here
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        sql, more = self.build(column, connection.vendor)
        return sql, [*params, *more]


def _match(phrases: list[tuple[list[str], bool]]) -> Q:
    return Q(
        _RowCondition("pk", lambda id_column, vendor: fulltext.match_condition(vendor, phrases, id_column=id_column))
    )


def _wildcard_pattern(node: Field) -> str:
    """The pattern of a wildcard ``node``: a string, as ``Field`` allows wildcards on strings only."""
    return cast(str, node.value)  # Field.__post_init__ refuses a wildcard whose value is not a string


def type_combinations(case_id: int) -> list[str]:
    """Every distinct ``types`` list of a case's traces, as the database stores it.

    Traces come in few combinations (``["file"]``, ``["file", "picture"]``, …): one index seek each
    through the (case, types) index finds them all, without reading the traces in between; the seeks are
    one recursive statement, so a search pays one round trip to the database for them, not one a combination.
    """
    next_after = "SELECT types FROM search_trace WHERE case_id = %s AND types > seen.types ORDER BY types LIMIT 1"
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH RECURSIVE seen(types) AS ("  # noqa: S608 (constants only)
            "SELECT * FROM (SELECT types FROM search_trace WHERE case_id = %s ORDER BY types LIMIT 1) AS first "
            f"UNION ALL SELECT ({next_after}) FROM seen WHERE seen.types IS NOT NULL"
            ") SELECT types FROM seen WHERE types IS NOT NULL ORDER BY types",
            [case_id, case_id],
        )
        return [value if isinstance(value, str) else json.dumps(value) for (value,) in cursor.fetchall()]


def combinations_holding(node: Field, *, case_id: int) -> list[str]:
    """The stored ``types`` lists of the case's traces that a ``type:`` condition holds."""
    # ":" ignores case, "=" is exact (docs/query.md), as in Elasticsearch.
    exact = node.op == "="
    wanted = str(node.value) if exact else str(node.value).lower()

    def holds(name: str) -> bool:
        name = name if exact else name.lower()
        return wildcard_match(wanted, name) if node.wildcard else name == wanted

    return [stored for stored in type_combinations(case_id) if any(holds(str(name)) for name in json.loads(stored))]


def _type(node: Field, *, case_id: int | None) -> Q:
    exact = node.op == "="
    wanted = str(node.value) if exact else str(node.value).lower()
    if case_id is None:
        return Q(types__contains=f'"{wanted}"') if exact else Q(types__icontains=f'"{wanted}"')
    holding = combinations_holding(node, case_id=case_id)
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
    if stream := stream_property(name):
        return _stream_field(node, stream)
    if name == "type":
        return _type(node, case_id=case_id)
    if name == "evidence":
        return Q(evidence_id=value)
    if name == "deleted":
        # "deleted IN (…)", not Django's bare "deleted": SQLite looks a comparison up in the (case, deleted)
        # index, a bare column it only filters by.
        return Q(deleted__in=[value])
    if name == "has":  # has:errors (the one value the AST lets through)
        return Q(has_errors__in=[True])
    if name == "tag":
        # Tags are lower-case: ":" and "=" find them in any case.
        wanted = _Like(F("name"), str(value)) if node.wildcard else Q(name=str(value).lower())
        tags = TraceTag.objects.filter(wanted)
        return Q(pk__in=tags.values("trace_id"))
    if name == "hashset" or name in KNOWN_FIELDS:
        return _hash_set_field(node, case_id=case_id)
    if name in INDEXED_NUMBERS and is_number(value) and not node.wildcard:
        column = INDEXED_NUMBERS[name]
        return Q(**{f"{column}__{OPERATOR_LOOKUPS[node.op]}" if node.op in OPERATOR_LOOKUPS else column: value})
    if is_number(value) and not node.wildcard and case_id is not None and name not in _ROW_FIELDS:
        # Numeric properties are in the number index (schema.py): equal or compared, numbers only.
        return _number(name, [("=" if node.op == ":" else node.op, value)], case_id=case_id)
    column = name if name in _ROW_FIELDS else f"properties__{name}"
    if isinstance(value, date) and column.startswith("properties__"):
        return _date_compare(name, ">=" if node.op == ":" else node.op, value, whole_day_equal=node.op in ":=")
    if node.op in OPERATOR_LOOKUPS:
        return Q(**{f"{column}__{OPERATOR_LOOKUPS[node.op]}": _as_json_value(value)})
    if node.wildcard:
        # ":" ignores case, "=" matches it as written (docs/query.md).
        return _wildcard(_wildcard_pattern(node), column, anchored=True, case_sensitive=node.op == "=")
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


def _hash_set_field(node: Field, *, case_id: int | None) -> Q:
    """``hashset:<name>`` (any case, wildcards allowed), ``knownGood:true``, ``knownBad:false``: the traces a
    hash set of the organisation holds, by their marks (search.hashset_marks), read by the case's index."""
    marks = TraceHashMatch.objects.all() if case_id is None else TraceHashMatch.objects.filter(case_id=case_id)
    if node.name == "hashset":
        value = str(node.value)
        named = _Like(F("name"), value) if node.wildcard else Q(name__iexact=value)
        return Q(pk__in=marks.filter(hash_set__in=HashSet.objects.filter(named).values("pk")).values("trace_id"))
    kind = HashKind.KNOWN_GOOD if node.name == "knownGood" else HashKind.KNOWN_BAD
    marked = Q(pk__in=marks.filter(kind=kind).values("trace_id"))
    return marked if node.value else ~marked


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


# -- stream properties (search.query.streams): data.raw.hash.md5, data.raw.size, data.raw.mimeType … ---------


def _stream_field(node: Field, stream: StreamProperty) -> Q:
    value = node.value
    if stream.is_hash:
        # Hashes are kept lower-case; ":" and "=" both mean the whole hash, in any case.
        wanted = str(value).lower()
        if node.wildcard:
            return _stream_condition(stream, [("like", like_pattern(wanted, anchored=True))])
        if node.op in OPERATOR_LOOKUPS:
            return _stream_condition(stream, [(node.op, wanted)])
        found = _stream_condition(stream, [("=", wanted)])
        if stream.stream == "raw" and stream.key == "sha256":
            # The raw stream's SHA-256 has an indexed column of its own (search.models.Trace.sha256).
            return Q(sha256=wanted) & found
        if tokens := fulltext.words(wanted):
            # Every stream's hashes are words of the trace (schema.py): the word index finds the candidates.
            return _full_text(tokens, prefix=False) & found
        return found
    if stream.is_number:
        if not is_number(value):
            return Q(pk__isnull=True)  # a number property never holds a word (as the number index)
        return _stream_condition(stream, [("=" if node.op == ":" else node.op, value)])
    # The MIME type: ":" finds the words in any case, "=" the exact value, wildcards a pattern.
    text = str(value)
    if node.wildcard:
        return _stream_condition(stream, [("like", like_pattern(text, anchored=True))])
    if node.op in OPERATOR_LOOKUPS:
        return _stream_condition(stream, [(node.op, text)])
    if node.op == "=":
        return _stream_condition(stream, [("=", text)])
    return _stream_condition(stream, [("like", like_pattern(text, anchored=False))])


def _stream_condition(stream: StreamProperty, comparisons: list[tuple[str, Any]]) -> Q:
    """Some stream named ``stream.stream`` of the trace has a value at ``stream.key`` that holds every one of
    ``comparisons`` (``("=", v)``, ``(">", v)``, ``("like", pattern)`` …); numbers compare only with numbers."""
    numeric = stream.is_number
    if numeric and not all(is_number(value) for op, value in comparisons if op != "like"):
        return Q(pk__isnull=True)

    def build(column: str, vendor: str) -> tuple[str, list]:
        params: list[Any] = [stream.stream]
        if vendor == "postgresql":
            elements = f"jsonb_array_elements(CASE WHEN jsonb_typeof({column}) = 'array' THEN {column} ELSE '[]' END)"
            value = f"(element ->> '{stream.key}')"
            typed = f"jsonb_typeof(element -> '{stream.key}') = 'number'" if numeric else f"{value} IS NOT NULL"
            name = "element ->> 'name'"
            like = "ILIKE"
        else:
            elements = f"json_each({column})"
            value = f"json_extract(element.value, '$.{stream.key}')"
            kind = f"json_type(element.value, '$.{stream.key}')"
            typed = f"{kind} IN ('integer', 'real')" if numeric else f"{kind} = 'text'"
            name = "json_extract(element.value, '$.name')"
            like = "LIKE"
        conditions = [f"{name} = %s", typed]
        for op, wanted in comparisons:
            if op == "like":
                conditions.append(f"{value} {like} %s ESCAPE '{LIKE_ESCAPE}'")
            elif numeric and vendor == "postgresql":
                conditions.append(f"{value}::numeric {op} %s::numeric")
            elif stream.is_hash:
                conditions.append(f"lower({value}) {op} %s")
            else:
                conditions.append(f"{value} {op} %s")
            params.append(wanted)
        # Only constants and the column's SQL go into the statement; values are parameters.
        return f"EXISTS (SELECT 1 FROM {elements} AS element WHERE {' AND '.join(conditions)})", params  # noqa: S608

    return Q(_RowCondition("streams", build))


def _number(name: str, comparisons: list[tuple[str, float]], *, case_id: int) -> Q:
    def condition(id_column: str, vendor: str) -> tuple[str, list]:
        return fulltext.number_condition(
            vendor, case_id=case_id, name=name, comparisons=comparisons, id_column=id_column
        )

    return Q(_RowCondition("pk", condition))


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is a number of the query language (an int or a float, never a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _range(node: Range, *, case_id: int | None = None) -> Q:
    if stream := stream_property(node.name):
        bounds: list[tuple[str, Any]] = []
        if node.low is not None:
            bounds.append((">=" if node.include_low else ">", node.low))
        if node.high is not None:
            bounds.append(("<=" if node.include_high else "<", node.high))
        return _stream_condition(stream, bounds)
    column = node.name if node.name in ("name", "path", "uid") else f"properties__{node.name}"
    if node.low is None and node.high is None:
        # [* TO *]: the traces that have the property at all.
        return Q() if not column.startswith("properties__") else Q(properties__has_key=node.name)
    if isinstance(node.low or node.high, date) and column.startswith("properties__"):
        # Range.__post_init__ holds both bounds to one kind: one is a date, so the other is a date or open.
        q = Q()
        if node.low is not None:
            q &= _date_compare(node.name, ">=" if node.include_low else ">", cast(date, node.low))
        if node.high is not None:
            q &= _date_compare(node.name, "<=" if node.include_high else "<", cast(date, node.high))
        return q
    numbers = all(is_number(v) for v in (node.low, node.high) if v is not None)
    if numbers and case_id is not None and node.name not in INDEXED_NUMBERS and column.startswith("properties__"):
        # ``numbers``: every bound that is not open is an int or a float.
        comparisons: list[tuple[str, float]] = []
        if node.low is not None:
            comparisons.append((">=" if node.include_low else ">", cast(float, node.low)))
        if node.high is not None:
            comparisons.append(("<=" if node.include_high else "<", cast(float, node.high)))
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
        phrases = [word_phrase(item) for item in node.items]
        if all(phrases):
            # Words only: one look-up of the word index for all of them (all() above: no phrase is None).
            return _match(cast(list[tuple[list[str], bool]], phrases))
        q = Q(pk__in=[])
        for item in node.items:
            q |= compile_q(item, case_id=case_id)
        return q
    if isinstance(node, Not):
        return ~compile_q(node.item, case_id=case_id)
    raise TypeError(f"not a query node: {node!r}")


def property_sql(name: str, *, table: str = "", typed: bool = False) -> tuple[str, list[str]]:
    """A property's value in this database's SQL, with its parameter: as text, or ``typed`` as the JSON
    value itself (numbers order as numbers). SQLite's json_extract gives the typed value either way.
    A date kept in a column of its own is that column (its first 19 characters, all a facet uses)."""
    if name in INDEXED_DATES:
        return f"{table}{INDEXED_DATES[name]}", []
    if connection.vendor == "sqlite":
        return f"json_extract({table}properties, %s)", [f'$."{name}"']
    return f"({table}properties {'->' if typed else '->>'} %s)", [name]
