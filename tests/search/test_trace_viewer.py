"""The data service, the data endpoint (Range, permissions, audit) and the trace page, on the corpus."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from audit.models import AuditEvent
from search.data import thumbnail_png
from search.models import Trace
from search.services import extraction_execute, extraction_start
from tests.corpus import require_corpus, testdata_dir

ATTACHED_NOTE = b"Meet at the pier at nine.\n" * 40
PASSWORDS_SHA256 = "02a2a6af2f1ecf4720d7d49d640f0d0a269a7ec733e41973bdd34f09dad0e252"


@pytest.fixture
def extracted(demo, api, settings):
    from evidence.models import Evidence

    settings.CUSTODIA_IMPORT_ROOTS = [testdata_dir() / "files"]
    api.as_user(demo.custodian)
    path = str(require_corpus("files/dfvfs/ext2.E01"))
    body = api.post("/api/evidence/import", {"case": demo.case.pk, "paths": [path]}, format="json").json()
    run = extraction_start(actor=demo.investigator, evidence=Evidence.objects.get(pk=body["id"]))
    extraction_execute(run_id=run.pk)
    return body["id"]


@pytest.fixture
def passwords(extracted) -> Trace:
    return Trace.objects.get(evidence_id=extracted, name="passwords.txt")


def data_url(demo, trace: Trace, stream: str = "raw") -> str:
    return f"/api/cases/{demo.case.pk}/traces/{trace.uid}/data/{stream}"


def page_url(demo, trace: Trace) -> str:
    return f"/cases/{demo.case.pk}/traces/{trace.uid}/"


@pytest.mark.corpus
def test_the_data_endpoint_reads_the_stream_from_the_sealed_container(demo, api, passwords):
    api.as_user(demo.detective)
    response = api.get(data_url(demo, passwords))
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    raw = next(s for s in passwords.streams if s["name"] == "raw")
    assert len(body) == raw["size"] == 116
    assert hashlib.sha256(body).hexdigest() == raw["sha256"] == PASSWORDS_SHA256
    assert response["X-Content-SHA256"] == PASSWORDS_SHA256
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == raw["mime_type"]
    event = AuditEvent.objects.filter(action="api-trace-data.access", actor="detective").last()
    assert event.target_id == passwords.uid and event.details["stream"] == "raw"


@pytest.mark.corpus
def test_a_range_request_returns_the_slice_with_206_and_416_beyond_the_end(demo, api, passwords):
    api.as_user(demo.detective)
    whole = b"".join(api.get(data_url(demo, passwords)).streaming_content)
    part = api.get(data_url(demo, passwords), HTTP_RANGE="bytes=10-29")
    assert part.status_code == 206
    assert part["Content-Range"] == "bytes 10-29/116"
    assert b"".join(part.streaming_content) == whole[10:30]
    tail = api.get(data_url(demo, passwords), HTTP_RANGE="bytes=-6")
    assert b"".join(tail.streaming_content) == whole[-6:]
    beyond = api.get(data_url(demo, passwords), HTTP_RANGE="bytes=116-")
    assert beyond.status_code == 416 and beyond["Content-Range"] == "bytes */116"
    event = AuditEvent.objects.filter(action="api-trace-data.access", actor="detective").order_by("pk")
    assert any(e.details.get("range") == "bytes=10-29" for e in event)


@pytest.mark.corpus
def test_an_unknown_stream_is_a_clear_404(demo, api, passwords):
    api.as_user(demo.detective)
    response = api.get(data_url(demo, passwords, "thumbnail"))
    assert response.status_code == 404
    assert response.json()["error"] == "no_such_stream"


@pytest.mark.corpus
@pytest.mark.parametrize(("caller", "status"), [("outsider", 404), ("custodian", 403), ("detective", 200)])
def test_who_may_read_trace_bytes(demo, api, passwords, caller, status):
    api.as_user(demo.users[caller])
    response = api.get(data_url(demo, passwords))
    assert response.status_code == status
    if status != 200:
        assert "passwords" not in response.content.decode()


@pytest.mark.corpus
def test_the_hex_view_of_passwords_txt_shows_its_first_bytes_at_offset_0(demo, api, client, passwords):
    api.as_user(demo.detective)
    first = b"".join(api.get(data_url(demo, passwords), HTTP_RANGE="bytes=0-15").streaming_content)
    assert len(first) == 16
    client.force_login(demo.detective)
    response = client.get(page_url(demo, passwords))
    assert response.status_code == 200
    page = response.content.decode()
    row = " ".join(f"{byte:02x}" for byte in first)
    assert f'<td class="hex-offset">00000000</td><td class="hex-bytes">{row}</td>' in page
    ascii_text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in first)
    assert ascii_text in page
    assert PASSWORDS_SHA256 in page  # the streams table
    assert "by " in page and "file" in page  # properties grouped by type, with their tool
    parent = Trace.objects.get(uid=passwords.parent_uid)
    assert f'href="/cases/{demo.case.pk}/traces/{parent.uid}/"' in page


@pytest.mark.corpus
def test_hex_pages_are_4_kib_and_page_with_htmx(demo, client, extracted):
    image = Trace.objects.get(evidence_id=extracted, parent_uid="")
    client.force_login(demo.detective)
    part = client.get(page_url(demo, image), {"part": "hex", "offset": 4096}, HTTP_HX_REQUEST="true")
    html = part.content.decode()
    assert part.status_code == 200 and html.startswith('<div id="hex"')
    assert '<td class="hex-offset">00001000</td>' in html and '<td class="hex-offset">00001ff0</td>' in html
    assert '<td class="hex-offset">00002000</td>' not in html and "offset=8192" in html and "offset=0" in html
    event = AuditEvent.objects.filter(action="trace-detail.access", actor="detective").last()
    assert event.details["offset"] == 4096


@pytest.mark.corpus
@pytest.mark.parametrize(("caller", "status"), [("outsider", 404), ("custodian", 403), ("detective", 200)])
def test_who_may_open_the_trace_page(demo, client, passwords, caller, status):
    client.force_login(demo.users[caller])
    response = client.get(page_url(demo, passwords))
    assert response.status_code == status
    if status != 200:
        assert "passwords" not in response.content.decode()


@pytest.mark.corpus
def test_search_hits_link_to_the_trace_page(demo, client, passwords):
    client.force_login(demo.detective)
    page = client.get(f"/cases/{demo.case.pk}/traces/", {"q": "passwords"}).content.decode()
    assert f'href="{page_url(demo, passwords)}"' in page


@pytest.mark.corpus
def test_an_email_trace_shows_its_headers_and_body_and_a_tool_child_without_bytes_says_so(demo, api, client, passwords):
    email = Trace.objects.create(
        uid=f"{passwords.uid}-1",
        parent_uid=passwords.uid,
        evidence=passwords.evidence,
        case=passwords.case,
        run=passwords.run,
        ordinal=10_000,
        name="Quarterly figures",
        path=passwords.path + "/Quarterly figures",
        types=["email"],
        properties={"email.from": "alice@example.org", "email.to": ["bob@example.org"], "email.subject": "Figures"},
        tools={"email": ["custodia-mail", "1.0"]},
        streams=[{"name": "raw", "size": 3, "data_path": "", "sha256": "0" * 64, "mime_type": None}],
        errors=[{"tool": "custodia-mail", "message": "broken MIME part", "stream": "raw"}],
        text="Please find the figures attached.",
    )
    client.force_login(demo.detective)
    page = client.get(page_url(demo, email)).content.decode()
    assert "alice@example.org" in page and "bob@example.org" in page and "Figures" in page
    assert "Please find the figures attached." in page and "broken MIME part" in page
    assert "custodia-mail 1.0" in page
    api.as_user(demo.detective)
    response = api.get(data_url(demo, email))
    assert response.status_code == 404 and response.json()["error"] == "not_rereadable"


def _picture(fmt: str, size=(1200, 600)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF"])
def test_a_thumbnail_is_a_re_encoded_png_of_at_most_256_pixels(fmt):
    from PIL import Image

    original = _picture(fmt)
    png = thumbnail_png(data=original)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png != original
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and max(image.size) == 256 and image.size == (256, 128)


def test_a_thumbnail_of_something_that_is_not_a_picture_is_refused():
    from custodia.errors import ServiceError

    with pytest.raises(ServiceError) as refused:
        thumbnail_png(data=b"<script>alert(1)</script>")
    assert refused.value.code == "not_a_picture"


def _import_and_extract(demo, api, settings, image) -> str:
    from evidence.models import Evidence

    settings.CUSTODIA_IMPORT_ROOTS = [image.parent]
    api.as_user(demo.custodian)
    body = api.post("/api/evidence/import", {"case": demo.case.pk, "paths": [str(image)]}, format="json").json()
    run = extraction_start(actor=demo.investigator, evidence=Evidence.objects.get(pk=body["id"]))
    extraction_execute(run_id=run.pk)
    return body["id"]


@pytest.mark.corpus
def test_a_decrypted_bitlocker_volume_is_re_read_with_its_escrowed_secret(demo, api, settings, tmp_path):
    import lzma

    from dfvfs.resolver import resolver as dfvfs_resolver

    from evidence.models import Evidence
    from evidence.services.escrow import secret_escrow

    image = tmp_path / "bitlocker.img"
    image.write_bytes(lzma.decompress(require_corpus("files/cryptsetup/bitlk-aes-xts-128.img.xz").read_bytes()))
    evidence_id = _import_and_extract(demo, api, settings, image)
    evidence = Evidence.objects.get(pk=evidence_id)
    secret_escrow(actor=demo.custodian, evidence=evidence, kind="bitlocker_password", name="volume", value=b"anaconda")
    run = extraction_start(actor=demo.investigator, evidence=evidence)
    extraction_execute(run_id=run.pk)
    volume = Trace.objects.get(evidence_id=evidence_id, properties__has_key="encryptedVolume.unlocked")
    decrypted = next(s for s in volume.streams if s["name"] == "decrypted")
    api.as_user(demo.detective)
    response = api.get(data_url(demo, volume, "decrypted"))
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert hashlib.sha256(body).hexdigest() == decrypted["sha256"]
    assert not dfvfs_resolver.Resolver.key_chain._credentials_per_path_spec  # no secret lingers


@pytest.fixture
def picture_image(tmp_path):
    import shutil
    import subprocess

    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 is not installed")
    root = tmp_path / "root"
    root.mkdir()
    (root / "photo.jpg").write_bytes(_picture("JPEG", (900, 600)))
    (root / "fake.jpg").write_bytes(b"<html><script>alert(1)</script></html>")
    with zipfile.ZipFile(root / "holiday.zip", "w") as archive:
        archive.writestr("notes.txt", ATTACHED_NOTE)
    image = tmp_path / "images" / "pictures.raw"
    image.parent.mkdir()
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-d", str(root), "-L", "pictures", str(image), "4M"],
        check=True,
        capture_output=True,
    )
    return image


def test_a_picture_in_an_ext4_image_gets_a_thumbnail_and_never_its_original_bytes_inline(
    demo, api, client, settings, picture_image
):
    from PIL import Image

    evidence_id = _import_and_extract(demo, api, settings, picture_image)
    photo = Trace.objects.get(evidence_id=evidence_id, name="photo.jpg")
    client.force_login(demo.detective)
    page = client.get(page_url(demo, photo)).content.decode()
    thumbnail = f"/cases/{demo.case.pk}/traces/{photo.uid}/thumbnail/raw.png"
    assert f'src="{thumbnail}"' in page
    response = client.get(thumbnail)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.format == "PNG" and image.size == (256, 171)
    fake = Trace.objects.get(evidence_id=evidence_id, name="fake.jpg")
    refused = client.get(f"/cases/{demo.case.pk}/traces/{fake.uid}/thumbnail/raw.png")
    assert refused.status_code == 415 and b"<script>" not in refused.content
    client.force_login(demo.outsider)
    assert client.get(thumbnail).status_code == 404


def test_an_archive_member_is_re_derived_from_its_archive_and_checked_against_its_hash(
    demo, api, settings, picture_image
):
    evidence_id = _import_and_extract(demo, api, settings, picture_image)
    archive = Trace.objects.get(evidence_id=evidence_id, name="holiday.zip")
    digest = hashlib.sha256(ATTACHED_NOTE).hexdigest()
    # The member as extraction recorded it (the archive tool's child): no data path of its own.
    member = Trace.objects.get(evidence_id=evidence_id, parent_uid=archive.uid, name="notes.txt")
    stream = next(s for s in member.streams if s["name"] == "raw")
    assert (stream["data_path"], stream["sha256"]) == ("", digest)
    api.as_user(demo.detective)
    response = api.get(data_url(demo, member), HTTP_RANGE="bytes=0-24")
    assert response.status_code == 206 and b"".join(response.streaming_content) == ATTACHED_NOTE[:25]
    whole = b"".join(api.get(data_url(demo, member)).streaming_content)
    assert hashlib.sha256(whole).hexdigest() == digest
    # Bytes that do not hash to what extraction recorded are never served.
    Trace.objects.filter(pk=member.pk).update(streams=[{**stream, "sha256": "0" * 64}])
    refused = api.get(data_url(demo, member))
    assert refused.status_code == 404 and refused.json()["error"] == "not_rereadable"


# DFTT #6's answer key (GROUND_TRUTH.md): the MD5 of every deleted file, three of them fragmented.
DFTT_FAT_DELETED_MD5 = {
    "frag1.dat": "7a3bc5b763bef201202108f4ba128149",
    "frag2.dat": "0e80ab84ef0087e60dfc67b88a1cf13e",
    "frag3.dat": "21121699487f3fbbdb9a4b3391b6d3e0",
    "sing.dat": "59b20779f69ff9f0ac5fcd2c38835a79",
    "mult1.dat": "ffd27bd782bdce67750b6b9ee069d2ef",
    "mult2.dat": "59cf0e9cd107bc1e75afb7374f6e05bb",
}


@pytest.mark.corpus
def test_the_data_endpoint_serves_a_recovered_fat_file_from_its_clusters(demo, api, client, settings, tmp_path):
    # #18: the answer key's bytes, not TSK's contiguous reading of the data path (frag1.dat's "incorrect MD5").
    member = zipfile.ZipFile(require_corpus("files/dftt/6-undel-fat.zip"))
    name = next(entry for entry in member.namelist() if entry.endswith(".dd"))
    image = tmp_path / "dftt" / "6-fat-undel.dd"
    image.parent.mkdir()
    image.write_bytes(member.read(name))
    evidence_id = _import_and_extract(demo, api, settings, image)
    recovered = Trace.objects.filter(evidence_id=evidence_id, deleted=True, properties__has_key="file.recovered")
    by_suffix = {
        suffix: trace for trace in recovered for suffix in DFTT_FAT_DELETED_MD5 if trace.name[1:] == suffix[1:]
    }
    assert set(by_suffix) == set(DFTT_FAT_DELETED_MD5)
    api.as_user(demo.detective)
    for suffix, md5 in DFTT_FAT_DELETED_MD5.items():
        trace = by_suffix[suffix]
        raw = next(s for s in trace.streams if s["name"] == "raw")
        assert raw["data_location"]["kind"] == "clusters"
        body = b"".join(api.get(data_url(demo, trace)).streaming_content)
        assert hashlib.md5(body, usedforsecurity=False).hexdigest() == raw["md5"] == md5, suffix
        part = api.get(data_url(demo, trace), HTTP_RANGE="bytes=700-")  # across a cluster's end when larger
        assert part.status_code == 206 and b"".join(part.streaming_content) == body[700:], suffix
    client.force_login(demo.detective)  # the hex view reads the same clusters
    page = client.get(page_url(demo, by_suffix["frag1.dat"])).content.decode()
    row = " ".join(
        f"{byte:02x}" for byte in b"".join(api.get(data_url(demo, by_suffix["frag1.dat"])).streaming_content)[:16]
    )
    assert f'<td class="hex-bytes">{row}</td>' in page


def test_an_archive_members_stream_has_its_mime_type_and_data_raw_mime_type_finds_it(demo, api, settings, tmp_path):
    # #18: a JPEG inside a zip is typed on its data stream (data.raw.mimeType), not only as file.mimeType.
    from search.backends.elasticsearch.compiler import compile_query
    from search.backends.elasticsearch.documents import trace_document
    from search.query import parse_query

    archive = tmp_path / "upload" / "holiday.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as writer:
        writer.writestr("beach.jpg", _picture("JPEG", (64, 48)))
        writer.writestr("notes.txt", ATTACHED_NOTE)
    evidence_id = _import_and_extract(demo, api, settings, archive)
    photo = Trace.objects.get(evidence_id=evidence_id, name="beach.jpg")
    raw = next(s for s in photo.streams if s["name"] == "raw")
    assert raw["mime_type"] == photo.properties["file.mimeType"] == "image/jpeg"
    notes = Trace.objects.get(evidence_id=evidence_id, name="notes.txt")
    assert next(s for s in notes.streams if s["name"] == "raw")["mime_type"] == "text/plain"
    # SQL (SQLite here, PostgreSQL under tests/run_all.py), over the API.
    api.as_user(demo.detective)
    query = 'data.raw.mimeType:"image/jpeg"'
    found = api.post(f"/api/cases/{demo.case.pk}/traces/search", {"query": query}, format="json").json()
    assert [hit["uid"] for hit in found["hits"]] == [photo.uid]
    # Elasticsearch: the member's document carries the stream property the compiled query asks for.
    document = trace_document(
        uid=photo.uid,
        case_id=demo.case.pk,
        evidence_id=evidence_id,
        name=photo.name,
        path=photo.path,
        types=photo.types,
        properties=photo.properties,
        streams=photo.streams,
    )
    assert document["properties"]["data.raw.mimeType"] == "image/jpeg"
    assert "data.raw.mimeType" in str(compile_query(parse_query(query)).to_dict())
