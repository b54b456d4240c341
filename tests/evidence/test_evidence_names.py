"""Issue #20 items 1 and 2: evidence named as people name it (label, original file name, extension of a link
download) and the facts labs record at registration (exhibit, bag and seal numbers, device, tool, examiner),
with custody and analysis state apart and a "matches declared" mark per declared hash."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from evidence.links_views import content_disposition, download_name
from evidence.models import Evidence
from evidence.services.upload import clean_file_name
from tests.evidence.conftest import CHUNK, evidence_row, hashes_of

FACTS = {
    "exhibit_number": "EX-0042",
    "bag_number": "BAG 77812",
    "seal_number": "S-991",
    "make": "Samsung",
    "model": "860 EVO",
    "serial_number": "S3Z9NB0K123456",
    "acquisition_tool": "ewfacquire",
    "acquisition_tool_version": "20140608",
    "examiner": "DC Jones",
}


def test_registration_facts_over_the_api(register, sample, api):
    body = register(**FACTS, declared_sha256=hashes_of(sample)["sha256"], declared_md5="0" * 32)
    assert {name: body[name] for name in FACTS} == FACTS
    assert body["custody_state"] == "registered" and body["analysis_state"] == "not_started"
    assert [(row["algorithm"], row["matches"]) for row in body["declared_hashes"]] == [("md5", None), ("sha256", None)]
    event = AuditEvent.objects.get(action="evidence.register", target_id=body["id"])
    assert event.details["recorded"]["exhibit_number"] == "EX-0042"


def test_declared_hash_marks_after_seal(register, sample, api):
    body = register(declared_sha256=hashes_of(sample)["sha256"], declared_sha1=hashes_of(sample)["sha1"])
    from tests.evidence.conftest import upload_all

    upload_all(api, body["id"], sample)
    sealed = api.post(f"/api/evidence/{body['id']}/seal").json()
    assert sealed["custody_state"] == "sealed"
    assert [row["matches"] for row in sealed["declared_hashes"]] == [True, True]


def test_registration_facts_refused_when_too_long_or_unknown(api, demo):
    api.as_user(demo.custodian)
    url = f"/api/cases/{demo.case.pk}/evidence/"
    too_long = api.post(url, {"label": "x", "kind": "file", "exhibit_number": "9" * 101}, format="json")
    assert too_long.status_code == 400 and "exhibit_number" in too_long.json()["detail"]
    unknown = api.post(url, {"label": "x", "kind": "file", "exhibit": "1"}, format="json")
    assert unknown.status_code == 400


def test_upload_keeps_the_file_name_it_came_with(api, register, sample):
    body = register()
    total = len(sample)
    response = api.generic(
        "PUT",
        f"/api/evidence/{body['id']}/content",
        sample[:CHUNK],
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes 0-{CHUNK - 1}/{total}",
        HTTP_X_FILE_NAME="C%3A%5Cimages%5Cl%C3%A4ptop.dd",
    )
    assert response.status_code == 200, response.content
    assert evidence_row(body["id"]).original_name == "läptop.dd"
    # A later piece naming another file changes nothing: the name is the first one given.
    api.generic(
        "PUT",
        f"/api/evidence/{body['id']}/content",
        sample[CHUNK:],
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes {CHUNK}-{total - 1}/{total}",
        HTTP_X_FILE_NAME="other.bin",
    )
    assert evidence_row(body["id"]).original_name == "läptop.dd"


@pytest.mark.parametrize(
    ("name", "clean"),
    [("disk.E01", "disk.E01"), ("../../etc/passwd", "passwd"), ("a\x00b", ""), ("..", ""), ("", "")],
)
def test_clean_file_name(db, name, clean):
    assert clean_file_name(name) == clean


@pytest.mark.parametrize(
    ("label", "original", "image_format", "expected"),
    [
        ("Laptop 1", "disk.E01", "ewf", "Laptop 1.E01"),
        ("Laptop 1", "", "ewf", "Laptop 1.E01"),
        ("Laptop 1", "disk.raw", "raw", "Laptop 1.raw"),
        ("Laptop 1", "", "raw", "Laptop 1.bin"),
        ("Laptop 1", "a.E01, a.E02", "ewf", "Laptop 1.bin"),
        ("USB/stick: 2", "stick.dd", "raw", "USB_stick_ 2.dd"),
        ("image.dd", "image.dd", "raw", "image.dd"),
    ],
)
def test_download_name_is_label_with_the_real_extension(db, label, original, image_format, expected):
    evidence = Evidence(label=label, original_name=original, format=image_format)
    assert download_name(evidence) == expected


def test_content_disposition_names_the_file_twice(db):
    header = content_disposition('Täter "laptop".E01')
    assert header == "attachment; filename=\"T_ter _laptop_.E01\"; filename*=UTF-8''T%C3%A4ter%20%22laptop%22.E01"


def test_intake_commands_take_the_registration_facts(demo, settings, tmp_path):
    image = tmp_path / "stick.dd"
    image.write_bytes(b"\0" * 4096)
    settings.CUSTODIA_IMPORT_ROOTS = [str(tmp_path)]
    call_command(
        "import_evidence",
        str(image),
        "--case",
        demo.case.reference,
        "--as",
        demo.custodian.username,
        "--now",
        "--exhibit-number",
        "EX-7",
        "--examiner",
        "DC Jones",
        stdout=open("/dev/null", "w"),  # noqa: SIM115
    )
    evidence = Evidence.objects.get(original_name="stick.dd")
    assert (evidence.exhibit_number, evidence.examiner, evidence.bag_number) == ("EX-7", "DC Jones", "")
    assert evidence.custody_state == "sealed" and evidence.analysis_state in ("not_started", "extracting", "extracted")


def test_the_root_trace_is_named_as_uploaded_and_read_as_its_format(api, demo):
    """An E01 uploaded as "suspect disk.bin": libewf reads it as an .E01, the root trace shows the upload's
    name, and a link download is the label with .E01 (the detected format's extension)."""
    from search.models import Trace
    from search.services import extraction_execute, extraction_start
    from tests.corpus import require_corpus

    data = require_corpus("files/dfvfs/ext2.E01").read_bytes()
    api.as_user(demo.custodian)
    evidence_id = api.post(
        f"/api/cases/{demo.case.pk}/evidence/", {"label": "Suspect disk", "kind": "disk_image"}, format="json"
    ).json()["id"]
    response = api.generic(
        "PUT",
        f"/api/evidence/{evidence_id}/content",
        data,
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes 0-{len(data) - 1}/{len(data)}",
        HTTP_X_FILE_NAME="suspect%20disk.bin",
    )
    assert response.status_code == 200, response.content
    assert api.post(f"/api/evidence/{evidence_id}/seal").json()["format"] == "ewf"
    evidence = evidence_row(evidence_id)
    extraction_execute(run_id=extraction_start(actor=demo.investigator, evidence=evidence).pk)
    root = Trace.objects.get(evidence_id=evidence_id, parent_uid="")
    assert root.name == "suspect disk.bin" and root.properties["image.format"] == "ewf"
    assert Trace.objects.filter(evidence_id=evidence_id, name="passwords.txt").exists()
    assert download_name(evidence) == "Suspect disk.E01"
