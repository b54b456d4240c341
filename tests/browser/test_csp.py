"""Issue #17, finding 7: the main pages run under the Content-Security-Policy in a real browser without a
single violation, and HTMX still works."""

from __future__ import annotations

import pytest

from evidence.services.registration import evidence_register
from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401 - fixture and helper

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + (event.blockedURI || "inline"));
});
"""


@pytest.fixture
def strict_page(chromium, committing_db, live_server):
    """A page that keeps the site's policy (the shared ``page`` fixture bypasses it for Playwright's sake)."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, base_url=live_server.url)
    yield context.new_page()
    context.close()


def test_main_pages_run_without_a_policy_violation(strict_page, demo_data):  # noqa: F811
    from cases.models import Case, User

    page = strict_page
    case = Case.objects.get(reference="DEMO-2026-001")
    evidence = evidence_register(
        actor=User.objects.get(username="custodian"), case=case, label="Laptop", kind="disk_image"
    )
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.add_init_script(RECORD_VIOLATIONS)
    log_in(page, "custodian")
    assert page.evaluate("window.htmx && htmx.config.includeIndicatorStyles") is False
    # HTMX under the policy: the case list filters as one types, without a reload.
    page.get_by_role("searchbox").fill("no-such-case")
    page.wait_for_function("() => !document.body.innerText.includes('DEMO-2026-001')")
    page.get_by_role("searchbox").fill("fraud")
    page.wait_for_function("() => document.body.innerText.includes('DEMO-2026-001')")
    violations = page.evaluate("window.__cspViolations")
    for path in (
        f"/cases/{case.pk}/",
        f"/cases/{case.pk}/audit/",
        f"/evidence/{evidence.pk}/",
        f"/cases/{case.pk}/traces/?q=name:*",
        "/api/docs/",
    ):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        violations += [f"{path}: {v}" for v in page.evaluate("window.__cspViolations")]
    # The API's Swagger UI gets inline styles (its <style> element), never inline script.
    assert violations == []
    assert not [text for text in console if "Content Security Policy" in text]
