"""Re-identification of a replaced audit value under two people's control (issue #19 item 4, docs/privacy.md).

Someone who may read an audit row asks for the clear value behind one of its replaced fields (who ran this
query?), with a reason; a second person of the same organisation who holds the auditor's role for that row
approves or refuses; only then, and only to the requester, is the value computed with the system-wide key
and shown. Each step is an audit row of its own, refusals included. The clear value is never stored.

``audit`` imports no app of ours: who may ask and who may approve is decided by the caller (custodia's
views, from the case roles) and passed in as ``may_read`` / ``may_approve``; this module keeps the rules
that do not depend on roles (another person, the same organisation, a reversible field, the order of steps).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent, Outcome, ReIdentificationRequest, ReIdentificationStatus
from audit.privacy import (
    REVERSIBLE,
    ReIdentificationError,
    Tagged,
    derived_keys_from_settings,
    lookup_from_settings,
)
from audit.replacement import re_identify_field, replaced_fields
from audit.services import Actor, audit_record

REASON_MAX_CHARS = 2000


class ReIdentificationRefused(Exception):
    """The request, approval or reveal is not allowed; ``code`` names why (for a 4xx answer)."""

    def __init__(self, message: str, *, code: str, status_code: int = 403) -> None:
        super().__init__(message)
        self.code = code
        self.status_code = status_code


@dataclass(frozen=True)
class Revealed:
    request: ReIdentificationRequest
    value: str


def reidentifiable_fields(*, event: AuditEvent) -> dict[str, str]:
    """Field path → transformation of the event's fields that a key holder can turn back (reversible)."""
    return {path: code for path, (_, code) in replaced_fields(event.details).items() if code in REVERSIBLE}


def _refuse(*, action: str, actor: Actor, request_id: int | str, code: str, organization_id: int | None) -> None:
    with transaction.atomic():
        audit_record(
            action=action,
            actor=actor,
            outcome=Outcome.DENIED,
            target_type="reidentification",
            target_id=request_id,
            organization_id=organization_id,
            details={"refused": code},
        )


def reidentification_request(
    *, actor: Actor, organization_id: int, event: AuditEvent, field: str, reason: str, may_read: bool
) -> ReIdentificationRequest:
    """Ask for the clear value of ``field`` of ``event``. ``may_read``: the caller found that ``actor`` may
    read this event's trail (the case's audit permission, or an organisation administrator for an event of
    no case). Refused (and audited) otherwise, and for a field that holds no reversible value."""
    reason = (reason or "").strip()
    problem = ""
    if not may_read or event.organization_id not in (None, organization_id):
        problem = "not_allowed"
    elif field not in reidentifiable_fields(event=event):
        problem = "not_reversible"
    elif not reason:
        problem = "reason_required"
    if problem:
        _refuse(
            action="privacy.reidentify.request",
            actor=actor,
            request_id="",
            code=problem,
            organization_id=organization_id,
        )
        status = 403 if problem == "not_allowed" else 400
        raise ReIdentificationRefused(
            {
                "not_allowed": "You may not read this audit row.",
                "not_reversible": "This field holds no value that can be re-identified.",
                "reason_required": "Say why the clear value is needed.",
            }[problem],
            code=problem,
            status_code=status,
        )
    with transaction.atomic():
        request = ReIdentificationRequest.objects.create(
            organization_id=organization_id,
            event_sequence=event.sequence,
            field=field[:200],
            reason=reason[:REASON_MAX_CHARS],
            requested_by_id=actor.pk,
            requested_at=timezone.now(),
        )
        audit_record(
            action="privacy.reidentify.request",
            actor=actor,
            target_type="reidentification",
            target_id=request.pk,
            case_id=event.case_id,
            organization_id=organization_id,
            # The reason may name people: kept whole in the request, replaced here as a query would be.
            details={"event": event.sequence, "field": request.field, "reason": _tagged_reason(reason)},
        )
    return request


def _tagged_reason(reason: str) -> Tagged:
    return Tagged("query", reason[:REASON_MAX_CHARS])


