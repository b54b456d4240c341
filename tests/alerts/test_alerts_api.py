"""The alerts a user sees and acknowledges: the API (``GET /api/alerts/``, ``POST /api/alerts/{id}/ack``),
the pages behind the bell, and every kind of caller against each (the permission grid of these endpoints)."""

from __future__ import annotations

import pytest

from alerts.models import Alert
from alerts.services import AlertSpec, alert_raise
from audit.models import AuditEvent
from tests.cases.test_permission_grid import CALLERS


@pytest.fixture
def custodian_alert(demo) -> Alert:
    """An alert of the demo case, addressed to its custodian."""
    return alert_raise(
        spec=AlertSpec(
            kind="evidence.integrity_mismatch",
            title="Sealed evidence failed verification",
            message="Evidence [evidence>7] no longer matches its seal.",
            case_id=demo.case.pk,
        )
    )


def _call(api, client, demo, caller: str, method: str, url: str, body: dict | None = None):
    user = None if caller == "anonymous" else demo.users[caller]
    if url.startswith("/api/"):
        api.as_user(user)
        return getattr(api, method)(url, body, format="json")
    if user is not None:
        client.force_login(user)
    return getattr(client, method)(url, body or {})


# (method, url, body, who gets it): the alert is the custodian's; anyone else signed in sees none of it.
GRID = [
    ("get", "/api/alerts/", None, "everyone"),
    ("get", "/notifications/", None, "everyone"),
    ("get", "/notifications/panel/", None, "everyone"),
    ("post", "/api/alerts/{alert}/ack", {"note": "Re-verified: a bad disk, replaced."}, "custodian"),
    ("post", "/notifications/{alert}/ack/", {"note": "Re-verified: a bad disk, replaced."}, "custodian"),
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", GRID, ids=lambda e: f"{e[0].upper()} {e[1]}")
def test_alerts_grid(demo, api, client, custodian_alert, endpoint, caller):
    method, url, body, allowed = endpoint
    response = _call(api, client, demo, caller, method, url.format(alert=custodian_alert.pk), body)
    api_call = url.startswith("/api/")
    if caller == "anonymous":
        if api_call:
            assert response.status_code == 401
        else:
            assert response.status_code == 302 and response["Location"].startswith("/login/")
        return
    if allowed == "everyone":
        assert response.status_code == 200, response.content[:300]
        if api_call:
            expected = [custodian_alert.pk] if caller == "custodian" else []
            assert [item["id"] for item in response.json()["results"]] == expected
            assert response.json()["count"] == len(expected)
        else:
            assert (custodian_alert.title in response.content.decode()) == (caller == "custodian")
        return
    custodian_alert.refresh_from_db()
    if caller == allowed:
        assert response.status_code in (200, 302), response.content[:300]
        assert custodian_alert.acknowledged_at is not None
    else:
        assert response.status_code == 404, (response.status_code, response.content[:300])
        assert custodian_alert.acknowledged_at is None


def test_acknowledging_needs_a_note_is_audited_and_happens_once(demo, api, custodian_alert):
    api.as_user(demo.custodian)
    url = f"/api/alerts/{custodian_alert.pk}/ack"
    assert api.post(url, {}, format="json").status_code == 400
    assert api.post(url, {"note": "   "}, format="json").status_code == 400
    assert api.post(url, {"note": "x" * 2001}, format="json").status_code == 400
    assert api.post(url, {"note": "ok", "extra": 1}, format="json").status_code == 400
    response = api.post(url, {"note": "Re-verified from the second copy."}, format="json")
    assert response.status_code == 200
    assert response.json()["acknowledged_by"] == "custodian"
    assert response.json()["acknowledgement_note"] == "Re-verified from the second copy."
    again = api.post(url, {"note": "again"}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "already_acknowledged"
    row = AuditEvent.objects.get(action="alert.ack")
    assert row.actor == "custodian" and row.target_id == str(custodian_alert.pk) and row.case_id == demo.case.pk
    assert api.get("/api/alerts/").json() == {"count": 0, "results": []}


def test_hostile_ids_are_a_clear_4xx(demo, api):
    api.as_user(demo.custodian)
    assert api.post("/api/alerts/99999999999999999999/ack", {"note": "n"}, format="json").status_code == 404
    assert api.post("/api/alerts/abc/ack", {"note": "n"}, format="json").status_code == 404
    assert api.post("/api/alerts/1/ack", "not json", content_type="application/json").status_code == 400


def test_the_bell_shows_the_count_on_every_page(demo, client, custodian_alert):
    client.force_login(demo.custodian)
    page = client.get("/cases/").content.decode()
    assert "data-bell-count>1</span>" in page
    client.force_login(demo.detective)
    page = client.get("/cases/").content.decode()
    assert "data-bell-count>0</span>" in page
    assert "alert" not in page  # pages are checked for an error box by that word (tests/search/test_search_page.py)
