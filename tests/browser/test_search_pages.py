"""A detective's walk through search: a query, a facet click, an e-mail trace, a tag, the tag facet."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
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
    # Modified in March 2019, May 2020 and June 2020 (mkfs.ext4 -d keeps the times): a timeline by month.
    modified = [datetime(2019, 3, 10, tzinfo=UTC), datetime(2020, 5, 5, tzinfo=UTC), datetime(2020, 6, 6, tzinfo=UTC)]
    for number, subject in enumerate(["Quarterly figures", "Lunch on Friday", "Invoice 2026-117"]):
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "cfo@example.org", "board@example.org", subject
        message.set_content(f"Message {number}: {subject}.")
        (tree / f"message{number}.eml").write_bytes(message.as_bytes())
        os.utime(tree / f"message{number}.eml", (modified[number].timestamp(),) * 2)
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
    page.wait_for_function("document.getElementById('q').value.endsWith('type:email')")
    page.wait_for_selector("text=3 traces")
    screenshot(page, "search")
    screenshot(page, "search-dark", color_scheme="dark")  # dark mode (issue #20 item 15)
    # Narrowed to e-mail, the table shows the e-mail columns; the subject opens the message.
    assert page.locator("table.results thead").inner_text().split() == [
        "Select",
        "From",
        "To",
        "Subject",
        "Sent",
        "Tags",
    ]
    page.get_by_role("link", name="Quarterly figures").click()
    page.wait_for_url("**/traces/**")
    assert "Quarterly figures" in page.locator("main").inner_text()
    page.get_by_label("Add a tag").fill("relevant")
    page.get_by_role("button", name="Add", exact=True).click()
    page.wait_for_selector(".tag-chip >> text=relevant")
    screenshot(page, "trace")
    page.goto(f"/cases/{mailbox_disk.pk}/traces/?q=")
    tag_facet = page.locator(".facets li", has_text="relevant")
    assert tag_facet.inner_text().strip().endswith("1")


def test_detective_zooms_the_timeline_picks_columns_and_completes_a_property(page, mailbox_disk):
    log_in(page, "detective")
    page.goto(f"/cases/{mailbox_disk.pk}/traces/")
    page.get_by_label("Query").fill("figures OR lunch OR invoice")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_selector("text=3 traces")
    timeline = page.locator(".timeline-chart")
    assert "by month" in timeline.inner_text().lower()  # the heading is in capitals by CSS
    bars = timeline.locator("a.timeline-bar")
    assert [bars.nth(i).get_attribute("aria-label") for i in range(bars.count())] == [
        "Mar 2019 UTC: 1",
        "May 2020 UTC: 1",
        "Jun 2020 UTC: 1",
    ]
    screenshot(page, "search-timeline")
    bars.first.click()
    page.wait_for_selector("text=1 trace.")
    assert (
        page.get_by_label("Query").input_value()
        == "(figures OR lunch OR invoice) file.modifiedOn:[2019-03-01 TO 2019-03-31]"
    )
    assert "by hour" in page.locator(".timeline-chart").inner_text().lower()  # one hit: the finest
    assert "Quarterly figures" in page.locator("table.results").inner_text()  # every hit an e-mail: its columns

    column_set = page.get_by_label("Columns")
    assert column_set.locator("option").all_inner_texts()[1:] == ["Files", "Pictures", "E-mail"]
    column_set.select_option("picture")
    page.wait_for_selector("table.results th:has-text('Width')")
    assert "columns=picture" in page.url
    assert "message0.eml" in page.locator("table.results").inner_text()
    page.locator("table.results th a", has_text="Size").click()
    page.wait_for_selector("table.results th[aria-sort='ascending']")
    # A new query keeps the chosen columns and sort, and the box shows what the page shows.
    page.get_by_label("Query").fill("lunch OR figures")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_selector("text=2 traces")
    assert "columns=picture" in page.url and "sort=size" in page.url
    page.locator(".facets").get_by_role("link", name="email").click()
    page.wait_for_function("document.getElementById('q').value.endsWith('type:email')")

    page.get_by_label("Query").fill("")
    page.get_by_label("Query").press_sequentially("email.su", delay=30)
    page.wait_for_selector("#q-completions option[value='email.subject']", state="attached")


def test_past_the_count_limit_the_detective_asks_to_count_all(page, demo_data, settings):  # noqa: F811
    from cases.models import Case, User
    from tests.search.synthetic import synthetic_traces

    settings.CUSTODIA_SEARCH_COUNT_LIMIT = 10
    case = Case.objects.get(reference="DEMO-2026-001")
    synthetic_traces(
        case=case,
        registered_by=User.objects.get(username="custodian"),
        rows=[
            {"name": f"memo {n}.txt", "path": f"/disk/memo {n}.txt", "types": ["file"], "properties": {}}
            for n in range(60)
        ],
    )
    log_in(page, "detective")
    page.goto(f"/cases/{case.pk}/traces/?q=memo")
    # Counting stops at the end of the first page (50 hits, more than the limit of 10).
    page.wait_for_selector("#hit-count >> text=More than 50 traces")
    page.get_by_role("link", name="Count all").click()
    page.wait_for_selector("#hit-count >> text=60 traces")
    assert "exact=1" in page.url
    # A facet click narrows the query and keeps counting everything.
    page.locator(".facets").get_by_role("link", name="txt").click()
    page.wait_for_function("document.getElementById('q').value.includes('*.txt')")
    page.wait_for_selector("#hit-count >> text=60 traces")
    assert "More than" not in page.locator("#hit-count").inner_text()
