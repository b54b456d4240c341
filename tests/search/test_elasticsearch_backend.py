"""The Elasticsearch backend through the real client, against an in-process fake transport node.

No Elasticsearch server can be installed on these machines: `FakeElasticsearchNode` stands in for the
HTTP connection (it records each request and answers with canned responses), so everything from the
backend to the wire format of the official client is exercised. With ES_URL set, the backend suite's
queries also run against a live server and must find the same traces as the SQL backends.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest
from elastic_transport import ApiResponseMeta, BaseNode, HttpHeaders
from elastic_transport._node._base import NodeApiResponse
from elasticsearch import Elasticsearch

from search.backends.base import SORTS
from search.backends.elasticsearch import ElasticsearchBackend
from search.backends.elasticsearch.compiler import search_body
from search.backends.sql import SqlSearchBackend
from search.models import Trace
from search.query import parse_query
from tests.search.test_search_backends import QUERIES, TRACES, traces  # noqa: F401 (a fixture)


class FakeElasticsearchNode(BaseNode):
    """An in-process stand-in for one Elasticsearch node: no sockets, canned answers, every request kept."""

    requests: list[tuple[str, str, object]] = []
    answers: list[object] = []

    def perform_request(self, method, target, body=None, headers=None, request_timeout=None):
        if body and target.split("?")[0].endswith("_bulk"):
            parsed = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        else:
            parsed = json.loads(body) if body else None
        FakeElasticsearchNode.requests.append((method, target, parsed))
        answer = FakeElasticsearchNode.answers.pop(0) if FakeElasticsearchNode.answers else {}
        status = 200
        if isinstance(answer, tuple):
            status, answer = answer
        if callable(answer):
            answer = answer(parsed)
        meta = ApiResponseMeta(
            status=status,
            http_version="1.1",
            headers=HttpHeaders({"x-elastic-product": "Elasticsearch", "content-type": "application/json"}),
            duration=0.0,
            node=self.config,
        )
        return NodeApiResponse(meta, json.dumps(answer).encode())


@pytest.fixture
def fake_es():
    FakeElasticsearchNode.requests = []
    FakeElasticsearchNode.answers = []
    client = Elasticsearch("http://fake-elasticsearch:9200", node_class=FakeElasticsearchNode)
    return ElasticsearchBackend(client=client, index="custodia-traces-test")


def _search_response(uids: list[str], *, total: int, aggregations: dict | None = None) -> dict:
    return {
        "took": 1,
        "timed_out": False,
        "hits": {"total": {"value": total, "relation": "eq"}, "hits": [{"_id": uid, "_score": None} for uid in uids]},
        "aggregations": aggregations or {},
    }


def test_search_sends_the_compiled_body_and_reads_the_page_back_from_the_database(demo, traces, fake_es, settings):  # noqa: F811
    ordered = list(Trace.objects.filter(evidence=traces).order_by("-ordinal").values_list("uid", flat=True)[:2])
    FakeElasticsearchNode.answers = [
        _search_response(
            ordered,
            total=7,
            aggregations={
                "type": {"buckets": [{"key": "file", "doc_count": 5}]},
                "deleted": {"buckets": [{"key": 0, "key_as_string": "false", "doc_count": 6}]},
            },
        )
    ]
    node = parse_query("report NOT type:email")
    page = fake_es.search(
        case_id=demo.case.pk, node=node, facets=["type", "deleted"], sort=SORTS["-size"], offset=10, limit=2
    )
    method, target, body = FakeElasticsearchNode.requests[-1]
    assert (method, target) == ("POST", "/custodia-traces-test/_search")
    expected = search_body(
        node,
        case_id=demo.case.pk,
        facets=["type", "deleted"],
        sort=list(SORTS["-size"]),
        size=2,
        offset=10,
        date_interval="month",
        highlight=False,
    )
    # Every search carries the time budget (#17): Elasticsearch stops it there and says timed_out.
    expected["timeout"] = f"{settings.CUSTODIA_SEARCH_TIME_BUDGET_MS}ms"
    assert body == json.loads(json.dumps(expected))
    assert body["from"] == 10
    assert body["query"]["bool"]["filter"] == [{"term": {"case": str(demo.case.pk)}}]
    assert [trace.uid for trace in page.traces] == ordered
    assert page.total == 7
    assert page.facets == {"type": [{"value": "file", "count": 5}], "deleted": [{"value": False, "count": 6}]}


def test_a_count_limit_is_sent_as_track_total_hits_and_a_lower_bound_is_not_exact(demo, traces, fake_es):  # noqa: F811
    uids = list(Trace.objects.filter(evidence=traces).order_by("ordinal").values_list("uid", flat=True)[:2])
    bounded = _search_response(uids, total=120)
    bounded["hits"]["total"]["relation"] = "gte"
    FakeElasticsearchNode.answers = [bounded, _search_response(uids, total=7)]
    options = {"case_id": demo.case.pk, "node": parse_query("report"), "facets": ["type"], "sort": SORTS[""]}
    page = fake_es.search(**options, offset=100, limit=20, count_limit=100)
    # Counted to the end of the page asked for, if that is past the limit.
    assert FakeElasticsearchNode.requests[-1][2]["track_total_hits"] == 120
    # Elasticsearch's aggregations count every hit, even when the total stops: the facets are not sampled.
    assert (page.total, page.exact, page.sampled) == (120, False, False)
    page = fake_es.search(**options, offset=0, limit=20)
    assert FakeElasticsearchNode.requests[-1][2]["track_total_hits"] is True
    assert (page.total, page.exact) == (7, True)


def test_auto_date_interval_asks_for_the_range_first(demo, traces, fake_es):  # noqa: F811
    FakeElasticsearchNode.answers = [
        _search_response(
            [],
            total=0,
            aggregations={
                "first": {"value": 1, "value_as_string": "2019-03-07T10:00:00.000Z"},
                "last": {"value": 2, "value_as_string": "2020-07-01T12:00:00.000Z"},
            },
        ),
        _search_response(
            [],
            total=3,
            aggregations={
                "date": {
                    "buckets": [
                        {"key": 1, "key_as_string": "2019-03-01T00:00:00.000Z", "doc_count": 1},
                        {"key": 2, "key_as_string": "2020-07-01T00:00:00.000Z", "doc_count": 1},
                    ]
                }
            },
        ),
    ]
    page = fake_es.search(case_id=demo.case.pk, node=None, facets=["date"], sort=SORTS[""], offset=0, limit=50)
    first, second = FakeElasticsearchNode.requests[-2:]
    assert first[2]["size"] == 0
    assert first[2]["aggs"]["first"] == {"min": {"field": "properties.file.modifiedOn"}}
    assert second[2]["aggs"]["date"]["date_histogram"]["calendar_interval"] == "month"
    assert page.date_interval == "month"
    assert page.facets["date"] == [{"value": "2019-03-01", "count": 1}, {"value": "2020-07-01", "count": 1}]


def test_traces_changed_bulk_indexes_documents_with_their_tags(demo, traces, fake_es):  # noqa: F811
    FakeElasticsearchNode.answers = [
        (404, {}),  # HEAD: no index yet
        {"acknowledged": True, "index": "custodia-traces-test"},
        {"took": 1, "errors": False, "items": []},
    ]
    passwords = Trace.objects.get(name="Passwords.txt")
    fake_es.traces_changed(trace_ids=[passwords.pk])
    (head, _, _), (put, create_target, create_body), (_, bulk_target, bulk_body) = FakeElasticsearchNode.requests
    assert (head, put, create_target) == ("HEAD", "PUT", "/custodia-traces-test")
    assert create_body["mappings"]["properties"]["ordinal"] == {"type": "long"}
    assert bulk_target.startswith("/_bulk")
    action, document = bulk_body
    assert action == {"index": {"_index": "custodia-traces-test", "_id": passwords.uid}}
    assert document["tags"] == ["relevant"]
    assert document["extension"] == "txt"
    assert document["case"] == str(demo.case.pk)
    assert document["text"] == "username admin password hunter2"


class RecordingBackend(SqlSearchBackend):
    """The SQL backend, remembering what it was told about written traces."""

    name = "recording"
    indexes_separately = True
    told: list[list[int]] = []

    def traces_changed(self, *, trace_ids):
        RecordingBackend.told.append(trace_ids)


def test_tagging_tells_the_backend_after_commit(demo, traces, settings, django_capture_on_commit_callbacks):  # noqa: F811
    from search import collaboration
    from search.backends import base

    settings.CUSTODIA_SEARCH_BACKEND = "tests.search.test_elasticsearch_backend.RecordingBackend"
    RecordingBackend.told = []
    base._backend.cache_clear()
    try:
        passwords = Trace.objects.get(name="Passwords.txt")
        with django_capture_on_commit_callbacks(execute=True):
            collaboration.tag_add(actor=demo.detective, case_id=demo.case.pk, uid=passwords.uid, tag="Evidence")
            collaboration.tags_bulk_add(actor=demo.detective, case_id=demo.case.pk, tag="memo", query="report")
        assert RecordingBackend.told[0] == [passwords.pk]
        assert sorted(RecordingBackend.told[1]) == sorted(
            Trace.objects.filter(tags__name="memo").values_list("pk", flat=True)
        )
    finally:
        base._backend.cache_clear()


# -- live ------------------------------------------------------------------------------------------

ES_URL = os.environ.get("ES_URL")


@pytest.mark.skipif(
    not ES_URL,
    reason="set ES_URL (e.g. http://localhost:9200) to run the backend suite on a live Elasticsearch; "
    "no Elasticsearch server can be installed on this machine",
)
def test_live_elasticsearch_finds_what_the_sql_backends_find(demo, traces):  # noqa: F811
    client = Elasticsearch(ES_URL)
    backend = ElasticsearchBackend(client=client, index=f"custodia-test-{uuid.uuid4().hex}")
    sql = SqlSearchBackend()
    try:
        backend.traces_changed(trace_ids=list(Trace.objects.filter(evidence=traces).values_list("pk", flat=True)))
        differences = []
        for query, _expected in QUERIES:
            node = parse_query(query)
            found = backend.search(case_id=demo.case.pk, node=node, facets=[], sort=SORTS[""], offset=0, limit=100)
            wanted = sql.search(case_id=demo.case.pk, node=node, facets=[], sort=SORTS[""], offset=0, limit=100)
            if {t.name for t in found.traces} != {t.name for t in wanted.traces}:
                differences.append((query, {t.name for t in found.traces}, {t.name for t in wanted.traces}))
        assert not differences
        assert (
            len(TRACES)
            == sql.search(case_id=demo.case.pk, node=None, facets=[], sort=SORTS[""], offset=0, limit=100).total
        )
    finally:
        client.indices.delete(index=backend.index, ignore_unavailable=True)


def test_search_reindex_sends_every_trace_of_a_case(demo, traces, settings):  # noqa: F811
    from django.core.management import call_command

    from search.backends import base

    settings.CUSTODIA_SEARCH_BACKEND = "tests.search.test_elasticsearch_backend.RecordingBackend"
    RecordingBackend.told = []
    base._backend.cache_clear()
    try:
        call_command("search_reindex", "--case", str(demo.case.pk), stdout=open(os.devnull, "w"))  # noqa: SIM115
        sent = [pk for chunk in RecordingBackend.told for pk in chunk]
        assert sorted(sent) == sorted(Trace.objects.filter(case=demo.case).values_list("pk", flat=True))
    finally:
        base._backend.cache_clear()


def test_the_extraction_publisher_tells_the_backend_of_each_committed_batch(
    demo,
    traces,  # noqa: F811
    settings,
    django_capture_on_commit_callbacks,
):
    from search.backends import base
    from search.models import ExtractionRun
    from search.publisher import Publisher

    settings.CUSTODIA_SEARCH_BACKEND = "tests.search.test_elasticsearch_backend.RecordingBackend"
    RecordingBackend.told = []
    base._backend.cache_clear()
    try:
        run = ExtractionRun.objects.select_related("evidence").get(evidence=traces)
        publisher = Publisher(run)
        row = {
            "uid": f"{traces.pk}:0-99",
            "parent_uid": "",
            "name": "new.txt",
            "path": "/new.txt",
            "types": ["file"],
            "properties": {},
            "streams": [],
            "tools": {},
            "errors": [],
            "deleted": False,
            "text": "",
        }
        with django_capture_on_commit_callbacks(execute=True):
            publisher.add(row)
            publisher.flush()
        assert RecordingBackend.told == [[Trace.objects.get(uid=row["uid"]).pk]]
    finally:
        base._backend.cache_clear()


def test_a_search_elasticsearch_stopped_at_the_budget_is_a_422(demo, traces, fake_es, settings):  # noqa: F811
    from search.backends.budget import SearchTimeBudgetExceeded

    settings.CUSTODIA_SEARCH_TIME_BUDGET_MS = 250
    FakeElasticsearchNode.answers = [{**_search_response([], total=0), "timed_out": True}]
    with pytest.raises(SearchTimeBudgetExceeded) as caught:
        fake_es.search(case_id=demo.case.pk, node=parse_query("e*e*q?"), facets=[], sort=SORTS[""], offset=0, limit=2)
    assert caught.value.status_code == 422 and "CUSTODIA_SEARCH_TIME_BUDGET_MS = 250 ms" in caught.value.detail
    assert FakeElasticsearchNode.requests[-1][2]["timeout"] == "250ms"
