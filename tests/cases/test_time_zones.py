"""Time, one way (issue #20 item 13): the user's time zone, chosen on the account page, for every time shown,
always with its zone; times of unknown zone shown as recorded, never converted."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from cases.services import user_set_time_zone
from cases.times import UNKNOWN_ZONE, format_time
from custodia.errors import ServiceError

MOMENT = datetime(2026, 3, 7, 10, 15, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "value", "shown"),
    [
        ("UTC", MOMENT, "2026-03-07 10:15:02 UTC"),
        ("Europe/Amsterdam", MOMENT, "2026-03-07 11:15:02 CET"),
        ("Europe/Amsterdam", datetime(2026, 7, 7, 10, 0, tzinfo=UTC), "2026-07-07 12:00:00 CEST"),
        ("America/New_York", "2026-03-07T10:15:02Z", "2026-03-07 05:15:02 EST"),
        ("Asia/Kolkata", "2026-03-07T10:15:02+00:00", "2026-03-07 15:45:02 IST"),
        # Unknown zone: as recorded, never converted, whatever the user's zone.
        ("Asia/Kolkata", datetime(2019, 3, 7, 10, 0), f"2019-03-07 10:00:00 {UNKNOWN_ZONE}"),
        ("Asia/Kolkata", "2019-03-07T10:00:00", f"2019-03-07 10:00:00 {UNKNOWN_ZONE}"),
        (
            "Asia/Kolkata",
            {"value": "2019-03-07T10:00:00", "zone": "local, unknown"},
            f"2019-03-07 10:00:00 {UNKNOWN_ZONE}",
        ),
        ("UTC", {"value": "2019-03-07T10:00:00Z", "zone": "local, unknown"}, f"2019-03-07 10:00:00 {UNKNOWN_ZONE}"),
        ("UTC", None, ""),
        ("UTC", "not a time", "not a time"),
    ],
)
def test_every_time_is_written_one_way_with_its_zone(zone, value, shown):
    with timezone.override(zoneinfo.ZoneInfo(zone)):
        assert format_time(value) == shown


def test_a_user_chooses_a_time_zone_and_it_is_audited(demo):
    user_set_time_zone(actor=demo.detective, time_zone="Europe/Amsterdam")
    demo.detective.refresh_from_db()
    assert demo.detective.time_zone == "Europe/Amsterdam"
    assert AuditEvent.objects.get(action="user.time_zone").details == {"time_zone": "Europe/Amsterdam"}
    with pytest.raises(ServiceError):
        user_set_time_zone(actor=demo.detective, time_zone="Mars/Olympus_Mons")


def test_the_account_page_sets_the_zone_and_pages_follow_it(demo, client):
    client.force_login(demo.custodian)
    page = client.get("/account/")
    assert page.status_code == 200 and b"Europe/Amsterdam" in page.content
    assert client.post("/account/", {"time_zone": "Mars/Olympus_Mons"}).status_code == 200
    assert client.post("/account/", {"time_zone": "Asia/Kolkata"}).status_code == 302
    audit = client.get(f"/cases/{demo.case.pk}/audit/").content.decode()
    assert " IST</time>" in audit and " UTC</time>" not in audit
    client.post("/account/", {"time_zone": ""})
    assert " UTC</time>" in client.get(f"/cases/{demo.case.pk}/audit/").content.decode()


def test_each_request_gets_its_users_zone_and_no_other(demo, client):
    user_set_time_zone(actor=demo.custodian, time_zone="Asia/Kolkata")
    other = type(client)()
    client.force_login(demo.custodian)
    other.force_login(demo.prosecutor)
    assert " IST</time>" in client.get(f"/cases/{demo.case.pk}/audit/").content.decode()
    assert " UTC</time>" in other.get(f"/cases/{demo.case.pk}/audit/").content.decode()
