"""Accessibility and comfort (issue #20 item 15): axe-core over the main pages, in light and dark mode, finds
no serious or critical violation; at 800 px wide no page is wider than the window.

axe-core comes from npm (package.json; ``make node-tools`` installs it into node_modules/). Each page is
loaded as its users load it, then axe.min.js is added to it and ``axe.run`` checks the whole document
(WCAG 2.x A and AA, and axe's best practices).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from evidence.models import Evidence
from search.models import Trace
from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401 - fixture reused
from tests.browser.test_search_pages import mailbox_disk  # noqa: F401 - fixture reused

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# CUSTODIA_AXE_JS: another copy of axe.min.js (a checkout whose node_modules is not installed yet).
AXE_JS = Path(os.environ.get("CUSTODIA_AXE_JS") or PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js")
BLOCKING_IMPACTS = ("serious", "critical")
NARROW = {"width": 800, "height": 900}


def axe_violations(page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now: rule, impact, the first nodes."""
    if not AXE_JS.exists():
        pytest.skip(f"axe-core is not installed ({AXE_JS}): make node-tools")
    page.add_script_tag(path=str(AXE_JS))
    violations = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ")),
            }));
        }"""
    )
    return [violation for violation in violations if violation["impact"] in BLOCKING_IMPACTS]


def overflow(page) -> int:
    """How many pixels the page is wider than the window (0: nothing to scroll sideways)."""
    return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")


def check_page(page, path: str, *, found: dict) -> None:
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(path)
        page.wait_for_load_state("networkidle")
        for violation in axe_violations(page):
            found.setdefault(f"{path} ({scheme})", []).append(violation)
    page.set_viewport_size(NARROW)
    page.goto(path)
    page.wait_for_load_state("networkidle")
    if (wider := overflow(page)) > 0:
        found.setdefault(f"{path} (800 px)", []).append({"id": "overflow", "pixels": wider})


def test_the_main_pages_have_no_serious_accessibility_violation(page, mailbox_disk):  # noqa: F811
    case = mailbox_disk
    evidence = Evidence.objects.filter(case=case).first()
    email = Trace.objects.filter(case=case, name="message0.eml").first()
    found: dict[str, list] = {}
    page.emulate_media(color_scheme="light")
    page.goto("/login/")
    for violation in axe_violations(page):
        found.setdefault("/login/", []).append(violation)

    log_in(page, "detective")
    for path in (
        "/cases/",
        f"/cases/{case.pk}/",
        f"/cases/{case.pk}/traces/?q=type%3Afile",
        f"/cases/{case.pk}/traces/{email.uid}/",
        "/search/help/",
        "/hashsets/",
        "/account/tokens/",
    ):
        check_page(page, path, found=found)

    page.context.clear_cookies()
    log_in(page, "custodian")
    for path in (
        f"/evidence/{evidence.pk}/",
        f"/cases/{case.pk}/evidence/new/",
        f"/cases/{case.pk}/audit/",
        "/account/",
    ):
        check_page(page, path, found=found)

    page.context.clear_cookies()
    log_in(page, "orgadmin")
    for path in ("/hashsets/",):
        check_page(page, path, found=found)
    assert not found, json.dumps(found, indent=1)
