"""The query language compiled to Elasticsearch: expected bodies always, a live server when ES_URL is set."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from hypothesis import assume, given, settings

from search.backends.elasticsearch.compiler import (
    FULL_TEXT_FIELDS,
    compile_query,
    read_facets,
    search_body,
    sort_clauses,
)
from search.backends.elasticsearch.documents import extension_of, trace_document, trace_index_mapping
from search.query import parse_query
from search.query.ast import depth
from search.query.parser import MAX_DEPTH
from tests.search.test_query_parser import queries

EVIDENCE_ID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
FULL_TEXT = list(FULL_TEXT_FIELDS)


def compiled(query: str) -> dict:
    return compile_query(parse_query(query)).to_dict()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("peter", {"multi_match": {"query": "peter", "fields": FULL_TEXT, "operator": "and"}}),
        ('"peter de vries"', {"multi_match": {"query": "peter de vries", "fields": FULL_TEXT, "type": "phrase"}}),
        (
            "pass*",
            {
                "bool": {
                    "should": [
                        {"wildcard": {"name.keyword": {"value": "pass*", "case_insensitive": True}}},
                        {"wildcard": {"path.keyword": {"value": "pass*", "case_insensitive": True}}},
                        {"wildcard": {"metadata": {"value": "pass*", "case_insensitive": True}}},
                        {"wildcard": {"text": {"value": "pass*", "case_insensitive": True}}},
                    ],
                    "minimum_should_match": 1,
                }
            },
        ),
        ("type:email", {"term": {"types": {"value": "email", "case_insensitive": True}}}),
        ("type=email", {"term": {"types": "email"}}),
        ("type:e*", {"wildcard": {"types": {"value": "e*", "case_insensitive": True}}}),
        ("tag:important", {"term": {"tags": {"value": "important", "case_insensitive": True}}}),
        (f"evidence:{EVIDENCE_ID}", {"term": {"evidence": EVIDENCE_ID}}),
        ("deleted:true", {"term": {"deleted": True}}),
        ("uid:1b4e*", {"wildcard": {"uid": {"value": "1b4e*"}}}),
        ("name:report", {"match": {"name": {"query": "report", "operator": "and"}}}),
        ('name:"annual report"', {"match_phrase": {"name": "annual report"}}),
        ("name=Report.pdf", {"term": {"name.keyword": "Report.pdf"}}),
        ("name:*.PDF", {"wildcard": {"name.keyword": {"value": "*.PDF", "case_insensitive": True}}}),
        ("path:*/Users/*", {"wildcard": {"path.keyword": {"value": "*/Users/*", "case_insensitive": True}}}),
        ("text:password", {"match": {"text": {"query": "password", "operator": "and"}}}),
        ("text=hunter2", {"match_phrase": {"text": "hunter2"}}),
        ("text=HUNT*", {"wildcard": {"text": {"value": "HUNT*", "case_insensitive": True}}}),
        ("file.name:*.jpg", {"wildcard": {"properties.file.name": {"value": "*.jpg", "case_insensitive": True}}}),
        ("file.name=*.JPG", {"wildcard": {"properties.file.name": {"value": "*.JPG"}}}),
        ("file.name=report.pdf", {"term": {"properties.file.name": "report.pdf"}}),
        (
            "email.subject:invoice",
            {"match": {"properties.email.subject.text": {"query": "invoice", "operator": "and"}}},
        ),
        ('email.from:"a@example.org"', {"match_phrase": {"properties.email.from.text": "a@example.org"}}),
        ("file.size>1000", {"range": {"properties.file.size": {"gt": 1000}}}),
        ("file.size>=1000", {"range": {"properties.file.size": {"gte": 1000}}}),
        ("file.size<1000", {"range": {"properties.file.size": {"lt": 1000}}}),
        ("file.size<=1000", {"range": {"properties.file.size": {"lte": 1000}}}),
        ("file.size=1000", {"term": {"properties.file.size": 1000}}),
        (
            "file.size:1000",
            {
                "bool": {
                    "should": [
                        {"term": {"properties.file.size": 1000}},
                        {"match": {"properties.file.size.text": {"query": "1000"}}},
                    ],
                    "minimum_should_match": 1,
                }
            },
        ),
        ("encryptedVolume.unlocked:true", {"term": {"properties.encryptedVolume.unlocked": True}}),
        (
            "file.modifiedOn:2020-01-01",
            {"range": {"properties.file.modifiedOn": {"gte": "2020-01-01||/d", "lte": "2020-01-01||/d"}}},
        ),
        ("file.modifiedOn>2020-01-01", {"range": {"properties.file.modifiedOn": {"gt": "2020-01-01||/d"}}}),
        (
            "file.modifiedOn>=2020-01-01T10:30:00Z",
            {"range": {"properties.file.modifiedOn": {"gte": "2020-01-01T10:30:00+00:00"}}},
        ),
        ("email.sentOn:2020-01-01T10:30:00", {"term": {"properties.email.sentOn": "2020-01-01T10:30:00"}}),
        ("file.size:[100 TO 2000]", {"range": {"properties.file.size": {"gte": 100, "lte": 2000}}}),
        ("file.size:{100 TO 2000}", {"range": {"properties.file.size": {"gt": 100, "lt": 2000}}}),
        ("file.size:[100 TO *]", {"range": {"properties.file.size": {"gte": 100}}}),
        ("file.size:[* TO *]", {"exists": {"field": "properties.file.size"}}),
        (
            "file.modifiedOn:[2010-01-01 TO 2010-12-31]",
            {"range": {"properties.file.modifiedOn": {"gte": "2010-01-01||/d", "lte": "2010-12-31||/d"}}},
        ),
        ("name:[a TO m}", {"range": {"name.keyword": {"gte": "a", "lt": "m"}}}),
    ],
)
def test_compiles_terms(query, expected):
    assert compiled(query) == expected


def test_compiles_boolean_structure():
    email = {"term": {"types": {"value": "email", "case_insensitive": True}}}
    chat = {"term": {"types": {"value": "chat", "case_insensitive": True}}}
    folder = {"term": {"types": {"value": "folder", "case_insensitive": True}}}
    assert compiled("type:email type:chat") == {"bool": {"must": [email, chat]}}
    assert compiled("type:email OR type:chat") == {"bool": {"should": [email, chat], "minimum_should_match": 1}}
    assert compiled("-type:folder") == {"bool": {"must_not": [folder]}}
    # NOTs inside an AND become its must_not.
    assert compiled("type:email -type:folder") == {"bool": {"must": [email], "must_not": [folder]}}
    assert compiled("-type:email -type:folder") == {"bool": {"must_not": [email, folder]}}
    assert compiled("(type:email OR type:chat) -type:folder") == {
        "bool": {"must": [{"bool": {"should": [email, chat], "minimum_should_match": 1}}], "must_not": [folder]}
    }
    assert compiled("--type:email") == {"bool": {"must_not": [{"bool": {"must_not": [email]}}]}}


def test_search_body_filters_by_case_pages_sorts_and_asks_for_facets():
    body = search_body(
        parse_query("type:email"),
        case_id=7,
        facets=["type", "mimeType", "extension", "tag", "evidence", "date"],
        sort=["-email.sentOn", "name"],
        size=25,
        search_after=["2020-01-01T00:00:00Z", "report.pdf", f"{EVIDENCE_ID}:0-1"],
        date_property="email.sentOn",
        date_interval="day",
    )
    assert body == {
        "query": {
            "bool": {
                "must": [{"term": {"types": {"value": "email", "case_insensitive": True}}}],
                "filter": [{"term": {"case": "7"}}],
            }
        },
        "sort": [
            {"properties.email.sentOn": {"order": "desc", "unmapped_type": "keyword"}},
            {"name.keyword": {"order": "asc"}},
            {"uid": {"order": "asc"}},
        ],
        "size": 25,
        "track_total_hits": True,
        "search_after": ["2020-01-01T00:00:00Z", "report.pdf", f"{EVIDENCE_ID}:0-1"],
        "aggs": {
            "type": {"terms": {"field": "types", "size": 20}},
            "mimeType": {"terms": {"field": "properties.file.mimeType", "size": 20}},
            "extension": {"terms": {"field": "extension", "size": 20}},
            "tag": {"terms": {"field": "tags", "size": 20}},
            "evidence": {"terms": {"field": "evidence", "size": 20}},
            "date": {
                "date_histogram": {"field": "properties.email.sentOn", "calendar_interval": "day", "min_doc_count": 1}
            },
        },
        "highlight": {
            "fields": {
                "name": {"fragment_size": 150, "number_of_fragments": 3},
                "path": {"fragment_size": 150, "number_of_fragments": 3},
                "text": {"fragment_size": 150, "number_of_fragments": 3},
            }
        },
    }


def test_search_body_without_a_query_lists_the_whole_case_by_relevance_then_uid():
    body = search_body(None, case_id="c1", highlight=False)
    assert body == {
        "query": {"bool": {"must": [{"match_all": {}}], "filter": [{"term": {"case": "c1"}}]}},
        "sort": [{"_score": {"order": "desc"}}, {"uid": {"order": "asc"}}],
        "size": 50,
        "track_total_hits": True,
    }


def test_sort_clauses():
    assert sort_clauses(["uid"]) == [{"uid": {"order": "asc"}}]
    # The default order, the traces' database ids, is the documents' sequence.
    assert sort_clauses(["id"]) == [{"sequence": {"order": "asc"}}, {"uid": {"order": "asc"}}]
    assert sort_clauses(["-_score", "-type"]) == [
        {"_score": {"order": "asc"}},
        {"types": {"order": "desc"}},
        {"uid": {"order": "asc"}},
    ]
    with pytest.raises(ValueError, match="cannot sort by 'text'"):
        sort_clauses(["text"])
    with pytest.raises(ValueError, match="cannot sort by 'size'"):
        sort_clauses(["size"])


def test_search_body_refuses_bad_options():
    with pytest.raises(ValueError, match="unknown facet 'colour'"):
        search_body(None, case_id=1, facets=["colour"])
    with pytest.raises(ValueError, match="date_interval"):
        search_body(None, case_id=1, facets=["date"], date_interval="fortnight")
    with pytest.raises(ValueError, match="date property"):
        search_body(None, case_id=1, facets=["date"], date_property="modified")
    with pytest.raises(ValueError, match="size"):
        search_body(None, case_id=1, size=100_000)


def test_reads_facets_from_a_response():
    aggregations = {
        "type": {"buckets": [{"key": "email", "doc_count": 3}, {"key": "file", "doc_count": 1}]},
        "date": {"buckets": [{"key": 1577836800000, "key_as_string": "2020-01-01T00:00:00.000Z", "doc_count": 2}]},
    }
    assert read_facets(aggregations) == {
        "type": [{"value": "email", "count": 3}, {"value": "file", "count": 1}],
        "date": [{"value": "2020-01-01T00:00:00.000Z", "count": 2}],
    }


def test_index_mapping_types_properties_by_name_and_value():
    mapping = trace_index_mapping()
    templates = [next(iter(template.values())) for template in mapping["dynamic_templates"]]
    # The date rule comes first: the first matching template wins.
    assert templates[0] == {
        "path_match": "properties.*On",
        "match_mapping_type": "string",
        "mapping": {"type": "date", "ignore_malformed": True},
    }
    by_type = {template["match_mapping_type"]: template["mapping"] for template in templates[1:]}
    assert by_type["long"] == {"type": "long"}
    assert by_type["double"] == {"type": "double"}
    assert by_type["string"]["type"] == "keyword"
    assert by_type["string"]["fields"] == {"text": {"type": "text"}}
    assert by_type["string"]["copy_to"] == "metadata"
    fields = mapping["properties"]
    for keyword in ("uid", "parent_uid", "case", "evidence", "types", "tags", "extension"):
        assert fields[keyword] == {"type": "keyword"}
    assert fields["name"]["type"] == fields["path"]["type"] == "text"
    assert fields["name"]["fields"]["keyword"]["type"] == "keyword"
    assert fields["text"] == {"type": "text"}
    assert mapping["date_detection"] is False
    json.dumps(mapping)


def test_trace_document():
    document = trace_document(
        uid=f"{EVIDENCE_ID}:0-3-1",
        case_id=7,
        evidence_id=uuid.UUID(EVIDENCE_ID),
        name="Photo.JPG",
        path="/Users/peter/Photo.JPG",
        types={"file", "picture"},
        properties={"file.size": 10, "file.mimeType": "image/jpeg", "picture.width": None},
        text="",
        tags=["relevant"],
        ordinal=12,
        sequence=4711,
    )
    assert document == {
        "uid": f"{EVIDENCE_ID}:0-3-1",
        "parent_uid": f"{EVIDENCE_ID}:0-3",
        "case": "7",
        "evidence": EVIDENCE_ID,
        "name": "Photo.JPG",
        "path": "/Users/peter/Photo.JPG",
        "extension": "jpg",
        "types": ["file", "picture"],
        "tags": ["relevant"],
        "deleted": False,
        "ordinal": 12,
        "sequence": 4711,
        "text": "",
        "properties": {"file.size": 10, "file.mimeType": "image/jpeg"},
    }
    root = trace_document(
        uid=f"{EVIDENCE_ID}:0", case_id=7, evidence_id=EVIDENCE_ID, name="", path="/", types=[], properties={}
    )
    assert root["parent_uid"] == ""


@pytest.mark.parametrize(
    ("name", "extension"),
    [("a.jpg", "jpg"), ("A.TAR.GZ", "gz"), (".bashrc", ""), ("README", ""), ("trailing.", ""), ("x.y z", "")],
)
def test_extension_of(name, extension):
    assert extension_of(name) == extension


@settings(max_examples=100, deadline=None)
@given(queries)
def test_every_query_compiles_to_json(node):
    assume(depth(node) <= MAX_DEPTH)
    body = search_body(node, case_id=1, facets=["type", "date"], highlight=False)
    json.dumps(body)


# -- live ------------------------------------------------------------------------------------------

ES_URL = os.environ.get("ES_URL")
live = pytest.mark.skipif(
    not ES_URL,
    reason="set ES_URL (e.g. http://localhost:9200) to run the live Elasticsearch tests; "
    "no Elasticsearch server can be installed on this machine",
)

LIVE_TRACES = [
    {
        "uid": f"{EVIDENCE_ID}:0-1",
        "name": "holiday.jpg",
        "path": "/Users/peter/holiday.jpg",
        "types": ["file", "picture"],
        "properties": {"file.size": 2048, "file.mimeType": "image/jpeg", "file.modifiedOn": "2020-06-01T10:00:00Z"},
    },
    {
        "uid": f"{EVIDENCE_ID}:0-2",
        "name": "message-1.eml",
        "path": "/mail/message-1.eml",
        "types": ["email"],
        "properties": {
            "email.subject": "Invoice for March",
            "email.from": "a@example.org",
            "email.sentOn": "2020-03-02T08:00:00Z",
        },
        "text": "Please find the invoice attached, Peter",
    },
    {
        "uid": f"{EVIDENCE_ID}:0-3",
        "name": "passwords.txt",
        "path": "/Users/peter/passwords.txt",
        "types": ["file"],
        "properties": {"file.size": 120, "file.mimeType": "text/plain", "file.modifiedOn": "2021-01-05T12:00:00Z"},
        "text": "bank hunter2",
        "deleted": True,
        "tags": ["relevant"],
    },
]


@pytest.fixture
def live_index():
    from elasticsearch import Elasticsearch

    client = Elasticsearch(ES_URL)
    index = f"custodia-test-traces-{uuid.uuid4().hex}"
    client.indices.create(index=index, mappings=trace_index_mapping())
    try:
        for trace in LIVE_TRACES:
            document = trace_document(case_id="case-1", evidence_id=EVIDENCE_ID, **{"text": "", **trace})
            client.index(index=index, id=trace["uid"], document=document)
        # A trace of another case that matches everything: the case filter must hide it.
        other = trace_document(case_id="case-2", evidence_id=EVIDENCE_ID, **{"text": "", **LIVE_TRACES[1]})
        client.index(index=index, id="other", document={**other, "uid": "other"})
        client.indices.refresh(index=index)
        yield client, index
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)


def _hits(client, index, query: str | None, **options) -> tuple[list[str], dict]:
    node = parse_query(query) if query else None
    response = client.search(index=index, **search_body(node, case_id="case-1", **options))
    uids = sorted(hit["_source"]["uid"] for hit in response["hits"]["hits"])
    return uids, response.body


@live
@pytest.mark.parametrize(
    ("query", "suffixes"),
    [
        ("peter", ["0-1", "0-2", "0-3"]),
        ("invoice", ["0-2"]),
        ('"find the invoice"', ["0-2"]),
        ("type:email", ["0-2"]),
        ("type:EMAIL", ["0-2"]),
        ("-type:email", ["0-1", "0-3"]),
        ("email.subject:march", ["0-2"]),
        ('email.from:"a@example.org"', ["0-2"]),
        ("file.name:*.JPG", []),  # file.name is not a property of these traces; name is
        ("name:*.JPG", ["0-1"]),
        ("file.size>1000", ["0-1"]),
        ("file.size:[100 TO 2000]", ["0-3"]),
        ("file.modifiedOn:2020-06-01", ["0-1"]),
        ("file.modifiedOn>2020-06-01", ["0-3"]),
        ("file.modifiedOn:[2020-01-01 TO 2020-12-31]", ["0-1"]),
        ("data.raw.mimeType:[* TO *] OR file.mimeType=text/plain", ["0-3"]),
        ("deleted:true", ["0-3"]),
        ("tag:relevant", ["0-3"]),
        ("hunt*", ["0-3"]),
        ("(type:email OR type:picture) -deleted:true", ["0-1", "0-2"]),
    ],
)
def test_live_queries_find_the_expected_traces(live_index, query, suffixes):
    client, index = live_index
    uids, _ = _hits(client, index, query)
    assert uids == [f"{EVIDENCE_ID}:{suffix}" for suffix in suffixes]


@live
def test_live_facets_and_paging(live_index):
    client, index = live_index
    uids, body = _hits(client, index, None, facets=["type", "extension", "date"], size=2, sort=["name"])
    assert body["hits"]["total"]["value"] == 3
    facets = read_facets(body["aggregations"])
    assert {"value": "file", "count": 2} in facets["type"]
    assert {"value": "jpg", "count": 1} in facets["extension"]
    assert sum(bucket["count"] for bucket in facets["date"]) == 2
    last_sort = body["hits"]["hits"][-1]["sort"]
    rest, _ = _hits(client, index, None, size=2, sort=["name"], search_after=last_sort)
    assert len(set(uids) | set(rest)) == 3


def test_stream_properties_are_document_properties_and_hashes_any_case():
    streams = [
        {
            "name": "raw",
            "size": 12,
            "md5": "ABCDEF0123456789ABCDEF0123456789",
            "sha256": None,
            "mime_type": "text/plain",
        },
        {"name": "slack", "size": 3, "entropy": 7.9},
    ]
    document = trace_document(
        uid=f"{EVIDENCE_ID}:0-1", case_id=1, evidence_id=EVIDENCE_ID, name="a", path="/a", types=["file"],
        properties={"file.size": 12}, streams=streams,
    )  # fmt: skip
    assert document["properties"] == {
        "file.size": 12,
        "data.raw.size": 12,
        "data.raw.hash.md5": "abcdef0123456789abcdef0123456789",
        "data.raw.mimeType": "text/plain",
        "data.slack.size": 3,
        "data.slack.entropy": 7.9,
    }
    assert compiled("data.raw.hash.md5:ABCDEF0123456789ABCDEF0123456789") == {
        "term": {"properties.data.raw.hash.md5": "abcdef0123456789abcdef0123456789"}
    }
    assert compiled("data.raw.size>1048576") == {"range": {"properties.data.raw.size": {"gt": 1048576}}}
    assert compiled("data.raw.mimeType=image/jpeg") == {"term": {"properties.data.raw.mimeType": "image/jpeg"}}
