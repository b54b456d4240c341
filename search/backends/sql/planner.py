"""The query planner of the SQL backend: how a search finds the hits it counts, facets and pages.

A search with a query evaluates it once, into a temporary table of the hits' narrow columns
(:class:`HitsTable`), and counts, facets and pages from there rather than evaluating the query again for
each of them. With a count limit (``bound``, search.backends.base.count_bound), only the first ``bound``
hits in the sort order go in, and one more to tell whether there are more. The planner finds them by one
of six strategies, the first that applies (backend.py takes the first, :func:`fill_hits` the others):

1. **Whole case** — no query and no count limit: no hits table; the total and every facet come straight
   from the (case, …) indexes of ``search_trace`` and the page from the ordered query (backend.py).
2. **Word-driven first hits** — SQLite, id order, a count limit, and a query that must hold words: the
   FTS5 table yields its rowids (the trace ids) in order and drives the query, so the database reads hits
   until it has enough (:func:`word_driven_first_ids`); the query need not be compiled whole.
3. **Every hit** — no count limit, or a probe for any ``bound + 1`` hits, ids only and in whatever order
   the database finds them fastest, found no more than ``bound``: all of them go in.
4. **Type-driven first hits** — SQLite, id order, the probe found more, and a query that must hold a type
   and compares nothing: one walk of the (case, types) index per combination of types that holds it,
   merged in id order (:func:`type_driven_first_ids`).
5. **First hits in sort order** — SQLite, otherwise: the ordered query with a limit. Every index holds
   the id, so in id order the database finds them without reading and sorting every hit; SQLite finds
   their ids from an index alone, then reads their rows.
6. **A sample of the hits** — PostgreSQL, with a count limit: any ``bound + 1`` hits, as the indexes yield
   them, go in (:func:`_sampled_hits`); past the bound the count and the facets are taken from them, and
   the page from the ordered query with a limit of the page's end.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import date
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.db.models import F, Q, QuerySet
from django.db.models.expressions import OrderBy, RawSQL

from search.backends import budget
from search.backends.sql import fulltext, schema
from search.backends.sql.compiler import (
    OPERATOR_LOOKUPS,
    combinations_holding,
    compile_q,
    is_number,
    property_sql,
    word_phrase,
)
from search.models import INDEXED_DATES, INDEXED_NUMBERS, Trace
from search.query.ast import And, Field, Node, Or, Range

# Properties the database keeps in indexed columns of their own (search.models).
_INDEXED_COLUMNS = {**INDEXED_NUMBERS, **INDEXED_DATES}

# Sort fields (search.backends.base.SORTS) that are columns of the trace; any other is a property.
_SORT_COLUMNS = {"id": "id", "name": "name", "path": "path"}


def order_by(sort: tuple[str, ...]) -> list[OrderBy]:
    """``sort`` (search.backends.base.SORTS) as the ORM's ordering of traces."""
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


