"""Search over traces extracted from a real mailbox of the corpus, checked against readpst's listing."""

from __future__ import annotations

import re

import pytest

from search.services import extraction_execute, extraction_start
from tests.corpus import require_corpus, testdata_dir

pytestmark = pytest.mark.corpus


@pytest.fixture
def mailbox(demo, api, settings):
    from evidence.models import Evidence

    settings.CUSTODIA_IMPORT_ROOTS = [testdata_dir() / "files"]
    api.as_user(demo.custodian)
    path = str(require_corpus("files/ingest-file/testPST.pst"))
    body = api.post("/api/evidence/import", {"case": demo.case.pk, "paths": [path]}, format="json").json()
    run = extraction_start(actor=demo.investigator, evidence=Evidence.objects.get(pk=body["id"]))
    extraction_execute(run_id=run.pk)
    readpst = (testdata_dir() / "truth" / "testPST.pst.readpst.txt").read_text(encoding="utf-8", errors="replace")
    return re.findall(r"^\s+\d+ Subject: (.+)$", readpst, flags=re.MULTILINE)


def search(api, demo, query, **body):
    response = api.post(f"/api/cases/{demo.case.pk}/traces/search", {"query": query, **body}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_type_email_finds_the_mailbox_messages_and_the_facet_click_narrows_to_its_count(demo, api, mailbox):
    api.as_user(demo.detective)
    everything = search(api, demo, "")
    email_count = next(f["count"] for f in everything["facets"]["type"] if f["value"] == "email")
    assert email_count == len(mailbox)  # readpst lists every message once
    narrowed = search(api, demo, "type:email")  # what clicking the facet asks
    assert narrowed["total"] == email_count
    assert sorted(hit["properties"]["email.subject"][:40] for hit in narrowed["hits"]) == sorted(
        subject.strip()[:40] for subject in mailbox
    )
    assert everything["total"] > narrowed["total"]


def test_a_subject_word_finds_the_right_message(demo, api, mailbox):
    api.as_user(demo.detective)
    body = search(api, demo, "vcard type:email")
    assert [hit["properties"]["email.subject"] for hit in body["hits"]] == [
        next(subject.strip() for subject in mailbox if "Vcard" in subject)
    ]
    phrase = search(api, demo, '"feature generators" type:email')
    assert {hit["properties"]["email.subject"] for hit in phrase["hits"]} == {
        "Feature Generators",
        "Re: Feature Generators",
    }


@pytest.mark.parametrize(
    ("corpus_file", "member"), [("dfvfs/with_directory.zip", "syslog"), ("dfvfs/syslog.xz", "syslog")]
)
def test_an_archive_acquired_alone_is_searchable_to_its_members(demo, api, settings, corpus_file, member):
    from evidence.models import Evidence
    from tests.search.test_extraction_tools import SYSLOG_SHA256

    settings.CUSTODIA_IMPORT_ROOTS = [testdata_dir() / "files"]
    api.as_user(demo.custodian)
    path = str(require_corpus(f"files/{corpus_file}"))
    body = api.post("/api/evidence/import", {"case": demo.case.pk, "paths": [path]}, format="json").json()
    evidence = Evidence.objects.get(pk=body["id"])
    assert evidence.format == "archive"
    extraction_execute(run_id=extraction_start(actor=demo.investigator, evidence=evidence).pk)
    api.as_user(demo.detective)
    hits = search(api, demo, f'name="{member}"')["hits"]
    assert len(hits) == 1
    trace = api.get(f"/api/cases/{demo.case.pk}/traces/{hits[0]['uid']}").json()
    raw = next(stream for stream in trace["streams"] if stream["name"] == "raw")
    assert raw["sha256"] == SYSLOG_SHA256
