"""Back and Forward on the search page go from search to search (issue #20 item 9): the completions the
query box asks for as one types are no page of their own, and never enter the browser's history."""

from __future__ import annotations

import pytest

from tests.browser.test_triage_search_pages import demo_data, log_in, picture_disk  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_completions_never_enter_the_history(page, picture_disk):  # noqa: F811
    log_in(page, "detective")
    page.goto(f"/cases/{picture_disk.pk}/traces/?q=note*")
    box = page.get_by_label("Query")
    box.click()
    with page.expect_response(lambda response: "/search/complete" in response.url):
        box.press_sequentially("type:pic", delay=60)  # the box asks for completions as one types
    page.wait_for_load_state("networkidle")
    assert "/traces/" in page.url and "complete" not in page.url, page.url
    box.fill("type:picture")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_selector("#hit-count:has-text('3 traces')")
    assert "/traces/" in page.url and "q=type%3Apicture" in page.url, page.url
    page.go_back()
    page.wait_for_selector("#hit-count:has-text('6 traces')")
    assert "/traces/" in page.url and "complete" not in page.url, page.url
    assert box.input_value() == "note*"
