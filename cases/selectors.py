"""Reads. Every selector that takes a user applies the access policy of cases/permissions.py:
organisation first (404), then the permission the caller asked for (403)."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from guardian.shortcuts import get_objects_for_user, get_user_perms

from cases import permissions as perms
from cases.models import ApiToken, Case, CaseMembership, User
from custodia.errors import Forbidden, NotFound


def case_permissions(*, user: User, case: Case) -> frozenset[str]:
    """The case permissions this user holds on this case (their role's, plus an org admin's)."""
    if not user.is_authenticated or not user.is_active or user.organization_id != case.organization_id:
        return frozenset()
    cache = user.__dict__.setdefault("_case_perm_cache", {})
    if case.pk not in cache:
        # get_user_perms reads the user's own object permissions only: being a Django superuser
        # grants nothing here (administrators see load, not content).
        granted = frozenset(get_user_perms(user, case)) & perms.ALL_CASE_PERMISSIONS
        if user.is_org_admin:
            granted |= perms.ORG_ADMIN_PERMISSIONS
        cache[case.pk] = granted
    return cache[case.pk]


def cases_visible_to(*, user: User, query: str = "", status: str = "") -> QuerySet[Case]:
    if not user.is_authenticated or user.organization_id is None:
        return Case.objects.none()
    own = Case.objects.filter(organization_id=user.organization_id)
    if not user.is_org_admin:
        own = get_objects_for_user(user, "cases.view_case", klass=own, with_superuser=False, accept_global_perms=False)
    if query:
        own = own.filter(Q(reference__icontains=query) | Q(title__icontains=query))
    if status:
        own = own.filter(status=status)
    return own.select_related("organization").order_by("-created_at", "-id")


def case_get(*, user: User, case_id: int | str, permission: str = perms.VIEW_CASE) -> Case:
    """The case, if the user may see it; NotFound if they may not know it exists; Forbidden if they may
    see it but not do ``permission``."""
    try:
        case_pk = int(case_id)
    except (TypeError, ValueError):
        raise NotFound("No such case.") from None
    organization_id = getattr(user, "organization_id", None)
    if organization_id is None:  # an anonymous user, or one of no organisation, sees no case
        raise NotFound("No such case.")
    case = Case.objects.filter(pk=case_pk, organization_id=organization_id).select_related("organization").first()
    if case is None:
        raise NotFound("No such case.")
    granted = case_permissions(user=user, case=case)
    if perms.VIEW_CASE not in granted:
        raise NotFound("No such case.")
    if permission not in granted:
        raise Forbidden(f"Your role in case {case.reference} does not allow this ({permission}).")
    return case


def case_members(*, case: Case) -> QuerySet[CaseMembership]:
    return case.memberships.select_related("user").order_by("role", "user__username")


def organization_users(*, user: User) -> QuerySet[User]:
    if not user.is_authenticated or user.organization_id is None:
        return User.objects.none()
    return User.objects.filter(organization_id=user.organization_id).order_by("username")


def user_in_organization(*, organization_id: int, username: str) -> User:
    found = User.objects.filter(organization_id=organization_id, username=username, is_active=True).first()
    if found is None:
        raise NotFound(f"No active user {username!r} in your organisation.")
    return found


def cases_with_permission(*, user: User, permission: str) -> QuerySet[Case]:
    """Cases of the user's organisation on which the user holds ``permission`` through a membership
    (or as organisation administrator, for the permissions that role has)."""
    if not user.is_authenticated or user.organization_id is None:
        return Case.objects.none()
    own = Case.objects.filter(organization_id=user.organization_id)
    if user.is_org_admin and permission in perms.ORG_ADMIN_PERMISSIONS:
        return own
    return get_objects_for_user(user, f"cases.{permission}", klass=own, with_superuser=False, accept_global_perms=False)


def tokens_of_user(*, user: User) -> QuerySet[ApiToken]:
    """The caller's own API tokens, newest first: nobody lists another user's tokens."""
    return ApiToken.objects.filter(user=user).order_by("-created_at")


def token_of_user(*, user: User, token_pk: int) -> ApiToken:
    """One of the caller's own tokens; another user's is as absent as one that never was."""
    token = tokens_of_user(user=user).filter(pk=token_pk).first()
    if token is None:
        raise NotFound("No such token.")
    return token
