"""The permission grid of #2, joined by every evidence endpoint and page."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from cases.models import User
from evidence.models import Evidence
from evidence.services.registration import evidence_register
from tests.cases.test_permission_grid import (
    AUDITORS,
    CALLERS,
    EVERYONE_IN_CASE,
    SEARCHERS,
    Endpoint,
    expected_status,
)

CASE_TEAM = EVERYONE_IN_CASE - {"orgadmin"}  # an org admin manages members but sees no evidence
CUSTODIANS = frozenset({"custodian"})
REVEALERS = frozenset({"custodian", "investigator"})
EXTRACTORS = frozenset({"investigator"})

API = [
    # Issue #20: the folder tree reads traces, as the search does.
    Endpoint("GET", "/api/evidence/{evidence}/tree", SEARCHERS),
    Endpoint("GET", "/api/evidence/{evidence}/tree/entries", SEARCHERS),
    Endpoint("GET", "/api/cases/{case}/overview", EVERYONE_IN_CASE),
    Endpoint("GET", "/api/cases/{case}/evidence/", CASE_TEAM),
    Endpoint("POST", "/api/cases/{case}/evidence/", CUSTODIANS, {"label": "USB stick", "kind": "file"}),
    Endpoint("GET", "/api/evidence/{evidence}/", CASE_TEAM),
    Endpoint("GET", "/api/evidence/{evidence}/content/status", CUSTODIANS),
    Endpoint("POST", "/api/evidence/{evidence}/seal", CUSTODIANS),
    # #15 changed this on purpose: the custody trail is audit content (actors, addresses, recipients).
    Endpoint("GET", "/api/evidence/{evidence}/custody", AUDITORS),
    Endpoint("GET", "/api/evidence/{evidence}/secrets/", CASE_TEAM),
    Endpoint(
        "POST", "/api/evidence/{evidence}/secrets/", CUSTODIANS, {"kind": "luks_passphrase", "name": "x", "value": "y"}
    ),
    Endpoint("POST", "/api/evidence/{evidence}/extract", EXTRACTORS),
    Endpoint("GET", "/api/evidence/{evidence}/extractions/", CASE_TEAM),
    Endpoint("GET", "/api/evidence/{evidence}/links", CUSTODIANS),
    Endpoint("POST", "/api/evidence/{evidence}/links", CUSTODIANS, {"recipient": "prosecutor", "reason": "Court"}),
    Endpoint("GET", "/api/evidence/{evidence}/custody/report.json", AUDITORS),
    Endpoint("GET", "/api/evidence/{evidence}/custody/report.pdf", AUDITORS),
    # #18 (img-chain): a differencing disk linked to its parent.
    Endpoint("POST", "/api/evidence/{evidence}/parent", CUSTODIANS, {"parent": "00000000-0000-4000-8000-000000000000"}),
    # #18 item 6: the zone the item's local times are converted with.
    Endpoint("PUT", "/api/evidence/{evidence}/source-time-zone", CUSTODIANS, {"time_zone": "Europe/Amsterdam"}),
]
PAGES = [
    Endpoint("GET", "/evidence/{evidence}/folders/", SEARCHERS),
    Endpoint("GET", "/evidence/{evidence}/folders/nodes/", SEARCHERS),
    Endpoint("GET", "/evidence/{evidence}/folders/list/", SEARCHERS),
    # The case page's counts and attention list: whoever sees the case (each count as far as the role shows).
    Endpoint("GET", "/cases/{case}/overview/", EVERYONE_IN_CASE),
    Endpoint("GET", "/cases/{case}/evidence/", CASE_TEAM),
    Endpoint("GET", "/cases/{case}/evidence/new/", CUSTODIANS),
    Endpoint("GET", "/evidence/{evidence}/", CASE_TEAM),
    Endpoint("GET", "/evidence/{evidence}/progress/", CASE_TEAM),
    Endpoint(
        "POST", "/evidence/{evidence}/secrets/add/", CUSTODIANS, {"kind": "luks_passphrase", "name": "x", "value": "y"}
    ),
    Endpoint("GET", "/evidence/{evidence}/extractions/", CASE_TEAM),
    Endpoint("POST", "/evidence/{evidence}/extract/", EXTRACTORS),
    Endpoint("GET", "/evidence/{evidence}/links/", CUSTODIANS),
    Endpoint(
        "POST",
        "/evidence/{evidence}/links/issue/",
        CUSTODIANS,
        {"recipient": "prosecutor", "reason": "Court", "expires_in_hours": "8", "kind": "signed"},
    ),
    Endpoint("GET", "/cases/{case}/links/", CUSTODIANS),
    Endpoint("POST", "/evidence/{evidence}/parent/", CUSTODIANS, {"parent": "00000000-0000-4000-8000-000000000000"}),
    Endpoint("POST", "/evidence/{evidence}/source-time-zone/", CUSTODIANS, {"time_zone": "UTC"}),
]


@pytest.fixture
def evidence(demo) -> Evidence:
    return evidence_register(
        actor=User.objects.get(username="custodian"), case=demo.case, label="Disk", kind="disk_image"
    )


def _url(endpoint: Endpoint, demo, evidence) -> str:
    return endpoint.url.format(case=demo.case.pk, evidence=evidence.pk)


def _ok_or_expected_refusal(response, endpoint, caller):
    expected = expected_status(endpoint, caller)
    if expected == "unauthenticated":
        # The API answers 401; a page sends the browser to the login page.
        if endpoint.url.startswith("/api/"):
            assert response.status_code == 401, response.status_code
        else:
            assert response.status_code == 302 and response["Location"].startswith("/login/")
    elif expected == "ok":
        # Allowed callers get through the policy; the action itself may still refuse (e.g. seal of nothing).
        assert response.status_code not in (401, 403, 404), response.content
    else:
        assert response.status_code == int(expected), (response.status_code, response.content[:300])


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", API, ids=str)
def test_evidence_api_grid(demo, api, evidence, endpoint, caller):
    api.as_user(None if caller == "anonymous" else demo.users[caller])
    response = getattr(api, endpoint.method.lower())(
        _url(endpoint, demo, evidence), endpoint.body or None, format="json"
    )
    _ok_or_expected_refusal(response, endpoint, caller)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", PAGES, ids=str)
def test_evidence_page_grid(demo, client, evidence, endpoint, caller):
    if caller != "anonymous":
        client.force_login(demo.users[caller])
    response = getattr(client, endpoint.method.lower())(_url(endpoint, demo, evidence), endpoint.body)
    _ok_or_expected_refusal(response, endpoint, caller)


@pytest.mark.parametrize("caller", ["outsider", "detective"])
def test_refused_evidence_requests_are_audited_against_the_case(demo, api, evidence, caller):
    api.as_user(demo.users[caller])
    before = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    api.get(f"/api/evidence/{evidence.pk}/content/status")
    row = AuditEvent.objects.filter(sequence__gt=before, outcome="denied").get()
    assert (row.case_id, row.target_type, row.target_id) == (demo.case.pk, "evidence", str(evidence.pk))


def test_unknown_evidence_id_is_404(demo, api):
    api.as_user(demo.custodian)
    assert api.get("/api/evidence/00000000-0000-4000-8000-000000000000/").status_code == 404
