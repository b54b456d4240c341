"""Time, one way, in the browser (issue #20 item 13): a custodian picks a time zone on the account page and
the audit trail's times follow it, each with its zone."""

from __future__ import annotations

import re

import pytest

from cases.models import Case
from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401 - fixture reused

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_custodian_chooses_a_time_zone_and_the_trail_follows(page, demo_data):  # noqa: F811
    case = Case.objects.get(reference="DEMO-2026-001")
    log_in(page, "custodian")
    page.goto(f"/cases/{case.pk}/audit/")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page.locator("table.audit").inner_text())
    page.get_by_role("link", name=re.compile("Casey Custodian")).click()
    page.get_by_label("Time zone:").select_option("Asia/Kolkata")
    page.get_by_role("button", name="Save").click()
    page.wait_for_selector("text=Time zone saved")
    assert re.search(r" IST$", page.locator("#now").inner_text())
    page.goto(f"/cases/{case.pk}/audit/")
    trail = page.locator("table.audit").inner_text()
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d IST", trail) and " UTC" not in trail
