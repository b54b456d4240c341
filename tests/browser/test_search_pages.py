"""A detective's walk through search: a query, a facet click, an e-mail trace, a tag, the tag facet."""

from __future__ import annotations

import shutil
import subprocess
from email.message import EmailMessage

import pytest

from evidence.services.intake import evidence_import
from search.services import extraction_execute, extraction_start
from tests.browser.conftest import screenshot
from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401 - fixture reused

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def mailbox_disk(demo_data, settings, tmp_path):  # noqa: F811
    from cases.models import Case, User

    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 is not installed (apt: e2fsprogs)")
    tree = tmp_path / "tree" / "mail"
    tree.mkdir(parents=True)
    for number, subject in enumerate(["Quarterly figures", "Lunch on Friday", "Invoice 2026-117"]):
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "cfo@example.org", "board@example.org", subject
        message.set_content(f"Message {number}: {subject}.")
        (tree / f"message{number}.eml").write_bytes(message.as_bytes())
    (tree / "readme.txt").write_text("nothing to see\n")
    image = tmp_path / "disk.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tmp_path / "tree"), str(image), "8M"], check=True)
    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    case = Case.objects.get(reference="DEMO-2026-001")
    evidence = evidence_import(
        actor=User.objects.get(username="custodian"), case=case, paths=[str(image)], label="Mail server disk"
    )
    run = extraction_start(actor=User.objects.get(username="investigator"), evidence=evidence)
    extraction_execute(run_id=run.pk)
    return case


def test_detective_searches_narrows_opens_an_email_and_tags_it(page, mailbox_disk):
    log_in(page, "detective")
    page.get_by_role("link", name="DEMO-2026-001").click()
    page.get_by_role("link", name="Search traces").click()
    page.get_by_label("Query").fill("figures OR lunch OR invoice")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_selector("text=3 traces")
    page.locator(".facets").get_by_role("link", name="email").click()
    page.wait_for_selector("text=3 traces")
    screenshot(page, "search")
    page.get_by_role("link", name="message0.eml").click()
    page.wait_for_url("**/traces/**")
    assert "Quarterly figures" in page.locator("main").inner_text()
    page.get_by_label("Add a tag").fill("relevant")
    page.get_by_role("button", name="Add", exact=True).click()
    page.wait_for_selector(".tag-chip >> text=relevant")
    screenshot(page, "trace")
    page.goto(f"/cases/{mailbox_disk.pk}/traces/?q=")
    tag_facet = page.locator(".facets li", has_text="relevant")
    assert tag_facet.inner_text().strip().endswith("1")
