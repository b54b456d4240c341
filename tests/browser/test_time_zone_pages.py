"""Issue 18 item 6 in the browser: a FAT file's time is shown as a local time of unknown zone (never with
Z); the custodian sets the evidence's source time zone on its page, and after extracting again the trace
shows the UTC time and the zone it was converted with."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from evidence.services.intake import evidence_import
from search.models import Trace
from search.services import extraction_execute, extraction_start
from tests.browser.conftest import screenshot
from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401 - fixture reused

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def fat_stick(demo_data, settings, tmp_path):  # noqa: F811
    from cases.models import Case, User

    if not (shutil.which("mkfs.vfat") and shutil.which("mcopy")):
        pytest.skip("mkfs.vfat and mcopy are needed (make system-packages)")
    image = tmp_path / "stick.img"
    with image.open("wb") as file_object:
        file_object.truncate(16 * 1024 * 1024)
    subprocess.run(["mkfs.vfat", "-F", "16", str(image)], check=True, capture_output=True)  # nosec B603 B607
    source = tmp_path / "minutes.txt"
    source.write_bytes(b"board meeting\n")
    moment = datetime(2022, 1, 15, 9, 30, 0, tzinfo=UTC).timestamp()
    os.utime(source, (moment, moment))
    environment = {**os.environ, "TZ": "UTC", "MTOOLS_SKIP_CHECK": "1"}
    subprocess.run(  # nosec B603 B607  # Debian's mtools on a file made here
        ["mcopy", "-m", "-i", str(image), str(source), "::minutes.txt"], check=True, env=environment
    )
    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    case = Case.objects.get(reference="DEMO-2026-001")
    evidence = evidence_import(
        actor=User.objects.get(username="custodian"), case=case, paths=[str(image)], label="Stick from Oslo"
    )
    extraction_execute(run_id=extraction_start(actor=User.objects.get(username="investigator"), evidence=evidence).pk)
    return case, evidence


def test_a_fat_time_is_local_until_the_custodian_sets_the_source_time_zone(page, fat_stick):
    from cases.models import User

    case, evidence = fat_stick
    trace = Trace.objects.get(evidence_id=evidence.pk, name__iexact="minutes.txt")
    log_in(page, "detective")
    page.goto(f"/cases/{case.pk}/traces/{trace.uid}/")
    row = page.locator("tr", has=page.locator("th", has_text="file.modifiedOn")).first
    assert row.inner_text().split("\t", 1)[-1].strip() == "2022-01-15T09:30:00 local (zone unknown)"

    page.context.clear_cookies()  # the custodian sets the zone; the detective reads traces
    log_in(page, "custodian")
    page.goto(f"/evidence/{evidence.pk}/")
    assert "Unknown." in page.locator("#source-time-zone").inner_text()
    page.get_by_label("Time zone the device's clock was set to").select_option("Europe/Oslo")
    page.get_by_role("button", name="Set time zone").click()
    page.wait_for_url(f"**/evidence/{evidence.pk}/")
    assert "Europe/Oslo" in page.locator("#source-time-zone").inner_text()
    screenshot(page, "evidence-source-time-zone")

    extraction_execute(run_id=extraction_start(actor=User.objects.get(username="investigator"), evidence=evidence).pk)
    page.context.clear_cookies()
    log_in(page, "detective")
    page.goto(f"/cases/{case.pk}/traces/{trace.uid}/")
    main = page.locator("main").inner_text()
    assert "2022-01-15T08:30:00Z (UTC, converted from local time with Europe/Oslo)" in main
