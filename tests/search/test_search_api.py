"""Trace search over the API on traces extracted from a real image."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from search.models import Trace
from search.services import extraction_execute, extraction_start
from tests.corpus import require_corpus, testdata_dir
from tests.search.test_search_backends import traces  # noqa: F401 (a fixture)


@pytest.fixture
def extracted(demo, api, settings):
    from evidence.models import Evidence

    settings.CUSTODIA_IMPORT_ROOTS = [testdata_dir() / "files"]
    api.as_user(demo.custodian)
    path = str(require_corpus("files/dfvfs/ext2.E01"))
    body = api.post("/api/evidence/import", {"case": demo.case.pk, "paths": [path]}, format="json").json()
    run = extraction_start(actor=demo.investigator, evidence=Evidence.objects.get(pk=body["id"]))
    extraction_execute(run_id=run.pk)
    return body["id"]


def search(api, demo, **body):
    return api.post(f"/api/cases/{demo.case.pk}/traces/search", body, format="json")


@pytest.mark.corpus
def test_a_word_finds_the_file_and_the_query_is_audited(demo, api, extracted):
    api.as_user(demo.detective)
    response = search(api, demo, query="passwords")
    assert response.status_code == 200, response.content
    body = response.json()
    names = [hit["name"] for hit in body["hits"]]
    assert "passwords.txt" in names
    assert body["total"] == len(names)
    event = AuditEvent.objects.filter(action="api-trace-search.access", actor="detective").last()
    assert event.details["query"] == "passwords"


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("name:passwords.txt", {"passwords.txt"}),
        ('name="passwords.txt"', {"passwords.txt"}),
        ("file.size=116 AND type:file", {"passwords.txt"}),
        ("name:passw*", {"passwords.txt"}),
        ("name:a_* AND type:folder", {"a_directory"}),  # a folder is a file too, as in Hansken
        ("name:a_* NOT type:folder", {"a_file", "a_link"}),
        ("path:a_directory AND NOT type:folder", {"a_file", "another_file"}),
        ("(name:a_file OR name:another_file) AND file.size>0", {"a_file", "another_file"}),
        ("deleted:true", set()),
    ],
)
def test_property_queries(demo, api, extracted, query, expected):
    api.as_user(demo.detective)
    body = search(api, demo, query=query).json()
    assert {hit["name"] for hit in body["hits"]} == expected, body


@pytest.mark.corpus
def test_facets_count_and_a_facet_value_narrows(demo, api, extracted):
    api.as_user(demo.detective)
    body = search(api, demo, query="", facets=["type", "deleted"]).json()
    types = {entry["value"]: entry["count"] for entry in body["facets"]["type"]}
    assert types["file"] > 0 and types["fileSystem"] == 1
    narrowed = search(api, demo, query="type:fileSystem").json()
    assert narrowed["total"] == 1


@pytest.mark.corpus
def test_paging_with_a_cursor_visits_every_hit_once(demo, api, extracted):
    api.as_user(demo.detective)
    first = search(api, demo, query="", limit=5, facets=[]).json()
    seen, cursor = [hit["uid"] for hit in first["hits"]], first["cursor"]
    while cursor:
        page = search(api, demo, query="", limit=5, cursor=cursor, facets=[]).json()
        seen += [hit["uid"] for hit in page["hits"]]
        cursor = page["cursor"]
    assert len(seen) == len(set(seen)) == first["total"]


def test_a_malformed_query_is_400_naming_the_column(demo, api):
    api.as_user(demo.detective)
    response = search(api, demo, query="file.size>")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "query_syntax" and body["column"] >= 1
    assert "column" in body["detail"]


@pytest.mark.parametrize(("caller", "status"), [("outsider", 404), ("custodian", 403), ("prosecutor", 200)])
def test_who_may_search(demo, api, caller, status):
    api.as_user(demo.users[caller])
    response = search(api, demo, query="anything")
    assert response.status_code == status
    if status == 404:
        assert "total" not in response.json()  # not even a count


@pytest.mark.corpus
def test_search_page_shows_hits_and_facet_links_that_narrow(demo, client, extracted):
    client.force_login(demo.detective)
    page = client.get(f"/cases/{demo.case.pk}/traces/", {"q": "passwords"}).content.decode()
    assert "passwords.txt" in page and "Search" in page
    page = client.get(f"/cases/{demo.case.pk}/traces/", {"q": ""}).content.decode()
    assert "?q=type%3AfileSystem" in page
    narrowed = client.get(f"/cases/{demo.case.pk}/traces/", {"q": "type:fileSystem"}, HTTP_HX_REQUEST="true")
    assert "<strong>1</strong> trace." in narrowed.content.decode()
    bad = client.get(f"/cases/{demo.case.pk}/traces/", {"q": "file.size>"}).content.decode()
    assert "column" in bad


def test_search_page_refuses_custodians_and_hides_from_outsiders(demo, client):
    client.force_login(demo.custodian)
    assert client.get(f"/cases/{demo.case.pk}/traces/").status_code == 403
    client.force_login(demo.outsider)
    assert client.get(f"/cases/{demo.case.pk}/traces/").status_code == 404


def test_children_come_a_page_at_a_time_in_walk_order(demo, api, traces):  # noqa: F811
    folder = Trace.objects.get(evidence=traces, name="Documents")
    run = traces.extraction_runs.get()
    Trace.objects.bulk_create(
        Trace(
            uid=f"{folder.uid}-{n}",
            parent_uid=folder.uid,
            evidence=traces,
            case=demo.case,
            run=run,
            ordinal=1000 - n,
            name=f"child {n}",
            path=f"{folder.path}/child {n}",
            types=["file"],
        )
        for n in range(5)
    )
    api.as_user(demo.detective)
    url = f"/api/cases/{demo.case.pk}/traces/{folder.uid}/children"
    first = api.get(url, {"limit": 2}).json()
    assert first["count"] == 5
    assert [child["name"] for child in first["results"]] == ["child 4", "child 3"]
    rest = api.get(first["next"]).json()
    assert [child["name"] for child in rest["results"]] == ["child 2", "child 1"]
    assert api.get(url, {"limit": 10_000}).json()["results"][-1]["name"] == "child 0"
    api.as_user(demo.outsider)
    assert api.get(url).status_code == 404


def test_search_counts_up_to_the_limit_unless_asked_to_count_all(demo, api, traces, settings):  # noqa: F811
    settings.CUSTODIA_SEARCH_COUNT_LIMIT = 2
    api.as_user(demo.detective)
    body = search(api, demo, query="", limit=1).json()
    assert (body["total"], body["exact"], body["facets_sampled"]) == (2, False, True)
    assert sum(entry["count"] for entry in body["facets"]["deleted"]) == 2
    assert body["cursor"]
    body = search(api, demo, query="", limit=1, exact=True).json()
    assert (body["total"], body["exact"], body["facets_sampled"]) == (7, True, False)
    assert sum(entry["count"] for entry in body["facets"]["deleted"]) == 7
    assert search(api, demo, query="", exact="maybe").status_code == 400
