"""The generated demo disk (evidence/demo_image.py): checked with The Sleuth Kit, then sealed, extracted and
searched as `make run` leaves it in the demo case."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

from evidence.demo_image import (
    DELETED_FILE,
    DEMO_LABEL,
    GPS_PICTURE,
    MAIL_SUBJECT,
    ZIP_FILE,
    ZIP_MEMBER,
    build_demo_image,
    missing_tools,
    write_demo_tree,
)
from search.services import extraction_execute, extraction_start

SLEUTH_KIT = ("fls", "icat", "mmls")


@pytest.fixture
def tools():
    missing = missing_tools()
    if missing:
        pytest.skip(f"the demo disk needs {', '.join(missing)} (apt: e2fsprogs fdisk)")
    absent = [tool for tool in SLEUTH_KIT if shutil.which(tool) is None]
    if absent:
        pytest.skip(f"checking the demo disk needs {', '.join(absent)} (apt: sleuthkit)")


@pytest.fixture
def demo_disk(tools, tmp_path):
    return build_demo_image(destination=tmp_path / "image" / "demo-disk.img")


def sleuth_kit(*arguments: str) -> bytes:
    return subprocess.run(list(arguments), check=True, capture_output=True).stdout


def test_the_sleuth_kit_finds_every_file_and_the_deleted_one(demo_disk, tmp_path):
    partitions = sleuth_kit("mmls", str(demo_disk.path)).decode()
    assert re.search(r"^002:\s+000:000\s+0000002048\s.*Linux \(0x83\)$", partitions, flags=re.MULTILINE), partitions
    sector = str(demo_disk.partition_offset // 512)
    listing = sleuth_kit("fls", "-r", "-p", "-o", sector, str(demo_disk.path)).decode()
    entries = {}  # path → (deleted, inode)
    for line in listing.splitlines():
        match = re.match(r"^r/r (\* )?(\d+):\t(.+)$", line)
        if match:
            entries[match[3]] = (bool(match[1]), match[2])
    assert set(entries) == set(demo_disk.files), listing
    assert {path for path, (deleted, _) in entries.items() if deleted} == {DELETED_FILE}
    write_demo_tree(root=tmp_path / "tree")
    for relative in demo_disk.files:
        # Every file's bytes, the deleted one's too (debugfs leaves its extents, as a quick delete would).
        content = sleuth_kit("icat", "-o", sector, str(demo_disk.path), entries[relative][1])
        assert hashlib.sha256(content).digest() == hashlib.sha256((tmp_path / "tree" / relative).read_bytes()).digest()


def test_two_builds_are_byte_identical(demo_disk, tmp_path):
    again = build_demo_image(destination=tmp_path / "again.img")
    assert again.path.read_bytes() == demo_disk.path.read_bytes()


def search(api, demo, query):
    response = api.post(f"/api/cases/{demo.case.pk}/traces/search", {"query": query}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["hits"]


def test_sealed_and_extracted_the_demo_disk_is_searchable(demo, api, settings, demo_disk):
    from evidence.models import Evidence
    from evidence.services.intake import evidence_import
    from search.models import Trace

    settings.CUSTODIA_IMPORT_ROOTS = [demo_disk.path.parent]
    evidence = evidence_import(
        actor=demo.custodian, case=demo.case, paths=[str(demo_disk.path)], label=DEMO_LABEL, mode="now"
    )
    assert Evidence.objects.get(pk=evidence.pk).is_sealed
    run = extraction_execute(run_id=extraction_start(actor=demo.investigator, evidence=evidence).pk)
    assert run.state == "done", run.failure
    api.as_user(demo.detective)

    mails = search(api, demo, "type:email")
    assert MAIL_SUBJECT in {hit["properties"].get("email.subject") for hit in mails}
    assert search(api, demo, 'name="containers.csv"'), "the e-mail's attachment"

    located = search(api, demo, "type:gps")
    assert [hit["name"] for hit in located] == [Path(GPS_PICTURE).name]
    assert round(located[0]["properties"]["gps.latitude"], 3) == 52.373

    members = search(api, demo, f'name="{ZIP_MEMBER}"')
    assert [hit["path"].endswith(f"/{ZIP_FILE}/{ZIP_MEMBER}") for hit in members] == [True]

    deleted = search(api, demo, "deleted:true")
    assert Path(DELETED_FILE).name in {hit["name"] for hit in deleted}

    visits = search(api, demo, "type:browserHistory")
    assert any("wipe+browser+history" in hit["properties"]["browserHistory.url"] for hit in visits)
    documents = {hit["name"] for hit in search(api, demo, '"Harbour Logistics"')}
    assert {"report.pdf", "minutes.docx"} <= documents, documents
    failed = {trace.path: trace.errors for trace in Trace.objects.filter(evidence=evidence) if trace.errors}
    assert failed == {}, "no tool fails on the generated content"


def test_seed_demo_evidence_seals_the_generated_disk_once(demo, settings, tools, tmp_path, monkeypatch):
    from evidence.models import Evidence

    settings.DATA_DIR = tmp_path
    monkeypatch.setenv("CUSTODIA_TESTDATA", str(tmp_path / "no-corpus"))
    settings.CUSTODIA_IMPORT_ROOTS = []  # the command sets it; pytest-django restores it
    output = io.StringIO()
    call_command("seed_demo_evidence", stdout=output)
    evidence = Evidence.objects.get(case=demo.case, label=DEMO_LABEL)
    assert evidence.is_sealed and evidence.original_name == "demo-disk.img"
    assert "No corpus image" in output.getvalue()
    call_command("seed_demo_evidence", stdout=output)
    assert Evidence.objects.filter(case=demo.case, label=DEMO_LABEL).count() == 1
    assert "already has 'Demo disk (generated)'" in output.getvalue()
    assert os.path.isfile(tmp_path / "demo" / "demo-disk.img")


@pytest.mark.corpus
def test_with_the_corpus_both_images_are_sealed(demo, settings, tools, tmp_path, monkeypatch):
    from evidence.models import Evidence
    from tests.corpus import require_corpus, testdata_dir

    require_corpus("files/dfvfs/ext2.E01")
    settings.DATA_DIR = tmp_path
    monkeypatch.setenv("CUSTODIA_TESTDATA", str(testdata_dir()))
    settings.CUSTODIA_IMPORT_ROOTS = []  # the command sets it; pytest-django restores it
    call_command("seed_demo_evidence", stdout=io.StringIO())
    sealed = dict(Evidence.objects.filter(case=demo.case).values_list("label", "state"))
    assert sealed == {DEMO_LABEL: "sealed", "Laptop 1, internal disk (E01)": "sealed"}
