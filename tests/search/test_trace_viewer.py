"""The data service, the data endpoint (Range, permissions, audit) and the trace page, on the corpus."""

from __future__ import annotations

import hashlib
import io

import pytest

from audit.models import AuditEvent
from search.data import thumbnail_png
from search.models import Trace
from search.services import extraction_execute, extraction_start
from tests.corpus import require_corpus, testdata_dir

PASSWORDS_SHA256 = "02a2a6af2f1ecf4720d7d49d640f0d0a269a7ec733e41973bdd34f09dad0e252"


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
def passwords(extracted) -> Trace:
    return Trace.objects.get(evidence_id=extracted, name="passwords.txt")


def data_url(demo, trace: Trace, stream: str = "raw") -> str:
    return f"/api/cases/{demo.case.pk}/traces/{trace.uid}/data/{stream}"


def page_url(demo, trace: Trace) -> str:
    return f"/cases/{demo.case.pk}/traces/{trace.uid}/"


@pytest.mark.corpus
def test_the_data_endpoint_reads_the_stream_from_the_sealed_container(demo, api, passwords):
    api.as_user(demo.detective)
    response = api.get(data_url(demo, passwords))
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    raw = next(s for s in passwords.streams if s["name"] == "raw")
    assert len(body) == raw["size"] == 116
    assert hashlib.sha256(body).hexdigest() == raw["sha256"] == PASSWORDS_SHA256
    assert response["X-Content-SHA256"] == PASSWORDS_SHA256
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == raw["mime_type"]
    event = AuditEvent.objects.filter(action="api-trace-data.access", actor="detective").last()
    assert event.target_id == passwords.uid and event.details["stream"] == "raw"


@pytest.mark.corpus
def test_a_range_request_returns_the_slice_with_206_and_416_beyond_the_end(demo, api, passwords):
    api.as_user(demo.detective)
    whole = b"".join(api.get(data_url(demo, passwords)).streaming_content)
    part = api.get(data_url(demo, passwords), HTTP_RANGE="bytes=10-29")
    assert part.status_code == 206
    assert part["Content-Range"] == "bytes 10-29/116"
    assert b"".join(part.streaming_content) == whole[10:30]
    tail = api.get(data_url(demo, passwords), HTTP_RANGE="bytes=-6")
    assert b"".join(tail.streaming_content) == whole[-6:]
    beyond = api.get(data_url(demo, passwords), HTTP_RANGE="bytes=116-")
    assert beyond.status_code == 416 and beyond["Content-Range"] == "bytes */116"
    event = AuditEvent.objects.filter(action="api-trace-data.access", actor="detective").order_by("pk")
    assert any(e.details.get("range") == "bytes=10-29" for e in event)


@pytest.mark.corpus
def test_an_unknown_stream_is_a_clear_404(demo, api, passwords):
    api.as_user(demo.detective)
    response = api.get(data_url(demo, passwords, "thumbnail"))
    assert response.status_code == 404
    assert response.json()["error"] == "no_such_stream"


@pytest.mark.corpus
@pytest.mark.parametrize(("caller", "status"), [("outsider", 404), ("custodian", 403), ("detective", 200)])
def test_who_may_read_trace_bytes(demo, api, passwords, caller, status):
    api.as_user(demo.users[caller])
    response = api.get(data_url(demo, passwords))
    assert response.status_code == status
    if status != 200:
        assert "passwords" not in response.content.decode()
