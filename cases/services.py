"""Writes. Each service checks the access policy, changes the database and writes its audit row in
one transaction: the change and its audit row commit together or not at all."""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from guardian.models import UserObjectPermission
from guardian.shortcuts import assign_perm

from audit.models import Outcome
from audit.privacy import Tagged
from audit.services import audit_record
from cases import permissions as perms
from cases.models import ApiToken, Case, CaseMembership, CasePriority, CaseStatus, Organization, Role, TokenScope, User
from cases.selectors import case_get, case_permissions
from cases.signals import case_retention_changed
from custodia.errors import Conflict, Forbidden, ServiceError

EDITABLE_CASE_FIELDS = ("title", "description", "status", "priority", "retention_until", "legal_hold")
# The fields the evidence store enforces on the case's sealed objects: changed by custodians only.
PROTECTION_FIELDS = ("retention_until", "legal_hold")


def _audit_value(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value


def _grant_role(*, case: Case, user: User, role: str) -> None:
    """Make the user's object permissions on the case exactly those of the role."""
    _revoke_all(case=case, user=user)
    for codename in sorted(perms.permissions_for_role(role)):
        assign_perm(f"cases.{codename}", user, case)
    user.__dict__.pop("_case_perm_cache", None)


def _revoke_all(*, case: Case, user: User) -> None:
    UserObjectPermission.objects.filter(
        user=user, content_type=ContentType.objects.get_for_model(Case), object_pk=str(case.pk)
    ).delete()
    user.__dict__.pop("_case_perm_cache", None)


def can_open_cases(user: User) -> bool:
    return bool(
        user.is_authenticated and user.organization_id and (user.is_org_admin or user.has_perm("cases.add_case"))
    )


@transaction.atomic
def case_create(
    *,
    actor: User,
    reference: str,
    title: str,
    description: str = "",
    priority: str = CasePriority.NORMAL,
    retention_until: date | None = None,
    legal_hold: bool = False,
) -> Case:
    organization_id = actor.organization_id
    if not can_open_cases(actor) or organization_id is None:  # can_open_cases refuses a user of no organisation
        raise Forbidden("You may not open cases in this organisation.")
    reference = reference.strip()
    if not reference or not title.strip():
        raise ServiceError("A case needs a reference and a title.")
    if Case.objects.filter(organization_id=organization_id, reference__iexact=reference).exists():
        raise Conflict(f"A case with reference {reference} already exists.", code="duplicate_reference")
    case = Case.objects.create(
        organization_id=organization_id,
        reference=reference,
        title=title.strip(),
        description=description,
        priority=priority,
        retention_until=retention_until,
        legal_hold=legal_hold,
        created_by=actor,
    )
    if not actor.is_org_admin:
        # Whoever opens a case is its first custodian, so that every case has someone who holds it.
        CaseMembership.objects.create(case=case, user=actor, role=Role.CUSTODIAN, added_by=actor)
        _grant_role(case=case, user=actor, role=Role.CUSTODIAN)
    audit_record(
        action="case.create",
        actor=actor,
        target_type="case",
        target_id=case.pk,
        case_id=case.pk,
        details={
            "reference": Tagged("case", case.reference),
            "title": Tagged("case", case.title),
            "priority": priority,
            "legal_hold": legal_hold,
        },
    )
    return case


def _shortens(before: date | None, after: date | None) -> bool:
    """True when ``after`` protects for less time than ``before`` (no date protects for none)."""
    return before is not None and (after is None or after < before)


class ProtectionRefused(Exception):
    """Internal: a retention or hold change that a receiver (the evidence store) refused, with what was tried."""

    def __init__(self, cause: ServiceError, attempted: list[tuple[str, dict]]):
        super().__init__(cause.detail)
        self.cause = cause
        self.attempted = attempted


def case_update(*, actor: User, case: Case, reason: str = "", **changes: object) -> Case:
    """Change a case's details. Its retention date and legal hold are the custodian's alone
    (``MANAGE_RETENTION``): shortening the one or lifting the other needs a ``reason``. A change of either
    reaches every sealed object of the case in the evidence store before the transaction commits
    (``cases.signals.case_retention_changed``); when the store refuses, nothing changes and the refusal
    is audited under ``case.retention`` or ``case.hold`` with outcome failed."""
    try:
        return _case_update(actor=actor, case=case, reason=reason, changes=changes)
    except ProtectionRefused as refused:
        with transaction.atomic():
            for action, details in refused.attempted:
                audit_record(
                    action=action,
                    actor=actor,
                    outcome=Outcome.FAILED,
                    target_type="case",
                    target_id=case.pk,
                    case_id=case.pk,
                    details={**details, "error": refused.cause.detail},
                )
        raise refused.cause from None


@transaction.atomic
def _case_update(*, actor: User, case: Case, reason: str, changes: dict[str, object]) -> Case:
    case = case_get(user=actor, case_id=case.pk, permission=perms.CHANGE_CASE)
    unknown = set(changes) - set(EDITABLE_CASE_FIELDS)
    if unknown:
        raise ServiceError(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    if "status" in changes and changes["status"] not in CaseStatus.values:
        raise ServiceError(f"status must be one of {', '.join(CaseStatus.values)}.")
    if "priority" in changes and changes["priority"] not in CasePriority.values:
        raise ServiceError(f"priority must be one of {', '.join(CasePriority.values)}.")
    changed = {field: value for field, value in changes.items() if getattr(case, field) != value}
    protection = {field: changed.pop(field) for field in PROTECTION_FIELDS if field in changed}
    if protection and perms.MANAGE_RETENTION not in case_permissions(user=actor, case=case):
        raise Forbidden("Only a custodian of the case may change its retention date or legal hold.")
    reason = (reason or "").strip()
    protection_rows: list[tuple[str, dict]] = []
    if "retention_until" in protection:
        old_until, new_until = case.retention_until, protection["retention_until"]
        shortened = _shortens(old_until, new_until)  # type: ignore[arg-type]
        if shortened and not reason:
            raise ServiceError(
                "reason: say why the retention date is shortened or removed (it goes into the audit trail).",
                code="reason_required",
            )
        details = {"before": _audit_value(old_until), "after": _audit_value(new_until), "shortened": shortened}
        protection_rows.append(("case.retention", {**details, **({"reason": reason} if reason else {})}))
    if "legal_hold" in protection:
        lifted = not protection["legal_hold"]
        if lifted and not reason:
            raise ServiceError(
                "reason: say why the legal hold is lifted (it goes into the audit trail).", code="reason_required"
            )
        details = {"before": case.legal_hold, "after": bool(protection["legal_hold"])}
        protection_rows.append(("case.hold", {**details, **({"reason": reason} if reason else {})}))
    before = {field: _audit_value(getattr(case, field)) for field in changed}
    previous = {"retention_until": case.retention_until, "legal_hold": case.legal_hold}
    for field, value in {**changed, **protection}.items():
        setattr(case, field, value)
    if not changed and not protection:
        return case
    case.save(update_fields=[*changed, *protection, "updated_at"])
    if changed:
        audit_record(
            action="case.update",
            actor=actor,
            target_type="case",
            target_id=case.pk,
            case_id=case.pk,
            details={"before": before, "after": {field: _audit_value(value) for field, value in changed.items()}},
        )
    if protection:
        try:
            responses = case_retention_changed.send(
                sender=Case,
                case=case,
                actor=actor,
                previous_retention_until=previous["retention_until"],
                previous_legal_hold=previous["legal_hold"],
            )
        except ServiceError as exc:
            raise ProtectionRefused(exc, protection_rows) from exc
        applied = [response for _, response in responses if isinstance(response, dict)]
        for action, details in protection_rows:
            audit_record(
                action=action,
                actor=actor,
                target_type="case",
                target_id=case.pk,
                case_id=case.pk,
                details={**details, **({"store": applied[0] if len(applied) == 1 else applied} if applied else {})},
            )
    return case


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise ServiceError(f"role must be one of {', '.join(Role.values)}.")


@transaction.atomic
def membership_add(*, actor: User, case: Case, user: User, role: str) -> CaseMembership:
    case = case_get(user=actor, case_id=case.pk, permission=perms.MANAGE_MEMBERS)
    _check_role(role)
    if user.organization_id != case.organization_id or not user.is_active:
        raise ServiceError("Only active users of the case's organisation can be members.", code="foreign_user")
    if CaseMembership.objects.filter(case=case, user=user).exists():
        raise Conflict(f"{user.username} is already a member of this case; change their role instead.")
    try:
        membership = CaseMembership.objects.create(case=case, user=user, role=role, added_by=actor)
    except IntegrityError:
        raise Conflict(f"{user.username} is already a member of this case.") from None
    _grant_role(case=case, user=user, role=role)
    audit_record(
        action="case.member.add",
        actor=actor,
        target_type="case",
        target_id=case.pk,
        case_id=case.pk,
        details={"user": Tagged("user", user.username), "role": role},
    )
    return membership


def _custodians_left(case: Case, without: CaseMembership) -> int:
    return case.memberships.filter(role=Role.CUSTODIAN).exclude(pk=without.pk).count()


@transaction.atomic
def membership_change_role(*, actor: User, membership: CaseMembership, role: str) -> CaseMembership:
    case = case_get(user=actor, case_id=membership.case_id, permission=perms.MANAGE_MEMBERS)
    _check_role(role)
    membership = CaseMembership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == role:
        return membership
    if membership.role == Role.CUSTODIAN and _custodians_left(case, membership) == 0:
        raise Conflict("A case must keep at least one custodian.", code="last_custodian")
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    _grant_role(case=case, user=membership.user, role=role)
    audit_record(
        action="case.member.role",
        actor=actor,
        target_type="case",
        target_id=case.pk,
        case_id=case.pk,
        details={"user": Tagged("user", membership.user.username), "before": old, "after": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, actor: User, membership: CaseMembership) -> None:
    case = case_get(user=actor, case_id=membership.case_id, permission=perms.MANAGE_MEMBERS)
    if membership.role == Role.CUSTODIAN and _custodians_left(case, membership) == 0:
        raise Conflict("A case must keep at least one custodian.", code="last_custodian")
    user = membership.user
    membership.delete()
    _revoke_all(case=case, user=user)
    audit_record(
        action="case.member.remove",
        actor=actor,
        target_type="case",
        target_id=case.pk,
        case_id=case.pk,
        details={"user": Tagged("user", user.username), "role": membership.role},
    )


# --- users of an organisation (organisation administrators) ----------------------------------------


@transaction.atomic
def user_create(
    *,
    actor: User,
    username: str,
    password: str,
    email: str = "",
    display_name: str = "",
    is_org_admin: bool = False,
    can_open_cases: bool = False,
) -> User:
    if not actor.is_org_admin or actor.organization_id is None:
        raise Forbidden("Only an organisation administrator may create users.")
    if User.objects.filter(username__iexact=username).exists():
        # Usernames are one namespace for the whole platform (they are what people log in with). The refusal
        # is the same whether the name is used in this organisation or another: it tells nothing of who
        # holds it or where (issue #17, finding 6).
        raise Conflict("This username cannot be used; choose another.", code="username_unavailable")
    user = User(
        username=username,
        email=email,
        display_name=display_name,
        organization_id=actor.organization_id,
        is_org_admin=is_org_admin,
    )
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ServiceError(" ".join(exc.messages), code="weak_password") from None
    user.set_password(password)
    user.save()
    if can_open_cases:
        user.user_permissions.add(Permission.objects.get(codename="add_case", content_type__app_label="cases"))
    audit_record(
        action="user.create",
        actor=actor,
        target_type="user",
        target_id=user.pk,
        details={"username": Tagged("user", username), "is_org_admin": is_org_admin, "can_open_cases": can_open_cases},
    )
    return user


@transaction.atomic
def user_set_active(*, actor: User, user: User, active: bool) -> User:
    if not actor.is_org_admin or actor.organization_id != user.organization_id:
        raise Forbidden("Only an administrator of the user's organisation may do this.")
    if user.pk == actor.pk and not active:
        raise ServiceError("You cannot deactivate yourself.")
    user.is_active = active
    user.save(update_fields=["is_active"])
    if not active:
        ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
    audit_record(
        action="user.activate" if active else "user.deactivate",
        actor=actor,
        target_type="user",
        target_id=user.pk,
        details={"username": Tagged("user", user.username)},
    )
    return user


def user_password_reset_link(*, actor: User, user: User) -> str:
    """A one-time path (``/account/reset/<uid>/<token>/``) where ``user`` sets a new password, for an
    administrator of their organisation to hand over. Django's token: it stops working once the password
    changes or the user logs in, and after ``PASSWORD_RESET_TIMEOUT``. Audited; the token is not kept."""
    if not actor.is_org_admin or actor.organization_id is None or actor.organization_id != user.organization_id:
        raise Forbidden("Only an administrator of the user's organisation may do this.")
    if not user.is_active:
        raise ServiceError("This user is deactivated: activate them first.", code="inactive")
    with transaction.atomic():
        audit_record(
            action="user.password_reset_link",
            actor=actor,
            target_type="user",
            target_id=user.pk,
            details={"username": Tagged("user", user.username)},
        )
    return reverse(
        "account-password-reset",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )


def user_password_reset_done(*, user: User) -> None:
    """Record that ``user`` set a new password through a one-time link (called once it is saved)."""
    with transaction.atomic():
        audit_record(
            action="user.password_reset",
            actor=user,
            target_type="user",
            target_id=user.pk,
            details={"username": Tagged("user", user.username)},
        )


# --- API tokens ----------------------------------------------------------------------------------------

TOKEN_PREFIX = "cst_"  # noqa: S105 - a visible marker, not a secret


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def token_issue(
    *, user: User, name: str = "api", scope: str = TokenScope.WRITE, expires_in: int | None = None
) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is never stored and never shown again."""
    if scope not in TokenScope.values:
        raise ServiceError(f"scope must be one of {', '.join(TokenScope.values)}.")
    maximum = int(settings.CUSTODIA_API_TOKEN_MAX_TTL.total_seconds())
    # Compared as a number before any timedelta is made of it: a huge one would overflow (a 500, not a 400).
    if expires_in is not None and not 1 <= expires_in <= maximum:
        raise ServiceError(f"expires_in must be between 1 and {maximum} seconds.")
    ttl = timedelta(seconds=expires_in) if expires_in else settings.CUSTODIA_API_TOKEN_TTL
    if ttl <= timedelta(0) or ttl > settings.CUSTODIA_API_TOKEN_MAX_TTL:
        raise ServiceError(f"expires_in must be between 1 and {maximum} seconds.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name[:100] or "api",
        prefix=raw[: len(TOKEN_PREFIX) + 6],
        key_hash=hash_token(raw),
        scope=scope,
        expires_at=timezone.now() + ttl,
    )
    audit_record(
        action="auth.token.issue",
        actor=user,
        target_type="token",
        target_id=token.pk,
        details={"name": token.name, "scope": scope, "expires_at": token.expires_at},
    )
    return token, raw


@transaction.atomic
def token_revoke(*, actor: User, token: ApiToken) -> ApiToken:
    if token.user_id != actor.pk:
        raise Forbidden("You can revoke only your own tokens.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(action="auth.token.revoke", actor=actor, target_type="token", target_id=token.pk)
    return token


def organization_get_or_create(*, name: str, slug: str) -> Organization:
    organization, _ = Organization.objects.get_or_create(slug=slug, defaults={"name": name})
    return organization


@transaction.atomic
def user_set_time_zone(*, actor: User, time_zone: str) -> User:
    """The zone the user's pages show times in (issue #20 item 13): an IANA name, or "" for the server's."""
    from cases.times import is_time_zone

    if time_zone and not is_time_zone(time_zone):
        raise ServiceError(f"'{time_zone[:64]}' is not a time zone this server knows.", code="invalid_time_zone")
    actor.time_zone = time_zone
    actor.save(update_fields=["time_zone"])
    audit_record(
        action="user.time_zone", actor=actor, target_type="user", target_id=actor.pk, details={"time_zone": time_zone}
    )
    return actor
