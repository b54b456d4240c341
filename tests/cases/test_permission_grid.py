"""Every endpoint and page against every kind of caller.

The rule (issue #2, DESIGN.md §9): anonymous → 401 (API) or the login page (UI); a user of another
organisation → 404, never 403; a member whose role lacks the permission → 403; the roles that hold it → 2xx.
New endpoints are added to these tables as they are built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from audit.models import AuditEvent

CALLERS = ("anonymous", "outsider", "custodian", "investigator", "detective", "prosecutor", "orgadmin")


@dataclass(frozen=True)
class Endpoint:
    method: str
    url: str  # {case} is replaced by the demo case id
    allowed: frozenset[str]
    body: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.method} {self.url}"


EVERYONE_IN_CASE = frozenset({"custodian", "investigator", "detective", "prosecutor", "orgadmin"})
CASE_EDITORS = frozenset({"custodian", "investigator"})
MEMBER_MANAGERS = frozenset({"custodian", "orgadmin"})
AUDITORS = frozenset({"custodian", "prosecutor"})
SEARCHERS = frozenset({"investigator", "detective", "prosecutor"})

API_ENDPOINTS = [
    Endpoint("GET", "/api/cases/{case}/", EVERYONE_IN_CASE),
    Endpoint("PATCH", "/api/cases/{case}/", CASE_EDITORS, {"title": "Renamed"}),
    Endpoint("GET", "/api/cases/{case}/members/", EVERYONE_IN_CASE),
    Endpoint("POST", "/api/cases/{case}/members/", MEMBER_MANAGERS, {"user": "orgadmin", "role": "detective"}),
    Endpoint("DELETE", "/api/cases/{case}/members/?user=detective", MEMBER_MANAGERS),
    Endpoint("PATCH", "/api/cases/{case}/members/detective/", MEMBER_MANAGERS, {"role": "prosecutor"}),
    Endpoint("DELETE", "/api/cases/{case}/members/detective/", MEMBER_MANAGERS),
    Endpoint("GET", "/api/audit/?case={case}", AUDITORS),
    Endpoint("GET", "/api/cases/{case}/audit/export", AUDITORS),
    Endpoint("GET", "/api/cases/{case}/traces/complete?prefix=fi", SEARCHERS),
    Endpoint("GET", "/api/cases/{case}/custody/report.json", AUDITORS),
    Endpoint("GET", "/api/cases/{case}/custody/report.pdf", AUDITORS),
]

UI_PAGES = [
    Endpoint("GET", "/cases/{case}/", EVERYONE_IN_CASE),
    Endpoint("POST", "/cases/{case}/edit/", CASE_EDITORS, {"title": "Renamed", "status": "open", "priority": "high"}),
    Endpoint("POST", "/cases/{case}/members/add/", MEMBER_MANAGERS, {"user": "orgadmin", "role": "detective"}),
    Endpoint("POST", "/cases/{case}/members/detective/role/", MEMBER_MANAGERS, {"role": "prosecutor"}),
    Endpoint("POST", "/cases/{case}/members/detective/remove/", MEMBER_MANAGERS),
    Endpoint("GET", "/cases/{case}/audit/", AUDITORS),
    Endpoint("GET", "/cases/{case}/search/complete?prefix=fi", SEARCHERS),
]


def expected_status(endpoint: Endpoint, caller: str) -> str:
    if caller == "anonymous":
        return "unauthenticated"
    if caller == "outsider":
        return "404"
    return "ok" if caller in endpoint.allowed else "403"


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", API_ENDPOINTS, ids=str)
def test_api_grid(demo, api, endpoint, caller):
    api.as_user(None if caller == "anonymous" else demo.users[caller])
    url = endpoint.url.format(case=demo.case.pk)
    response = getattr(api, endpoint.method.lower())(url, endpoint.body or None, format="json")
    expected = expected_status(endpoint, caller)
    if expected == "unauthenticated":
        assert response.status_code == 401, response.content
        assert response.json()["error"] == "not_authenticated"
    elif expected == "ok":
        assert 200 <= response.status_code < 300, response.content
    else:
        assert response.status_code == int(expected), response.content
        assert set(response.json()) >= {"error", "detail"}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", UI_PAGES, ids=str)
def test_ui_grid(demo, client, endpoint, caller):
    if caller != "anonymous":
        client.force_login(demo.users[caller])
    url = endpoint.url.format(case=demo.case.pk)
    response = getattr(client, endpoint.method.lower())(url, endpoint.body)
    expected = expected_status(endpoint, caller)
    if expected == "unauthenticated":
        assert response.status_code == 302 and response["Location"].startswith("/login/")
    elif expected == "ok":
        assert response.status_code in (200, 302), response.status_code
        if response.status_code == 302:
            assert not response["Location"].startswith("/login/")
    else:
        assert response.status_code == int(expected)


def _call(api, client, endpoint: Endpoint, user, case_id: int):
    url = endpoint.url.format(case=case_id)
    if url.startswith("/api/"):
        api.as_user(user)
        return getattr(api, endpoint.method.lower())(url, endpoint.body or None, format="json")
    client.force_login(user)
    return getattr(client, endpoint.method.lower())(url, endpoint.body)


@pytest.mark.parametrize("caller", ["allowed", "member without the permission", "outsider"])
@pytest.mark.parametrize("endpoint", API_ENDPOINTS + UI_PAGES, ids=str)
def test_every_case_request_is_audited_including_denials(demo, api, client, endpoint, caller):
    """Reads, writes and denials of anything under a case each leave an audit row with the right outcome."""
    if caller == "allowed":
        username, outcome = sorted(endpoint.allowed)[0], "ok"
    elif caller == "outsider":
        username, outcome = "outsider", "denied"
    else:
        candidates = [role for role in ("detective", "investigator", "prosecutor") if role not in endpoint.allowed]
        if not candidates:
            pytest.skip("every member may do this")
        username, outcome = candidates[0], "denied"
    before = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
    response = _call(api, client, endpoint, demo.users[username], demo.case.pk)
    assert response.status_code < 500
    rows = AuditEvent.objects.filter(sequence__gt=before, case_id=demo.case.pk)
    assert rows.filter(actor=username, outcome=outcome).exists(), list(rows.values("action", "actor", "outcome"))


def test_outsider_sees_no_row_and_no_count(demo, api):
    api.as_user(demo.outsider)
    body = api.get("/api/cases/").json()
    references = [case["reference"] for case in body["results"]]
    assert references == ["OA-2026-017"]
    assert body["count"] == 1
    assert api.get(f"/api/audit/?case={demo.case.pk}").status_code == 404
    audit = api.get("/api/audit/").json()
    assert all(event["case_id"] in (None, demo.other_case.pk) for event in audit["results"])


def test_case_list_page_hides_other_organisations(demo, client):
    client.force_login(demo.outsider)
    page = client.get("/cases/").content.decode()
    assert "OA-2026-017" in page
    assert "DEMO-2026-001" not in page


def test_nonexistent_case_is_404_like_a_foreign_one(demo, api):
    api.as_user(demo.custodian)
    missing = api.get("/api/cases/999999/")
    foreign = api.get(f"/api/cases/{demo.other_case.pk}/")
    assert missing.status_code == foreign.status_code == 404
    assert missing.json() == foreign.json()


# ---------------------------------------------------------------- search: traces, tags, notes, saved searches
# {trace} is a trace of the demo case, {saved} a saved search of it. Neither custodians nor org admins
# search traces (cases/permissions.py): they get 403 like any member without the permission.

ANNOTATORS = frozenset({"investigator", "detective"})

SEARCH_API = [
    Endpoint("POST", "/api/cases/{case}/traces/search", SEARCHERS, {"query": "report"}),
    Endpoint("GET", "/api/cases/{case}/traces/export.csv?q=report", SEARCHERS),
    Endpoint("GET", "/api/cases/{case}/traces/{trace}", SEARCHERS),
    Endpoint("GET", "/api/cases/{case}/traces/{trace}/children", SEARCHERS),
    Endpoint("PUT", "/api/cases/{case}/traces/{trace}/tags/relevant", ANNOTATORS),
    Endpoint("DELETE", "/api/cases/{case}/traces/{trace}/tags/relevant", ANNOTATORS),
    Endpoint("GET", "/api/cases/{case}/traces/{trace}/notes", SEARCHERS),
    Endpoint("POST", "/api/cases/{case}/traces/{trace}/notes", ANNOTATORS, {"text": "Seen."}),
    Endpoint("POST", "/api/cases/{case}/traces/tag", ANNOTATORS, {"tag": "relevant", "query": "report"}),
    Endpoint("GET", "/api/cases/{case}/searches/", SEARCHERS),
    Endpoint("POST", "/api/cases/{case}/searches/", ANNOTATORS, {"name": "Reports", "query": "report"}),
    Endpoint("DELETE", "/api/cases/{case}/searches/{saved}/", ANNOTATORS),
    # Issue #20 (ui-search): the events timeline.
    Endpoint("POST", "/api/cases/{case}/events/search", SEARCHERS, {"query": "report"}),
    Endpoint("GET", "/api/cases/{case}/events/export.csv?q=report", SEARCHERS),
    Endpoint("POST", "/api/cases/{case}/traces/values", SEARCHERS, {"query": "report", "property": "file.size"}),
]

SEARCH_PAGES = [
    Endpoint("GET", "/cases/{case}/traces/?q=report", SEARCHERS),
    Endpoint("GET", "/cases/{case}/traces/{trace}/", SEARCHERS),
    Endpoint("GET", "/cases/{case}/traces/{trace}/annotations/", SEARCHERS),
    Endpoint("POST", "/cases/{case}/traces/{trace}/annotations/", ANNOTATORS, {"action": "tag", "tag": "relevant"}),
    Endpoint("POST", "/cases/{case}/traces/tag/", ANNOTATORS, {"tag": "relevant", "all": "1", "q": "report"}),
    Endpoint("POST", "/cases/{case}/searches/", ANNOTATORS, {"name": "Reports", "q": "report"}),
    Endpoint("POST", "/cases/{case}/searches/{saved}/delete/", ANNOTATORS),
    # Issue #20 (ui-search): the events timeline.
    Endpoint("GET", "/cases/{case}/events/?q=report", SEARCHERS),
]


@pytest.fixture
def search_targets(demo) -> dict[str, object]:
    """A trace and a saved search in the demo case (hand-made: no extraction needed)."""
    from evidence.services.registration import evidence_register
    from search.models import ExtractionRun, SavedSearch, Trace

    evidence = evidence_register(actor=demo.custodian, case=demo.case, label="USB stick", kind="file")
    run = ExtractionRun.objects.create(evidence=evidence, state="done")
    trace = Trace.objects.create(
        uid=f"{evidence.pk}:0-0",
        evidence=evidence,
        case=demo.case,
        run=run,
        ordinal=0,
        name="report.docx",
        path="/stick/report.docx",
        types=["file"],
        properties={"file.size": 1200},
        sha256=f"{0:064x}",
    )
    saved = SavedSearch.objects.create(case=demo.case, name="Old", query="report", created_by=demo.investigator)
    return {"case": demo.case.pk, "trace": trace.uid, "saved": saved.pk}


def _search_call(api, client, endpoint: Endpoint, user, targets: dict):
    url = endpoint.url.format(**targets)
    if url.startswith("/api/"):
        api.as_user(user)
        return getattr(api, endpoint.method.lower())(url, endpoint.body or None, format="json")
    if user is not None:
        client.force_login(user)
    return getattr(client, endpoint.method.lower())(url, endpoint.body)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", SEARCH_API + SEARCH_PAGES, ids=str)
def test_search_grid(demo, api, client, search_targets, endpoint, caller):
    user = None if caller == "anonymous" else demo.users[caller]
    response = _search_call(api, client, endpoint, user, search_targets)
    expected = expected_status(endpoint, caller)
    if expected == "unauthenticated":
        if endpoint.url.startswith("/api/"):
            assert response.status_code == 401, response.content
        else:
            assert response.status_code == 302 and response["Location"].startswith("/login/")
    elif expected == "ok":
        assert 200 <= response.status_code < 400, (response.status_code, response.content[:300])
        if response.status_code in (301, 302):
            assert not response["Location"].startswith("/login/")
    else:
        assert response.status_code == int(expected), (response.status_code, response.content[:300])


@pytest.mark.parametrize("caller", ["allowed", "member without the permission", "outsider"])
@pytest.mark.parametrize("endpoint", SEARCH_API + SEARCH_PAGES, ids=str)
def test_every_search_request_is_audited_including_denials(demo, api, client, search_targets, endpoint, caller):
    if caller == "allowed":
        username, outcome = sorted(endpoint.allowed)[0], "ok"
    elif caller == "outsider":
        username, outcome = "outsider", "denied"
    else:
        username, outcome = "custodian", "denied"  # holds neither search_traces nor annotate_traces
    before = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
    response = _search_call(api, client, endpoint, demo.users[username], search_targets)
    assert response.status_code < 500
    rows = AuditEvent.objects.filter(sequence__gt=before, case_id=demo.case.pk)
    assert rows.filter(actor=username, outcome=outcome).exists(), list(rows.values("action", "actor", "outcome"))


# ---------------------------------------------------------------- issue #17: every endpoint, every caller
# The endpoints no grid above holds. Those under a case name objects made by ``object_targets``; the rule
# is the same (anonymous → 401 or the login page, outsider → 404, a member without the permission → 403),
# and the roles that hold the permission get through it (their answer may still refuse the object's state:
# 409 for a seal of nothing, 404 for a stream the trace does not have; never 401, 403 or a 5xx).

CASE_TEAM = EVERYONE_IN_CASE - {"orgadmin"}  # an org admin manages members but sees no evidence
CUSTODIANS = frozenset({"custodian"})
REVEALERS = frozenset({"custodian", "investigator"})

OBJECT_ENDPOINTS = [
    Endpoint("POST", "/evidence/{evidence}/seal/", CUSTODIANS),
    Endpoint("POST", "/evidence/{evidence}/verify/", CASE_TEAM),
    Endpoint("POST", "/api/evidence/{evidence}/verify", CASE_TEAM),
    Endpoint("PUT", "/api/evidence/{evidence}/content", CUSTODIANS),
    Endpoint("POST", "/evidence/{evidence}/secrets/{secret}/reveal/", REVEALERS),
    Endpoint("POST", "/api/evidence/{evidence}/secrets/{secret}/reveal", REVEALERS),
    Endpoint("POST", "/links/{link}/approve/", CUSTODIANS),
    Endpoint("POST", "/links/{link}/revoke/", CUSTODIANS),
    Endpoint("POST", "/api/links/{link}/approve", CUSTODIANS),
    Endpoint("POST", "/api/links/{link}/revoke", CUSTODIANS),
    Endpoint("GET", "/cases/{case}/traces/{trace}/thumbnail/{stream}.png", SEARCHERS),
    Endpoint("GET", "/api/cases/{case}/traces/{trace}/data/{stream}", SEARCHERS),
    Endpoint("POST", "/api/evidence/import", CUSTODIANS, {"case": "{case}", "paths": ["/nowhere/disk.raw"]}),
]


@pytest.fixture
def object_targets(demo, api) -> dict[str, object]:
    """An evidence item of the demo case with an escrowed secret, a link waiting for approval, a trace."""
    from datetime import timedelta

    from django.utils import timezone

    from evidence.models import DownloadLink, KeyEscrow
    from evidence.services.registration import evidence_register
    from search.models import ExtractionRun, Trace

    evidence = evidence_register(actor=demo.custodian, case=demo.case, label="Disk", kind="disk_image")
    api.as_user(demo.custodian)
    escrowed = api.post(
        f"/api/evidence/{evidence.pk}/secrets/",
        {"kind": "luks_passphrase", "name": "disk", "value": "s3cret"},
        format="json",
    )
    assert escrowed.status_code == 201, escrowed.content
    secret = KeyEscrow.objects.get(evidence=evidence)
    link = DownloadLink.objects.create(
        evidence=evidence,
        # Asked for by someone else: the custodian would be refused (403) approving a request of their own.
        issued_by=demo.orgadmin,
        recipient=demo.prosecutor,
        reason="Court",
        lifetime_seconds=3600,
        expires_at=timezone.now() + timedelta(hours=1),
        lookup="grid-link-lookup",
        token_hash="0" * 64,
        state="pending",
        approval_required=True,
        approval_expires_at=timezone.now() + timedelta(hours=1),
    )
    run = ExtractionRun.objects.create(evidence=evidence, state="done")
    trace = Trace.objects.create(
        uid=f"{evidence.pk}:0-0", evidence=evidence, case=demo.case, run=run, ordinal=0, name="a.jpg", types=["file"]
    )
    return {
        "case": demo.case.pk,
        "evidence": evidence.pk,
        "secret": secret.pk,
        "link": link.pk,
        "trace": trace.uid,
        "stream": "raw",
    }


def _object_call(api, client, endpoint: Endpoint, user, targets: dict):
    url = endpoint.url.format(**targets)
    body = {key: (value.format(**targets) if isinstance(value, str) else value) for key, value in endpoint.body.items()}
    if "case" in body:
        body["case"] = int(body["case"])
    if url.startswith("/api/"):
        api.as_user(user)
        if endpoint.method == "PUT":
            return api.generic(
                "PUT", url, b"x" * 10, content_type="application/octet-stream", HTTP_CONTENT_RANGE="bytes 0-9/10"
            )
        return getattr(api, endpoint.method.lower())(url, body or None, format="json")
    if user is not None:
        client.force_login(user)
    return getattr(client, endpoint.method.lower())(url, body)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", OBJECT_ENDPOINTS, ids=str)
def test_object_grid(demo, api, client, object_targets, endpoint, caller):
    user = None if caller == "anonymous" else demo.users[caller]
    response = _object_call(api, client, endpoint, user, object_targets)
    expected = expected_status(endpoint, caller)
    assert response.status_code < 500, response.content[:300]
    if expected == "unauthenticated":
        if endpoint.url.startswith("/api/"):
            assert response.status_code == 401, response.content
        else:
            assert response.status_code == 302 and response["Location"].startswith("/login/")
    elif expected == "ok":
        assert response.status_code not in (401, 403), (response.status_code, response.content[:300])
        if response.status_code == 404:
            assert endpoint.url.endswith(("{stream}.png", "{stream}")), response.content[:300]
        if response.status_code in (301, 302):
            assert not response["Location"].startswith("/login/")
    else:
        assert response.status_code == int(expected), (response.status_code, response.content[:300])


# Endpoints under no case: what each caller gets. "anonymous" in ``allowed`` marks a public endpoint.
ALL_USERS = frozenset(CALLERS) - {"anonymous"}
PUBLIC_ENDPOINT = frozenset(CALLERS)
CASE_OPENERS = frozenset({"custodian", "outsider", "orgadmin"})  # add_case (seed_demo), and org admins
VERIFIERS = AUDITORS | {"orgadmin", "outsider"}  # auditors of some case of their own organisation, org admins

ACCOUNT_ENDPOINTS = [
    Endpoint("GET", "/healthz", PUBLIC_ENDPOINT),
    Endpoint("GET", "/favicon.ico", PUBLIC_ENDPOINT),
    Endpoint("GET", "/login/", PUBLIC_ENDPOINT),
    Endpoint("GET", "/api/schema/", PUBLIC_ENDPOINT),
    Endpoint("GET", "/api/docs/", PUBLIC_ENDPOINT),
    Endpoint("GET", "/cases/", ALL_USERS),
    Endpoint("GET", "/cases/new/", CASE_OPENERS),
    Endpoint("GET", "/search/help/", ALL_USERS),
    Endpoint("GET", "/api/cases/", ALL_USERS),
    Endpoint("POST", "/api/cases/", CASE_OPENERS, {"reference": "GRID-17", "title": "Grid"}),
    Endpoint("GET", "/api/tokens/", ALL_USERS),
    Endpoint("POST", "/api/tokens/", ALL_USERS, {"name": "grid"}),
    Endpoint("GET", "/api/audit/public-key", ALL_USERS),
    Endpoint("GET", "/api/audit/verify", VERIFIERS),
    Endpoint("GET", "/api/users/", frozenset({"orgadmin"})),
    Endpoint("POST", "/api/users/", frozenset({"orgadmin"}), {"username": "grid-17", "password": "a-long-password-1"}),
    # Issue #20: the organisation administrator's screen.
    Endpoint("GET", "/account/organisation/", frozenset({"orgadmin"})),
    Endpoint("POST", "/account/organisation/", frozenset({"orgadmin"}), {"username": "grid-20"}),
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", ACCOUNT_ENDPOINTS, ids=str)
def test_account_grid(demo, api, client, endpoint, caller):
    user = None if caller == "anonymous" else demo.users[caller]
    if endpoint.url.startswith("/api/"):
        api.as_user(user)
        response = getattr(api, endpoint.method.lower())(endpoint.url, endpoint.body or None, format="json")
    else:
        if user is not None:
            client.force_login(user)
        response = getattr(client, endpoint.method.lower())(endpoint.url, endpoint.body)
    if caller in endpoint.allowed:
        # A page may send a signed-in user on (the login page: to the case list), never to the login page.
        assert 200 <= response.status_code < 300 or (
            response.status_code == 302 and not response["Location"].startswith("/login/")
        ), (response.status_code, response.content[:300])
    elif caller == "anonymous":
        if endpoint.url.startswith("/api/"):
            assert response.status_code == 401, response.content
        else:
            assert response.status_code == 302 and response["Location"].startswith("/login/")
    else:
        assert response.status_code == 403, (response.status_code, response.content[:300])
