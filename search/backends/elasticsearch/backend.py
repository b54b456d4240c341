"""Trace search in Elasticsearch 8/9: the query AST compiled by compiler.py, traces indexed as documents.py says.

The database stays the record: Elasticsearch holds one document per trace (``trace_document``) for
finding them, and a page of hits is read back from the database by uid, in Elasticsearch's order, so
hits look the same whichever backend found them. Writers call :meth:`traces_changed` (the extraction
publisher after each batch, tagging after each change) to bring the documents up to date.

    CUSTODIA_SEARCH_BACKEND=search.backends.elasticsearch.ElasticsearchBackend
    CUSTODIA_ELASTICSEARCH_URL=https://es.example.org:9200
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import QuerySet

from search.backends.base import DEFAULT_DATE_PROPERTY, SearchBackend, SearchPage, auto_date_interval, count_bound
from search.backends.budget import SearchTimeBudgetExceeded, time_budget_ms
from search.backends.elasticsearch.compiler import (
    compile_query,
    property_field,
    read_facets,
    search_body,
)
from search.backends.elasticsearch.documents import trace_document, trace_index_mapping
from search.models import Trace
from search.query.ast import Node

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

BULK_CHUNK = 500
# How a bucket's start is written for each interval: the same strings the SQL backend gives.
_BUCKET_WIDTH = {"year": 10, "month": 10, "day": 10, "hour": 16}


class ElasticsearchBackend(SearchBackend):
    name = "elasticsearch"
    indexes_separately = True

    def __init__(self, *, client: Elasticsearch | None = None, index: str | None = None) -> None:
        if client is None:
            from elasticsearch import Elasticsearch

            if not settings.CUSTODIA_ELASTICSEARCH_URL:
                raise RuntimeError("CUSTODIA_ELASTICSEARCH_URL must be set for the Elasticsearch search backend")
            client = Elasticsearch(settings.CUSTODIA_ELASTICSEARCH_URL)
        self.client = client
        self.index = index or settings.CUSTODIA_ELASTICSEARCH_INDEX

    # -- indexing ---------------------------------------------------------------------------------

    def ensure_index(self) -> None:
        if not self.client.indices.exists(index=self.index):
            self.client.indices.create(index=self.index, mappings=trace_index_mapping())

    def _actions(self, traces: Iterable[Trace]) -> Iterator[dict[str, Any]]:
        for trace in traces:
            document = trace_document(
                uid=trace.uid,
                case_id=trace.case_id,
                evidence_id=trace.evidence_id,
                name=trace.name,
                path=trace.path,
                types=trace.types,
                properties=trace.properties,
                text=trace.text,
                deleted=trace.deleted,
                has_errors=trace.has_errors,
                tags=[tag.name for tag in trace.tags.all()],
                hash_sets=[(match.hash_set.name, match.kind) for match in trace.hash_matches.all()],
                ordinal=trace.ordinal,
                sequence=trace.pk,
                streams=trace.streams,
            )
            yield {"_index": self.index, "_id": trace.uid, "_source": document}

    def traces_changed(self, *, trace_ids: list[int]) -> None:
        from elasticsearch.helpers import bulk

        self.ensure_index()
        for start in range(0, len(trace_ids), BULK_CHUNK):
            traces = Trace.objects.filter(pk__in=trace_ids[start : start + BULK_CHUNK]).prefetch_related(
                "tags", "hash_matches__hash_set"
            )
            # refresh: what was just written is searchable when this returns, as with the SQL backend.
            bulk(self.client, self._actions(traces), refresh="wait_for")

    # -- searching --------------------------------------------------------------------------------

    def _case_query(self, *, case_id: int, node: Node | None) -> dict[str, Any]:
        must = [compile_query(node).to_dict()] if node is not None else [{"match_all": {}}]
        return {"bool": {"must": must, "filter": [{"term": {"case": str(case_id)}}]}}

    def _auto_interval(self, *, case_id: int, node: Node | None, date_property: str) -> str:
        field = property_field(date_property)
        response = self.client.search(
            index=self.index,
            size=0,
            query=self._case_query(case_id=case_id, node=node),
            aggs={"first": {"min": {"field": field}}, "last": {"max": {"field": field}}},
        )
        aggregations = response.get("aggregations") or {}
        first = (aggregations.get("first") or {}).get("value_as_string")
        last = (aggregations.get("last") or {}).get("value_as_string")
        return auto_date_interval(first, last)

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
        if dedupe:  # its documents hold no content hash to collapse on (deduplicates is False)
            raise ValueError("the Elasticsearch backend cannot de-duplicate hits")
        interval = None
        if "date" in facets:
            interval = date_interval
            if interval == "auto":
                interval = self._auto_interval(case_id=case_id, node=node, date_property=date_property)
        body = search_body(
            node,
            case_id=case_id,
            facets=facets,
            sort=list(sort),
            size=limit,
            offset=offset,
            date_property=date_property,
            date_interval=interval or "month",
            highlight=False,  # snippets come from the database's text, as for every backend
            track_total_hits=count_bound(count_limit=count_limit, offset=offset, limit=limit) or True,
        )
        budget = time_budget_ms()
        if budget > 0:
            body["timeout"] = f"{budget}ms"
        response = self.client.search(index=self.index, **body)
        if response.get("timed_out"):
            # Partial hits would be wrong hits: the search is refused as the SQL backend refuses it.
            raise SearchTimeBudgetExceeded(budget)
        uids = [hit["_id"] for hit in response["hits"]["hits"]]
        rows = {trace.uid: trace for trace in Trace.objects.filter(case_id=case_id, uid__in=uids)}
        counted = read_facets(response.get("aggregations") or {})
        if "deleted" in counted:
            counted["deleted"] = [
                {"value": bucket["value"] in (1, "true", True), "count": bucket["count"]}
                for bucket in counted["deleted"]
            ]
        if "date" in counted:
            if interval is None:  # cannot be: a date facet counted means "date" was asked for, which set it
                raise RuntimeError("a date histogram came back that was not asked for")
            width = _BUCKET_WIDTH[interval]
            counted["date"] = [{"value": str(b["value"])[:width], "count": b["count"]} for b in counted["date"]]
        total = response["hits"]["total"]
        return SearchPage(
            total=total["value"],
            traces=[rows[uid] for uid in uids if uid in rows],
            facets=counted,
            date_interval=interval,
            # Elasticsearch stops counting at the limit, but its aggregations still count every hit.
            exact=total.get("relation", "eq") == "eq",
        )

    def matching(self, *, case_id: int, node: Node | None) -> QuerySet[Trace]:
        from elasticsearch.helpers import scan

        hits = scan(
            self.client, index=self.index, query={"query": self._case_query(case_id=case_id, node=node)}, _source=False
        )
        return Trace.objects.filter(case_id=case_id, uid__in=[hit["_id"] for hit in hits])
