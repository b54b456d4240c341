"""Time, one way, in the browser (issue #20 item 13): a reader in New York sees the case page, an evidence
item and the search page's times with EST or EDT, and a FAT time as recorded, "local (zone unknown)"."""

from __future__ import annotations

import re

import pytest

from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401 - fixture reused

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NEW_YORK = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[SD]T")


@pytest.fixture
def new_york_reader(demo_data):  # noqa: F811
    from cases.models import Case, User
    from cases.services import user_set_time_zone
    from tests.search.synthetic import synthetic_traces

    case = Case.objects.get(reference="DEMO-2026-001")
    user_set_time_zone(actor=User.objects.get(username="detective"), time_zone="America/New_York")
    evidence = synthetic_traces(
        case=case,
        registered_by=User.objects.get(username="custodian"),
        rows=[
            {
                "name": "minutes.txt",
                "path": "/stick/minutes.txt",
                "types": ["file"],
                "properties": {
                    "file.name": "minutes.txt",
                    "file.modifiedOn": "2022-01-15T09:30:00",
                    "file.modifiedOnTimeZone": "local, unknown",
                    "file.createdOn": "2022-01-15T14:00:00Z",
                },
            }
        ],
    )
    return case, evidence


def test_a_reader_in_new_york_sees_times_in_her_zone_and_fat_times_as_recorded(page, new_york_reader):
    case, evidence = new_york_reader
    log_in(page, "detective")
    page.goto(f"/cases/{case.pk}/")
    assert NEW_YORK.search(page.locator("main").inner_text())

    page.goto(f"/evidence/{evidence.pk}/")
    registered = page.locator("dt:has-text('Registered') + dd").inner_text()
    assert NEW_YORK.search(registered), registered

    page.goto(f"/cases/{case.pk}/traces/?q=name%3Aminutes.txt")
    page.wait_for_selector("#results-table", timeout=10_000)
    results = page.locator("#results-table").inner_text()
    assert "2022-01-15 09:30:00 local (zone unknown)" in results, results

    page.goto(f"/cases/{case.pk}/events/?q=name%3Aminutes.txt")
    events = page.locator("table.events").inner_text()
    assert "2022-01-15 09:30:00 local (zone unknown)" in events
    assert "2022-01-15 09:00:00 EST" in events  # 14:00 UTC, in New York


KOLKATA = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d IST")


@pytest.fixture
def kolkata_reader(demo_data):  # noqa: F811
    from alerts.services import AlertSpec, alert_raise
    from cases.models import Case, User
    from cases.services import user_set_time_zone
    from tests.search.synthetic import synthetic_traces

    case = Case.objects.get(reference="DEMO-2026-001")
    prosecutor = User.objects.get(username="prosecutor")
    user_set_time_zone(actor=prosecutor, time_zone="Asia/Kolkata")
    evidence = synthetic_traces(
        case=case,
        registered_by=User.objects.get(username="custodian"),
        rows=[
            {
                "name": "ledger.xlsx",
                "path": "/stick/ledger.xlsx",
                "types": ["file"],
                "properties": {"file.name": "ledger.xlsx", "file.modifiedOn": "2022-01-15T14:00:00Z"},
            },
            {
                "name": "minutes.txt",
                "path": "/stick/minutes.txt",
                "types": ["file"],
                "properties": {
                    "file.name": "minutes.txt",
                    "file.modifiedOn": "2022-01-16T09:30:00",
                    "file.modifiedOnTimeZone": "local, unknown",
                },
            },
        ],
    )
    alert_raise(
        spec=AlertSpec(
            kind="evidence.integrity_mismatch",
            title="Sealed evidence failed verification",
            message="Evidence [evidence>7] no longer matches its seal.",
            severity="critical",
            case_id=case.pk,
            recipients=(prosecutor,),
        )
    )
    return case, evidence


def test_a_reader_in_kolkata_sees_every_page_in_ist(page, kolkata_reader):
    """Case, evidence, trace, search timeline, events, audit and alert pages, for a reader at +05:30."""
    from search.models import Trace

    case, evidence = kolkata_reader
    log_in(page, "prosecutor")
    page.goto(f"/cases/{case.pk}/")
    page.wait_for_load_state("networkidle")
    assert KOLKATA.search(page.locator("main").inner_text())

    page.goto(f"/evidence/{evidence.pk}/")
    assert KOLKATA.search(page.locator("dt:has-text('Registered') + dd").inner_text())

    ledger = Trace.objects.get(evidence=evidence, name="ledger.xlsx")
    page.goto(f"/cases/{case.pk}/traces/{ledger.uid}/")
    row = page.locator("tr", has=page.locator("th", has_text="file.modifiedOn")).first
    assert row.inner_text().split("\t", 1)[-1].strip() == "2022-01-15T14:00:00Z = 2022-01-15 19:30:00 IST"
    minutes = Trace.objects.get(evidence=evidence, name="minutes.txt")
    page.goto(f"/cases/{case.pk}/traces/{minutes.uid}/")
    row = page.locator("tr", has=page.locator("th", has_text="file.modifiedOn")).first
    assert row.inner_text().split("\t", 1)[-1].strip() == "2022-01-16T09:30:00 local (zone unknown)"

    page.goto(f"/cases/{case.pk}/traces/?q=path%3A%2Fstick%2F*")
    page.wait_for_selector("#results-table", timeout=10_000)
    results = page.locator("#results-table").inner_text()
    assert "2022-01-15 19:30:00 IST" in results and "2022-01-16 09:30:00 local (zone unknown)" in results
    timeline = page.locator(".timeline-chart")
    axis = timeline.locator(".timeline-axis").inner_text()
    assert len(KOLKATA.findall(axis)) == 2, axis
    assert "Asia/Kolkata" in timeline.inner_text()
    titles = timeline.locator("a.timeline-bar").evaluate_all("bars => bars.map(bar => bar.getAttribute('aria-label'))")
    assert titles and all(" IST to " in title for title in titles), titles

    page.goto(f"/cases/{case.pk}/events/?q=path%3A%2Fstick%2F*")
    events = page.locator("table.events")
    assert "(Asia/Kolkata)" in events.locator("thead").inner_text()
    body = events.locator("tbody").inner_text()
    assert "2022-01-15 19:30:00 IST" in body and "2022-01-16 09:30:00 local (zone unknown)" in body

    page.goto(f"/cases/{case.pk}/audit/")
    audit = page.locator("table.audit")
    assert "Time (UTC)" not in audit.locator("thead").inner_text()
    assert KOLKATA.search(audit.locator("tbody tr").first.inner_text())

    page.goto("/notifications/")
    alert = page.locator("main").inner_text()
    assert "Sealed evidence failed verification" in alert and KOLKATA.search(alert), alert
