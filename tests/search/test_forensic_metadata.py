"""Typing and metadata (issue #18 items 10 and 12): named data streams typed like files, a file system's own
structures typed as such, deleted fragmented FAT files recovered from free clusters.

Images are built here with Debian's tools (mkntfs/ntfscp, mkfs.vfat/mcopy) without mounting; The Sleuth
Kit's icat is the independent reader each content is checked against.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from search.extraction.traces import TraceRecord
from search.extraction.walker import WalkOptions, walk_image
from search.services import extraction_execute, extraction_start
from tests.corpus import require_corpus


def require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (make system-packages)")


def run(*command: str) -> bytes:
    # TZ=UTC: ``file`` prints property-set times in the local zone.
    environment = {**os.environ, "TZ": "UTC"}
    completed = subprocess.run(command, check=True, capture_output=True, env=environment)  # nosec B603  # test tools
    return completed.stdout


def walk(path: Path) -> list[TraceRecord]:
    with path.open("rb") as file_object:
        return list(walk_image(file_object=file_object, evidence_id="ev", options=WalkOptions(file_name=path.name)))


def ntfs_with_a_picture_in_a_stream(folder: Path) -> Path:
    """An NTFS volume whose ``host.txt`` carries a JPEG in its alternate data stream ``hidden.jpg``."""
    require_tools("mkntfs", "ntfscp", "fls", "icat")
    image = folder / "ads.ntfs"
    with image.open("wb") as file_object:
        file_object.truncate(8 * 1024 * 1024)
    run("mkntfs", "-F", "-Q", "-q", str(image))
    host = folder / "host.txt"
    host.write_bytes(b"nothing to see here\n")
    run("ntfscp", "-f", str(image), str(host), "host.txt")
    run("ntfscp", "-f", "-N", "hidden.jpg", str(image), str(require_corpus("files/exif-py/DSCN0021.jpg")), "host.txt")
    return image


def icat_md5(image: Path, listed_name: str) -> str:
    """The MD5 of a root-folder entry (``host.txt:hidden.jpg`` for a stream) as fls and icat read it."""
    for line in run("fls", str(image)).decode().splitlines():
        header, _, name = line.partition("\t")
        if name == listed_name:
            address = header.split()[-1].rstrip(":")
            return hashlib.md5(run("icat", str(image), address), usedforsecurity=False).hexdigest()
    raise AssertionError(f"fls does not list {listed_name}")


def test_a_picture_in_an_alternate_data_stream_is_a_trace_typed_like_a_file(tmp_path):
    image = ntfs_with_a_picture_in_a_stream(tmp_path)
    traces = walk(image)
    (host,) = [trace for trace in traces if trace.name == "host.txt"]
    (hidden,) = [trace for trace in traces if trace.name == "host.txt:hidden.jpg"]
    assert hidden.parent_uid == host.uid and "alternateDataStream" in hidden.types
    assert hidden.properties["file.mimeType"] == "image/jpeg"
    assert hidden.properties["file.streamOf"] == "/host.txt"
    expected = icat_md5(image, "host.txt:hidden.jpg")
    assert hidden.stream("raw").md5 == expected == host.stream("ads:hidden.jpg").md5
    assert host.properties["file.mimeType"] == "text/plain"


def test_a_file_systems_own_structures_are_typed_as_such_never_as_pictures(tmp_path):
    image = ntfs_with_a_picture_in_a_stream(tmp_path)
    with image.open("rb") as file_object:
        options = WalkOptions(file_name=image.name, keep_content=True)
        traces = {
            trace.properties.get("file.path"): trace
            for trace in walk_image(file_object=file_object, evidence_id="ev", options=options)
        }
    assert traces["/host.txt"].content is not None
    for path in ("/$MFT", "/$UpCase", "/$Secure", "/$Bitmap", "/$Extend/$ObjId"):
        trace = traces[path]
        assert "fileSystemMetadata" in trace.types, path
        assert all(stream.mime_type in (None, "application/x-file-system-metadata") for stream in trace.streams)
    # libmagic alone calls $UpCase a Targa picture: no content tool is given its bytes.
    assert traces["/$UpCase"].content is None


def test_search_finds_the_stream_as_a_picture_and_its_mime_type_in_the_facet(api, demo, settings, tmp_path):
    from evidence.models import Evidence

    image = ntfs_with_a_picture_in_a_stream(tmp_path)
    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    api.as_user(demo.custodian)
    body = api.post("/api/evidence/import", {"case": demo.case.pk, "paths": [str(image)]}, format="json").json()
    extraction_execute(
        run_id=extraction_start(actor=demo.investigator, evidence=Evidence.objects.get(pk=body["id"])).pk
    )

    api.as_user(demo.investigator)

    def search(query: str) -> dict:
        response = api.post(
            f"/api/cases/{demo.case.pk}/traces/search", {"query": query, "facets": ["mimeType", "type"]}, format="json"
        )
        assert response.status_code == 200, response.content
        return response.json()

    pictures = search("type:picture")
    assert [hit["name"] for hit in pictures["hits"]] == ["host.txt:hidden.jpg"]
    assert {"value": "image/jpeg", "count": 1} in pictures["facets"]["mimeType"]
    assert search('name:"$UpCase" AND type:fileSystemMetadata')["total"] == 1
    assert search('name:"$UpCase" AND type:picture')["total"] == 0


def legacy_word_document(folder: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(require_corpus("files/ingest-file/test-documents.zip")) as archive:
        path = folder / "testWORD.doc"
        path.write_bytes(archive.read("testWORD.doc"))
    return path


def test_a_legacy_word_documents_body_text_is_what_antiword_and_catdoc_read(tmp_path):
    require_tools("antiword", "catdoc")
    from search.extraction.tools import analyse

    path = legacy_word_document(tmp_path)
    node = analyse(stream_opener=lambda: path.open("rb"), name=path.name)
    assert not node.errors
    for tool in ("antiword", "catdoc"):
        assert node.text.split() == run(tool, str(path)).decode().split(), tool


def test_a_legacy_word_document_carries_every_summary_information_field_file_reads(tmp_path):
    """libmagic's own property-set reader (``file``) is the independent truth for SummaryInformation."""
    require_tools("file")
    from search.extraction.tools import analyse

    path = legacy_word_document(tmp_path)
    described = dict(
        part.split(": ", 1) for part in run("file", "-b", str(path)).decode().strip().split(", ") if ": " in part
    )
    properties = analyse(stream_opener=lambda: path.open("rb"), name=path.name).properties
    expected = {
        "Title": ("document.title", str),
        "Author": ("document.author", str),
        "Template": ("document.template", str),
        "Last Saved By": ("document.lastModifiedBy", str),
        "Revision Number": ("document.revision", str),
        "Name of Creating Application": ("document.application", str),
        "Number of Pages": ("document.pageCount", int),
        "Number of Words": ("document.wordCount", int),
        "Number of Characters": ("document.characterCount", int),
        "Security": ("document.security", int),
        "Code page": ("document.codePage", int),
    }
    for label, (property_name, kind) in expected.items():
        assert properties[property_name] == kind(described[label]), label
    minutes, seconds = described["Total Editing Time"].split(":")
    assert properties["document.editingTimeSeconds"] == int(minutes) * 60 + int(seconds)
    created = datetime.strptime(described["Create Time/Date"], "%a %b %d %H:%M:%S %Y")
    assert properties["document.createdOn"] == created.strftime("%Y-%m-%dT%H:%M:%SZ")


