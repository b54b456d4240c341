"""Content tools (search/extraction/tools) against the corpus's ground truth, and against hostile input.

The answer keys are ../shared/testdata/GROUND_TRUTH.md and truth/*.{readpst,parsed,messages,exif,meta,
pdfinfo,sqlite,listing,decompressed}.txt. Hostile inputs (zip bomb, path traversal, truncated PDF, deep
nesting) are built in the tests. No database is needed.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from search.extraction.tools import TOOLS, AnalysedTrace, Limits, analyse, run_tools
from search.extraction.tools.archives import archive_member_path
from search.extraction.tools.base import iso8601

REPO_ROOT = Path(__file__).resolve().parents[2]
SYSLOG_SHA256 = "0420b023f8dc1b71ff25191ce4ce88d10028f99f99f7c21532611f4c273aeae9"


def corpus_dir() -> Path:
    return Path(os.environ.get("CUSTODIA_TESTDATA", REPO_ROOT.parent / "shared" / "testdata"))


def require_corpus(relative_path: str) -> Path:
    path = corpus_dir() / relative_path
    if not path.exists():
        pytest.skip(f"test corpus file {path} is absent (set CUSTODIA_TESTDATA to the shared test data folder)")
    return path


def truth(name: str) -> str:
    return require_corpus(f"truth/{name}").read_text(encoding="utf-8")


def analyse_corpus_file(relative_path: str, **options) -> AnalysedTrace:
    path = require_corpus(f"files/{relative_path}")
    return analyse(stream_opener=lambda: path.open("rb"), name=path.name, **options)


def analyse_bytes(data: bytes, *, name: str, **options) -> AnalysedTrace:
    return analyse(stream_opener=lambda: io.BytesIO(data), name=name, **options)


def of_type(trace: AnalysedTrace, type_name: str) -> list[AnalysedTrace]:
    return [node for node in trace.walk() if type_name in node.types]


def all_errors(trace: AnalysedTrace) -> list[str]:
    return [error.message for node in trace.walk() for error in node.errors]


# ------------------------------------------------------------------------------------------ e-mail


@pytest.mark.corpus
def test_pst_folders_and_message_subjects_match_readpst():
    pst = analyse_corpus_file("ingest-file/testPST.pst")
    readpst = truth("testPST.pst.readpst.txt")
    expected_subjects = re.findall(r"^\s+\d+ Subject: (.+)$", readpst, flags=re.MULTILINE)
    assert len(expected_subjects) == 6

    assert pst.properties["mailbox.type"] == "pst"
    # readpst names the top folder after the message store: "hong-thai.nguyen".
    assert pst.properties["mailbox.displayName"] == "hong-thai.nguyen"
    folder_names = {node.properties["emailFolder.name"] for node in of_type(pst, "emailFolder")}
    assert "Éléments supprimés" in folder_names
    subjects = [node.properties["email.subject"] for node in of_type(pst, "email")]
    assert len(subjects) == 6
    # readpst's list is cut at the folded line of the long CHM subject: compare by prefix.
    for expected in expected_subjects:
        assert any(subject.startswith(expected.strip()) for subject in subjects), expected
    feature_generators = next(
        node for node in of_type(pst, "email") if node.properties["email.subject"] == "Feature Generators"
    )
    assert feature_generators.properties["email.from"] == "Kenig Ma <kenigma1122@gmail.com>"
    assert feature_generators.properties["email.to"] == ["users@opennlp.apache.org"]
    assert feature_generators.properties["email.sentOn"] == "2014-02-25T10:17:08Z"
    assert feature_generators.properties["email.messageId"].startswith("<CAJ+FrY6C_Hp_b")
    assert "Is there documentation" in feature_generators.text
    assert pst.tools["mailbox"].name == "libpff"


@pytest.mark.corpus
def test_pst_keeps_non_mail_items_apart():
    pst = analyse_corpus_file("java-libpst/dist-list.pst")
    classes = {node.properties["outlookItem.messageClass"] for node in of_type(pst, "outlookItem")}
    assert {"IPM.DistList", "IPM.Contact", "IPM.Appointment"} <= classes
    assert not of_type(pst, "email")
    appointment = next(node for node in of_type(pst, "outlookItem") if node.name.endswith("Test appointment"))
    # The exceptions ("This is the appointment at 9"…) are embedded messages libpff does not open.
    assert len(appointment.children) == 2
    assert all("embedded Outlook message" in error.message for child in appointment.children for error in child.errors)


@pytest.mark.corpus
def test_mbox_messages_match_mailbox_module():
    mbox = analyse_corpus_file("ingest-file/plan.mbox")
    assert mbox.properties["mailbox.messageCount"] == 1
    (message,) = mbox.children
    assert message.properties["email.subject"] == "Re: Our friends has a good plan"
    assert message.properties["email.from"] == "Dzmitry Lahoda <dzmitry.lahoda@gmail.com>"
    assert message.properties["email.sentOn"] == "2017-02-21T06:55:09Z"  # Tue, 21 Feb 2017 09:55:09 +0300
    assert (
        message.properties["email.messageId"] == "<CAJDzDxEsAH3+-H=vECfFZNeZuYRtYeQZhyvWC=_sr2SFfg1pCA@mail.gmail.com>"
    )
    assert message.tools["email"].name == "email"


@pytest.mark.corpus
def test_eml_subject_and_body():
    message = analyse_corpus_file("ingest-file/testThunderbirdEml.eml")
    assert message.types == ["email"]
    assert message.properties["email.subject"] == "JUnit test message"
    assert message.properties["email.from"] == "Vladimir L. <vladimir_l@example.com>"
    assert message.properties["email.to"] == ["vladimir_l@something.com"]
    assert message.properties["email.sentOn"] == "2012-11-21T20:11:32Z"
    assert "Dear Vladimir" in message.text
    assert not message.errors

    nested = analyse_corpus_file("ingest-file/email_multipart_nested.eml")
    assert nested.properties["email.subject"] == "Nested multipart email"
    assert "first" in nested.text and "second part" in nested.text


@pytest.mark.corpus
def test_outlook_msg_subject_sender_and_message_id():
    message = analyse_corpus_file("ingest-file/piste.msg")
    expected = truth("piste.msg.parsed.txt")
    assert "'Ab auf die Piste!'" in expected
    assert message.properties["email.subject"] == "Ab auf die Piste!"
    assert message.properties["email.from"] == "GMX Magazin <mailings@gmxnet.de>"
    assert message.properties["email.messageId"] == "<E5-bad037e6-elaine5029/3/2852-f493@mailings.gmx.net>"
    assert message.properties["email.attachmentCount"] == 0  # truth: attachment storages: 0
    assert message.text


def test_eml_attachments_become_child_traces_analysed_in_turn():
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zip_file:
        zip_file.writestr("notes/plan.txt", "meet at the harbour at noon")
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "Ann <ann@example.org>"
    message["To"] = "bob@example.org, Carl <carl@example.org>"
    message["Cc"] = "=?utf-8?q?J=C3=B6rn?= <jorn@example.org>"
    message["Subject"] = "=?utf-8?q?R=C3=A9union?="
    message["Date"] = "Mon, 01 Jan 2024 10:00:00 +0100"
    message.set_content("See attached.")
    message.add_attachment(archive.getvalue(), maintype="application", subtype="zip", filename="../../plan.zip")

    trace = analyse_bytes(message.as_bytes(), name="m.eml")
    assert trace.properties["email.subject"] == "Réunion"
    assert trace.properties["email.to"] == ["bob@example.org", "Carl <carl@example.org>"]
    assert trace.properties["email.cc"] == ["Jörn <jorn@example.org>"]
    assert trace.properties["email.sentOn"] == "2024-01-01T09:00:00Z"
    assert trace.text == "See attached."
    (attachment,) = trace.children
    assert attachment.properties["attachment.fileName"] == "../../plan.zip"  # a name, never a path
    assert attachment.name == ".._.._plan.zip"
    plan = attachment.find("/notes/plan.txt")
    assert plan is not None and plan.text == "meet at the harbour at noon"


# ---------------------------------------------------------------------------------------- pictures


@pytest.mark.corpus
def test_dji_photo_exif_and_gps_position():
    picture = analyse_corpus_file("plaso/testimage_dji.jpg")
    exiftool = truth("testimage_dji.jpg.exif.txt")
    latitude = float(re.search(r"\[Composite\]\s+GPSLatitude\s+: ([\d.]+)", exiftool).group(1))
    longitude = float(re.search(r"\[Composite\]\s+GPSLongitude\s+: ([\d.]+)", exiftool).group(1))
    assert picture.types == ["picture", "gps"]
    assert picture.properties["gps.latitude"] == pytest.approx(latitude, abs=1e-6)
    assert picture.properties["gps.longitude"] == pytest.approx(longitude, abs=1e-6)
    assert round(picture.properties["gps.latitude"], 5) == 68.87571  # GROUND_TRUTH.md: 68.87571 N
    assert round(picture.properties["gps.longitude"], 5) == 27.76492  # 27.76492 E
    assert picture.properties["gps.altitude"] == pytest.approx(266.603)
    assert picture.properties["picture.cameraMake"] == "DJI"
    assert picture.properties["picture.cameraModel"] == "FC3582"
    assert picture.properties["picture.exif.bodySerialNumber"] == "53HQK520M10K6U"
    assert picture.properties["picture.exif.software"] == "RawTherapee 5.9"
    # EXIF records the 4024x3016 original; the file's pixels are a 512x384 rendition (exiftool [File]).
    assert (picture.properties["picture.exif.imageWidth"], picture.properties["picture.exif.imageHeight"]) == (
        4024,
        3016,
    )
    assert (picture.properties["picture.width"], picture.properties["picture.height"]) == (512, 384)
    # #18: no OffsetTimeOriginal and no GPS time stamp: the camera's local time, of unknown zone (no Z).
    assert picture.properties["picture.takenOn"] == "2023-08-01T23:19:48"
    assert picture.properties["picture.takenOnTimeZone"] == "local, unknown"
    assert picture.tools["gps"].name == "pillow"


@pytest.mark.corpus
def test_nikon_photo_gps_matches_exiftool():
    picture = analyse_corpus_file("exif-py/DSCN0021.jpg")
    exiftool = truth("DSCN0021.jpg.exif.txt")
    latitude = float(re.search(r"\[Composite\]\s+GPSLatitude\s+: ([\d.]+)", exiftool).group(1))
    longitude = float(re.search(r"\[Composite\]\s+GPSLongitude\s+: ([\d.]+)", exiftool).group(1))
    assert picture.properties["gps.latitude"] == pytest.approx(latitude, abs=1e-6)
    assert picture.properties["gps.longitude"] == pytest.approx(longitude, abs=1e-6)
    assert picture.properties["picture.cameraModel"] == "COOLPIX P6000"
    # #18: no OffsetTimeOriginal; the GPS stamp (exiftool's GPSDateStamp/GPSTimeStamp) is 22 hours from the
    # camera's clock, further than any zone: not the same moment, so the local time stays of unknown zone.
    assert picture.properties["picture.takenOn"] == "2008-10-22T16:38:20"
    assert picture.properties["picture.takenOnTimeZone"] == "local, unknown"
    gps_date = re.search(r"\[GPS\]\s+GPSDateStamp\s+: ([\d:]+)", exiftool).group(1)
    gps_time = re.search(r"\[GPS\]\s+GPSTimeStamp\s+: ([\d:.]+)", exiftool).group(1)
    expected_gps = f"{gps_date.replace(':', '-')}T{gps_time}Z"
    assert picture.properties["gps.timeStamp"] == expected_gps


# --------------------------------------------------------------------------------------- documents


@pytest.mark.corpus
def test_docx_author_and_dates():
    document = analyse_corpus_file("plaso/Document.docx")
    assert document.types == ["document"]
    assert document.properties["document.type"] == "docx"
    assert document.properties["document.author"] == "Nides"
    assert document.properties["document.lastModifiedBy"] == "Nides"
    assert document.properties["document.application"] == "Microsoft Office Word"
    assert document.properties["document.createdOn"] == "2012-11-07T23:29:00Z"
    assert document.properties["document.modifiedOn"] == "2013-08-25T22:18:00Z"
    assert document.properties["document.pageCount"] == 1
    assert document.properties["document.characterCount"] == 13
    assert document.tools["document"].name == "ooxml"


@pytest.mark.corpus
def test_pdf_text_and_metadata_match_poppler():
    document = analyse_corpus_file("ingest-file/readme.pdf")
    pdfinfo = truth("readme.pdf.pdfinfo.txt")
    assert re.search(r"^Pages:\s+1$", pdfinfo, flags=re.MULTILINE)
    assert document.properties["document.pageCount"] == 1
    assert document.properties["document.producer"] == "Skia/PDF m56"
    assert document.properties["document.createdOn"] == "2017-03-28T10:14:29Z"  # Tue Mar 28 10:14:29 2017 UTC
    assert "Ingestors extract useful information in a structured standard format" in document.text
    assert not document.errors


@pytest.mark.corpus
def test_zip_of_office_documents_lists_its_members_and_reads_them():
    archive = analyse_corpus_file("ingest-file/test-documents.zip")
    listing = truth("test-documents.zip.listing.txt")
    expected = dict(re.findall(r"^\s*\d+\s+\S+\s+\d+\s+\d+%\s+\S+\s+\S+\s+([0-9a-f]{8})\s+(\S+)$", listing, flags=re.M))
    members = {child.name: child for child in archive.children}
    assert {crc: name for crc, name in expected.items()} == {
        child.properties["archive.crc32"]: name for name, child in members.items()
    }
    assert members["testWORD.doc"].properties["document.type"] == "doc"
    assert members["testPDF.pdf"].properties["document.pageCount"] >= 1
    assert members["testTXT.txt"].text


def test_truncated_pdf_is_an_error_not_a_crash():
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.add_metadata({"/Author": "Ann", "/Title": "Plan"})
    whole = io.BytesIO()
    writer.write(whole)
    complete = analyse_bytes(whole.getvalue(), name="plan.pdf")
    assert complete.properties["document.author"] == "Ann"
    assert complete.properties["document.title"] == "Plan"

    truncated = analyse_bytes(whole.getvalue()[: len(whole.getvalue()) // 2], name="plan.pdf")
    assert truncated.errors
    assert truncated.errors[0].tool == "pypdf"
    assert "document.author" not in truncated.properties


# ------------------------------------------------------------------------------------------- archives


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("corpus_file", "member_path"),
    [
        ("dfvfs/absolute_paths.zip", "/folder/syslog"),
        ("dfvfs/with_directory.zip", "/folder/syslog"),
        ("dfvfs/with_directory.tar", "/folder/syslog"),
        ("dfvfs/syslog.gz", "/syslog"),
        ("dfvfs/syslog.bz2", "/syslog"),
        ("dfvfs/syslog.xz", "/syslog"),
        ("dfvfs/syslog.tgz", "/syslog.tar/syslog"),
    ],
)
def test_archives_resolve_syslog_with_its_documented_hash(corpus_file: str, member_path: str):
    archive = analyse_corpus_file(corpus_file)
    syslog = archive.find(member_path)
    assert syslog is not None, [node.path for node in archive.walk()]
    data = syslog.read()
    assert len(data) == 1247
    assert hashlib.sha256(data).hexdigest() == SYSLOG_SHA256
    assert "archive" in archive.types
    if member_path.startswith("/folder/"):
        assert "folder" in archive.find("/folder").types
    assert not all_errors(archive)


@pytest.mark.corpus
def test_gzip_records_the_original_name():
    archive = analyse_corpus_file("dfvfs/syslog.gz")
    assert archive.properties["archive.originalName"] == "syslog.1"  # MANIFEST: original name syslog.1


def _zip(members: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 2, 3, 4, 5)), data)
    return buffer.getvalue()


def test_zip_bomb_is_stopped_by_the_ratio_limit():
    buffer = io.BytesIO()
    zeros = bytes(1024 * 1024)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("readme.txt", "harmless")
        with archive.open("zeros.bin", "w", force_zip64=True) as member:
            for _ in range(1024):  # 1 GiB of zeros → about 1 MiB compressed
                member.write(zeros)
    assert len(buffer.getvalue()) < 2 * 1024 * 1024

    started = time.monotonic()
    trace = analyse_bytes(buffer.getvalue(), name="bomb.zip")
    assert time.monotonic() - started < 5  # refused from the declared sizes, never inflated
    bomb = trace.find("/zeros.bin")
    assert bomb.data is None
    assert any("compression ratio limit" in error.message for error in bomb.errors)
    assert bomb.errors[0].tool == "zip"
    assert trace.find("/readme.txt").read() == b"harmless"  # extraction went on


def test_compressed_bomb_is_stopped_while_inflating():
    import gzip

    bomb = gzip.compress(bytes(64 * 1024 * 1024), compresslevel=9)
    # gzip declares no size worth trusting: the ratio is counted while inflating, past the floor.
    trace = analyse_bytes(bomb, name="zeros.gz", limits=Limits(ratio_floor_bytes=4 * 1024 * 1024))
    (child,) = trace.children
    assert child.data is None
    assert any("compression ratio limit 500:1 exceeded" in error.message for error in child.errors)

    # A small zero-filled disk image (ratio ~1000:1, under the 64 MiB floor) is evidence, not a bomb.
    image = gzip.compress(bytes(8 * 1024 * 1024), compresslevel=9)
    (child,) = analyse_bytes(image, name="usb.img.gz").children
    assert not child.errors and len(child.read()) == 8 * 1024 * 1024


def test_hostile_member_names_stay_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    passwd_before = Path("/etc/passwd").stat().st_mtime_ns if Path("/etc/passwd").exists() else None
    zip_data = _zip({"../../etc/passwd": b"root::0:0::/:/bin/sh\n", "/etc/x": b"x", "C:\\evil.txt": b"e"})
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w") as archive:
        for name in ("../../etc/passwd", "/etc/x"):
            info = tarfile.TarInfo(name)
            info.size = 3
            archive.addfile(info, io.BytesIO(b"abc"))
        link = tarfile.TarInfo("link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/shadow"
        archive.addfile(link)

    for trace in (analyse_bytes(zip_data, name="evil.zip"), analyse_bytes(tar_buffer.getvalue(), name="evil.tar")):
        passwd = trace.find("/etc/passwd")
        assert passwd.properties["archive.memberName"] == "../../etc/passwd"
        assert passwd.properties["archive.unsafeName"] is True
        assert passwd.properties["file.path"] == "/etc/passwd"  # inside the archive, under its root
        assert trace.find("/etc/x").properties["archive.unsafeName"] is True
    assert trace.find("/link").properties["file.linkTarget"] == "/etc/shadow"
    assert analyse_bytes(zip_data, name="evil.zip").find("/evil.txt").read() == b"e"
    assert list(tmp_path.iterdir()) == []  # nothing written, not even in the working folder
    if passwd_before is not None:
        assert Path("/etc/passwd").stat().st_mtime_ns == passwd_before
    assert archive_member_path("a/../../../b") == ("/b", True)
    assert archive_member_path("a/./b/") == ("/a/b", False)


def test_nested_archives_stop_at_the_depth_limit():
    data = b"the innermost secret"
    for level in range(8):
        data = _zip({f"level{level}.zip" if level else "secret.txt": data})
    trace = analyse_bytes(data, name="nested.zip", limits=Limits(max_archive_depth=3))
    depths = [node.path.count("/") for node in trace.walk()]
    assert max(depths) == 3
    deepest = max(trace.walk(), key=lambda node: node.path.count("/"))
    assert any("archive depth limit of 3" in error.message for error in deepest.errors)
    assert deepest.data is not None  # the member itself is kept; only its inside is not opened

    unlimited = analyse_bytes(data, name="nested.zip", limits=Limits(max_archive_depth=10))
    secrets = [node for node in unlimited.walk() if node.name == "secret.txt"]
    assert secrets[0].read() == b"the innermost secret"


def test_member_count_and_output_limits():
    many = _zip({f"file{index:03d}.txt": b"x" for index in range(20)})
    trace = analyse_bytes(many, name="many.zip", limits=Limits(max_member_count=5))
    assert len(trace.children) == 5
    assert any("member count 20 exceeds the limit of 5" in error.message for error in trace.errors)

    big = _zip({f"part{index}.bin": os.urandom(1024 * 1024) for index in range(3)}, compression=zipfile.ZIP_STORED)
    trace = analyse_bytes(big, name="big.zip", limits=Limits(max_output_bytes=int(2.5 * 1024 * 1024)))
    read = [child for child in trace.children if child.data is not None]
    refused = [child for child in trace.children if child.data is None]
    assert len(read) == 2 and len(refused) == 1
    assert "output limit" in refused[0].errors[0].message


def test_time_limit_is_an_error():
    mbox = b"".join(b"From a@b Mon Jan  1 00:00:00 2024\nSubject: %d\n\nbody\n\n" % index for index in range(50))
    trace = analyse_bytes(mbox, name="inbox.mbox", limits=Limits(max_seconds=-1))
    assert any("time limit" in error.message for error in trace.errors)
    assert trace.errors[0].tool == "mbox"


# ---------------------------------------------------------------------------------- browser history


@pytest.mark.corpus
def test_chrome_history_visits_and_downloads():
    history = analyse_corpus_file("plaso/chrome_History")
    counts = dict(re.findall(r"^(urls|visits|downloads)\|(\d+)$", truth("chrome_History.sqlite.txt"), flags=re.M))
    visits, downloads = of_type(history, "browserHistory"), of_type(history, "download")
    assert len(visits) == int(counts["visits"]) == 69
    assert len(downloads) == int(counts["downloads"]) == 2
    assert len({visit.properties["browserHistory.url"] for visit in visits}) <= int(counts["urls"])
    first = visits[0].properties
    assert first["browserHistory.title"] == "Ubuntu Start Page"
    assert first["browserHistory.url"] == "http://start.ubuntu.com/10.04/Google/"
    assert first["browserHistory.accessedOn"] == "2011-04-07T12:03:11Z"
    assert first["browserHistory.visitCount"] == 4
    download = downloads[0].properties
    assert download["download.path"] == "/home/john/Downloads/funcats_scr.exe"
    assert download["download.totalBytes"] == 1132155
    assert download["download.startedOn"] == "2011-05-23T08:35:30Z"
    assert history.properties["browser.application"] == "chrome"


@pytest.mark.corpus
def test_newer_chrome_history():
    history = analyse_corpus_file("velociraptor/ChromeHistory.sqlite")
    counts = dict(re.findall(r"^(urls|visits|downloads)\|(\d+)$", truth("ChromeHistory.sqlite.sqlite.txt"), flags=re.M))
    assert len(of_type(history, "browserHistory")) == int(counts["visits"])
    assert len(of_type(history, "download")) == int(counts["downloads"])
    assert of_type(history, "browserHistory")[0].properties["browserHistory.url"] == "https://www.google.com/"


@pytest.mark.corpus
def test_firefox_history_visits_and_bookmarks():
    places = analyse_corpus_file("plaso/firefox_places.sqlite")
    counts = dict(re.findall(r"^(moz_\w+)\|(\d+)$", truth("firefox_places.sqlite.sqlite.txt"), flags=re.M))
    visits = of_type(places, "browserHistory")
    assert len(visits) == int(counts["moz_historyvisits"])
    assert visits[0].properties["browserHistory.title"] == "Google News"
    assert visits[0].properties["browserHistory.url"] == "http://news.google.com/"
    assert visits[0].properties["browserHistory.accessedOn"] == "2011-07-01T11:16:21.371935Z"
    bookmarks = of_type(places, "bookmark")
    # moz_bookmarks also holds folders and separators; bookmarks proper point at a place.
    assert 0 < len(bookmarks) < int(counts["moz_bookmarks"])
    assert all(bookmark.properties["bookmark.url"] for bookmark in bookmarks)


@pytest.mark.corpus
def test_safari_history_visits():
    history = analyse_corpus_file("plaso/safari_History.db")
    counts = dict(re.findall(r"^(history_\w+)\|(\d+)$", truth("safari_History.db.sqlite.txt"), flags=re.M))
    visits = of_type(history, "browserHistory")
    assert len(visits) == int(counts["history_visits"])
    assert all(visit.properties["browserHistory.accessedOn"].startswith("20") for visit in visits)


def test_garbage_sqlite_is_an_error():
    trace = analyse_bytes(b"SQLite format 3\x00" + os.urandom(4096), name="History")
    assert trace.errors and trace.errors[0].tool == "browser-history"


# ---------------------------------------------------------------------------------------- the frame


def test_missing_optional_library_is_an_error_on_the_trace(monkeypatch):
    monkeypatch.setitem(sys.modules, "pypff", None)  # import pypff now raises ImportError
    outcomes = run_tools(
        stream_opener=lambda: io.BytesIO(b"!BDN" + bytes(600)),
        name="mail.pst",
        mime_type="application/vnd.ms-outlook",
        head=b"!BDN" + bytes(600),
    )
    (outcome,) = outcomes
    assert outcome.tool.name == "libpff"
    assert "optional library libpff-python is not installed" in outcome.errors[0].message


def test_text_is_bounded():
    trace = analyse_bytes(
        ("word " * 10_000).encode(), name="notes.txt", mime_type="text/plain", limits=Limits(max_text_chars=100)
    )
    assert len(trace.text) <= 100
    assert trace.properties["text.truncated"] is True


def test_every_tool_names_its_version():
    for tool in TOOLS:
        assert tool.name and tool.version and tool.version != "missing", tool


def test_analysis_is_deterministic():
    data = _zip({"b.txt": b"second", "a/c.eml": b"From: x@y\nSubject: s\n\nbody", "a/d.txt": b"d"})
    first, second = analyse_bytes(data, name="x.zip"), analyse_bytes(data, name="x.zip")
    shape = lambda trace: [(node.path, node.types, node.properties, node.text) for node in trace.walk()]  # noqa: E731
    assert shape(first) == shape(second)
    assert [node.path for node in first.walk()] == ["/", "/b.txt", "/a", "/a/c.eml", "/a/d.txt"]


def test_iso8601_dates():
    from datetime import UTC, datetime, timedelta, timezone

    assert iso8601(datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))) == "2024-01-01T10:00:00Z"
    assert iso8601(datetime(2024, 1, 1, 12, 0, 0, 500000, tzinfo=UTC)) == "2024-01-01T12:00:00.5Z"