def fill_hits(
    hits: HitsTable,
    *,
    case_id: int,
    node: Node | None,
    sort: tuple[str, ...],
    bound: int | None,
    matching: Callable[[], QuerySet[Trace]],
) -> int:
    """Put the query's hits into ``hits`` (all, or with ``bound`` the first ``bound + 1`` in the sort
    order) by strategies 2 to 5 of this module; the number of rows put in. ``matching`` gives the
    traces the query finds, unordered, when a strategy needs the query whole."""
    # The first hits in the sort order, one past the bound to tell whether there are more; the word
    # index drives them on SQLite when it can (then the query need not be compiled whole). Without a query
    # there are neither words nor types to drive by (strategies 2 and 4 find nothing for it).
    driven: tuple[str, list[Any]] | None = None
    if bound is not None and node is not None:
        driven = word_driven_first_ids(case_id=case_id, node=node, sort=sort, count=bound + 1)
    if driven is not None:
        return hits.fill(*_among_ids(*driven))
    traces = matching()
    if bound is None:
        return hits.fill(*_from_where(traces.order_by().values("pk")))
    if connection.vendor == "postgresql":
        return _sampled_hits(hits, traces=traces, sort=sort, bound=bound)
    # Any hits up to one past the bound, in whatever order the database finds them fastest, ids only
    # (often from an index alone): fewer than that are all of them. Asked for the first hits in order
    # straight away, a planner that cannot tell how many rows a range holds may walk the whole table in
    # order to find the few thousand files over 100 MB.
    cursor, probe = hits.cursor, f"{hits.name}_any"
    any_sql, any_params = traces.order_by().values("pk")[: bound + 1].query.sql_with_params()
    try:
        if budget.sqlite_caller_transaction():
            from_where, params = _ids_read_first(cursor, any_sql, list(any_params))
            with budget.uninterrupted():
                cursor.execute(f'CREATE TEMPORARY TABLE {probe} AS SELECT "id" FROM {from_where}', params)  # noqa: S608
        else:
            cursor.execute(f"CREATE TEMPORARY TABLE {probe} AS {any_sql}", any_params)
        cursor.execute(f"SELECT COUNT(*) FROM {probe}")  # noqa: S608 (our own table name)
        if cursor.fetchone()[0] <= bound:
            total = hits.fill(*_among_ids(f"SELECT * FROM {probe}", []))  # noqa: S608 (our own table name)
        elif node is not None and (
            driven := type_driven_first_ids(case_id=case_id, node=node, sort=sort, count=bound + 1)
        ):
            total = hits.fill(*_among_ids(*driven))
        else:
            # More: the first ones in the sort order instead (strategy 5).
            first = traces.order_by(*order_by(sort)).values("pk")[: bound + 1]
            if connection.vendor == "postgresql":
                total = hits.fill(*_from_where(first))
            else:
                total = hits.fill(*_among_ids(*first.query.sql_with_params()))
    except BaseException:
        if connection.vendor == "sqlite":  # a search takes no transaction there (backend.py): drop it here
            with budget.uninterrupted():
                cursor.execute(f"DROP TABLE IF EXISTS {probe}")
        raise
    with budget.uninterrupted():
        cursor.execute(f"DROP TABLE {probe}")
    return total


# Work memory for filling a sample on PostgreSQL. A word common enough to pass the count limit is found through
# a bitmap of every hit; in the default 4 MB that bitmap turns lossy on a million-trace case, and every trace of
# a lossy page is checked again by reading its words back from out-of-line storage: at 1,000,000 traces the
# sample of `invoice` (77,380 hits) took 160 ms in 4 MB and 53 ms in 64 MB (docs/benchmarks.md, "PostgreSQL
# first pages on a quiet machine"). Set for the fill alone, local to the search's transaction;
# ``CUSTODIA_SEARCH_SAMPLE_WORK_MEM`` overrides it (a PostgreSQL memory size, e.g. "16MB").
SAMPLE_WORK_MEM = "64MB"


def sample_work_mem() -> str:
    value = str(getattr(settings, "CUSTODIA_SEARCH_SAMPLE_WORK_MEM", "") or SAMPLE_WORK_MEM)
    if not re.fullmatch(r"[1-9][0-9]{0,6}(kB|MB|GB)", value):
        raise ImproperlyConfigured(f"CUSTODIA_SEARCH_SAMPLE_WORK_MEM must be a size such as 64MB, not {value!r}")
    return value