def e01_with_a_wrong_stored_md5() -> bytes:
    """The corpus E01 with one byte of its stored MD5 changed, and its hash section's checksum made right
    again: a well-formed image whose stored hash disagrees with its media."""
    import struct
    import zlib

    data = bytearray(require_corpus("files/dfvfs/ext2.E01").read_bytes())
    position = data.find(bytes.fromhex("196066add11fb71c4c49cf1bb50d6d24"))  # ewfinfo's stored MD5
    data[position] ^= 0xFF
    data[position + 32 : position + 36] = struct.pack("<I", zlib.adler32(bytes(data[position : position + 32])))
    return bytes(data)


def upload_and_seal(api, demo, data: bytes, name: str):
    from tests.evidence.conftest import upload_all

    api.as_user(demo.custodian)
    body = {"label": "Uploaded E01", "kind": "disk_image", "original_name": name}
    response = api.post(f"/api/cases/{demo.case.pk}/evidence/", body, format="json")
    assert response.status_code == 201, response.content
    evidence_id = response.json()["id"]
    upload_all(api, evidence_id, data)
    return evidence_id, api.post(f"/api/evidence/{evidence_id}/seal")


def test_an_uploaded_e01s_stored_md5_is_checked_against_its_media(api, demo):
    from evidence.models import Evidence

    evidence_id, response = upload_and_seal(api, demo, require_corpus("files/dfvfs/ext2.E01").read_bytes(), "a.E01")
    assert response.status_code == 200, response.content
    check = Evidence.objects.get(pk=evidence_id).format_details["ewf_check"]
    assert check["checked"] and check["matches"] is True
    assert check["stored_md5"] == check["media_md5"] == "196066add11fb71c4c49cf1bb50d6d24"


def test_an_uploaded_e01_whose_stored_md5_differs_is_refused_and_marked_failed(api, demo):
    from audit.models import AuditEvent
    from evidence.models import Evidence, EvidenceState

    evidence_id, response = upload_and_seal(api, demo, e01_with_a_wrong_stored_md5(), "b.E01")
    assert response.status_code == 409 and response.json()["error"] == "ewf_hash_mismatch"
    evidence = Evidence.objects.get(pk=evidence_id)
    assert evidence.state == EvidenceState.FAILED and "e66066add11fb71c4c49cf1bb50d6d24" in evidence.failure_reason
    event = AuditEvent.objects.filter(action="evidence.seal", target_id=str(evidence_id)).latest("sequence")
    assert event.outcome == "failed" and event.details["ewf"]["matches"] is False
