"""Issue #20 items 1, 2, 3, 10, 11 and 12 in a real browser: evidence registered with the lab's facts and
uploaded under its own name, a hash mismatch explained, a form that keeps its input, the folder tree of an
extracted disk and a folder that narrows the search, the organisation administrator's screen with its
confirm step, and the case page's counts and attention list."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from evidence.models import Evidence
from tests.browser.conftest import screenshot
from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401 - fixture reused
from tests.browser.test_csp import RECORD_VIOLATIONS, strict_page  # noqa: F401 - fixture reused

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def register(page, label: str, **fields: str) -> None:
    page.get_by_role("link", name="DEMO-2026-001").click()
    page.get_by_role("link", name="Register evidence").click()
    page.get_by_label("Label").fill(label)
    page.get_by_label("Kind").select_option("file")
    for name, value in fields.items():
        page.locator(f"#id_{name}").fill(value)
    page.get_by_role("button", name="Register").click()


def test_registration_facts_upload_name_and_declared_match(page, demo_data, tmp_path):  # noqa: F811
    content = os.urandom((1 << 20) + 777)
    image = tmp_path / "stick-0042.dd"
    image.write_bytes(content)
    log_in(page, "custodian")
    register(
        page,
        "USB stick, blue",
        exhibit_number="EX-0042",
        bag_number="BAG 77812",
        seal_number="S-991",
        make="SanDisk",
        model="Cruzer",
        serial_number="4C530001",
        acquisition_tool="dd",
        acquisition_tool_version="9.1",
        examiner="DC Jones",
        declared_sha256=hashlib.sha256(content).hexdigest(),
    )
    page.wait_for_url("**/evidence/*/")
    page.set_input_files("#upload-file", str(image))
    page.get_by_role("button", name="Upload and seal").click()
    page.wait_for_selector(".page-head .badge-sealed", timeout=60_000)
    main = page.locator("main").inner_text()
    for shown in ("EX-0042", "BAG 77812", "S-991", "SanDisk", "Cruzer", "4C530001", "DC Jones", "stick-0042.dd"):
        assert shown in main
    assert page.locator(".declared-match").inner_text().strip() == "✓ matches declared"
    states = page.get_by_test_id("states").inner_text()
    assert "Custody: Sealed" in states and "Analysis: Not extracted" in states
    assert Evidence.objects.get(label="USB stick, blue").original_name == "stick-0042.dd"
    screenshot(page, "evidence-registration-facts")
    # The case's evidence table shows custody and analysis apart, and the exhibit number.
    page.get_by_role("link", name="DEMO-2026-001").click()
    row = page.locator("#case-evidence tr", has_text="USB stick, blue")
    assert "EX-0042" in row.inner_text() and "Not extracted" in row.inner_text()


def test_a_hash_mismatch_says_what_happened(page, demo_data, tmp_path):  # noqa: F811
    image = tmp_path / "phone.bin"
    image.write_bytes(os.urandom(300_000))
    log_in(page, "custodian")
    register(page, "Phone dump", declared_sha256="0" * 64)
    page.wait_for_url("**/evidence/*/")
    page.set_input_files("#upload-file", str(image))
    page.get_by_role("button", name="Upload and seal").click()
    page.wait_for_selector("#upload[data-stopped='hash_mismatch']", timeout=60_000)
    text = page.locator("#upload-text").inner_text()
    assert text.startswith("Refused: The declared sha256 does not match") and "Nothing was sealed" in text
    assert "Choose the file again" not in text
    assert page.get_by_role("button", name="Upload and seal").is_disabled()


def test_a_refused_form_keeps_its_input_and_shows_the_error_at_the_field(page, demo_data):  # noqa: F811
    log_in(page, "custodian")
    register(page, "Laptop, internal SSD", exhibit_number="EX-7", declared_md5="not-a-hash")
    page.wait_for_selector("#id_declared_md5[aria-invalid=true]")
    assert page.locator("#id_label").input_value() == "Laptop, internal SSD"
    assert page.locator("#id_exhibit_number").input_value() == "EX-7"
    error = page.locator(".errorlist", has_text="declared_md5 must be 32 hexadecimal characters")
    assert error.is_visible()
    assert page.evaluate("document.activeElement.id") == "id_declared_md5"


@pytest.fixture
def folder_disk(demo_data, settings, tmp_path):  # noqa: F811
    from cases.models import Case, User
    from evidence.services.intake import evidence_import
    from search.services import extraction_execute, extraction_start

    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 is not installed (apt: e2fsprogs)")
    tree = tmp_path / "tree"
    (tree / "Users" / "peter" / "Documents").mkdir(parents=True)
    (tree / "Users" / "peter" / "Documents" / "invoice-117.txt").write_text("Invoice 117: 9,950 EUR\n")
    (tree / "Users" / "peter" / "notes.txt").write_text("call the bank\n")
    (tree / "readme.txt").write_text("invoice template\n")
    image = tmp_path / "laptop.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), "8M"], check=True)  # nosec B603 B607
    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    case = Case.objects.get(reference="DEMO-2026-001")
    evidence = evidence_import(
        actor=User.objects.get(username="custodian"), case=case, paths=[str(image)], label="Peter's laptop"
    )
    extraction_execute(run_id=extraction_start(actor=User.objects.get(username="investigator"), evidence=evidence).pk)
    return evidence


def test_the_folder_tree_lists_a_folder_and_narrows_the_search(page, folder_disk):
    log_in(page, "detective")
    page.goto(f"/evidence/{folder_disk.pk}/")
    page.get_by_role("link", name="Browse folders").click()
    page.wait_for_url("**/folders/")
    tree = page.locator("#folder-tree")
    # Open branches down to "peter" (image → file system → Users → peter), each loaded on its first click.
    peter = tree.locator(".tree-name", has_text="peter")
    for _ in range(6):
        if peter.count():
            break
        shown = tree.locator(".tree-node").count()
        tree.locator(".tree-toggle[aria-expanded=false]:visible").first.click()
        page.wait_for_function(f"document.querySelectorAll('#folder-tree .tree-node').length > {shown}")
    peter.click()
    listing = page.locator("#folder-listing")
    listing.get_by_role("link", name="notes.txt").wait_for()
    assert "Documents" in listing.inner_text() and "text/plain" in listing.inner_text()
    assert "?folder=" in page.url  # the listing has its own address
    screenshot(page, "folder-tree")
    listing.get_by_role("link", name="Folder Documents").click()  # an emoji folder showed as a box without its font
    listing.get_by_role("link", name="invoice-117.txt").wait_for()
    listing.get_by_role("link", name="Search in this folder").click()
    page.wait_for_url("**/traces/?q=*")
    assert page.locator("#q").input_value().startswith("uid:")
    page.get_by_label("Query").fill(page.locator("#q").input_value() + " invoice")
    page.get_by_role("button", name="Search", exact=True).click()
    results = page.locator("main").inner_text()
    assert "invoice-117.txt" in results and "readme.txt" not in results


def test_the_org_admin_creates_a_user_and_confirms_a_role_change(page, demo_data):  # noqa: F811
    from cases.models import CaseMembership

    log_in(page, "orgadmin")
    page.get_by_role("link", name="Organisation").click()
    page.locator("summary", has_text="Create a user").click()
    page.get_by_label("Username").fill("newbie")
    page.locator("#id_display_name").fill("New Bie")
    page.get_by_role("button", name="Create user").click()
    url = page.get_by_label("One-time link for newbie").input_value()
    assert "/account/reset/" in url
    screenshot(page, "organisation-admin")

    select = page.get_by_label("Role of detective on DEMO-2026-001", exact=True)
    select.select_option("prosecutor")
    assert CaseMembership.objects.get(user__username="detective").role == "detective"  # no change on select
    page.get_by_role("button", name="Change the role of detective on DEMO-2026-001").click()
    dialog = page.locator("dialog.confirm-dialog")
    assert "Change the role of" in dialog.inner_text()
    dialog.get_by_role("button", name="Cancel").click()
    assert CaseMembership.objects.get(user__username="detective").role == "detective"
    page.get_by_role("button", name="Change the role of detective on DEMO-2026-001").click()
    dialog.get_by_role("button", name="Change role").click()
    page.wait_for_selector("text=is now prosecutor")
    assert CaseMembership.objects.get(user__username="detective").role == "prosecutor"

    # The new user sets their password through the link, once.
    page.get_by_role("button", name="Sign out").click()
    page.goto(url)
    page.locator("#id_new_password1").fill("A-new-long-passphrase-20")
    page.locator("#id_new_password2").fill("A-new-long-passphrase-20")
    page.get_by_role("button", name="Set password").click()
    page.wait_for_selector("text=Your new password is set")
    page.goto(url)
    assert "does not work any more" in page.locator("main").inner_text()


def test_the_case_page_shows_counts_and_what_needs_attention(page, demo_data):  # noqa: F811
    from cases.models import Case, User
    from evidence.services.registration import evidence_register

    evidence_register(
        actor=User.objects.get(username="custodian"),
        case=Case.objects.get(reference="DEMO-2026-001"),
        label="Tablet, not yet uploaded",
        kind="disk_image",
    )
    log_in(page, "custodian")
    page.get_by_role("link", name="DEMO-2026-001").click()
    overview = page.locator("#overview")
    overview.locator("[data-count=evidence]").wait_for()
    assert "waiting for approval" in overview.inner_text()
    overview.scroll_into_view_if_needed()
    screenshot(page, "case-attention")
    overview.get_by_role("link", name="Finish the upload of Tablet, not yet uploaded").click()
    page.wait_for_url("**/evidence/*/#upload")


def test_the_new_pages_run_under_the_content_security_policy(strict_page, folder_disk):  # noqa: F811
    """The folder tree (htmx loading a level), the organisation screen and its confirm dialog, under the
    site's policy: no violation."""
    page = strict_page
    page.add_init_script(RECORD_VIOLATIONS)
    log_in(page, "detective")
    page.goto(f"/evidence/{folder_disk.pk}/folders/")
    page.locator(".tree-toggle").first.click()
    page.locator(".tree-children .tree-node").first.wait_for()
    violations = [f"folders: {v}" for v in page.evaluate("window.__cspViolations")]
    page.get_by_role("button", name="Sign out").click()
    log_in(page, "orgadmin")
    page.goto("/account/organisation/")
    page.get_by_role("button", name="Remove detective from DEMO-2026-001").click()
    page.locator("dialog.confirm-dialog[open]").wait_for()
    page.locator("dialog.confirm-dialog").get_by_role("button", name="Cancel").click()
    violations += [f"organisation: {v}" for v in page.evaluate("window.__cspViolations")]
    assert violations == []
