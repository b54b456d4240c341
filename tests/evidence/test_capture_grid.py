"""The permission grid of #2, joined by the capture endpoints and pages (#16): custodians start captures
and list VMs; the whole case team (but an organisation administrator) follows them."""

from __future__ import annotations

import pytest

from evidence.models import CaptureRun
from tests.cases.test_permission_grid import CALLERS, Endpoint, expected_status
from tests.evidence.test_evidence_grid import CASE_TEAM, CUSTODIANS

TARGET = {"subscription_id": "6f1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d", "resource_group": "rg-x", "vm_name": "vm-1"}
VMS_QUERY = "?subscription_id=6f1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d&resource_group=rg-x"

API = [
    Endpoint("GET", "/api/cases/{case}/captures", CASE_TEAM),
    Endpoint("POST", "/api/cases/{case}/captures", CUSTODIANS, TARGET),
    Endpoint("GET", "/api/cases/{case}/captures/vms" + VMS_QUERY, CUSTODIANS),
    Endpoint("GET", "/api/captures/{capture}", CASE_TEAM),
]
PAGES = [
    Endpoint("GET", "/cases/{case}/captures/", CASE_TEAM),
    Endpoint("GET", "/cases/{case}/captures/new/", CUSTODIANS),
    Endpoint("POST", "/cases/{case}/captures/new/", CUSTODIANS, TARGET),
    Endpoint("GET", "/cases/{case}/captures/vms/" + VMS_QUERY, CUSTODIANS),
    Endpoint("GET", "/captures/{capture}/", CASE_TEAM),
]


@pytest.fixture
def run(demo) -> CaptureRun:
    return CaptureRun.objects.create(
        case=demo.case, subscription_id=TARGET["subscription_id"], resource_group="rg-y", vm_name="vm-0",
        requested_by=demo.custodian,
    )  # fmt: skip


def check_refusal(response, endpoint: Endpoint, caller: str) -> None:
    """As the evidence grid checks: 401 or the login page for anonymous callers, the expected 403/404, and
    for allowed callers no refusal by the policy (the action itself may still refuse its input)."""
    expected = expected_status(endpoint, caller)
    if expected == "unauthenticated":
        if endpoint.url.startswith("/api/"):
            assert response.status_code == 401, response.status_code
        else:
            assert response.status_code == 302 and response["Location"].startswith("/login/")
    elif expected == "ok":
        assert response.status_code not in (401, 403, 404), response.content
        assert response.status_code < 500
    else:
        assert response.status_code == int(expected), (response.status_code, response.content[:300])


def _url(endpoint: Endpoint, demo, run) -> str:
    return endpoint.url.format(case=demo.case.pk, capture=run.pk)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", API, ids=str)
def test_capture_api_grid(demo, api, run, endpoint, caller):
    api.as_user(None if caller == "anonymous" else demo.users[caller])
    response = getattr(api, endpoint.method.lower())(_url(endpoint, demo, run), endpoint.body or None, format="json")
    check_refusal(response, endpoint, caller)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", PAGES, ids=str)
def test_capture_page_grid(demo, client, run, endpoint, caller):
    if caller != "anonymous":
        client.force_login(demo.users[caller])
    response = getattr(client, endpoint.method.lower())(_url(endpoint, demo, run), endpoint.body)
    check_refusal(response, endpoint, caller)


def test_an_unknown_capture_run_is_404(demo, api):
    api.as_user(demo.custodian)
    assert api.get("/api/captures/00000000-0000-4000-8000-000000000000").status_code == 404
    assert api.get("/api/captures/not-a-uuid").status_code == 404
