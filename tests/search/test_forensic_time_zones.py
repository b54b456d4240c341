"""Honest time zones (issue #18 item 6): UTC where the format keeps it, local times of unknown zone kept
apart, and the custodian's source time zone converting them, recorded with each value.

Independent truth: ``zipinfo -v`` (the UT extra field's times of the DFTT zips), mtools' ``mdir`` (the wall
clock a FAT entry holds), and EXIF values this test writes itself with Pillow.
"""

from __future__ import annotations

import calendar
import io
import os
import re
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from search.extraction.timezones import LOCAL_UNKNOWN, convert_local_times
from search.extraction.tools import analyse
from search.extraction.walker import WalkOptions, walk_image
from tests.corpus import require_corpus

DFTT_ZIPS = ["2-kwsrch-fat.zip", "4-kwsrch-ext3.zip", "6-undel-fat.zip", "7-undel-ntfs.zip", "9-fat-label.zip"]
MONTHS = {name: number for number, name in enumerate(calendar.month_abbr) if name}


def require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (make system-packages)")


def run(*command: str, env: dict | None = None) -> str:
    completed = subprocess.run(command, check=True, capture_output=True, env=env)  # nosec B603  # test tools
    return completed.stdout.decode("utf-8", "replace")


def zipinfo_ut_times(path: Path) -> dict[str, str]:
    """Member name → the UT extra field's modification time as ``zipinfo -v`` prints it in UTC."""
    times: dict[str, str] = {}
    name, expecting_name = None, False
    for line in run("zipinfo", "-v", str(path)).splitlines():
        if line.startswith("Central directory entry #"):
            name, expecting_name = None, True
        elif expecting_name and line.strip() and not line.startswith("-"):
            name, expecting_name = line.strip(), False  # the first line after the entry's header
        found = re.search(r"\(UT extra field modtime\):\s+(\d{4}) (\w{3}) (\d+) (\d\d:\d\d:\d\d) UTC", line)
        if found and name:
            year, month, day, clock = found.groups()
            times[name] = f"{year}-{MONTHS[month]:02d}-{int(day):02d}T{clock}Z"
    return times


@pytest.mark.corpus
@pytest.mark.parametrize("zip_name", DFTT_ZIPS)
def test_zip_member_times_come_from_the_ut_extra_field_as_zipinfo_reads_it(zip_name):
    require_tools("zipinfo")
    path = require_corpus(f"files/dftt/{zip_name}")
    expected = zipinfo_ut_times(path)
    assert expected, "zipinfo shows no UT extra field"
    node = analyse(stream_opener=lambda: path.open("rb"), name=zip_name)
    members = {child.path.lstrip("/"): child for child in node.walk() if child is not node}
    checked = 0
    for name, modified in expected.items():
        member = members.get(name.rstrip("/"))
        if member is None:
            continue
        assert member.properties["file.modifiedOn"] == modified, name
        assert "file.modifiedOnTimeZone" not in member.properties, name
        checked += 1
    assert checked == len(expected)
    # The DOS times of these zips are the zipper's local time, hours off: never what is stored.
    with zipfile.ZipFile(path) as archive:
        first = archive.infolist()[0]
    dos = datetime(*first.date_time).strftime("%Y-%m-%dT%H:%M:%S")
    assert members[first.filename.rstrip("/")].properties["file.modifiedOn"] != dos + "Z"


def test_a_zip_with_dos_times_only_keeps_them_as_local_times_of_unknown_zone():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # Python's zipfile writes no time extra field
        archive.writestr(zipfile.ZipInfo("notes.txt", date_time=(2019, 3, 31, 1, 30, 0)), b"meeting at noon\n")
    node = analyse(stream_opener=lambda: io.BytesIO(buffer.getvalue()), name="notes.zip")
    member = node.find("/notes.txt")
    assert member.properties["file.modifiedOn"] == "2019-03-31T01:30:00"
    assert member.properties["file.modifiedOnTimeZone"] == LOCAL_UNKNOWN
    assert member.properties["file.mimeType"] == "text/plain"
    converted = convert_local_times(member.properties, time_zone="Europe/Amsterdam")
    assert converted["file.modifiedOn"] == "2019-03-31T00:30:00Z"  # CET, an hour before summer time began
    assert converted["file.modifiedOnTimeZone"] == "Europe/Amsterdam"
    assert member.properties["file.modifiedOn"] == "2019-03-31T01:30:00"  # the original is not changed


