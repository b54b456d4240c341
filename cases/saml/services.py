"""Signing in with what the organisation's attribute mapping grants, and configuring an identity provider.

The mapping is the organisation's word on its users: membership (may sign in at all), organisation
administrator, and may open cases are set from the assertion's groups at every sign-in, so that removing a
user from a group at the IdP takes the grant away at their next sign-in. Case roles stay with the cases'
custodians. Every sign-in, refusal, user created and grant changed is an audit row.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import Permission
from django.db import transaction
from django.utils import timezone

from audit.models import Outcome
from audit.privacy import Tagged
from audit.services import audit_record
from cases.models import IdentityProvider, Organization, SamlIdentity, User
from cases.saml.config import normalised_certificate
from cases.saml.replay import remember_assertion
from custodia.errors import ServiceError

Attributes = Mapping[str, Sequence[str]]


class SamlRefused(ServiceError):
    code = "saml_refused"
    status_code = 403


@dataclass(frozen=True)
class Grants:
    """What the mapping gives one user, from their groups."""

    member: bool
    org_admin: bool
    open_cases: bool
    groups: tuple[str, ...]


def configured_groups(text: str) -> set[str]:
    return {line.strip() for line in (text or "").splitlines() if line.strip()}


def first_value(attributes: Attributes, name: str) -> str:
    values = (attributes.get(name) or []) if name else []
    return str(values[0]).strip() if values else ""


def mapped_grants(*, idp: IdentityProvider, attributes: Attributes) -> Grants:
    listed = (attributes.get(idp.groups_attribute) or []) if idp.groups_attribute else []
    groups = {str(value).strip() for value in listed}
    members = configured_groups(idp.member_groups)
    return Grants(
        member=not members or bool(groups & members),
        org_admin=bool(groups & configured_groups(idp.org_admin_groups)),
        open_cases=bool(groups & configured_groups(idp.case_opener_groups)),
        groups=tuple(sorted(groups))[:50],
    )


def _add_case_permission() -> Permission:
    return Permission.objects.get(codename="add_case", content_type__app_label="cases")


def _free_username(*, wanted: str, organization: Organization) -> str:
    """``wanted`` if nobody has it; otherwise ``wanted@<organisation slug>`` (numbered if need be). Never
    tells anyone that another organisation has a user of that name."""
    wanted = wanted[:150]
    if not User.objects.filter(username__iexact=wanted).exists():
        return wanted
    base = f"{wanted[:140]}@{organization.slug}"[:150]
    candidate, number = base, 1
    while User.objects.filter(username__iexact=candidate).exists():
        number += 1
        candidate = f"{base[:145]}~{number}"
    return candidate


def _user_for(*, idp: IdentityProvider, name_id: str, username: str) -> tuple[User, bool]:
    """The user this NameID stands for: linked before, or a user of the same organisation with that
    username (linked now), or a new one. Returns (user, created)."""
    identity = SamlIdentity.objects.select_related("user").filter(identity_provider=idp, name_id=name_id).first()
    if identity is not None:
        return identity.user, False
    existing = User.objects.filter(username__iexact=username, organization=idp.organization).first()
    if existing is not None and not SamlIdentity.objects.filter(user=existing).exists():
        SamlIdentity.objects.create(identity_provider=idp, name_id=name_id, user=existing)
        return existing, False
    user = User(username=_free_username(wanted=username, organization=idp.organization), organization=idp.organization)
    user.set_unusable_password()  # the organisation's IdP holds the password, never Custodia
    user.save()
    SamlIdentity.objects.create(identity_provider=idp, name_id=name_id, user=user)
    return user, True


@transaction.atomic
def saml_sign_in(
    *,
    idp: IdentityProvider,
    name_id: str,
    attributes: Attributes,
    assertion_id: str,
    expires_at: datetime | None,
) -> User:
    """The user a verified assertion signs in, with exactly what the mapping grants. Raises ``SamlRefused``
    (the caller audits the refusal) or ``AssertionReplayed``."""
    remember_assertion(idp=idp, assertion_id=assertion_id, expires_at=expires_at)
    name_id = (name_id or "").strip()[:255]
    if not name_id:
        raise SamlRefused("The identity provider named no user.")
    grants = mapped_grants(idp=idp, attributes=attributes)
    if not grants.member:
        raise SamlRefused("Your organisation has not given you access to Custodia (no member group).")
    username = first_value(attributes, idp.username_attribute) or name_id
    user, created = _user_for(idp=idp, name_id=name_id, username=username)
    if user.organization_id != idp.organization_id or not user.is_active:
        raise SamlRefused("This account may not sign in; ask your organisation's administrator.")
    email = first_value(attributes, idp.email_attribute)[:254]
    display_name = first_value(attributes, idp.display_name_attribute)[:200]
    user.email = email or user.email
    user.display_name = display_name or user.display_name
    permission = _add_case_permission()
    before = {
        "is_org_admin": user.is_org_admin,
        "can_open_cases": user.user_permissions.filter(pk=permission.pk).exists(),
    }
    user.is_org_admin = grants.org_admin
    user.last_login = timezone.now()
    user.save()
    if grants.open_cases:
        user.user_permissions.add(permission)
    else:
        user.user_permissions.remove(permission)
    after = {"is_org_admin": grants.org_admin, "can_open_cases": grants.open_cases}
    SamlIdentity.objects.filter(identity_provider=idp, name_id=name_id).update(last_login_at=timezone.now())
    common = {"organization": idp.organization.slug, "name_id": Tagged("email", name_id), "groups": list(grants.groups)}
    if created:
        audit_record(
            action="auth.saml.user.create",
            actor=user,
            target_type="user",
            target_id=user.pk,
            details={**common, "username": Tagged("user", user.username), "granted": after},
        )
    elif before != after:
        audit_record(
            action="auth.saml.mapping",
            actor=user,
            target_type="user",
            target_id=user.pk,
            details={**common, "before": before, "after": after},
        )
    audit_record(
        action="auth.saml.login",
        actor=user,
        target_type="user",
        target_id=user.pk,
        details={**common, "assertion_id": assertion_id[:255]},
    )
    return user


def saml_refusal_record(*, organization: Organization | None, reason: str, code: str, name_id: str = "") -> None:
    """The audit row of a refused sign-in (its own transaction: whatever the sign-in wrote is rolled back)."""
    details: dict[str, str | Tagged] = {
        "organization": organization.slug if organization else "",
        "code": code,
        "reason": reason[:300],
    }
    if name_id:
        details["name_id"] = Tagged("email", name_id[:255])
    with transaction.atomic():
        audit_record(
            action="auth.saml.login",
            outcome=Outcome.DENIED,
            organization_id=organization.pk if organization else None,
            details=details,
        )


def saml_logout_record(*, user: User, initiated_by: str) -> None:
    with transaction.atomic():
        audit_record(
            action="auth.saml.logout", actor=user, target_type="user", target_id=user.pk, details={"by": initiated_by}
        )


MAPPING_FIELDS = (
    "username_attribute",
    "email_attribute",
    "display_name_attribute",
    "groups_attribute",
    "member_groups",
    "org_admin_groups",
    "case_opener_groups",
)


def certificate_fingerprint(text: str) -> str:
    """SHA-256 of the certificate: what the audit row names (the certificate is public, but long)."""
    return hashlib.sha256(base64.b64decode(normalised_certificate(text))).hexdigest()


@transaction.atomic
def identity_provider_saved(*, actor: User, idp: IdentityProvider, changed: Sequence[str], created: bool) -> None:
    """Audit a configuration saved by the organisation's administrator or the Django admin: which fields
    changed, the mapping as it now stands, and the certificate's fingerprint."""
    audit_record(
        action="auth.saml.configure",
        actor=actor,
        target_type="identity_provider",
        target_id=idp.pk,
        organization_id=idp.organization_id,
        details={
            "organization": idp.organization.slug,
            "created": created,
            "changed": sorted(changed),
            "entity_id": idp.entity_id,
            "enabled": idp.enabled,
            "certificate_sha256": certificate_fingerprint(idp.x509_cert),
            "mapping": {name: getattr(idp, name) for name in MAPPING_FIELDS},
        },
    )
