"""#19: a custodian asks who searched for what, the prosecutor approves, the custodian sees the value; the
organisation's administrator sees the load and none of it."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from audit.privacy import DEFAULT_POLICY
from cases.models import Case
from tests.browser.conftest import screenshot
from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401 - fixture reused

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUERY = "Jan Jansen"


def test_re_identification_needs_a_second_person_and_the_load_shows_none_of_it(page, demo_data, settings):  # noqa: F811
    settings.CUSTODIA_PRIVACY_POLICY = dict(DEFAULT_POLICY)
    settings.CUSTODIA_PRIVACY_LOOKUP = "audit.privacy_store.DatabaseLookupTable"
    case = Case.objects.get(reference="DEMO-2026-001")
    log_in(page, "detective")
    page.goto(f"/cases/{case.pk}/traces/?q=Jan+Jansen")
    event = AuditEvent.objects.filter(action="trace-search.access").order_by("-sequence").first()
    assert event is not None and QUERY not in str(event.details)

    page.context.clear_cookies()
    log_in(page, "custodian")
    page.goto(f"/audit/reidentify/?event={event.sequence}")
    page.get_by_label("Field").select_option("details.query")
    page.get_by_label("Why the clear value is needed").fill("Court order 2026/17")
    page.get_by_role("button", name="Ask").click()
    page.wait_for_url("**/audit/reidentify/")
    assert "waiting for a second person" in page.locator("main").inner_text()
    assert page.get_by_role("button", name="Show the value").count() == 0

    page.context.clear_cookies()
    log_in(page, "prosecutor")
    page.goto("/audit/reidentify/")
    page.get_by_role("button", name="Approve request").click()
    page.wait_for_url("**/audit/reidentify/")
    assert QUERY not in page.locator("main").inner_text()

    page.context.clear_cookies()
    log_in(page, "custodian")
    page.goto("/audit/reidentify/")
    page.get_by_role("button", name="Show the value").click()
    assert page.locator("#revealed-value").inner_text() == QUERY
    screenshot(page, "re-identification")

    page.context.clear_cookies()
    log_in(page, "orgadmin")
    page.goto("/load/")
    body = page.locator("main").inner_text()
    assert "audited_requests_1h" in body
    for clear in (QUERY, "detective", "DEMO-2026-001"):
        assert clear not in body
