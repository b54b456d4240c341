"""A custodian captures an Azure VM from the case page and follows its steps live (#16)."""

from __future__ import annotations

import pytest

from evidence.capture.services import capture_run_execute
from evidence.models import CaptureRun, CaptureState, Evidence
from tests.browser.conftest import screenshot
from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401 - fixture reused
from tests.evidence.fake_azure_capture import RESOURCE_GROUP, SUBSCRIPTION, VM_NAME
from tests.evidence.test_capture import azure, azurite  # noqa: F401 - fixtures reused

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_custodian_captures_a_vm_and_follows_its_steps(page, demo_data, azure):  # noqa: F811
    errors: list[str] = []
    page.on("response", lambda response: errors.append(response.url) if response.status >= 400 else None)
    log_in(page, "custodian")
    page.get_by_role("link", name="DEMO-2026-001").click()
    page.wait_for_url("**/cases/*/")
    page.get_by_role("link", name="Capture an Azure VM").click()
    page.get_by_label("Subscription id").fill(SUBSCRIPTION)
    page.get_by_label("Resource group").fill(RESOURCE_GROUP)
    page.get_by_role("button", name="List the VMs of the resource group").click()
    note = page.locator("#vm-choices-note")
    note.wait_for()
    assert VM_NAME in note.inner_text()
    assert page.locator("datalist#vm-choices option").count() == 2
    page.get_by_label("VM name").fill(VM_NAME)
    page.get_by_role("button", name="Start the capture").click()
    page.wait_for_url("**/captures/*/")
    assert page.locator("#capture-state").inner_text() == "Queued"

    # A capture worker takes the run up; the page follows by itself.
    run = CaptureRun.objects.get(vm_name=VM_NAME)
    assert capture_run_execute(run_id=run.pk).state == CaptureState.SUCCEEDED
    page.wait_for_selector("#capture-state.badge-succeeded", timeout=20_000)
    steps = page.locator("#capture-steps").inner_text()
    assert "Stream, hash and seal" in steps and "Delete the snapshot" in steps
    sha256 = Evidence.objects.get(capture_disk__run=run, capture_disk__lun=0).sha256
    assert sha256[:17] in steps
    screenshot(page, "capture-run")

    page.get_by_role("link", name="DEMO-2026-001").click()
    captures = page.locator("#case-captures")
    captures.get_by_role("link", name=VM_NAME).wait_for()
    assert "Succeeded" in captures.inner_text()
    assert not errors, errors
