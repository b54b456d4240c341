"""Hash sets in the browser (issue #20 item 6): an organisation administrator imports a known-good set, a
detective finds the file it holds through the facet and hides known files from the search."""

from __future__ import annotations

import hashlib

import pytest

from hashsets.models import HashSet
from search.hashset_marks import traces_mark_for_hash_set
from tests.browser.conftest import screenshot
from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401 - fixture reused
from tests.browser.test_search_pages import mailbox_disk  # noqa: F401 - fixture reused

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_an_admin_imports_a_set_and_a_detective_hides_known_files(page, mailbox_disk, tmp_path):  # noqa: F811
    known = tmp_path / "known.txt"
    readme = hashlib.sha256(b"nothing to see\n").hexdigest()  # readme.txt of the mailbox disk
    known.write_text(f"# the system's own files\n{readme}\n")
    log_in(page, "orgadmin")
    page.get_by_role("link", name="Hash sets").click()
    page.get_by_label("Name").fill("NSRL")
    page.get_by_label("Kind").select_option("known-good")
    page.get_by_label("File").set_input_files(str(known))
    page.get_by_role("button", name="Import").click()
    page.wait_for_selector("text=Hash set imported")
    assert "NSRL" in page.locator("#hash-sets").inner_text()
    screenshot(page, "hashsets")
    # The worker's task (search.tasks.mark_traces_for_hash_set), run here: no worker runs in the tests.
    traces_mark_for_hash_set(hash_set_id=HashSet.objects.get(name="NSRL").pk)

    page.context.clear_cookies()
    log_in(page, "detective")
    page.goto(f"/cases/{mailbox_disk.pk}/traces/?q=type%3Afile")
    page.wait_for_selector("text=readme.txt")
    page.locator(".facets").get_by_role("link", name="NSRL").click()
    page.wait_for_function("document.getElementById('q').value.endsWith('hashset:NSRL')")
    page.wait_for_selector("#results >> text=readme.txt")
    assert page.locator("#results").get_by_text("message0.eml").count() == 0
    page.goto(f"/cases/{mailbox_disk.pk}/traces/?q=type%3Afile")
    page.get_by_label("Hide known files").check()
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_url("**hideKnown=1**")
    page.wait_for_selector("#results >> text=message0.eml")
    assert page.locator("#results").get_by_text("readme.txt").count() == 0
    assert page.get_by_label("Hide known files").is_checked()
