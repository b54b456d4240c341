"""A user's walk through the foundation in a real browser."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests.browser.conftest import screenshot
from tests.conftest import DEMO_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def demo_data(monkeypatch, committing_db):
    monkeypatch.setenv("DEMO_PASSWORD", DEMO_PASSWORD)
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115


def log_in(page, username: str) -> None:
    # A request the previous page still has in flight (an htmx fragment loading) may answer after the
    # caller cleared the cookies and set the old CSRF cookie again over the login form's: let it land first.
    page.wait_for_load_state("networkidle")
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/cases/")


def test_detective_logs_in_and_opens_the_demo_case(page, demo_data):
    log_in(page, "detective")
    screenshot(page, "case-list")
    page.get_by_role("link", name="DEMO-2026-001").click()
    page.wait_for_url("**/cases/*/")
    body = page.locator("main").inner_text()
    assert "Fraud at Example Ltd" in body
    for name in ("Casey Custodian", "Ivy Investigator", "Dev Detective", "Pat Prosecutor"):
        assert name in body
    assert "Evidence" in body
    # A detective may not manage members or read the audit trail: the page offers neither.
    assert page.get_by_role("button", name="Add member").count() == 0
    assert page.get_by_role("link", name="Audit trail").count() == 0
    screenshot(page, "case-detail")


def test_case_list_search_filters_without_reload(page, demo_data):
    log_in(page, "custodian")
    page.get_by_role("searchbox").fill("no-such-case")
    page.wait_for_function("!document.body.innerText.includes('DEMO-2026-001')")
    page.get_by_role("searchbox").fill("fraud")
    page.wait_for_function("document.body.innerText.includes('DEMO-2026-001')")


def test_prosecutor_reads_the_case_audit_with_chain_status(page, demo_data):
    log_in(page, "prosecutor")
    page.get_by_role("link", name="DEMO-2026-001").click()
    page.get_by_role("link", name="Audit trail").click()
    text = page.locator("main").inner_text()
    assert "case.create" in text
    assert "Chain intact" in text or "chain intact" in text.lower()
    screenshot(page, "case-audit")


def test_outsider_gets_not_found_for_the_demo_case(page, demo_data):
    from cases.models import Case

    log_in(page, "outsider")
    case = Case.objects.get(reference="DEMO-2026-001")
    response = page.goto(f"/cases/{case.pk}/")
    assert response.status == 404
    assert "DEMO-2026-001" not in page.content()


@pytest.mark.parametrize("viewport", [{"width": 768, "height": 1024}, {"width": 1366, "height": 768}])
def test_case_page_fits_tablet_and_laptop_screens(page, demo_data, viewport):
    page.set_viewport_size(viewport)
    log_in(page, "custodian")
    page.get_by_role("link", name="DEMO-2026-001").click()
    page.wait_for_url("**/cases/*/")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at {viewport['width']}px"
