"""Collaboration on traces: tags, notes, bulk tagging, saved searches and CSV export (issue #5)."""

from __future__ import annotations

import csv
import io

import pytest

from audit.models import AuditEvent
from search.models import ExtractionRun, SavedSearch, Trace, TraceNote, TraceTag
from search.services import extraction_execute, extraction_start
from tests.corpus import require_corpus, testdata_dir


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


@pytest.fixture
def traces(demo):
    """Three hand-made traces in the demo case (no corpus needed)."""
    from evidence.services.registration import evidence_register

    evidence = evidence_register(actor=demo.custodian, case=demo.case, label="USB stick", kind="file")
    run = ExtractionRun.objects.create(evidence=evidence, state="done")
    made = {}
    for ordinal, (name, size) in enumerate([("report.docx", 1200), ("=cmd|calc.csv", 10), ("photo.jpg", 50_000)]):
        made[name] = Trace.objects.create(
            uid=f"{evidence.pk}:0-{ordinal}",
            evidence=evidence,
            case=demo.case,
            run=run,
            ordinal=ordinal,
            name=name,
            path=f"/stick/{name}",
            types=["file"],
            properties={"file.size": size, "file.modifiedOn": f"2024-01-0{ordinal + 1}T10:00:00Z"},
            sha256=f"{ordinal:064x}",
        )
    return made


def base(demo) -> str:
    return f"/api/cases/{demo.case.pk}"