def fat_image(folder: Path) -> tuple[Path, str]:
    """A FAT16 volume with ``report.txt`` written at 2021-06-30 23:45:10 wall-clock, and that wall-clock as
    mtools' ``mdir`` lists it."""
    require_tools("mkfs.vfat", "mcopy", "mdir")
    image = folder / "stick.img"
    with image.open("wb") as file_object:
        file_object.truncate(16 * 1024 * 1024)
    run("mkfs.vfat", "-F", "16", str(image))
    source = folder / "report.txt"
    source.write_bytes(b"quarterly figures\n")
    moment = datetime(2021, 6, 30, 23, 45, 10, tzinfo=UTC).timestamp()
    os.utime(source, (moment, moment))
    environment = {**os.environ, "TZ": "UTC", "MTOOLS_SKIP_CHECK": "1"}
    run("mcopy", "-m", "-i", str(image), str(source), "::report.txt", env=environment)
    listing = run("mdir", "-i", str(image), "::", env=environment)
    line = next(line for line in listing.splitlines() if line.upper().startswith("REPORT"))
    day, clock = re.search(r"(\d{4}-\d\d-\d\d)\s+(\d+:\d\d)", line).groups()
    hours, minutes = clock.split(":")
    return image, f"{day}T{int(hours):02d}:{minutes}"


def test_fat_times_are_local_times_of_unknown_zone_as_mdir_lists_them(tmp_path):
    image, listed = fat_image(tmp_path)
    with image.open("rb") as file_object:
        traces = list(walk_image(file_object=file_object, evidence_id="ev", options=WalkOptions(file_name=image.name)))
    (report,) = [trace for trace in traces if trace.name.upper() == "REPORT.TXT"]
    assert report.properties["file.modifiedOn"].startswith(listed)  # mdir shows minutes
    assert report.properties["file.modifiedOn"] == "2021-06-30T23:45:10"
    assert report.properties["file.modifiedOnTimeZone"] == LOCAL_UNKNOWN
    assert not report.properties["file.modifiedOn"].endswith("Z")


def test_fat_read_through_dfvfs_has_the_same_local_times_as_through_tsk(tmp_path):
    # #18: the dfVFS fallback (libfsfat) gave these as UTC, and a month late (libfsfat 20260826's day count):
    # they are decoded from the directory entry, local of unknown zone, exactly as the TSK path stores them.
    image, listed = fat_image(tmp_path)
    by_reader = {}
    for prefer_tsk in (True, False):
        with image.open("rb") as file_object:
            options = WalkOptions(file_name=image.name, prefer_tsk=prefer_tsk)
            traces = list(walk_image(file_object=file_object, evidence_id="ev", options=options))
        (file_system,) = [trace for trace in traces if "fileSystem" in trace.types]
        (report,) = [trace for trace in traces if trace.name.upper() == "REPORT.TXT"]
        by_reader[file_system.tools["fileSystem"].name] = report
    assert set(by_reader) == {"pytsk3", "dfvfs"}
    through_dfvfs = by_reader["dfvfs"]
    assert through_dfvfs.properties["file.modifiedOn"] == "2021-06-30T23:45:10"
    assert through_dfvfs.properties["file.modifiedOn"].startswith(listed)
    times = {name: value for name, value in through_dfvfs.properties.items() if name.endswith(("On", "OnTimeZone"))}
    assert times == {
        name: value for name, value in by_reader["pytsk3"].properties.items() if name.endswith(("On", "OnTimeZone"))
    }
    assert times["file.accessedOn"] == "2021-06-30T00:00:00"
    assert all(times[f"{name}TimeZone"] == LOCAL_UNKNOWN for name in ("file.createdOn", "file.accessedOn"))
    assert not through_dfvfs.errors


