"""Bad input gets a clear JSON error and changes nothing."""

from __future__ import annotations

import pytest

from cases.models import Case


def test_malformed_json_is_a_clear_400(demo, api):
    api.as_user(demo.custodian)
    response = api.generic("POST", "/api/cases/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_request"


def test_unknown_fields_are_refused_not_ignored(demo, api):
    api.as_user(demo.custodian)
    response = api.patch(f"/api/cases/{demo.case.pk}/", {"title": "x", "organization": 99}, format="json")
    assert response.status_code == 400
    assert "organization" in response.json()["detail"]
    assert Case.objects.get(pk=demo.case.pk).title != "x"


def test_missing_required_fields_name_the_field(demo, api):
    api.as_user(demo.custodian)
    response = api.post("/api/cases/", {"title": "No reference"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert "reference" in body["fields"]


def test_duplicate_reference_is_a_conflict(demo, api):
    api.as_user(demo.custodian)
    response = api.post("/api/cases/", {"reference": "DEMO-2026-001", "title": "Again"}, format="json")
    assert response.status_code in (400, 409)
    assert "reference" in response.json()["detail"]


def test_oversized_body_is_413(demo, api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    api.as_user(demo.custodian)
    response = api.post("/api/cases/", {"reference": "big", "title": "x" * 5000}, format="json")
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"


def test_foreign_user_cannot_be_added_as_member(demo, api):
    api.as_user(demo.custodian)
    response = api.post(f"/api/cases/{demo.case.pk}/members/", {"user": "outsider", "role": "detective"}, format="json")
    assert response.status_code == 404
    assert not demo.case.memberships.filter(user__username="outsider").exists()


def test_unknown_role_is_refused(demo, api):
    api.as_user(demo.custodian)
    response = api.patch(f"/api/cases/{demo.case.pk}/members/detective/", {"role": "admin"}, format="json")
    assert response.status_code == 400


def test_last_custodian_cannot_leave(demo, api):
    api.as_user(demo.custodian)
    response = api.delete(f"/api/cases/{demo.case.pk}/members/custodian/")
    assert response.status_code in (400, 409)
    assert demo.case.memberships.filter(user__username="custodian").exists()


@pytest.mark.parametrize("value", ["yesterday", "2026-13-45"])
def test_bad_audit_dates_are_explained(demo, api, value):
    api.as_user(demo.prosecutor)
    response = api.get(f"/api/audit/?case={demo.case.pk}&since={value}")
    assert response.status_code == 400
    assert "ISO date" in response.json()["detail"]


def test_unknown_api_path_is_json_404(demo, api):
    api.as_user(demo.custodian)
    response = api.get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_audit_dates_without_an_offset_are_read_in_the_callers_zone(demo, settings):
    # The page and the API read "since" and "until" the same way: a date (or a date-time without an offset)
    # in the caller's time zone, whichever way the request was authenticated (a token's has no zone activated).
    from datetime import UTC, datetime

    from django.http import QueryDict

    from cases.api.views import audit_filters

    demo.prosecutor.time_zone = "Asia/Kolkata"
    filters = audit_filters(QueryDict("since=2026-03-02&until=2026-03-02T08:00"), user=demo.prosecutor)
    assert filters["since"] == datetime(2026, 3, 1, 18, 30, tzinfo=UTC)
    assert filters["until"] == datetime(2026, 3, 2, 2, 30, tzinfo=UTC)
    offset = audit_filters(QueryDict("since=2026-03-02T00:00:00%2B00:00"), user=demo.prosecutor)
    assert offset["since"] == datetime(2026, 3, 2, tzinfo=UTC)
    demo.prosecutor.time_zone = ""
    settings.TIME_ZONE = "UTC"
    server = audit_filters(QueryDict("since=2026-03-02"), user=demo.prosecutor)
    assert server["since"] == datetime(2026, 3, 2, tzinfo=UTC)


def test_the_audit_api_reads_a_date_in_the_callers_zone(demo, api):
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    demo.prosecutor.time_zone = "Pacific/Kiritimati"  # UTC+14
    demo.prosecutor.save()
    api.as_user(demo.prosecutor)
    # Ten minutes ago on the caller's clock, without an offset: the demo's rows are after it. Read in UTC it
    # would be fourteen hours ahead, and nothing would be.
    since = (datetime.now(ZoneInfo("Pacific/Kiritimati")) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S")
    response = api.get(f"/api/audit/?case={demo.case.pk}&since={since}")
    assert response.status_code == 200 and response.json()["results"]
