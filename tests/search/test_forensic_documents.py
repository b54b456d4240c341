"""Escrowed document passwords (issue 18): a password-protected PDF (qpdf --encrypt of a corpus PDF) and an
encrypted OOXML document (msoffcrypto-tool's ECMA-376 agile encryption of a corpus DOCX) give their text
once a `document_password` is escrowed for the evidence; which secret opened them is recorded (never the
value); without one they say "locked: escrow a password".

Answer keys: pdftotext (poppler) on the PDF before encryption, and the DOCX's own word/document.xml read
with zipfile and a regular expression, never Custodia's output.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import zipfile

import pytest

from search.extraction.tools.base import Limits
from search.extraction.tools.documents import (
    LOCKED_MESSAGE,
    DocumentPassword,
    OleDocumentTool,
    PdfTool,
    escrowed_document_passwords,
)
from tests.corpus import require_corpus

PDF_PASSWORD = "pdf-user-pw"
DOCX_PASSWORD = "docx pass wörd"


@pytest.fixture
def encrypted_pdf(tmp_path):
    if not (shutil.which("qpdf") and shutil.which("pdftotext")):
        pytest.skip("qpdf and pdftotext are needed (make system-packages)")
    original = require_corpus("files/ingest-file/readme.pdf")
    encrypted = tmp_path / "readme-encrypted.pdf"
    encrypt = ["qpdf", "--warning-exit-0", "--encrypt", PDF_PASSWORD, "owner-only", "256", "--"]
    subprocess.run(
        [*encrypt, str(original), str(encrypted)],
        check=True,
        capture_output=True,
    )
    expected = subprocess.run(["pdftotext", str(original), "-"], check=True, capture_output=True, text=True).stdout
    # qpdf really encrypted it: pdftotext needs the password too
    assert subprocess.run(["pdftotext", str(encrypted), "-"], capture_output=True).returncode != 0
    return encrypted, expected


@pytest.fixture
def encrypted_docx(tmp_path):
    from msoffcrypto.format.ooxml import OOXMLFile

    original = require_corpus("files/plaso/Document.docx")
    encrypted = io.BytesIO()
    with original.open("rb") as plain:
        OOXMLFile(plain).encrypt(DOCX_PASSWORD, encrypted)
    with zipfile.ZipFile(original) as package:
        document_xml = package.read("word/document.xml").decode("utf-8")
    expected_words = re.findall(r"<w:t(?: [^>]*)?>([^<]*)</w:t>", document_xml)
    return encrypted.getvalue(), " ".join(expected_words).split()


def run_pdf(path, passwords=()):
    with escrowed_document_passwords(passwords), path.open("rb") as stream:
        return PdfTool().run(stream=stream, name=path.name, limits=Limits())


def run_office(data: bytes, passwords=()):
    with escrowed_document_passwords(passwords):
        return OleDocumentTool().run(stream=io.BytesIO(data), name="Document.docx", limits=Limits())


def test_a_pdf_without_an_escrowed_password_says_it_is_locked(encrypted_pdf):
    path, _ = encrypted_pdf
    result = run_pdf(path, [DocumentPassword(reference="escrowed secret 1", value="wrong")])
    assert result.errors == [LOCKED_MESSAGE] and "escrow a password" in LOCKED_MESSAGE
    assert result.properties["document.locked"] is True and not result.text


def test_an_escrowed_password_opens_the_pdf_and_is_recorded_by_reference(encrypted_pdf):
    path, expected = encrypted_pdf
    passwords = [
        DocumentPassword(reference="escrowed secret 1", value="wrong"),
        DocumentPassword(reference="escrowed secret 2", value=PDF_PASSWORD),
    ]
    result = run_pdf(path, passwords)
    assert result.properties["document.unlockedWith"] == "escrowed secret 2"
    assert "document.locked" not in result.properties
    # every word poppler reads is in the text (pypdf sometimes joins a badge's repeated words)
    for word in expected.split():
        assert word in result.text
    assert PDF_PASSWORD not in repr(result)


def test_an_escrowed_password_opens_an_encrypted_docx(encrypted_docx):
    data, expected_words = encrypted_docx
    locked = run_office(data)
    assert locked.errors == [LOCKED_MESSAGE] and locked.properties["document.locked"] is True
    result = run_office(data, [DocumentPassword(reference="escrowed secret 7", value=DOCX_PASSWORD)])
    assert result.properties["document.unlockedWith"] == "escrowed secret 7"
    assert result.properties["document.type"] == "docx" and result.properties["document.encrypted"] is True
    assert result.text.split() == expected_words
    assert DOCX_PASSWORD not in repr(result)


@pytest.mark.corpus
def test_a_document_password_escrowed_for_the_evidence_reaches_the_pdf_tool(demo, api, settings, encrypted_pdf):
    from evidence.models import Evidence
    from evidence.services.escrow import secret_escrow
    from search.models import Trace
    from search.services import extraction_execute, extraction_start

    path, _ = encrypted_pdf
    settings.CUSTODIA_IMPORT_ROOTS = [path.parent]
    api.as_user(demo.custodian)
    body = api.post("/api/evidence/import", {"case": demo.case.pk, "paths": [str(path)]}, format="json").json()
    evidence = Evidence.objects.get(pk=body["id"])
    extraction_execute(run_id=extraction_start(actor=demo.investigator, evidence=evidence).pk)
    locked = Trace.objects.get(evidence_id=evidence.pk, name=path.name)
    assert locked.properties["document.locked"] is True
    assert any(LOCKED_MESSAGE in str(error) for error in locked.errors)

    secret = secret_escrow(
        actor=demo.custodian, evidence=evidence, kind="document_password", name="readme", value=PDF_PASSWORD.encode()
    )
    extraction_execute(run_id=extraction_start(actor=demo.investigator, evidence=evidence).pk)
    opened = Trace.objects.get(evidence_id=evidence.pk, name=path.name)
    assert opened.properties["document.unlockedWith"] == f"escrowed secret {secret.pk}"
    assert "document.locked" not in opened.properties
    assert PDF_PASSWORD not in str(opened.properties) + str(opened.errors)
