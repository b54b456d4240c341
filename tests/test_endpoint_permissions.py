"""Every endpoint declares the permission it needs (DESIGN.md §9, issue #14): a page view or API action
that declares none, or declares a name the policy does not know, fails here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from cases import permissions as perms
from custodia.access import DECLARABLE, LOGGED_IN, OPEN_CASES, ORG_ADMIN, PUBLIC, declared_permission
from tests.cases import test_permission_grid as grid
from tests.evidence import test_capture_grid as capture_grid
from tests.evidence import test_evidence_grid as evidence_grid

# Django's admin checks staff permissions of its own; static and media files are served outside the URL
# patterns (whitenoise), so the walker never meets them.
EXCLUDED_NAMESPACES = {"admin"}


def endpoints(patterns=None, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(route, view callback) for every URL pattern, through every include()."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace in EXCLUDED_NAMESPACES:
                continue
            yield from endpoints(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            assert isinstance(pattern, URLPattern)
            yield prefix + str(pattern.pattern), pattern.callback


def actions(callback) -> tuple[object | None, list[str]]:
    """The view class (if any) and what declarations are looked up by: a DRF viewset's action names, an
    API or class-based view's HTTP method handlers, or "*" for a function view (one declaration)."""
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if getattr(callback, "actions", None):  # a DRF router's viewset: {"get": "list", ...}
        return view_class, sorted(set(callback.actions.values()))
    if view_class is not None:
        methods = [m for m in view_class.http_method_names if m not in ("options", "head") and hasattr(view_class, m)]
        return view_class, methods
    return None, ["*"]


def declarations() -> list[tuple[str, str, str | None]]:
    found = []
    for route, callback in endpoints():
        view_class, names = actions(callback)
        for name in names:
            permission = declared_permission(callback, name)
            if permission is None and view_class is not None:
                permission = declared_permission(view_class, name)
            found.append((route, name, permission))
    return found


def test_the_walker_sees_pages_api_actions_and_included_urlconfs():
    routes = {(route, name) for route, name, _ in declarations()}
    assert ("cases/<int:case_id>/", "*") in routes
    assert ("api/cases/<int:case_id>/", "patch") in routes
    assert ("api/cases/<int:case_id>/traces/<str:trace_uid>/tags/<str:tag>", "delete") in routes
    assert ("l/<str:token>", "*") in routes
    assert not any(route.startswith("admin/") for route, _ in routes)


def test_every_page_and_api_action_declares_its_permission():
    undeclared = [f"{route} [{name}]" for route, name, permission in declarations() if permission is None]
    assert not undeclared, "declare what these need (custodia/access.py):\n" + "\n".join(undeclared)


def test_every_declaration_names_a_known_permission():
    unknown = [
        f"{route} [{name}]: {permission}"
        for route, name, permission in declarations()
        if permission is not None and permission not in DECLARABLE
    ]
    assert not unknown, "\n".join(unknown)


def roles_holding(permission: str) -> frozenset[str]:
    """The grid's callers that cases/permissions.py lets do what ``permission`` allows on the demo case."""
    roles = {str(role) for role, granted in perms.ROLE_PERMISSIONS.items() if permission in granted}
    if permission in perms.ORG_ADMIN_PERMISSIONS:
        roles.add("orgadmin")
    return frozenset(roles)


GRID_ENDPOINTS = [
    *grid.API_ENDPOINTS,
    *grid.UI_PAGES,
    *grid.SEARCH_API,
    *grid.SEARCH_PAGES,
    *evidence_grid.API,
    *evidence_grid.PAGES,
    *capture_grid.API,
    *capture_grid.PAGES,
    *grid.OBJECT_ENDPOINTS,
]
PLACEHOLDERS = {
    "case": 1,
    "evidence": "00000000-0000-4000-8000-000000000000",
    "trace": "x:0-0",
    "saved": 1,
    "capture": "00000000-0000-4000-8000-000000000000",
    "secret": 1,
    "link": 1,
    "stream": "raw",
}


@pytest.mark.parametrize("endpoint", GRID_ENDPOINTS, ids=str)
def test_what_an_endpoint_declares_is_what_the_grid_finds_allowed(endpoint):
    """The declarations are not decoration: the roles the declared permission grants are the roles the
    permission grid finds let through, endpoint by endpoint."""
    match = resolve(endpoint.url.format(**PLACEHOLDERS).split("?")[0])
    view_class = getattr(match.func, "cls", None) or getattr(match.func, "view_class", None)
    method = endpoint.method.lower()
    declared = declared_permission(match.func, method) or declared_permission(view_class, method)
    assert declared in perms.ALL_CASE_PERMISSIONS, declared
    assert roles_holding(declared) == endpoint.allowed