@contextmanager
def planner_setting(name: str, value: str) -> Iterator[None]:
    """PostgreSQL's setting ``name`` at ``value`` for the block, then as it was (a local setting of the
    transaction, so call it inside one; a block that fails leaves it to the rollback of its savepoint, which
    undoes it)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s), set_config(%s, %s, true)", [name, name, value])
        before = cursor.fetchone()[0]
    yield
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, %s, true)", [name, before])


def sample_work_memory() -> AbstractContextManager[None]:
    """``work_mem`` at ``sample_work_mem()`` for the block, then as it was."""
    return planner_setting("work_mem", sample_work_mem())


def _sampled_hits(hits: HitsTable, *, traces: QuerySet[Trace], sort: tuple[str, ...], bound: int) -> int:
    """PostgreSQL (strategy 6): any ``bound + 1`` hits, in whatever order the indexes yield them, straight
    into the hits table in one pass; fewer than that are all of them. Past the bound they are a sample the
    count and the facets are taken from, and the page comes from the ordered query, which needs only its
    ``offset + limit`` first hits: with ten thousand hits or more there is one in every hundred traces or so,
    so walking the id index in order finds a page after reading a few thousand rows. (PostgreSQL's word
    index yields no order: the first ten thousand hits of a common word in order meant reading and sorting
    every hit, or tens of thousands of rows in order.)

    In id order, the page's walk stops at the sample's ``offset + limit``-th id: the sample is a subset of the
    hits, so the page's hits are all at or before it (the page is the same; the walk is bounded)."""
    # Not steered to the word index's bitmap: at 300,000 traces that was up to six times as fast for a word in
    # a quarter of the traces, at 1,000,000 up to twice as slow (the bitmap reads every hit's entry; the
    # planner's scan stops at the sample), docs/benchmarks.md, branch pg1m.
    with sample_work_memory():
        total = hits.fill(*_from_where(traces.order_by().values("pk")[: bound + 1]))
    if total > bound:
        hits.ordered_page = traces.order_by(*order_by(sort)).values_list("pk", flat=True)
        hits.page_bounded_by_sample = tuple(sort) == ("id",)
    return total