def jpeg_with_exif(*, original: str, offset: str | None = None, gps: tuple[str, tuple] | None = None) -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif_ifd = exif.get_ifd(0x8769)
    exif_ifd[0x9003] = original  # DateTimeOriginal
    if offset:
        exif_ifd[0x9011] = offset  # OffsetTimeOriginal
    if gps:
        gps_ifd = exif.get_ifd(0x8825)
        gps_ifd[0x001D], gps_ifd[0x0007] = gps  # GPSDateStamp, GPSTimeStamp
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("exif", "taken_on", "zone"),
    [
        ({"original": "2022:05:01 14:00:00", "offset": "+02:00"}, "2022-05-01T12:00:00Z", None),
        ({"original": "2022:05:01 14:00:00", "gps": ("2022:05:01", (12.0, 0.0, 3.0))}, "2022-05-01T12:00:03Z", None),
        ({"original": "2022:05:01 14:00:00", "gps": ("2022:05:03", (12.0, 0.0, 3.0))}, "2022-05-01T14:00:00", "x"),
        ({"original": "2022:05:01 14:00:00"}, "2022-05-01T14:00:00", "x"),
    ],
    ids=["offset", "gps-stamp", "gps-stamp-two-days-off", "neither"],
)
def test_exif_times_use_the_offset_then_the_gps_stamp_else_stay_local(exif, taken_on, zone):
    data = jpeg_with_exif(**exif)
    node = analyse(stream_opener=lambda: io.BytesIO(data), name="photo.jpg")
    assert node.properties["picture.takenOn"] == taken_on
    assert node.properties.get("picture.takenOnTimeZone") == (LOCAL_UNKNOWN if zone else None)


def test_the_custodian_sets_the_source_time_zone_and_extraction_converts_with_it(api, client, demo, settings, tmp_path):
    from audit.models import AuditEvent
    from evidence.models import Evidence
    from search.models import Trace
    from search.services import extraction_execute, extraction_start

    image, _ = fat_image(tmp_path)
    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    api.as_user(demo.custodian)
    body = api.post("/api/evidence/import", {"case": demo.case.pk, "paths": [str(image)]}, format="json").json()
    evidence = Evidence.objects.get(pk=body["id"])
    extraction_execute(run_id=extraction_start(actor=demo.investigator, evidence=evidence).pk)
    report = Trace.objects.get(evidence=evidence, name__iexact="report.txt")
    assert report.properties["file.modifiedOn"] == "2021-06-30T23:45:10"

    # The page shows it as a local time; the timeline says how many hits it draws at their wall-clock time.
    client.force_login(demo.investigator)
    page = client.get(f"/cases/{demo.case.pk}/traces/{report.uid}/").content.decode()
    assert "2021-06-30T23:45:10 <span" in page and "local (zone unknown)</span>" in page
    api.as_user(demo.investigator)
    found = api.post(f"/api/cases/{demo.case.pk}/traces/search", {"query": "report", "facets": ["date"]}, format="json")
    assert found.json()["date_local_unknown"] == 1

    # Over the API: a refusal for a name that is no zone, then the zone, audited with the old and new value.
    api.as_user(demo.custodian)
    url = f"/api/evidence/{evidence.pk}/source-time-zone"
    assert api.put(url, {"time_zone": "Mars/Olympus"}, format="json").status_code == 400
    response = api.put(url, {"time_zone": "Australia/Sydney"}, format="json")
    assert response.status_code == 200 and response.json()["source_time_zone"] == "Australia/Sydney"
    event = AuditEvent.objects.filter(action="evidence.source_time_zone").latest("sequence")
    assert event.details == {"from": None, "to": "Australia/Sydney"}

    extraction_execute(run_id=extraction_start(actor=demo.investigator, evidence=evidence).pk)
    report.refresh_from_db()
    assert report.properties["file.modifiedOn"] == "2021-06-30T13:45:10Z"  # AEST, UTC+10
    assert report.properties["file.modifiedOnTimeZone"] == "Australia/Sydney"
    page = client.get(f"/cases/{demo.case.pk}/traces/{report.uid}/").content.decode()
    assert "converted from local time with Australia/Sydney" in page

    # On the evidence page: the form clears it again.
    client.force_login(demo.custodian)
    assert "Australia/Sydney" in client.get(f"/evidence/{evidence.pk}/").content.decode()
    response = client.post(f"/evidence/{evidence.pk}/source-time-zone/", {"time_zone": ""})
    assert response.status_code == 302
    evidence.refresh_from_db()
    assert evidence.source_time_zone == ""
