"""Issue #20 in the browser (ui-search): the picture gallery, the events timeline, a facet on any property, a
search that warns, and the result table's pages, keyboard, skip link and Back/Forward."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from evidence.services.intake import evidence_import
from search.services import extraction_execute, extraction_start
from tests.browser.conftest import screenshot
from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401 - fixture reused

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def picture_disk(demo_data, settings, tmp_path):  # noqa: F811
    """An ext4 disk with three pictures (two with a camera make in EXIF) and a few text files, extracted."""
    from PIL import Image

    from cases.models import Case, User

    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 is not installed (apt: e2fsprogs)")
    tree = tmp_path / "tree" / "photos"
    tree.mkdir(parents=True)
    for number, (colour, make) in enumerate([("red", "Canon"), ("green", "Nikon"), ("blue", "")]):
        image = Image.new("RGB", (640, 480), colour)
        exif = Image.Exif()
        if make:
            exif[0x010F] = make  # Make
        image.save(tree / f"photo{number}.jpg", format="JPEG", exif=exif.tobytes())
        moment = datetime(2019 + number, 5, 1, 12, tzinfo=UTC).timestamp()
        os.utime(tree / f"photo{number}.jpg", (moment, moment))
    for number in range(6):
        (tree / f"note{number}.txt").write_text(f"note number {number}\n")
    image = tmp_path / "disk.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tmp_path / "tree"), str(image), "8M"], check=True)
    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    case = Case.objects.get(reference="DEMO-2026-001")
    evidence = evidence_import(
        actor=User.objects.get(username="custodian"), case=case, paths=[str(image)], label="Camera card"
    )
    run = extraction_start(actor=User.objects.get(username="investigator"), evidence=evidence)
    extraction_execute(run_id=run.pk)
    return case


def test_the_gallery_shows_thumbnails_opens_a_picture_and_tags_several(page, picture_disk):
    log_in(page, "detective")
    page.goto(f"/cases/{picture_disk.pk}/traces/?q=photo*")
    page.get_by_role("link", name="Gallery").click()
    page.wait_for_selector(".gallery img")
    tiles = page.locator(".gallery li")
    assert tiles.count() == 3
    # Every thumbnail decoded: a PNG the server made, not the original.
    page.wait_for_function("() => [...document.querySelectorAll('.gallery img')].every(i => i.complete)")
    widths = page.eval_on_selector_all(".gallery img", "images => images.map(i => i.naturalWidth)")
    assert all(width > 0 for width in widths), widths
    screenshot(page, "gallery")
    tiles.nth(0).get_by_label("select").check()
    tiles.nth(1).get_by_label("select").check()
    page.get_by_label("Tag", exact=True).fill("holiday")
    page.get_by_role("button", name="Tag selected").click()
    page.wait_for_selector("text=2 trace(s) carry the tag")
    page.goto(f"/cases/{picture_disk.pk}/traces/?q=tag:holiday")
    assert page.locator("table.results tbody tr").count() == 2
    assert page.locator("table.results tbody .tag-chip", has_text="holiday").count() == 2
    page.goto(f"/cases/{picture_disk.pk}/traces/?q=photo*&view=gallery")
    page.locator(".gallery li a").first.click()
    page.wait_for_url("**/traces/*:*/")
    assert "photo" in page.locator("h1").inner_text()


def test_the_events_timeline_lists_times_in_order_filters_by_kind_and_exports(page, picture_disk):
    log_in(page, "detective")
    page.goto(f"/cases/{picture_disk.pk}/traces/?q=photo*")
    page.get_by_role("link", name="Events timeline").click()
    page.wait_for_url("**/events/**")
    times = page.locator("table.events tbody tr td:first-child").all_inner_texts()
    assert len(times) >= 3 and times == sorted(times)
    page.get_by_label("modified").check()
    page.get_by_role("button", name="Show events").click()
    page.wait_for_url("**kind=modified**")
    kinds = set(page.locator("table.events tbody tr td:nth-child(3)").all_inner_texts())
    assert kinds == {"modified"}
    shown = page.locator("table.events tbody tr").count()
    assert shown >= 3  # the pictures' file times, and the folder's
    screenshot(page, "events")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    path = download.value.path()
    with open(path, encoding="utf-8") as exported:
        lines = exported.read().splitlines()
    assert lines[0].startswith("time,zone,kind") and len(lines) == shown + 1


def test_a_property_facet_and_a_warning_that_suggests_the_right_name(page, picture_disk):
    log_in(page, "detective")
    page.goto(f"/cases/{picture_disk.pk}/traces/")
    # The picture tool writes picture.exif.make: the capitalised name finds nothing, and says why.
    page.get_by_label("Query").fill("picture.exif.Make:canon")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_selector(".search-warning")
    assert "Did you mean picture.exif.make?" in page.locator(".search-warning").inner_text()
    page.get_by_role("link", name="Search picture.exif.make instead").click()
    page.wait_for_selector("#hit-count:has-text('1 trace.')")
    page.goto(f"/cases/{picture_disk.pk}/traces/?q=type:picture")
    page.get_by_label("Facet on a property").fill("picture.exif.make")
    page.get_by_role("button", name="Facet", exact=True).click()
    page.wait_for_selector(".facets >> text=Nikon")
    # The facet on the property, below the timeline and the usual facets, in the middle of the picture.
    page.locator(".facets h2", has_text="picture.exif.make").evaluate("el => el.scrollIntoView({block: 'center'})")
    screenshot(page, "facets")
    page.locator(".facets").get_by_role("link", name="Nikon").click()
    page.wait_for_selector("#hit-count:has-text('1 trace.')")
    assert "photo1.jpg" in page.locator("table.results").inner_text()


def test_pages_keyboard_skip_link_and_back_forward(page, picture_disk):
    log_in(page, "detective")
    page.goto(f"/cases/{picture_disk.pk}/traces/?q=note*&size=25")
    page.get_by_label("Query").fill("note*")
    # A page size of 25 and page numbers; the URL holds them.
    assert page.get_by_label("Per page").input_value() == "25"
    page.get_by_label("Query").fill("type:picture")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_selector("#hit-count:has-text('3 traces')")
    page.get_by_label("Query").fill("note*")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_selector("#hit-count:has-text('6 traces')")
    page.go_back()
    page.wait_for_selector("#hit-count:has-text('3 traces')")
    assert page.get_by_label("Query").input_value() == "type:picture"
    page.go_forward()
    page.wait_for_selector("#hit-count:has-text('6 traces')")
    assert page.get_by_label("Query").input_value() == "note*"
    # The skip link leads to the results; j/k move, Enter opens.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") in ("Skip to content", "Skip to results")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    current = page.locator("#results-table tr.current")
    assert current.count() == 1
    name = current.locator("a").first.inner_text()
    page.keyboard.press("t")
    assert page.evaluate("document.activeElement.id") == "bulk-tag-name"
    assert current.locator("input[name=uids]").is_checked()
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("Enter")
    page.wait_for_url("**/traces/*:*/")
    assert name in page.locator("h1").inner_text()