def search(api, demo, query: str, **body):
    response = api.post(f"{base(demo)}/traces/search", {"query": query, **body}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def uid_of(api, demo, name: str) -> str:
    hits = search(api, demo, f'name="{name}"', facets=[])["hits"]
    assert len(hits) == 1, hits
    return hits[0]["uid"]


class AuditCounter:
    def __init__(self):
        self.start = AuditEvent.objects.count()

    def new(self) -> list[AuditEvent]:
        return list(AuditEvent.objects.order_by("sequence")[self.start :])


def test_tags_on_hand_made_traces_are_searchable_and_counted(demo, api, traces):
    api.as_user(demo.detective)
    uid = traces["report.docx"].uid
    counter = AuditCounter()
    response = api.put(f"{base(demo)}/traces/{uid}/tags/Relevant")
    assert response.status_code == 200, response.content
    assert response.json() == {"tag": "relevant", "tags": ["relevant"]}
    events = counter.new()
    assert [(e.action, e.target_id, e.details["tag"]) for e in events] == [("trace.tag.add", uid, "relevant")]

    # Tagging again changes nothing, and is recorded once more.
    assert api.put(f"{base(demo)}/traces/{uid}/tags/relevant").status_code == 200
    assert TraceTag.objects.filter(trace=traces["report.docx"]).count() == 1

    body = search(api, demo, "tag:RELEVANT")
    assert [hit["name"] for hit in body["hits"]] == ["report.docx"]
    assert body["facets"]["tag"] == [{"value": "relevant", "count": 1}]
    assert search(api, demo, "tag:rel*", facets=[])["total"] == 1
    assert search(api, demo, "NOT tag:relevant", facets=[])["total"] == 2
    assert api.get(f"{base(demo)}/traces/{uid}").json()["tags"] == ["relevant"]

    counter = AuditCounter()
    assert api.delete(f"{base(demo)}/traces/{uid}/tags/relevant").status_code == 204
    assert [e.action for e in counter.new()] == ["trace.tag.remove"]
    assert search(api, demo, "tag:relevant", facets=[])["total"] == 0


def test_a_bad_tag_name_is_refused(demo, api, traces):
    api.as_user(demo.detective)
    response = api.put(f"{base(demo)}/traces/{traces['report.docx'].uid}/tags/-nope")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_tag"
    assert not TraceTag.objects.exists()


def test_notes_are_shared_with_the_case_team(demo, api, traces):
    uid = traces["photo.jpg"].uid
    api.as_user(demo.detective)
    counter = AuditCounter()
    response = api.post(f"{base(demo)}/traces/{uid}/notes", {"text": "Taken at the harbour."}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["author"] == "detective"
    assert [e.action for e in counter.new()] == ["trace.note.add"]

    api.as_user(demo.investigator)
    notes = api.get(f"{base(demo)}/traces/{uid}/notes").json()
    assert [(note["author"], note["text"]) for note in notes] == [("detective", "Taken at the harbour.")]
    # A prosecutor may read notes but not write them.
    api.as_user(demo.prosecutor)
    assert api.get(f"{base(demo)}/traces/{uid}/notes").status_code == 200
    assert api.post(f"{base(demo)}/traces/{uid}/notes", {"text": "x"}, format="json").status_code == 403
    # An empty note is refused for what it is, not for who sends it.
    api.as_user(demo.detective)
    assert api.post(f"{base(demo)}/traces/{uid}/notes", {"text": ""}, format="json").status_code == 400
    assert TraceNote.objects.count() == 1


@pytest.mark.parametrize(
    ("user", "expected"),
    [("investigator", 200), ("detective", 200), ("prosecutor", 403), ("custodian", 403), ("outsider", 404)],
)
def test_who_may_tag(demo, api, traces, user, expected):
    api.as_user(demo.users[user])
    uid = traces["report.docx"].uid
    response = api.put(f"{base(demo)}/traces/{uid}/tags/seen")
    assert response.status_code == expected, response.content
    assert TraceTag.objects.exists() == (expected == 200)
    if expected != 200:
        assert api.delete(f"{base(demo)}/traces/{uid}/tags/seen").status_code == expected
        bulk = api.post(f"{base(demo)}/traces/tag", {"query": "", "tag": "seen"}, format="json")
        assert bulk.status_code == expected
        assert api.post(f"{base(demo)}/searches/", {"name": "a", "query": "x"}, format="json").status_code == expected
        assert not TraceTag.objects.exists() and not SavedSearch.objects.exists()
        # The refusal is audited too, as a denial.
        assert AuditEvent.objects.filter(actor=user, outcome="denied").exists()


def test_the_outsider_sees_no_notes_searches_or_export(demo, api, traces):
    api.as_user(demo.outsider)
    uid = traces["report.docx"].uid
    assert api.get(f"{base(demo)}/traces/{uid}/notes").status_code == 404
    assert api.get(f"{base(demo)}/searches/").status_code == 404
    assert api.get(f"{base(demo)}/traces/export.csv").status_code == 404


def test_bulk_tag_by_uids_and_the_bound(demo, api, traces, monkeypatch):
    from search import collaboration

    api.as_user(demo.detective)
    uids = [traces["report.docx"].uid, traces["photo.jpg"].uid]
    counter = AuditCounter()
    response = api.post(f"{base(demo)}/traces/tag", {"uids": uids, "tag": "keep"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"tagged": 2, "added": 2}
    assert [e.action for e in counter.new()] == ["trace.tag.bulk_add"]

    monkeypatch.setattr(collaboration, "BULK_TAG_LIMIT", 2)
    response = api.post(f"{base(demo)}/traces/tag", {"query": "", "tag": "all"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "too_many_traces"
    assert not TraceTag.objects.filter(name="all").exists()


def test_csv_export_of_hits(demo, api, traces):
    api.as_user(demo.prosecutor)
    counter = AuditCounter()
    response = api.get(f"{base(demo)}/traces/export.csv", {"q": "file.size<20000"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    # Issue #20 added the evidence label as the last column, on purpose (evidence by its name).
    assert rows[0] == ["uid", "name", "path", "types", "size", "modifiedOn", "sha256", "evidence"]
    assert [row[1] for row in rows[1:]] == ["report.docx", "'=cmd|calc.csv"]  # no formula reaches a spreadsheet
    assert rows[1][4:7] == ["1200", "2024-01-01T10:00:00Z", f"{0:064x}"]
    events = counter.new()
    assert [(e.action, e.details["query"], e.details["rows"]) for e in events] == [
        ("trace.export.csv", "file.size<20000", 2)
    ]
    bad = api.get(f"{base(demo)}/traces/export.csv", {"q": "name:("})
    assert bad.status_code == 400 and bad.json()["error"] == "query_syntax"


def test_saved_searches(demo, api, traces):
    api.as_user(demo.detective)
    counter = AuditCounter()
    response = api.post(f"{base(demo)}/searches/", {"name": "Pictures", "query": "name:*.jpg"}, format="json")
    assert response.status_code == 201, response.content
    saved = response.json()
    assert [e.action for e in counter.new()] == ["search.saved.save"]
    # Saving under the same name replaces the query.
    again = api.post(f"{base(demo)}/searches/", {"name": "Pictures", "query": "name:*.png"}, format="json")
    assert again.status_code == 201 and again.json()["id"] == saved["id"]
    bad = api.post(f"{base(demo)}/searches/", {"name": "Broken", "query": "(a"}, format="json")
    assert bad.status_code == 400 and "column" in bad.json()

    api.as_user(demo.prosecutor)
    listed = api.get(f"{base(demo)}/searches/").json()
    assert [(item["name"], item["query"], item["created_by"]) for item in listed] == [
        ("Pictures", "name:*.png", "detective")
    ]
    assert api.delete(f"{base(demo)}/searches/{saved['id']}/").status_code == 403

    api.as_user(demo.investigator)
    counter = AuditCounter()
    assert api.delete(f"{base(demo)}/searches/{saved['id']}/").status_code == 204
    assert [e.action for e in counter.new()] == ["search.saved.delete"]
    assert api.delete(f"{base(demo)}/searches/{saved['id']}/").status_code == 404


def test_annotations_partial_adds_and_removes_tags_and_notes(demo, client, traces):
    trace = traces["report.docx"]
    client.force_login(demo.detective)
    url = f"/cases/{demo.case.pk}/traces/{trace.uid}/annotations/"
    page = client.get(url)
    assert page.status_code == 200
    client.post(url, {"action": "tag", "tag": "Suspicious"}, HTTP_HX_REQUEST="true")
    client.post(url, {"action": "note", "text": "Check the author field."}, HTTP_HX_REQUEST="true")
    page = client.get(url).content.decode()
    assert "suspicious" in page and "Check the author field." in page
    client.post(url, {"action": "untag", "tag": "suspicious"}, HTTP_HX_REQUEST="true")
    assert not TraceTag.objects.filter(trace=trace).exists()

    client.force_login(demo.prosecutor)
    page = client.get(url)
    assert page.status_code == 200 and "Check the author field." in page.content.decode()
    assert client.post(url, {"action": "tag", "tag": "x"}).status_code == 403


def test_search_page_bulk_tags_selected_hits_and_saves_searches(demo, client, traces):
    client.force_login(demo.detective)
    page = f"/cases/{demo.case.pk}/traces/"
    response = client.post(
        f"{page}tag/", {"tag": "batch", "uids": [traces["photo.jpg"].uid], "q": "photo"}, follow=True
    )
    assert response.status_code == 200
    assert list(TraceTag.objects.values_list("trace__name", "name")) == [("photo.jpg", "batch")]
    client.post(f"{page}tag/", {"tag": "everything", "all": "1", "q": "type:file"})
    assert TraceTag.objects.filter(name="everything").count() == 3
    client.post(f"/cases/{demo.case.pk}/searches/", {"name": "Docs", "q": "name:*.docx"})
    html = client.get(page, {"q": "tag:batch"}).content.decode()
    assert "Docs" in html and "photo.jpg" in html and "export.csv" in html


# On the corpus: tags on extracted traces.


@pytest.mark.corpus
def test_tag_a_file_then_the_facet_counts_it_and_tag_finds_it(demo, api, extracted):
    api.as_user(demo.detective)
    uid = uid_of(api, demo, "passwords.txt")
    counter = AuditCounter()
    assert api.put(f"{base(demo)}/traces/{uid}/tags/secrets").status_code == 200
    assert len(counter.new()) == 1
    body = search(api, demo, "")
    assert {"value": "secrets", "count": 1} in body["facets"]["tag"]
    assert [hit["name"] for hit in search(api, demo, "tag:secrets")["hits"]] == ["passwords.txt"]


@pytest.mark.corpus
def test_bulk_tag_a_query(demo, api, extracted):
    api.as_user(demo.investigator)
    expected = search(api, demo, "path:a_directory AND NOT type:folder", facets=[])["total"]
    assert expected == 2
    counter = AuditCounter()
    response = api.post(
        f"{base(demo)}/traces/tag", {"query": "path:a_directory AND NOT type:folder", "tag": "dir"}, format="json"
    )
    assert response.json() == {"tagged": 2, "added": 2}
    events = counter.new()
    assert len(events) == 1 and events[0].details["query"] == "path:a_directory AND NOT type:folder"
    names = {hit["name"] for hit in search(api, demo, "tag:dir")["hits"]}
    assert names == {"a_file", "another_file"}
    # Again: nothing new.
    again = api.post(f"{base(demo)}/traces/tag", {"query": "path:a_directory", "tag": "dir"}, format="json")
    assert again.json()["added"] == again.json()["tagged"] - 2


def test_the_trace_page_loads_its_tags_and_notes(demo, client):
    from django.urls import reverse

    from evidence.services.registration import evidence_register
    from search.models import ExtractionRun, Trace

    evidence = evidence_register(actor=demo.custodian, case=demo.case, label="Disk", kind="disk_image")
    run = ExtractionRun.objects.create(evidence=evidence)
    trace = Trace.objects.create(
        uid=f"{evidence.pk}:0", evidence=evidence, case=demo.case, run=run, ordinal=1, name="disk", path="/disk"
    )
    client.force_login(demo.detective)
    page = client.get(f"/cases/{demo.case.pk}/traces/{trace.uid}/").content.decode()
    assert reverse("search:trace-annotations", args=[demo.case.pk, trace.uid]) in page
