"""Issue #17, findings 5 and 6: hostile numbers get a clear 4xx, never a 500; and nothing an answer says
tells one organisation about another."""

from __future__ import annotations

import pytest
from django.db import connection

from audit.models import AuditEvent
from cases.models import User
from tests.conftest import DEMO_PASSWORD

# --- finding 5: 500 → 4xx ----------------------------------------------------------------------------


@pytest.mark.parametrize("expires_in", [10**15, 1e15, 10**30])
def test_a_huge_token_lifetime_is_a_400_unauthenticated_or_not(demo, api, expires_in):
    login = api.post(
        "/api/auth/token",
        {"username": "detective", "password": DEMO_PASSWORD, "expires_in": expires_in},
        format="json",
    )
    assert login.status_code == 400, login.content
    assert "expires_in" in login.json()["detail"]
    api.as_user(demo.detective)
    created = api.post("/api/tokens/", {"name": "x", "expires_in": expires_in}, format="json")
    assert created.status_code == 400, created.content


def test_a_huge_declared_size_is_a_400(demo, api):
    api.as_user(demo.custodian)
    body = {"label": "Huge", "kind": "disk_image", "declared_size": 1e30}
    response = api.post(f"/api/cases/{demo.case.pk}/evidence/", body, format="json")
    assert response.status_code == 400, response.content
    assert "declared_size" in response.json()["detail"]


@pytest.mark.parametrize("total", ["10000000000000000000000", "9" * 5000])
def test_a_huge_content_range_total_is_a_400(demo, api, total):
    api.as_user(demo.custodian)
    registered = api.post(f"/api/cases/{demo.case.pk}/evidence/", {"label": "X", "kind": "disk_image"}, format="json")
    response = api.generic(
        "PUT",
        f"/api/evidence/{registered.json()['id']}/content",
        b"x" * 10,
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes 0-9/{total}",
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_range"


# --- finding 6: no cross-tenant hints ----------------------------------------------------------------


def edit_behind_the_triggers(sequence: int) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_update_delete")
        else:
            cursor.execute("DROP TRIGGER audit_event_no_update")
            cursor.execute("DROP TRIGGER audit_event_no_delete")
        cursor.execute("UPDATE audit_auditevent SET actor = 'mallory' WHERE sequence = %s", [sequence])


def test_audit_verify_counts_only_the_callers_organisation(demo, api):
    api.as_user(demo.outsider)
    mine = AuditEvent.objects.filter(case_id=demo.other_case.pk).count()
    assert AuditEvent.objects.count() > mine
    report = api.get("/api/audit/verify").json()
    assert report["ok"] is True
    assert report["events"] == mine
    assert report["checkpoint"] is None and report["not_checkpointed"] is None


def test_audit_verify_names_no_break_in_another_organisations_case(demo, api):
    target = AuditEvent.objects.filter(case_id=demo.case.pk).order_by("sequence").first().sequence
    edit_behind_the_triggers(target)
    api.as_user(demo.outsider)
    report = api.get("/api/audit/verify").json()
    assert report["ok"] is False
    assert report["first_bad_sequence"] is None
    assert str(demo.case.pk) not in report["problem"] and "edited" not in report["problem"]
    api.as_user(demo.custodian)
    own = api.get("/api/audit/verify").json()
    assert own["first_bad_sequence"] == target and "edited row" in own["problem"]


def test_creating_a_user_does_not_tell_whether_another_organisation_has_the_name(demo, api):
    api.as_user(demo.orgadmin)
    elsewhere = api.post("/api/users/", {"username": "outsider", "password": "a-long-password-1"}, format="json")
    here = api.post("/api/users/", {"username": "detective", "password": "a-long-password-1"}, format="json")
    assert elsewhere.status_code == here.status_code == 409
    assert elsewhere.json() == here.json()
    assert "outsider" not in elsewhere.content.decode() and "organisation" not in elsewhere.content.decode()
    assert User.objects.filter(username__iexact="outsider").count() == 1


@pytest.mark.parametrize("path", ["/api/cases/{huge}/", "/cases/{huge}/", "/api/cases/{huge}/members/"])
def test_an_id_beyond_64_bits_is_a_404(demo, api, client, path):
    url = path.format(huge=10**30)
    api.as_user(demo.custodian)
    client.force_login(demo.custodian)
    response = api.get(url) if url.startswith("/api/") else client.get(url)
    assert response.status_code == 404


def test_a_nul_character_in_text_is_a_400_on_every_database(demo, api, client):
    api.as_user(demo.custodian)
    assert api.get("/api/audit/", {"actions": "a\x00b"}).status_code in (200, 400)
    created = api.post("/api/cases/", {"reference": "NUL-1", "title": "a\x00b"}, format="json")
    assert created.status_code in (201, 400), created.content
