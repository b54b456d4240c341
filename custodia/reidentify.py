"""Re-identification for the pages and the API: who may read an audit row, and the requests a user sees,
asks for, decides on and reveals. The rules and audit rows live in ``audit.reidentification`` (which imports
no app of ours); this module adds the case permissions of ``cases`` that the audit app cannot import."""

from __future__ import annotations

from audit.models import AuditEvent, ReIdentificationRequest
from audit.reidentification import (
    ReIdentificationRefused,
    reidentification_decide,
    reidentification_request,
    reidentification_reveal,
)
from cases import permissions as perms
from cases.models import Case, User
from cases.selectors import case_permissions
from custodia.errors import NotFound, ServiceError


def may_audit(*, user: User, event: AuditEvent) -> bool:
    """``user`` may read ``event``'s row: the case's audit permission, or for an event of no case an
    administrator of its organisation. The auditor's role for both asking and approving."""
    if user.organization_id is None:
        return False
    if event.case_id is not None:
        case = Case.objects.filter(pk=event.case_id).first()
        return (
            case is not None
            and case.organization_id == user.organization_id
            and perms.VIEW_AUDIT in case_permissions(user=user, case=case)
        )
    return bool(user.is_org_admin) and event.organization_id == user.organization_id


def _event(sequence: int) -> AuditEvent:
    event = AuditEvent.objects.filter(sequence=sequence).first()
    if event is None:
        raise NotFound("No such audit row.")
    return event


def request_of_organization(*, user: User, request_id: int) -> ReIdentificationRequest:
    if user.organization_id is None:
        raise NotFound("No such re-identification request.")
    request = ReIdentificationRequest.objects.filter(pk=request_id, organization_id=user.organization_id).first()
    if request is None:
        raise NotFound("No such re-identification request.")
    return request


def _as_service_error(refused: ReIdentificationRefused) -> ServiceError:
    return ServiceError(str(refused), code=refused.code, status_code=refused.status_code)


def requests_visible_to(*, user: User) -> list[ReIdentificationRequest]:
    """The requests of the user's organisation that the user asked for or may decide on (newest first)."""
    if user.organization_id is None:
        return []
    requests = list(ReIdentificationRequest.objects.filter(organization_id=user.organization_id)[:200])
    events = {e.sequence: e for e in AuditEvent.objects.filter(sequence__in=[r.event_sequence for r in requests])}
    visible = []
    for request in requests:
        event = events.get(request.event_sequence)
        if request.requested_by_id == user.pk or (event is not None and may_audit(user=user, event=event)):
            visible.append(request)
    return visible


def request_for(*, user: User, event_sequence: int, field: str, reason: str) -> ReIdentificationRequest:
    event = _event(event_sequence)
    try:
        return reidentification_request(
            actor=user,
            organization_id=user.organization_id or 0,
            event=event,
            field=field,
            reason=reason,
            may_read=may_audit(user=user, event=event),
        )
    except ReIdentificationRefused as refused:
        raise _as_service_error(refused) from None


def decide(*, user: User, request_id: int, approve: bool) -> ReIdentificationRequest:
    request = request_of_organization(user=user, request_id=request_id)
    event = AuditEvent.objects.filter(sequence=request.event_sequence).first()
    try:
        return reidentification_decide(
            actor=user,
            organization_id=user.organization_id or 0,
            request=request,
            approve=approve,
            may_approve=event is not None and may_audit(user=user, event=event),
        )
    except ReIdentificationRefused as refused:
        raise _as_service_error(refused) from None


def reveal(*, user: User, request_id: int) -> str:
    request = request_of_organization(user=user, request_id=request_id)
    try:
        return reidentification_reveal(actor=user, organization_id=user.organization_id or 0, request=request).value
    except ReIdentificationRefused as refused:
        raise _as_service_error(refused) from None