class HitsTable:
    """A temporary table of a search's hits: their narrow columns (:data:`_HIT_COLUMNS`, the sort keys
    ``_s0`` …, the date facet's hour ``_date``), to count, facet and page from. Create it inside a
    savepoint: if anything fails, rolling it back also removes the table."""

    def __init__(self, cursor: CursorWrapper, *, sort: tuple[str, ...], date_property: str | None) -> None:
        self.cursor = cursor
        self.name = f"custodia_hits_{uuid.uuid4().hex[:16]}"
        self.select, self.select_params = _hits_columns(sort=sort, date_property=date_property)
        self.order = ", ".join(_hits_order(sort))
        # Set when the table holds a sample of the hits (strategy 6): the page comes from this query instead,
        # in id order bounded by the sample's ids when ``page_bounded_by_sample``.
        self.ordered_page: QuerySet | None = None
        self.page_bounded_by_sample = False
        self.dropped_at_commit = False

    def fill(self, from_where: str, params: list) -> int:
        """Create the table from ``FROM … WHERE …`` (without FROM) of search_trace; the number of its rows."""
        if budget.sqlite_caller_transaction():
            from_where, params = _ids_read_first(self.cursor, f'SELECT "search_trace"."id" FROM {from_where}', params)  # noqa: S608 (ours and Django's)
        # PostgreSQL, in a transaction of the search's own (the budget's, not nested in a caller's): the
        # table goes with its commit, one round trip fewer than dropping it.
        self.dropped_at_commit = (
            connection.vendor == "postgresql" and connection.in_atomic_block and not connection.savepoint_ids
        )
        on_commit = " ON COMMIT DROP" if self.dropped_at_commit else ""
        create = f"CREATE TEMPORARY TABLE {self.name}{on_commit} AS SELECT {self.select} FROM {from_where}"  # noqa: S608 (ours and Django's)
        with budget.uninterrupted() if budget.sqlite_caller_transaction() else nullcontext():
            self.cursor.execute(create, [*self.select_params, *params])
        if connection.vendor == "postgresql":
            # The server reports the rows CREATE TABLE … AS wrote ("SELECT 10001"): one round trip fewer.
            return self.cursor.rowcount
        self.cursor.execute(f"SELECT COUNT(*) FROM {self.name}")  # noqa: S608 (our own table name)
        return self.cursor.fetchone()[0]

    def drop_past(self, bound: int, *, sort: tuple[str, ...]) -> None:
        """Remove the hit past ``bound``: it only told that there are more, and is neither counted nor faceted."""
        with budget.uninterrupted() if budget.sqlite_caller_transaction() else nullcontext():
            self._drop_past(bound, sort=sort)

    def _drop_past(self, bound: int, *, sort: tuple[str, ...]) -> None:
        table = self.name
        if tuple(sort) == ("id",):
            self.cursor.execute(f"DELETE FROM {table} WHERE id = (SELECT MAX(id) FROM {table})")  # noqa: S608
        else:
            self.cursor.execute(
                f"DELETE FROM {table} WHERE id NOT IN (SELECT id FROM {table} ORDER BY {self.order} LIMIT %s)",  # noqa: S608
                [bound],
            )

    def drop_duplicate_content(self) -> int:
        """Keep one hit per content hash, the first in extraction order (traces without content all stay);
        the number of hits left. (Issue #20 item 7: de-duplication by content hash.)"""
        table = self.name
        with budget.uninterrupted() if budget.sqlite_caller_transaction() else nullcontext():
            self.cursor.execute(
                f"DELETE FROM {table} WHERE id IN (SELECT trace.id FROM search_trace AS trace "  # noqa: S608 (ours)
                f"JOIN {table} AS hit ON hit.id = trace.id WHERE trace.sha256 <> '' AND trace.id NOT IN ("
                f"SELECT MIN(first.id) FROM search_trace AS first JOIN {table} AS other ON other.id = first.id "
                "WHERE first.sha256 <> '' GROUP BY first.sha256))"
            )
        self.cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 (our own table name)
        return self.cursor.fetchone()[0]

    def page_ids(self, *, offset: int, limit: int) -> list[int]:
        """The ids of one page of hits, in the sort order."""
        if self.ordered_page is not None:
            page = self.ordered_page
            if self.page_bounded_by_sample:
                # The sample holds at least offset + limit hits (it is past the bound): the page's last hit
                # is at or before the sample's (offset + limit)-th id.
                nth = f"SELECT id FROM {self.name} ORDER BY id LIMIT 1 OFFSET %s"  # noqa: S608 (our own table name)
                last = RawSQL(nth, [offset + limit - 1])  # noqa: S611  # nosec B611  # our own table name, a parameter
                page = page.filter(pk__lte=last)
            return list(page[offset : offset + limit])
        self.cursor.execute(f"SELECT id FROM {self.name} ORDER BY {self.order} LIMIT %s OFFSET %s", [limit, offset])  # noqa: S608
        return [row[0] for row in self.cursor.fetchall()]

    def drop(self, *, missing_ok: bool = False) -> None:
        if self.dropped_at_commit:
            return
        with budget.uninterrupted():
            self.cursor.execute(f"DROP TABLE {'IF EXISTS ' if missing_ok else ''}{self.name}")


def _ids_read_first(cursor: CursorWrapper, ids_sql: str, params: list) -> tuple[str, list]:
    """SQLite inside a caller's transaction: the ids ``ids_sql`` selects, read first (a read the time budget
    may stop safely), as ``FROM … WHERE …`` of the traces with those ids (a write it must not stop)."""
    cursor.execute(ids_sql, params)
    ids = [row[0] for row in cursor.fetchall()]
    return 'search_trace WHERE "search_trace"."id" IN (SELECT value FROM json_each(%s))', [json.dumps(ids)]


# -- strategies 2 and 4, and the SQL they are written from ------------------------------------------


def _from_where(hits: QuerySet) -> tuple[str, list]:
    """``FROM search_trace WHERE …`` (without FROM) of Django's query for the ids of ``hits``, with its parameters."""
    sql, params = hits.query.sql_with_params()
    return sql.split(" FROM ", 1)[1], list(params)


def _among_ids(ids_sql: str, ids_params: Sequence[Any]) -> tuple[str, list]:
    """``FROM … WHERE …`` (without FROM) of the traces whose ids ``ids_sql`` selects."""
    return f'search_trace WHERE "search_trace"."id" IN ({ids_sql})', list(ids_params)


