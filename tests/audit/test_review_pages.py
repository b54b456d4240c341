"""#15 item 6: the review pages show custody events by default, fold repeated reads into one line with a count,
page through long trails by sequence, filter by registered actions, and a poll is not a new read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from audit.selectors import folded_page
from audit.services import audit_record
from evidence.models import Evidence
from evidence.services.registration import evidence_register


@pytest.fixture
def evidence(demo) -> Evidence:
    return evidence_register(actor=demo.custodian, case=demo.case, label="Disk", kind="disk_image")


def read_rows(*, demo, evidence, count: int, action: str = "evidence-detail.access", actor=None) -> None:
    for _ in range(count):
        audit_record(
            action=action,
            actor=actor or demo.detective,
            target_type="evidence",
            target_id=evidence.pk,
            case_id=demo.case.pk,
        )


def test_repeated_reads_fold_into_one_line_with_a_count(demo, evidence):
    read_rows(demo=demo, evidence=evidence, count=30)
    read_rows(demo=demo, evidence=evidence, count=2, actor=demo.prosecutor)
    events = AuditEvent.objects.filter(target_type="evidence", target_id=str(evidence.pk))
    page = folded_page(events, newest_first=False)
    lines = [(line.event.action, line.event.actor, line.count) for line in page.lines]
    assert lines == [
        ("evidence.register", "custodian", 1),
        ("evidence-detail.access", "detective", 30),
        ("evidence-detail.access", "prosecutor", 2),
    ]
    folded = page.lines[1]
    assert folded.last_sequence - folded.first_sequence == 29 and folded.first_at <= folded.last_at


def test_reads_further_apart_than_the_window_are_separate_lines(demo, evidence, monkeypatch):
    read_rows(demo=demo, evidence=evidence, count=2)
    later = timezone.now() + timedelta(minutes=11)
    monkeypatch.setattr(timezone, "now", lambda: later)
    read_rows(demo=demo, evidence=evidence, count=2)
    events = AuditEvent.objects.filter(target_type="evidence", target_id=str(evidence.pk), actor="detective")
    assert [line.count for line in folded_page(events, newest_first=True).lines] == [2, 2]


def test_a_long_trail_pages_by_sequence_without_reading_it_all(demo, evidence):
    for index in range(120):
        audit_record(
            action="evidence.verify",
            actor=demo.custodian,
            target_type="evidence",
            target_id=evidence.pk,
            case_id=demo.case.pk,
            details={"n": index},
        )
    events = AuditEvent.objects.filter(case_id=demo.case.pk)
    seen, cursor = [], None
    while True:
        with CaptureQueriesContext(connection) as queries:
            page = folded_page(events, newest_first=True, cursor=cursor, size=50, scan_limit=60)
        assert len(queries) == 1 and " LIMIT 61" in queries[0]["sql"]  # one bounded read a page, no COUNT
        seen += [line.event.sequence for line in page.lines]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(events.values_list("sequence", flat=True), reverse=True)


def test_custody_api_is_for_auditors_and_shows_custody_events_folded(api, demo, evidence, client):
    client.force_login(demo.custodian)
    for _ in range(3):
        assert client.get(f"/evidence/{evidence.pk}/").status_code == 200
    api.as_user(demo.detective)
    assert api.get(f"/api/evidence/{evidence.pk}/custody").status_code == 403
    api.as_user(demo.prosecutor)
    custody = api.get(f"/api/evidence/{evidence.pk}/custody").json()
    # Custody events, and every refusal: the detective's refused look is one.
    assert [(line["action"], line["outcome"]) for line in custody] == [
        ("evidence.register", "ok"),
        ("api-evidence-custody.access", "denied"),
    ]
    everything = api.get(f"/api/evidence/{evidence.pk}/custody?all=1").json()
    reads = [line for line in everything if line["action"] == "detail.access"]
    assert len(reads) == 1 and reads[0]["count"] == 3 and reads[0]["actor"] == "custodian"
    paged = api.get(f"/api/evidence/{evidence.pk}/custody?all=1&size=1")
    assert len(paged.json()) == 1 and 'rel="next"' in paged["Link"]


def test_evidence_page_shows_the_folded_timeline_to_auditors_only(demo, evidence, client):
    client.force_login(demo.custodian)
    for _ in range(4):
        client.get(f"/evidence/{evidence.pk}/")
    page = client.get(f"/evidence/{evidence.pk}/?events=all").content.decode()
    assert "detail.access" in page and "\u00d7 4" in page  # the fifth read is this page itself
    assert "detail.access" not in client.get(f"/evidence/{evidence.pk}/").content.decode()
    client.force_login(demo.detective)
    page = client.get(f"/evidence/{evidence.pk}/").content.decode()
    assert "evidence.register" not in page and "your role does not show" in page


def test_case_audit_page_filters_by_registered_actions(demo, evidence, client):
    client.force_login(demo.prosecutor)
    default = client.get(f"/cases/{demo.case.pk}/audit/").content.decode()
    assert "evidence.register" in default and "case.create" in default
    assert '<select name="actions"' in default and '<option value="link.issue">' in default
    only = client.get(f"/cases/{demo.case.pk}/audit/?actions=evidence.register&actions=case.hold").content.decode()
    assert "evidence.register" in only and "<code>case.create</code>" not in only
    reads = client.get(f"/cases/{demo.case.pk}/audit/?events=all").content.decode()
    assert "<code>audit.access</code>" in reads
    # The API keeps its prefix match, and takes exact names too.
    assert "<code>case.create</code>" in client.get(f"/cases/{demo.case.pk}/audit/?action=case.").content.decode()


def test_api_action_prefix_and_names(api, demo, evidence):
    api.as_user(demo.prosecutor)
    by_prefix = api.get(f"/api/audit/?case={demo.case.pk}&action=evidence.").json()["results"]
    assert {event["action"] for event in by_prefix} == {"evidence.register"}
    by_name = api.get(f"/api/audit/?case={demo.case.pk}&actions=case.create").json()["results"]
    assert {event["action"] for event in by_name} == {"case.create"}


def test_a_poll_of_an_open_page_is_not_a_new_read(demo, evidence, client):
    client.force_login(demo.custodian)
    url = f"/cases/{demo.case.pk}/evidence/"
    assert client.get(url).status_code == 200  # the page opening its evidence table: a read
    for _ in range(5):
        assert client.get(url, HTTP_X_CUSTODIA_POLL="1").status_code == 200
    rows = AuditEvent.objects.filter(action="case-evidence.access", actor="custodian")
    assert rows.count() == 1
    # A poll after the window is recorded again (marked as a poll); without the header every request is.
    later = timezone.now() + timedelta(minutes=11)
    import audit.middleware as middleware

    original = middleware.timezone.now
    try:
        middleware.timezone.now = lambda: later
        client.get(url, HTTP_X_CUSTODIA_POLL="1")
    finally:
        middleware.timezone.now = original
    client.get(url)
    assert rows.count() == 3 and rows.filter(details__poll=True).count() == 1
    # A refused poll is always recorded.
    client.force_login(demo.prosecutor)
    client.get(f"/cases/{demo.case.pk}/evidence/new/", HTTP_X_CUSTODIA_POLL="1")
    client.get(f"/cases/{demo.case.pk}/evidence/new/", HTTP_X_CUSTODIA_POLL="1")
    assert AuditEvent.objects.filter(actor="prosecutor", outcome="denied").count() == 2


def test_polling_elements_send_the_poll_header():
    from pathlib import Path

    for template in ("templates/search/_extractions.html", "templates/evidence/_case_evidence.html"):
        text = Path(template).read_text()
        assert 'hx-trigger="every' in text and "X-Custodia-Poll" in text
