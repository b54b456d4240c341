"""#15: a prosecutor reads an evidence item's custody timeline with repeated reads folded into one line."""

from __future__ import annotations

import pytest

from cases.models import Case, User
from evidence.services.registration import evidence_register
from tests.browser.conftest import screenshot
from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401 - fixture reused

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_prosecutor_reads_a_folded_custody_timeline(page, demo_data):  # noqa: F811
    evidence = evidence_register(
        actor=User.objects.get(username="custodian"),
        case=Case.objects.get(reference="DEMO-2026-001"),
        label="Seized phone",
        kind="disk_image",
    )
    log_in(page, "prosecutor")
    for _ in range(3):
        page.goto(f"/evidence/{evidence.pk}/")
    timeline = page.locator("#custody").inner_text()
    assert "evidence.register" in timeline and "detail.access" not in timeline
    page.get_by_role("link", name="Show all events").click()
    page.wait_for_url("**events=all**")
    timeline = page.locator("#custody").inner_text()
    assert "detail.access" in timeline and "\u00d7 3" in timeline  # the fourth read is this page itself
    screenshot(page, "custody-timeline")