def _full_text_conjuncts(node: Node) -> tuple[list[list[tuple[list[str], bool]]], list[Node]]:
    """The query's top-level full-text clauses (each a group of phrases, any of which may hold), and the rest."""
    groups: list[list[tuple[list[str], bool]]] = []
    rest: list[Node] = []
    for item in node.items if isinstance(node, And) else (node,):
        if phrase := word_phrase(item):
            groups.append([phrase])
        elif isinstance(item, Or) and all(phrases := [word_phrase(option) for option in item.items]):
            groups.append(cast(list[tuple[list[str], bool]], phrases))  # all() above: no phrase is None
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


def word_hits_superset(*, node: Node, holds_elsewhere: Callable[[Node], bool]) -> tuple[str, list] | None:
    """On SQLite, for a query of full-text clauses and of conditions the caller applies itself
    (``holds_elsewhere``): SQL (and its parameters) for the ids of the traces of any case that hold the full-text
    clauses, read from the FTS5 table alone, never a trace row. A superset of the query's hits, exact once
    the caller keeps its case's traces and applies the rest. None for any other query or database."""
    expression = _words_alone(node=node, holds_elsewhere=holds_elsewhere)
    if expression is None:
        return None
    fts = schema.FTS_TABLE
    return f"SELECT rowid AS id FROM {fts} WHERE {fts} MATCH %s", [expression]  # noqa: S608


def word_exists(*, node: Node, holds_elsewhere: Callable[[Node], bool], column: str) -> tuple[str, list] | None:
    """As :func:`word_hits_superset`, a condition instead: that the trace whose id is ``column`` holds the query's
    full-text clauses, checked in the FTS5 table for that one trace."""
    expression = _words_alone(node=node, holds_elsewhere=holds_elsewhere)
    if expression is None:
        return None
    fts = schema.FTS_TABLE
    return f"EXISTS (SELECT 1 FROM {fts} WHERE {fts} MATCH %s AND {fts}.rowid = {column})", [expression]  # noqa: S608


def _words_alone(*, node: Node, holds_elsewhere: Callable[[Node], bool]) -> str | None:
    """SQLite: the FTS5 expression of the query's full-text clauses, when the rest ``holds_elsewhere``."""
    if connection.vendor != "sqlite":
        return None
    groups, rest = _full_text_conjuncts(node)
    if not groups or not all(holds_elsewhere(item) for item in rest):
        return None
    return fulltext.fts5_expression(groups)


def word_driven_first_ids(*, case_id: int, node: Node, sort: tuple[str, ...], count: int) -> tuple[str, list] | None:
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
    fts = schema.FTS_TABLE
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
        node.op in OPERATOR_LOOKUPS or is_number(node.value) or isinstance(node.value, date)
    )


def type_driven_first_ids(*, case_id: int, node: Node, sort: tuple[str, ...], count: int) -> tuple[str, list] | None:
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
    holding = combinations_holding(driver, case_id=case_id)
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


# -- the hits table's columns ---------------------------------------------------------------------------

# The columns of a hit that facets group by, kept in the hits table.
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
            expression, expression_params = property_sql(name, table='"search_trace".', typed=True)
            columns.append(f"{expression} AS _s{position}")
            params += expression_params
    if date_property:
        expression, expression_params = property_sql(date_property, table='"search_trace".')
        columns.append(f"substr({expression}, 1, 13) AS _date")
        params += expression_params
    return ", ".join(columns), params


def _hits_order(sort: tuple[str, ...]) -> list[str]:
    """``sort`` as the ORDER BY terms of the hits table (its sort keys ``_s0`` …, then the id)."""
    order = []
    for position, field in enumerate(sort):
        name = field.removeprefix("-")
        column = "id" if name == "id" else f"_s{position}"
        order.append(f"{column} {'DESC' if field.startswith('-') else 'ASC'} NULLS LAST")
    return order
