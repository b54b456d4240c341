"""The database's own search backend: FTS5 on SQLite, tsvector + GIN on PostgreSQL.

The query AST is compiled to the ORM by compiler.py, its hits found by one of the planner's six strategies
(planner.py), counted and faceted by facets.py, over the indexes and triggers of schema.py.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import QuerySet

from search.backends.base import DEFAULT_DATE_PROPERTY, SearchBackend, SearchPage, count_bound
from search.backends.budget import search_time_budget
from search.backends.sql.compiler import compile_q
from search.backends.sql.facets import FacetSource
from search.backends.sql.planner import HitsTable, fill_hits, order_by
from search.models import Trace
from search.query.ast import Node


class SqlSearchBackend(SearchBackend):
    """The database's own search: FTS5 on SQLite, tsvector + GIN on PostgreSQL."""

    name = "sql"
    deduplicates = True

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
        dedupe: bool = False,
    ) -> SearchPage:
        # Every search, however it is planned, runs under the time budget (budget.py).
        with search_time_budget():
            return self._search(
                case_id=case_id,
                node=node,
                facets=facets,
                sort=sort,
                offset=offset,
                limit=limit,
                date_property=date_property,
                date_interval=date_interval,
                count_limit=count_limit,
                dedupe=dedupe,
            )

    def _search(
        self,
        *,
        case_id: int,
        node: Node | None,
        facets: list[str],
        sort: tuple[str, ...],
        offset: int,
        limit: int,
        date_property: str,
        date_interval: str,
        count_limit: int | None,
        dedupe: bool = False,
    ) -> SearchPage:
        if node is None and count_limit is None and not dedupe:
            return self._whole_case(
                case_id=case_id,
                facets=facets,
                sort=sort,
                offset=offset,
                limit=limit,
                date_property=date_property,
                date_interval=date_interval,
            )
        bound = count_bound(count_limit=count_limit, offset=offset, limit=limit)
        # The search only reads the database and writes temporary tables of its own connection. On
        # PostgreSQL it runs in the budget's transaction, whose rollback also removes those tables; on
        # SQLite it takes no transaction (Django's would be IMMEDIATE: it would hold the write lock, and
        # every other search, for as long as this one runs), and drops its tables itself.
        with connection.cursor() as cursor:
            hits = HitsTable(cursor, sort=sort, date_property=date_property if "date" in facets else None)
            try:
                total = fill_hits(
                    hits,
                    case_id=case_id,
                    node=node,
                    sort=sort,
                    bound=bound,
                    matching=lambda: self.matching(case_id=case_id, node=node),
                )
                exact = bound is None or total <= bound
                if bound is not None and not exact:  # not exact only with a bound; said for the type checker
                    hits.drop_past(bound, sort=sort)
                    total = bound
                if dedupe:
                    total = hits.drop_duplicate_content()
                source = FacetSource(cursor=cursor, table=hits.name, where="", params=[])
                counted, interval = source.facets(facets, date_property=date_property, date_interval=date_interval)
                ids = hits.page_ids(offset=offset, limit=limit)
            except BaseException:
                if connection.vendor == "sqlite":  # PostgreSQL's rollback removes it
                    hits.drop(missing_ok=True)
                raise
            hits.drop()
            found = Trace.objects.in_bulk(ids)
        return SearchPage(
            total=total,
            traces=[found[pk] for pk in ids],
            facets=counted,
            date_interval=interval,
            exact=exact,
            sampled=not exact,
        )

    def _whole_case(
        self,
        *,
        case_id: int,
        facets: list[str],
        sort: tuple[str, ...],
        offset: int,
        limit: int,
        date_property: str,
        date_interval: str,
    ) -> SearchPage:
        """The planner's first strategy: every count comes straight from the (case, …) indexes."""
        traces = self.matching(case_id=case_id, node=None)
        with connection.cursor() as cursor:
            source = FacetSource(cursor=cursor, table="search_trace", where="case_id = %s", params=[case_id])
            total = traces.count()
            counted, interval = source.facets(
                facets, date_property=date_property, date_interval=date_interval, from_properties=True
            )
        page = list(traces.order_by(*order_by(sort))[offset : offset + limit])
        return SearchPage(total=total, traces=page, facets=counted, date_interval=interval)