def test_sso_and_token_endpoints_declare_what_they_guard_themselves_with():
    """Issue #17: the SAML endpoints are public (the signed assertion, the signed logout or a form post with
    CSRF is the credential), the organisation's SSO settings are its administrators', tokens their user's."""
    expected = {
        "auth/saml/<slug:slug>/metadata/": PUBLIC,
        "auth/saml/<slug:slug>/login/": PUBLIC,
        "auth/saml/<slug:slug>/acs/": PUBLIC,
        "auth/saml/<slug:slug>/sls/": PUBLIC,
        "auth/saml/<slug:slug>/logout/": PUBLIC,
        "auth/saml/settings/": ORG_ADMIN,
        "account/tokens/": LOGGED_IN,
        "account/tokens/<int:token_pk>/revoke/": LOGGED_IN,
        "api/tokens/": LOGGED_IN,
        "api/tokens/<int:token_pk>/": LOGGED_IN,
    }
    declared = {route: permission for route, _, permission in declarations() if route in expected}
    assert declared == expected


# --- issue #17: every endpoint is in a grid -------------------------------------------------------------
# What the account grid's callers mean for a declaration of an endpoint under no case.
ACCOUNT_LEVELS = {
    grid.PUBLIC_ENDPOINT: PUBLIC,
    grid.ALL_USERS: LOGGED_IN,
    grid.CASE_OPENERS: OPEN_CASES,
    frozenset({"orgadmin"}): ORG_ADMIN,
    grid.VERIFIERS: LOGGED_IN,  # narrowed in the view to those who may audit something
}
# Endpoints no grid calls, each with the tests that hold its rule instead.
IN_OTHER_TESTS = {
    # Issue #17, single sign-on: public by design (the signed assertion or logout is the credential), each
    # refusal tested with a real IdP; the settings page is the org admin's (test_only_an_org_admin_may_open…).
    ("auth/saml/settings/", "*"): "tests/cases/test_saml.py::test_only_an_org_admin_may_open_the_sso_settings",
    ("auth/saml/<slug:slug>/metadata/", "*"): "tests/cases/test_saml.py (served for every organisation)",
    ("auth/saml/<slug:slug>/login/", "*"): "tests/cases/test_saml.py (AuthnRequest to the organisation's IdP)",
    ("auth/saml/<slug:slug>/acs/", "*"): "tests/cases/test_saml.py (every forged or misdirected response refused)",
    ("auth/saml/<slug:slug>/sls/", "*"): "tests/cases/test_saml.py (single logout)",
    ("auth/saml/<slug:slug>/logout/", "*"): "tests/cases/test_saml.py (single logout)",
    ("account/tokens/", "*"): "a user's own tokens: tests/cases/test_tokens_ui.py",
    (
        "account/tokens/<int:token_pk>/revoke/",
        "*",
    ): "tests/cases/test_tokens_ui.py::test_a_user_cannot_revoke_anothers_token",
    # The case is in the body, which the grid cannot template: 202 for a custodian, 403 for a detective.
    ("api/evidence/acquire", "post"): "tests/evidence/test_acquire.py::test_acquire_api_queues_and_answers_202",
    ("", "*"): "a redirect to the case list or the login page",
    ("login/", "post"): "the password login itself: tests/test_security_login.py",
    ("login/", "put"): "Django's LoginView answers PUT as POST: tests/test_security_login.py",
    ("logout/", "post"): "tests/browser/test_case_pages.py",
    ("api/auth/token", "post"): "the password login itself: tests/test_security_login.py",
    ("api/tokens/<int:token_pk>/", "delete"): "the caller's own tokens only: tests/cases/test_tokens_and_admin.py",
    ("api/users/<int:user_pk>/", "patch"): "the admin's organisation only: tests/cases/test_tokens_and_admin.py",
    ("l/<str:token>", "*"): "the token is the credential: tests/evidence/test_links.py",
    ("l/<str:token>/", "*"): "the token is the credential: tests/evidence/test_links.py",
    ("l/<str:token>/hashes.txt", "*"): "the token is the credential: tests/evidence/test_links.py",
    # Issue #19, alerts: a user's own alerts, every caller against them in tests/alerts/test_alerts_api.py's grid.
    ("notifications/", "*"): "tests/alerts/test_alerts_api.py::test_alerts_grid",
    ("notifications/panel/", "*"): "tests/alerts/test_alerts_api.py::test_alerts_grid",
    ("notifications/<int:alert_id>/ack/", "*"): "tests/alerts/test_alerts_api.py::test_alerts_grid",
    ("api/alerts/", "get"): "tests/alerts/test_alerts_api.py::test_alerts_grid",
    ("api/alerts/<int:alert_id>/ack", "post"): "tests/alerts/test_alerts_api.py::test_alerts_grid",
    # Issue #20, the organisation administrator's screen: a user of the admin's own organisation only.
    (
        "account/organisation/users/<int:user_pk>/active/",
        "*",
    ): "tests/cases/test_org_admin.py::test_an_admin_acts_only_on_users_of_their_organisation",
    (
        "account/organisation/users/<int:user_pk>/reset/",
        "*",
    ): "tests/cases/test_org_admin.py::test_an_admin_acts_only_on_users_of_their_organisation",
    (
        "api/users/<int:user_pk>/password-reset",
        "post",
    ): "tests/cases/test_org_admin.py::test_a_one_time_link_sets_a_new_password_once",
    **{
        ("account/reset/<uidb64>/<token>/", method): "the link's token is the credential: tests/cases/test_org_admin.py"
        for method in ("get", "post", "put")  # Django's PasswordResetConfirmView (a FormView: PUT as POST)
    },
    ("account/reset/done/", "*"): "a page saying the password is set: tests/cases/test_org_admin.py",
    # Issue #19, re-identification: narrowed to whoever may audit the row, a second person to approve.
    ("api/audit/reidentify", "get"): "tests/audit/test_reidentification.py (the organisation's requests only)",
    ("api/audit/reidentify", "post"): "tests/audit/test_reidentification.py (refused and audited otherwise)",
    ("api/audit/reidentify/<int:request_id>", "get"): "tests/audit/test_reidentification.py (the value: requester)",
    (
        "api/audit/reidentify/<int:request_id>/approve",
        "post",
    ): "tests/audit/test_reidentification.py::test_re_identification_round_trips_for_the_approved_auditor",
    ("audit/reidentify/", "*"): "tests/audit/test_reidentification.py::test_the_page_asks_approves_and_shows",
    # Issue #19, load not content: an organisation's administrators (staff: every organisation), counts only.
    ("api/admin/load", "get"): "tests/audit/test_admin_load.py (staff see every organisation, others refused)",
    ("load/", "*"): "tests/audit/test_admin_load.py::test_the_load_page_shows_counts_only",
    # Issue #20 item 13: the user's own time zone.
    ("account/", "*"): "the user's own setting: tests/cases/test_time_zones.py",
    # Issue #20 item 6, hash sets: the organisation's, read by its members, changed by its administrators.
    ("hashsets/", "*"): "tests/hashsets/test_hashsets_api.py::test_the_page_lists_for_members_and_imports_for_admins",
    ("hashsets/<int:hash_set_id>/delete/", "*"): "tests/hashsets/test_hashsets_api.py::test_only_an_admin_deletes",
    ("api/hashsets/", "get"): "tests/hashsets/test_hashsets_api.py::test_members_list_their_organisations_sets",
    ("api/hashsets/", "post"): "tests/hashsets/test_hashsets_api.py::test_only_an_org_admin_imports",
    (
        "api/hashsets/<int:hash_set_id>/",
        "get",
    ): "tests/hashsets/test_hashsets_api.py::test_members_list_their_organisations_sets",
    ("api/hashsets/<int:hash_set_id>/", "delete"): "tests/hashsets/test_hashsets_api.py::test_only_an_admin_deletes",
}


