"""Re-identification under two people's control (issue #19 item 4): it round-trips for the approved auditor
and is refused, and audited, otherwise — over the API and on the page."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent, ReIdentificationRequest
from audit.privacy import DEFAULT_POLICY

QUERY = "Jan Jansen"


@pytest.fixture
def production_policy(settings):
    settings.CUSTODIA_PRIVACY_POLICY = dict(DEFAULT_POLICY)
    settings.CUSTODIA_PRIVACY_LOOKUP = "audit.privacy_store.DatabaseLookupTable"
    return settings


@pytest.fixture
def searched(demo, api, production_policy) -> AuditEvent:
    """The detective's search, as the production policy stores it: the query session-scoped and reversible."""
    api.as_user(demo.detective)
    response = api.post(f"/api/cases/{demo.case.pk}/traces/search", {"query": QUERY}, format="json")
    assert response.status_code == 200, response.content
    event = AuditEvent.objects.filter(action="api-trace-search.access").order_by("-sequence").first()
    assert event is not None and QUERY not in str(event.details) and event.actor != "detective"
    return event


def ask(api, user, event: AuditEvent, field: str = "details.query", reason: str = "Court order 2026/17"):
    api.as_user(user)
    return api.post("/api/audit/reidentify", {"event": event.sequence, "field": field, "reason": reason}, format="json")


def actions_since(sequence: int) -> list[tuple[str, str]]:
    rows = AuditEvent.objects.filter(sequence__gt=sequence, action__startswith="privacy.reidentify").order_by(
        "sequence"
    )
    return [(row.action, row.outcome) for row in rows]


def test_re_identification_round_trips_for_the_approved_auditor(demo, api, searched):
    start = searched.sequence
    response = ask(api, demo.custodian, searched)
    assert response.status_code == 201, response.content
    request_id = response.json()["id"]
    assert response.json()["status"] == "pending"
    # Not before a second person approved it, and never by the requester themselves.
    assert "value" not in api.get(f"/api/audit/reidentify/{request_id}").json()
    mine = api.post(f"/api/audit/reidentify/{request_id}/approve", {"approve": True}, format="json")
    assert mine.status_code == 403 and mine.json()["error"] == "four_eyes"
    # A detective of the case may not audit it; someone of another organisation does not see the request.
    api.as_user(demo.detective)
    assert api.post(f"/api/audit/reidentify/{request_id}/approve", {"approve": True}, format="json").status_code == 403
    api.as_user(demo.outsider)
    assert api.post(f"/api/audit/reidentify/{request_id}/approve", {"approve": True}, format="json").status_code == 404
    # The prosecutor of the case approves; the value goes to the requester only.
    api.as_user(demo.prosecutor)
    approved = api.post(f"/api/audit/reidentify/{request_id}/approve", {"approve": True}, format="json")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert "value" not in api.get(f"/api/audit/reidentify/{request_id}").json()
    api.as_user(demo.custodian)
    assert api.get(f"/api/audit/reidentify/{request_id}").json()["value"] == QUERY
    assert actions_since(start) == [
        ("privacy.reidentify.request", "ok"),
        ("privacy.reidentify.approve", "denied"),  # the requester's own approval
        ("privacy.reidentify.approve", "denied"),  # the detective's
        ("privacy.reidentify.approve", "ok"),
        ("privacy.reidentify.reveal", "ok"),
    ]
    again = api.post(f"/api/audit/reidentify/{request_id}/approve", {"approve": False}, format="json")
    assert again.status_code == 403  # the requester again


def test_the_actor_and_address_re_identify_too(demo, api, searched):
    response = ask(api, demo.prosecutor, searched, field="actor")
    assert response.status_code == 201, response.content
    api.as_user(demo.custodian)
    api.post(f"/api/audit/reidentify/{response.json()['id']}/approve", {"approve": True}, format="json")
    api.as_user(demo.prosecutor)
    assert api.get(f"/api/audit/reidentify/{response.json()['id']}").json()["value"] == "detective"


@pytest.mark.parametrize(
    ("who", "field", "reason", "status", "code"),
    [
        ("detective", "details.query", "why", 403, "not_allowed"),  # may not read the case's audit trail
        ("outsider", "details.query", "why", 403, "not_allowed"),
        ("custodian", "details.method", "why", 400, "not_reversible"),  # never replaced
        ("custodian", "details.nothing", "why", 400, "not_reversible"),
        ("custodian", "details.query", "   ", 400, "invalid"),  # DRF trims the reason: a 400 either way
    ],
)
def test_a_request_is_refused_and_audited_otherwise(demo, api, searched, who, field, reason, status, code):
    response = ask(api, demo.users[who], searched, field=field, reason=reason)
    assert response.status_code == status, response.content
    if code != "invalid":
        assert response.json()["error"] == code
        assert actions_since(searched.sequence) == [("privacy.reidentify.request", "denied")]
    assert not ReIdentificationRequest.objects.exists()


@pytest.mark.parametrize(
    "body", [{"event": "x", "field": "actor", "reason": "r"}, {"event": 1, "field": "a" * 201, "reason": "r"}, {}]
)
def test_hostile_input_is_a_clear_400(demo, api, body):
    api.as_user(demo.custodian)
    assert api.post("/api/audit/reidentify", body, format="json").status_code == 400
    assert (
        api.post("/api/audit/reidentify", {"event": 10**30, "field": "actor", "reason": "r"}, format="json").status_code
        == 400
    )
    assert api.get("/api/audit/reidentify/999999").status_code == 404
    assert api.post("/api/audit/reidentify/999999/approve", {"approve": "maybe"}, format="json").status_code == 400


def test_the_page_asks_approves_and_shows(demo, client, searched):
    client.force_login(demo.custodian)
    page = client.get(f"/audit/reidentify/?event={searched.sequence}")
    assert page.status_code == 200 and b"details.query" in page.content
    asked = client.post(
        "/audit/reidentify/",
        {"step": "ask", "event": searched.sequence, "field": "details.query", "reason": "Court order"},
    )
    assert asked.status_code == 302
    request = ReIdentificationRequest.objects.get()
    client.force_login(demo.prosecutor)
    assert b"Approve request" in client.get("/audit/reidentify/").content
    client.post("/audit/reidentify/", {"step": "approve", "request": request.pk})
    client.force_login(demo.custodian)
    shown = client.post("/audit/reidentify/", {"step": "reveal", "request": request.pk})
    assert shown.status_code == 200 and QUERY.encode() in shown.content
    # Someone else cannot reveal it.
    client.force_login(demo.prosecutor)
    refused = client.post("/audit/reidentify/", {"step": "reveal", "request": request.pk})
    assert QUERY.encode() not in refused.content
