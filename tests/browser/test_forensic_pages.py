"""Issue 18 in the browser: a password-protected PDF on a seized disk says it is locked and what to do; once
a document password is escrowed and the evidence extracted again, its page shows the text and which
escrowed secret opened it (never the password)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from evidence.services.escrow import secret_escrow
from evidence.services.intake import evidence_import
from search.models import Trace
from search.services import extraction_execute, extraction_start
from tests.browser.conftest import screenshot
from tests.browser.test_case_pages import demo_data, log_in  # noqa: F401 - fixture reused
from tests.corpus import require_corpus

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "pier at nine"


@pytest.fixture
def locked_pdf_disk(demo_data, settings, tmp_path):  # noqa: F811
    from cases.models import Case, User

    if not (shutil.which("mkfs.ext4") and shutil.which("qpdf")):
        pytest.skip("mkfs.ext4 and qpdf are needed (make system-packages)")
    tree = tmp_path / "tree"
    tree.mkdir()
    encrypt = ["qpdf", "--warning-exit-0", "--encrypt", PASSWORD, "owner", "256", "--"]
    original = require_corpus("files/ingest-file/readme.pdf")
    subprocess.run([*encrypt, str(original), str(tree / "readme.pdf")], check=True, capture_output=True)
    image = tmp_path / "disk.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), "8M"], check=True)
    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    case = Case.objects.get(reference="DEMO-2026-001")
    evidence = evidence_import(
        actor=User.objects.get(username="custodian"), case=case, paths=[str(image)], label="Seized USB stick"
    )
    extraction_execute(run_id=extraction_start(actor=User.objects.get(username="investigator"), evidence=evidence).pk)
    return case, evidence


def test_a_locked_pdf_says_so_and_opens_once_its_password_is_escrowed(page, locked_pdf_disk):
    from cases.models import User

    case, evidence = locked_pdf_disk
    pdf = Trace.objects.get(evidence_id=evidence.pk, name="readme.pdf")
    log_in(page, "detective")
    page.goto(f"/cases/{case.pk}/traces/{pdf.uid}/")
    assert "locked: escrow a password" in page.locator("main").inner_text()

    secret = secret_escrow(
        actor=User.objects.get(username="custodian"),
        evidence=evidence,
        kind="document_password",
        name="readme.pdf",
        value=PASSWORD.encode(),
    )
    extraction_execute(run_id=extraction_start(actor=User.objects.get(username="investigator"), evidence=evidence).pk)
    page.goto(f"/cases/{case.pk}/traces/{pdf.uid}/")
    main = page.locator("main").inner_text()
    assert f"escrowed secret {secret.pk}" in main and "locked: escrow a password" not in main
    assert PASSWORD not in page.content()
    screenshot(page, "trace-unlocked-pdf")