def reidentification_decide(
    *, actor: Actor, organization_id: int, request: ReIdentificationRequest, approve: bool, may_approve: bool
) -> ReIdentificationRequest:
    """Approve or refuse a waiting request. ``may_approve``: the caller found that ``actor`` holds the
    auditor's role for the request's event. Never the requester; never across organisations."""
    problem = ""
    if request.organization_id != organization_id or not may_approve:
        problem = "not_allowed"
    elif request.requested_by_id == actor.pk:
        problem = "four_eyes"
    elif request.status != ReIdentificationStatus.PENDING:
        problem = "already_decided"
    if problem:
        _refuse(
            action="privacy.reidentify.approve",
            actor=actor,
            request_id=request.pk,
            code=problem,
            organization_id=organization_id,
        )
        raise ReIdentificationRefused(
            {
                "not_allowed": "You may not decide on this request.",
                "four_eyes": "A second person must approve a re-identification you asked for.",
                "already_decided": "This request was already decided.",
            }[problem],
            code=problem,
            status_code=409 if problem == "already_decided" else 403,
        )
    event_case = AuditEvent.objects.filter(sequence=request.event_sequence).values_list("case_id", flat=True).first()
    with transaction.atomic():
        updated = ReIdentificationRequest.objects.filter(pk=request.pk, status=ReIdentificationStatus.PENDING).update(
            status=ReIdentificationStatus.APPROVED if approve else ReIdentificationStatus.REFUSED,
            decided_by_id=actor.pk,
            decided_at=timezone.now(),
        )
        if not updated:
            raise ReIdentificationRefused("This request was already decided.", code="already_decided", status_code=409)
        audit_record(
            action="privacy.reidentify.approve",
            actor=actor,
            outcome=Outcome.OK if approve else Outcome.DENIED,
            target_type="reidentification",
            target_id=request.pk,
            case_id=event_case,
            organization_id=organization_id,
            details={"event": request.event_sequence, "field": request.field, "approved": approve},
        )
    request.refresh_from_db()
    return request


def reidentification_reveal(*, actor: Actor, organization_id: int, request: ReIdentificationRequest) -> Revealed:
    """The clear value of an approved request, to its requester only; each reveal is audited."""
    problem = ""
    if request.organization_id != organization_id or request.requested_by_id != actor.pk:
        problem = "not_allowed"
    elif request.status != ReIdentificationStatus.APPROVED:
        problem = "not_approved"
    event = AuditEvent.objects.filter(sequence=request.event_sequence).first()
    if not problem and event is None:
        problem = "no_event"
    value = ""
    if not problem:
        assert event is not None  # nosec B101 # narrows the type for mypy: checked just above
        try:
            value = re_identify_field(
                actor=event.actor,
                client_address=event.client_address,
                details=event.details,
                path=request.field,
                keys=derived_keys_from_settings(),
                lookup=lookup_from_settings(),
            )
        except ReIdentificationError:
            problem = "not_reversible"
    if problem:
        _refuse(
            action="privacy.reidentify.reveal",
            actor=actor,
            request_id=request.pk,
            code=problem,
            organization_id=organization_id,
        )
        raise ReIdentificationRefused(
            {
                "not_allowed": "Only the person who asked may see the value.",
                "not_approved": "A second person has not approved this request.",
                "no_event": "The audit row is not there.",
                "not_reversible": "The value cannot be re-identified with this environment's key.",
            }[problem],
            code=problem,
            status_code=403 if problem in ("not_allowed", "not_approved") else 409,
        )
    with transaction.atomic():
        audit_record(
            action="privacy.reidentify.reveal",
            actor=actor,
            target_type="reidentification",
            target_id=request.pk,
            case_id=event.case_id if event is not None else None,
            organization_id=organization_id,
            details={"event": request.event_sequence, "field": request.field},
        )
    return Revealed(request=request, value=value)


__all__ = [
    "ReIdentificationRefused",
    "Revealed",
    "reidentifiable_fields",
    "reidentification_decide",
    "reidentification_request",
    "reidentification_reveal",
]
