"""Time, one way (issue #20 item 13), on the pages and files the first round left: the trace page's words for
a local time of unknown zone, the search timeline's axis and tooltips, the events page and CSV, the audit
trail's heading and the custody report's header — for a reader in Kolkata (+05:30, "IST")."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime

import pytest

from cases.services import user_set_time_zone
from cases.times import UNKNOWN_ZONE, iso_utc, recorded_instant, zone_offset_text
from custodia.custody_report.builder import requester_time_zone
from custodia.custody_report.pdf import times_note
from search.extraction.timezones import LOCAL_UNKNOWN, zone_note
from search.models import Trace
from tests.search.synthetic import synthetic_traces

KOLKATA = "Asia/Kolkata"


@pytest.fixture
def kolkata_reader(demo):
    user_set_time_zone(actor=demo.detective, time_zone=KOLKATA)
    demo.detective.refresh_from_db()
    return demo


@pytest.fixture
def traces(demo):
    return synthetic_traces(
        case=demo.case,
        registered_by=demo.custodian,
        rows=[
            {
                "name": "budget.xlsx",
                "path": "/disk/budget.xlsx",
                "types": ["file"],
                "properties": {"file.modifiedOn": "2019-03-07T10:00:00Z"},
            },
            {
                "name": "minutes.txt",
                "path": "/disk/minutes.txt",
                "types": ["file"],
                "properties": {"file.modifiedOn": "2019-03-20T09:30:00", "file.modifiedOnTimeZone": LOCAL_UNKNOWN},
            },
            {
                "name": "Quarterly report",
                "path": "/disk/mail/1",
                "types": ["email"],
                "properties": {"email.sentOn": "2019-10-01T09:00:00+02:00"},
            },
        ],
    )


def test_the_trace_page_and_the_others_use_the_same_words_for_an_unknown_zone():
    assert zone_note({"file.modifiedOn": "x", "file.modifiedOnTimeZone": LOCAL_UNKNOWN}, "file.modifiedOn") == (
        UNKNOWN_ZONE
    )


@pytest.mark.parametrize(
    ("value", "zone", "utc"),
    [
        ("2019-10-01T09:00:00", "+02:00", "2019-10-01T07:00:00Z"),
        ("2019-10-01T09:00:00", "UTC", "2019-10-01T09:00:00Z"),
        ("2019-10-01T09:00:00", "Europe/Oslo", "2019-10-01T07:00:00Z"),
        ("2019-10-01T09:00:00", "local, unknown", None),
        ("2019-10-01T09:00:00", "Mars/Olympus_Mons", None),
        ("not a time", "UTC", None),
    ],
)
def test_a_recorded_time_is_an_instant_only_when_its_clock_is_known(value, zone, utc):
    instant = recorded_instant(value, zone)
    assert (iso_utc(instant) if instant else None) == utc


def test_offsets_are_written_with_hours_and_minutes():
    from zoneinfo import ZoneInfo

    moment = datetime(2019, 3, 7, 10, 0, tzinfo=UTC)
    assert zone_offset_text(moment.astimezone(ZoneInfo(KOLKATA))) == "+05:30"
    assert zone_offset_text(moment.astimezone(ZoneInfo("America/St_Johns"))) == "-03:30"
    assert zone_offset_text(moment) == "+00:00"


def test_the_trace_page_writes_an_unknown_zone_as_every_page_does(kolkata_reader, client, traces):
    demo = kolkata_reader
    client.force_login(demo.detective)
    minutes = Trace.objects.get(case=demo.case, name="minutes.txt")
    html = client.get(f"/cases/{demo.case.pk}/traces/{minutes.uid}/").content.decode()
    assert f'2019-03-20T09:30:00 <span class="muted zone">{UNKNOWN_ZONE}</span>' in html
    assert "local time, zone unknown" not in html and f"({UNKNOWN_ZONE})" not in html
    budget = Trace.objects.get(case=demo.case, name="budget.xlsx")
    html = client.get(f"/cases/{demo.case.pk}/traces/{budget.uid}/").content.decode()
    assert "= 2019-03-07 15:30:00 IST" in html  # 10:00 UTC in Kolkata


def bar_titles(html: str) -> list[str]:
    return re.findall(r'class="timeline-bar"[^>]*><rect[^>]*><title>([^<]+)</title>', html)


def test_the_timeline_names_its_utc_buckets_and_gives_them_in_the_readers_zone(kolkata_reader, client, traces):
    demo = kolkata_reader
    client.force_login(demo.detective)
    html = client.get(f"/cases/{demo.case.pk}/traces/", {"q": "type:file"}).content.decode()
    assert "by day" in html
    titles = bar_titles(html)
    assert titles[0] == "2019-03-07 UTC, 2019-03-07 05:30:00 IST to 2019-03-08 05:30:00 IST: 1 trace", titles
    axis = re.search(r'<div class="timeline-axis[^>]*>(.*?)</div>', html).group(1)
    assert '<time datetime="2019-03-07T00:00:00+00:00">2019-03-07 05:30:00 IST</time>' in axis
    assert '<time datetime="2019-03-21T00:00:00+00:00">2019-03-21 05:30:00 IST</time>' in axis
    assert "your time zone, Asia/Kolkata" in html


def test_a_utc_reader_sees_utc_buckets_named_utc(demo, client, traces):
    client.force_login(demo.detective)
    html = client.get(f"/cases/{demo.case.pk}/traces/", {"q": "type:file"}).content.decode()
    assert bar_titles(html)[0] == "2019-03-07 UTC: 1 trace"
    assert "2019-03-07 00:00:00 UTC</time>" in html


def test_the_events_page_names_the_zone_of_each_column(kolkata_reader, client, traces):
    demo = kolkata_reader
    client.force_login(demo.detective)
    html = client.get(f"/cases/{demo.case.pk}/events/").content.decode()
    assert '<th scope="col">Time <span class="muted">(Asia/Kolkata)</span></th>' in html
    assert "Recorded in <span" in html and "From (UTC)" in html
    assert "2019-03-07 15:30:00 IST" in html  # 10:00Z
    assert "2019-10-01 12:30:00 IST" in html  # 09:00+02:00
    assert f"2019-03-20 09:30:00 {UNKNOWN_ZONE}" in html  # never converted


def test_the_events_csv_adds_utc_with_z_and_the_exporters_zone(kolkata_reader, api, traces):
    demo = kolkata_reader
    api.as_user(demo.detective)
    response = api.get(f"/api/cases/{demo.case.pk}/events/export.csv")
    assert response.status_code == 200, response.content
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_name = {row["name"]: row for row in table}
    sent = by_name["Quarterly report"]
    assert (sent["time"], sent["zone"]) == ("2019-10-01T09:00:00", "+02:00")  # as recorded, unchanged
    assert (sent["time_utc"], sent["time_in_user_zone"], sent["user_zone"]) == (
        "2019-10-01T07:00:00Z",
        "2019-10-01T12:30:00+05:30",
        KOLKATA,
    )
    local = by_name["minutes.txt"]
    assert (local["zone"], local["time_utc"], local["time_in_user_zone"], local["user_zone"]) == (
        "local, unknown",
        "",
        "",
        "",
    )


def test_the_audit_trail_does_not_call_the_readers_zone_utc(kolkata_reader, client):
    demo = kolkata_reader
    client.force_login(demo.prosecutor)
    user_set_time_zone(actor=demo.prosecutor, time_zone=KOLKATA)
    html = client.get(f"/cases/{demo.case.pk}/audit/").content.decode()
    assert "Time (UTC)" not in html
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d IST</time>", html)


def test_the_custody_report_says_times_in_utc_and_names_the_requesters_zone(demo, api):
    generated = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    zone = requester_time_zone(zone_name=KOLKATA, generated_at=generated)
    assert zone == {"name": KOLKATA, "offset": "+05:30", "generated_at": "2026-12-05T14:30:00+05:30"}
    assert requester_time_zone(zone_name="", generated_at=generated) is None
    assert requester_time_zone(zone_name="Nowhere/Land", generated_at=generated) is None
    note = times_note({"requester_time_zone": zone})
    assert note.startswith("Times in UTC. All times in this report are UTC.")
    assert "Asia/Kolkata (UTC+05:30" in note and "no time in this report is converted" in note
    assert times_note({"requester_time_zone": None}) == "Times in UTC. All times in this report are UTC."

    user_set_time_zone(actor=demo.custodian, time_zone=KOLKATA)
    api.as_user(demo.custodian)
    report = json.loads(api.get(f"/api/cases/{demo.case.pk}/custody/report.json").content)
    assert report["time_zone"] == "UTC" and report["requester_time_zone"]["name"] == KOLKATA
    assert report["generated_at"].endswith("Z")  # the record stays UTC


def test_the_folder_listing_writes_its_times_in_the_readers_zone(kolkata_reader, client):
    demo = kolkata_reader
    evidence = synthetic_traces(
        case=demo.case,
        registered_by=demo.custodian,
        rows=[
            {"name": "Documents", "path": "/Documents", "types": ["folder"], "properties": {}},
            {
                "name": "budget.xlsx",
                "path": "/Documents/budget.xlsx",
                "types": ["file"],
                "properties": {"file.modifiedOn": "2019-03-07T10:00:00Z", "file.createdOn": "2019-03-06T10:00:00Z"},
            },
            {
                "name": "minutes.txt",
                "path": "/Documents/minutes.txt",
                "types": ["file"],
                "properties": {"file.modifiedOn": "2019-03-20T09:30:00", "file.modifiedOnTimeZone": LOCAL_UNKNOWN},
            },
        ],
    )
    folder = f"{evidence.pk}:0-0"
    Trace.objects.filter(evidence=evidence).exclude(uid=folder).update(parent_uid=folder)
    client.force_login(demo.detective)
    response = client.get(f"/evidence/{evidence.pk}/folders/list/", {"folder": folder})
    assert response.status_code == 200, response.content
    html = response.content.decode()
    assert '<time datetime="2019-03-07T10:00:00Z">2019-03-07 15:30:00 IST</time>' in html
    assert f"2019-03-20 09:30:00 {UNKNOWN_ZONE}</time>" in html
    assert "2019-03-07T10:00:00Z</td>" not in html  # no raw ISO text any more
