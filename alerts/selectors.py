"""Reads of alerts: a user sees only the alerts addressed to them; and who an alert is addressed to."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from alerts.models import Alert
from cases.models import CaseMembership, Role, User
from custodia.errors import NotFound


def alerts_open_for(*, user: User) -> QuerySet[Alert]:
    """The alerts addressed to ``user`` that nobody has acknowledged yet, newest first."""
    return Alert.objects.filter(recipients=user, acknowledged_at__isnull=True).select_related("case")


def alerts_recent_for(*, user: User, limit: int = 50) -> QuerySet[Alert]:
    """The alerts addressed to ``user``, open or acknowledged, newest first."""
    return Alert.objects.filter(recipients=user).select_related("case", "acknowledged_by")[:limit]


def alert_open_count(*, user: User) -> int:
    return alerts_open_for(user=user).count()


def alert_get_for(*, user: User, alert_id: int) -> Alert:
    """One alert addressed to ``user``; any other (another's, another organisation's, none) is not found."""
    alert = Alert.objects.filter(pk=alert_id, recipients=user).select_related("case").first()
    if alert is None:
        raise NotFound("No such alert.")
    return alert


def organisation_administrators(*, organization_id: int | None) -> QuerySet[User]:
    """Who acts on a system alert: the organisation's administrators; for an alert of no organisation (the
    audit trail as a whole, a client address guessing links) every organisation's administrators and the
    site's superusers, since it concerns them all and names none of them."""
    active = User.objects.filter(is_active=True)
    if organization_id is None:
        return active.filter(Q(is_org_admin=True) | Q(is_superuser=True))
    return active.filter(organization_id=organization_id, is_org_admin=True)


def case_custodians(*, case_id: int) -> QuerySet[User]:
    """Who acts on a case alert: the case's custodians."""
    return User.objects.filter(
        is_active=True, memberships__case_id=case_id, memberships__role=Role.CUSTODIAN
    ).distinct()


def case_members_with_roles(*, case_id: int, roles: tuple[str, ...]) -> QuerySet[User]:
    return User.objects.filter(is_active=True, memberships__case_id=case_id, memberships__role__in=roles).distinct()


def recipients_for(*, organization_id: int | None, case_id: int | None) -> list[User]:
    """The case's custodians for a case alert (its organisation's administrators when it has none); the
    organisation's administrators for a system alert."""
    if case_id is not None:
        custodians = list(case_custodians(case_id=case_id))
        if custodians:
            return custodians
    return list(organisation_administrators(organization_id=organization_id))


def case_has_member(*, case_id: int, user_id: int) -> bool:
    return CaseMembership.objects.filter(case_id=case_id, user_id=user_id).exists()
