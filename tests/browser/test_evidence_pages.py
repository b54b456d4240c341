"""A custodian registers evidence, uploads it through the browser (chunked, resumable) and sees it sealed."""

from __future__ import annotations

import hashlib
import os

import pytest

from evidence.models import Evidence
from tests.browser.conftest import screenshot
from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401 - fixture reused

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_custodian_registers_uploads_and_seals(page, demo_data, tmp_path):  # noqa: F811
    image = tmp_path / "usb-stick.dd"
    content = os.urandom(3 * (1 << 20) + 4321)
    image.write_bytes(content)
    log_in(page, "custodian")
    page.get_by_role("link", name="DEMO-2026-001").click()
    page.get_by_role("link", name="Register evidence").click()
    page.get_by_label("Label").fill("USB stick, blue")
    page.get_by_label("Kind").select_option("file")
    page.get_by_label("Seized from").fill("Desk drawer, office 2")
    page.get_by_role("button", name="Register").click()
    page.wait_for_url("**/evidence/*/")
    page.set_input_files("#upload-file", str(image))
    page.get_by_role("button", name="Upload and seal").click()
    page.wait_for_selector(".page-head .badge-sealed", timeout=60_000)
    page.wait_for_load_state("load")
    evidence = Evidence.objects.get(label="USB stick, blue")
    assert evidence.state == "sealed"
    assert evidence.sha256 == hashlib.sha256(content).hexdigest()
    assert evidence.sha256 in page.locator("main").inner_text()
    assert "evidence.seal" in page.locator("main").inner_text()
    page.evaluate("window.scrollTo(0, 0)")  # the item's head and facts, not the upload form, in the picture
    screenshot(page, "evidence-detail")


def test_upload_resumes_after_the_tab_closed(page, demo_data, tmp_path):  # noqa: F811
    import io

    from cases.models import Case, User
    from evidence.services.registration import evidence_register
    from evidence.services.upload import ContentRange, evidence_receive

    content = os.urandom(2 * (1 << 20) + 99)
    custodian = User.objects.get(username="custodian")
    evidence = evidence_register(
        actor=custodian, case=Case.objects.get(reference="DEMO-2026-001"), label="Phone dump", kind="file"
    )
    # The first chunk arrived before the tab closed.
    evidence_receive(
        actor=custodian,
        evidence=evidence,
        content_range=ContentRange(0, (1 << 20) - 1, len(content)),
        stream=io.BytesIO(content[: 1 << 20]),
    )
    image = tmp_path / "phone.bin"
    image.write_bytes(content)
    log_in(page, "custodian")
    page.goto(f"/evidence/{evidence.pk}/")
    assert "1.0 MB" in page.locator("#upload").inner_text() or "1.0" in page.locator("#upload").inner_text()
    page.set_input_files("#upload-file", str(image))
    page.get_by_role("button", name="Upload and seal").click()
    page.wait_for_selector(".page-head .badge-sealed", timeout=60_000)
    evidence.refresh_from_db()
    assert evidence.sha256 == hashlib.sha256(content).hexdigest()
