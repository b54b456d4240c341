"""The evidence page of a queued import shows the worker's progress (HTMX, no inline script), reloads
itself once sealed, and an acquisition with read errors shows its zero-filled ranges."""

from __future__ import annotations

import errno
import hashlib
import os

import pytest

from evidence.models import Evidence
from tests.browser.conftest import screenshot
from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401 - fixture reused

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_queued_import_shows_its_progress_then_the_sealed_item(page, demo_data, tmp_path, settings):  # noqa: F811
    from cases.models import Case, User
    from evidence.services.intake import evidence_import, intake_run

    root = tmp_path / "share"
    root.mkdir()
    content = os.urandom(2 * (1 << 20) + 5)
    (root / "laptop.raw").write_bytes(content)
    settings.CUSTODIA_IMPORT_ROOTS = [root]
    evidence = evidence_import(
        actor=User.objects.get(username="custodian"),
        case=Case.objects.get(reference="DEMO-2026-001"),
        paths=[str(root / "laptop.raw")],
        label="Laptop, queued",
        mode="queue",
    )
    log_in(page, "custodian")
    page.goto(f"/evidence/{evidence.pk}/")
    progress = page.locator("#intake-progress")
    assert "Queued: waiting for a worker" in progress.inner_text()
    assert page.locator("#sealing progress").count() == 1
    intake_run(evidence_id=evidence.pk)  # the worker, here in the test's process
    page.wait_for_selector(".page-head .badge-sealed", timeout=30_000)  # the poll reloaded the page
    assert hashlib.sha256(content).hexdigest() in page.locator("main").inner_text()
    assert Evidence.objects.get(pk=evidence.pk).state == "sealed"


def test_read_errors_are_shown_on_the_evidence_page(page, demo_data, tmp_path, settings, monkeypatch):  # noqa: F811
    from cases.models import Case, User
    from evidence.services import acquisition
    from evidence.services.intake import intake_run
    from tests.evidence.test_acquire import FaultySource

    root = tmp_path / "share"
    root.mkdir()
    (root / "card.img").write_bytes(os.urandom(1 << 20))
    settings.CUSTODIA_IMPORT_ROOTS = [root]
    settings.CUSTODIA_ACQUIRE_RETRY_DELAY_MS = 0
    monkeypatch.setattr(acquisition, "source_opener", lambda path: FaultySource(path.read_bytes(), bad=[(4096, 8192)]))
    evidence = acquisition.evidence_acquire(
        actor=User.objects.get(username="custodian"),
        case=Case.objects.get(reference="DEMO-2026-001"),
        device=str(root / "card.img"),
        label="SD card",
        queue=False,
    )
    intake_run(evidence_id=evidence.pk)
    log_in(page, "custodian")
    page.goto(f"/evidence/{evidence.pk}/")
    table = page.get_by_role("table", name="Read errors")
    assert (
        "4096" in table.inner_text()
        and "8191" in table.inner_text()
        and errno.errorcode[errno.EIO] in table.inner_text()
    )
    assert "evidence.acquire.read_error" in page.locator("main").inner_text()
    screenshot(page, "evidence-acquisition-read-errors")
