"""Issue 18, item 5 in the browser: a differencing VHD sealed alone says it needs its parent; a custodian
links the parent, sealed separately in the same case, from the evidence page, and the page then shows the
chain; extraction reads the child through it."""

from __future__ import annotations

import pytest

from evidence.services.intake import evidence_import
from search.models import Trace
from search.services import extraction_execute, extraction_start
from tests.browser.conftest import screenshot
from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401 - fixture reused
from tests.differencing import needs_image_tools, vhd_parent_and_child

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_image_tools]


@pytest.fixture
def child_and_parent(demo_data, settings, tmp_path):  # noqa: F811
    from cases.models import Case, User

    child, base, _changed = vhd_parent_and_child(tmp_path)
    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    case = Case.objects.get(reference="DEMO-2026-001")
    custodian = User.objects.get(username="custodian")
    parent = evidence_import(actor=custodian, case=case, paths=[str(base)], label="Hyper-V base disk")
    child_item = evidence_import(actor=custodian, case=case, paths=[str(child)], label="Hyper-V checkpoint")
    return case, parent, child_item


def test_a_custodian_links_a_parent_on_the_evidence_page(page, child_and_parent):
    from cases.models import User

    _case, parent, child = child_and_parent
    log_in(page, "custodian")
    page.goto(f"/evidence/{child.pk}/")
    section = page.locator("#parent-chain")
    assert "not yet linked" in section.inner_text() and "base.vhd" in section.inner_text()
    page.select_option("#parent-select", str(parent.pk))
    page.get_by_role("button", name="Link parent").click()
    page.wait_for_url(f"**/evidence/{child.pk}/")
    assert "Parent linked" in page.locator("main").inner_text()
    chain = page.get_by_role("table", name="Parent chain").inner_text()
    assert "Hyper-V base disk" in chain and parent.sha256 in chain and "base.vhd" in chain
    screenshot(page, "evidence-parent-chain")

    investigator = User.objects.get(username="investigator")
    run = extraction_execute(run_id=extraction_start(actor=investigator, evidence=child).pk)
    assert run.state == "done", run.failure
    assert Trace.objects.filter(evidence_id=child.pk, name="SECOND.TXT").exists()
