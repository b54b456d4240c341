"""What each endpoint declares it needs (DESIGN.md §9: every view and API action declares its permission).

A declaration is either a case permission of cases/permissions.py (the endpoint acts on the case, or on
the evidence, trace or link under it, that the URL names) or one of the levels below, for endpoints that
name no case. Declarations are attributes of the view, read by the test that walks every URL pattern
(tests/test_endpoint_permissions.py) and by the permission grid:

- ``required_permission``: what every method of the view needs;
- ``permission_by_method``: ``{"post": ...}``, where one method needs something else.

Page views declare through ``case_view``/``evidence_view`` (custodia/web.py), which also enforce it, or
through ``requires``; API views set the attributes on the class. Declaring does not enforce: the selectors
and services apply the policy, and the grid checks that what they allow matches what is declared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cases import permissions as perms

View = TypeVar("View", bound=Callable)

# Anyone, without logging in: the endpoint guards itself (a download link's token, a password) or tells
# nothing about any case (health, the API schema).
PUBLIC = "public"
# Any signed-in user: what the endpoint shows is narrowed to the user's own organisation, cases or tokens.
LOGGED_IN = "logged_in"
# Users their organisation allows to open cases (``User.can_open_cases``).
OPEN_CASES = "open_cases"
# Administrators of the user's organisation (user management).
ORG_ADMIN = "org_admin"

LEVELS: frozenset[str] = frozenset({PUBLIC, LOGGED_IN, OPEN_CASES, ORG_ADMIN})
DECLARABLE: frozenset[str] = LEVELS | perms.ALL_CASE_PERMISSIONS


def requires(permission: str, **by_method: str) -> Callable[[View], View]:
    """Declare on a view what it needs: ``permission`` for every method, ``by_method`` (``post=...``) where a
    method needs more. For views whose checks live elsewhere (a token, ``login_required``, the view body)."""
    unknown = {permission, *by_method.values()} - DECLARABLE
    if unknown:
        raise ValueError(f"unknown permission(s) {sorted(unknown)}")

    def declare(view: View) -> View:
        view.required_permission = permission
        if by_method:
            view.permission_by_method = {method.lower(): needed for method, needed in by_method.items()}
        return view

    return declare


def declared_permission(view, method: str) -> str | None:
    """What ``view`` (a view function, or its class) declares for ``method`` (an HTTP method, or a viewset's
    action name); None when it declares nothing."""
    by_method = getattr(view, "permission_by_method", None) or {}
    return by_method.get(method.lower(), getattr(view, "required_permission", None))
