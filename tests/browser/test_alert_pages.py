"""The alert bell in a real browser: the count in the top bar, the list it opens, acknowledging with a note."""

from __future__ import annotations

import pytest

from alerts.models import Alert
from alerts.services import AlertSpec, alert_raise
from audit.models import AuditEvent
from cases.models import Case
from tests.browser.conftest import screenshot
from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_bell_shows_the_count_the_list_and_acknowledges_with_a_note(page, demo_data):  # noqa: F811
    case = Case.objects.get(reference="DEMO-2026-001")
    alert_raise(
        spec=AlertSpec(
            kind="evidence.integrity_mismatch",
            title="Sealed evidence failed verification",
            message="Evidence [evidence>7] no longer matches its seal: 2 chunk(s) differ.",
            severity="critical",
            case_id=case.pk,
        )
    )
    alert_raise(
        spec=AlertSpec(
            kind="evidence.secret_revealed",
            title="An escrowed secret was revealed",
            message="[user>investigator] was shown a secret.",
            case_id=case.pk,
        )
    )
    log_in(page, "custodian")
    bell = page.locator("[data-bell]")
    assert bell.locator("[data-bell-count]").inner_text() == "2"
    bell.locator("summary").click()
    panel = bell.locator("[data-bell-panel]")
    panel.get_by_text("2 open alerts").wait_for()
    assert "Sealed evidence failed verification" in panel.inner_text()
    assert "An escrowed secret was revealed" in panel.inner_text()
    screenshot(page, "alerts-bell")
    item = panel.locator("li", has_text="Sealed evidence failed verification")
    item.get_by_label("Note").fill("Re-read from the second copy; the first disk is failing.")
    item.get_by_role("button", name="Acknowledge").click()
    page.get_by_text("Alert acknowledged.").wait_for()
    assert page.url.endswith("/cases/")  # back where the bell was opened
    assert page.locator("[data-bell] [data-bell-count]").inner_text() == "1"
    acknowledged = Alert.objects.get(kind="evidence.integrity_mismatch")
    assert acknowledged.acknowledgement_note == "Re-read from the second copy; the first disk is failing."
    assert AuditEvent.objects.filter(action="alert.ack", target_id=str(acknowledged.pk)).exists()
    # The page of all alerts shows the acknowledged one with its note.
    page.goto("/notifications/")
    assert "Re-read from the second copy" in page.locator("main").inner_text()
    # Another member of the case has no alerts: the bell says none.
    page.context.clear_cookies()
    log_in(page, "detective")
    assert page.locator("[data-bell] [data-bell-count]").inner_text() == "0"
