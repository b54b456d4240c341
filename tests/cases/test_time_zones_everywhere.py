"""Time, one way, on every page (issue #20 item 13): the case, evidence, trace, search and events pages show
times in the reader's zone with its name; a local time of unknown zone is shown as recorded, marked
``local (zone unknown)``; "seized at" is entered with a zone (a form field; the API refuses a naive value)."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from cases.services import user_set_time_zone
from cases.times import UNKNOWN_ZONE, format_property_time, format_recorded_time
from evidence.models import Evidence
from search.models import Trace
from tests.search.synthetic import synthetic_traces

FAT_TIME = "2020-06-30T18:45:10"


@pytest.mark.parametrize(
    ("time", "zone", "shown"),
    [
        ("2019-03-01T08:00:00", "UTC", "2019-03-01 03:00:00 EST"),
        ("2019-10-01T09:00:00", "+02:00", "2019-10-01 03:00:00 EDT"),
        ("2019-07-01T08:00:00", "Europe/Oslo", "2019-07-01 02:00:00 EDT"),
        (FAT_TIME, "local, unknown", f"2020-06-30 18:45:10 {UNKNOWN_ZONE}"),
        (FAT_TIME, "Mars/Olympus_Mons", f"2020-06-30 18:45:10 {UNKNOWN_ZONE}"),
        ("not a date", "UTC", "not a date"),
    ],
)
def test_an_event_is_written_in_the_readers_zone_unless_its_zone_is_unknown(time, zone, shown):
    with timezone.override(zoneinfo.ZoneInfo("America/New_York")):
        assert format_recorded_time(time, zone) == shown


def test_a_property_is_a_time_only_when_it_has_a_date_and_a_time_of_day():
    with timezone.override(zoneinfo.ZoneInfo("America/New_York")):
        local = {"file.modifiedOn": FAT_TIME, "file.modifiedOnTimeZone": "local, unknown"}
        assert format_property_time(local, "file.modifiedOn") == f"2020-06-30 18:45:10 {UNKNOWN_ZONE}"
        converted = {"file.modifiedOn": "2020-06-30T16:45:10Z", "file.modifiedOnTimeZone": "Europe/Oslo"}
        assert format_property_time(converted, "file.modifiedOn") == "2020-06-30 12:45:10 EDT"
        for value in ("20200630", "2020-06-30", 12345, "a note"):
            assert format_property_time({"x": value}, "x") is None


@pytest.fixture
def new_yorker(demo):
    user_set_time_zone(actor=demo.detective, time_zone="America/New_York")
    user_set_time_zone(actor=demo.custodian, time_zone="America/New_York")
    return demo


@pytest.fixture
def fat_trace(new_yorker):
    demo = new_yorker
    synthetic_traces(
        case=demo.case,
        registered_by=demo.custodian,
        rows=[
            {
                "name": "minutes.txt",
                "path": "/stick/minutes.txt",
                "types": ["file"],
                "properties": {
                    "file.name": "minutes.txt",
                    "file.modifiedOn": FAT_TIME,
                    "file.modifiedOnTimeZone": "local, unknown",
                    "file.createdOn": "2020-01-15T14:00:00Z",
                },
            }
        ],
    )
    return Trace.objects.get(case=demo.case, name="minutes.txt")


def test_the_pages_show_times_in_the_readers_zone_and_local_times_as_recorded(new_yorker, client, fat_trace):
    demo = new_yorker
    client.force_login(demo.detective)
    case_page = client.get(f"/cases/{demo.case.pk}/").content.decode()
    assert " EST</time>" in case_page or " EDT</time>" in case_page

    trace_page = client.get(f"/cases/{demo.case.pk}/traces/{fat_trace.uid}/").content.decode()
    assert "= 2020-01-15 09:00:00 EST" in trace_page  # the UTC value, converted beside it
    # Never converted, and in the words of every page (a deliberate change from "local time, zone unknown").
    assert f'{FAT_TIME} <span class="muted zone">{UNKNOWN_ZONE}</span>' in trace_page

    events = client.get(f"/cases/{demo.case.pk}/events/", {"q": "minutes"}).content.decode()
    assert f"2020-06-30 18:45:10 {UNKNOWN_ZONE}" in events and "2020-01-15 09:00:00 EST" in events

    results = client.get(f"/cases/{demo.case.pk}/traces/", {"q": "minutes"}).content.decode()
    assert f"2020-06-30 18:45:10 {UNKNOWN_ZONE}" in results


def test_seized_at_is_read_in_the_zone_the_form_names(new_yorker, client):
    demo = new_yorker
    client.force_login(demo.custodian)
    form = client.get(f"/cases/{demo.case.pk}/evidence/new/").content.decode()
    assert '<option value="America/New_York" selected>' in form
    response = client.post(
        f"/cases/{demo.case.pk}/evidence/new/",
        {"label": "Phone", "kind": "file", "seized_at": "2026-03-07T14:30", "seized_at_zone": "Europe/Amsterdam"},
    )
    assert response.status_code == 302
    evidence = Evidence.objects.get(case=demo.case, label="Phone")
    assert evidence.seized_at == datetime(2026, 3, 7, 13, 30, tzinfo=UTC)
    page = client.get(response["Location"]).content.decode()
    assert "2026-03-07 08:30:00 EST</time>" in page  # shown in the reader's zone, with it


def test_the_api_refuses_a_seized_at_without_its_zone(demo, api):
    api.as_user(demo.custodian)
    url = f"/api/cases/{demo.case.pk}/evidence/"
    naive = api.post(url, {"label": "Disk", "kind": "disk_image", "seized_at": "2026-03-07T14:30:00"}, format="json")
    assert naive.status_code == 400 and naive.json()["detail"].startswith("seized_at: An ISO 8601 time with its offset")
    nonsense = api.post(url, {"label": "Disk", "kind": "disk_image", "seized_at": "2026-13-07T14:30:00"}, format="json")
    assert nonsense.status_code == 400 and nonsense.json()["detail"].startswith("seized_at: ")
    aware = api.post(url, {"label": "Disk", "kind": "disk_image", "seized_at": "2026-03-07T14:30:00Z"}, format="json")
    assert aware.status_code == 201, aware.content
    assert Evidence.objects.get(pk=aware.json()["id"]).seized_at == datetime(2026, 3, 7, 14, 30, tzinfo=UTC)
