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