def _route_of(url: str) -> str:
    return resolve(url.format(**PLACEHOLDERS).split("?")[0]).route


def test_every_endpoint_is_in_a_permission_grid_or_named_with_its_tests():
    gridded = {(_route_of(e.url), e.method.lower()) for e in [*GRID_ENDPOINTS, *grid.ACCOUNT_ENDPOINTS]}
    missing = []
    for route, name, _ in declarations():
        methods = {"get", "post"} if name == "*" else {name}
        if not (gridded & {(route, method) for method in methods}) and (route, name) not in IN_OTHER_TESTS:
            missing.append(f"{route} [{name}]")
    assert not missing, "add these to a grid (tests/cases/test_permission_grid.py):\n" + "\n".join(missing)


@pytest.mark.parametrize("endpoint", grid.ACCOUNT_ENDPOINTS, ids=str)
def test_what_an_endpoint_under_no_case_declares_is_what_the_account_grid_finds(endpoint):
    match = resolve(endpoint.url)
    view_class = getattr(match.func, "cls", None) or getattr(match.func, "view_class", None)
    method = endpoint.method.lower()
    declared = declared_permission(match.func, method) or declared_permission(view_class, method)
    if declared is None:  # a function view declares once for all its methods
        declared = declared_permission(match.func, "*")
    assert declared == ACCOUNT_LEVELS[endpoint.allowed]
