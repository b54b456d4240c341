"""The only code that writes alerts: raising one (rules and hand-offs), acknowledging one, delivering one.

An alert is raised in the transaction of the event that caused it (the audit trail's ``event_recorded``
signal, alerts/receivers.py), so it exists exactly when its event does; its deliveries are queued as Celery
tasks when that transaction commits. A delivery that fails is retried by its task, and what the retries give
up on is queued again by the periodic sweep: an alert is never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from alerts import channels, selectors
from alerts.models import Alert, Category, Channel, Delivery, DeliveryStatus, Severity
from audit.chain import json_safe
from audit.privacy import Tagged, replace_details, replace_line
from audit.services import audit_record
from cases.models import Case, Organization, User
from custodia.errors import Conflict, ServiceError

NOTE_MAX_CHARS = 2000


@dataclass(frozen=True)
class AlertSpec:
    """What a rule or a hand-off asks to raise. ``message`` and ``details`` carry confidential values tagged
    (``[user>harm]``, ``Tagged("case", …)``): they are transformed by the privacy model before they are stored."""

    kind: str
    title: str
    message: str
    severity: str = Severity.WARNING
    category: str = Category.ALERT
    organization_id: int | None = None
    case_id: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    dedupe_key: str = ""
    # Explicit recipients (hand-offs); None: the case's custodians or the organisation's administrators.
    recipients: tuple[User, ...] | None = None
    audit_sequence: int | None = None


def configured_channels() -> list[str]:
    """The channels this deployment delivers over (besides the bell, which needs no delivery)."""
    found: list[str] = []
    if settings.CUSTODIA_ALERTS_EMAIL:
        found.append(Channel.EMAIL)
    if settings.CUSTODIA_ALERTS_SYSLOG:
        found.append(Channel.SYSLOG)
    if settings.CUSTODIA_ALERTS_WEBHOOK_URL:
        found.append(Channel.WEBHOOK)
    return found


def _enqueue(delivery_ids: Iterable[int]) -> None:
    from alerts.tasks import deliver_alert

    for delivery_id in delivery_ids:
        deliver_alert.delay(delivery_id)


@transaction.atomic
def alert_raise(*, spec: AlertSpec) -> Alert:
    """Raise ``spec`` (or count it on the open alert with the same ``dedupe_key``) and queue its deliveries
    for when the transaction commits. Returns the alert."""
    now = timezone.now()
    if spec.dedupe_key:
        open_alert = (
            Alert.objects.select_for_update()
            .filter(dedupe_key=spec.dedupe_key, acknowledged_at__isnull=True)
            .order_by("-raised_at")
            .first()
        )
        if open_alert is not None:
            Alert.objects.filter(pk=open_alert.pk).update(occurrences=F("occurrences") + 1, last_seen_at=now)
            open_alert.refresh_from_db()
            return open_alert
    case = Case.objects.filter(pk=spec.case_id).first() if spec.case_id is not None else None
    organization_id = case.organization_id if case is not None else spec.organization_id
    if organization_id is not None and not Organization.objects.filter(pk=organization_id).exists():
        organization_id = None
    recipients = (
        list(spec.recipients)
        if spec.recipients is not None
        else selectors.recipients_for(organization_id=organization_id, case_id=case.pk if case else None)
    )
    details = dict(spec.details)
    if case is not None:
        # The SIEM's handle on the case: its reference, as the privacy policy transforms a case reference.
        details.setdefault("case", Tagged("case", case.reference))
    alert = Alert.objects.create(
        kind=spec.kind,
        category=spec.category,
        severity=spec.severity,
        organization_id=organization_id,
        case=case,
        title=spec.title[:200],
        message=replace_line(spec.message),
        details=json_safe(replace_details(details)),
        audit_sequence=spec.audit_sequence,
        dedupe_key=spec.dedupe_key[:200],
        raised_at=now,
        last_seen_at=now,
    )
    alert.recipients.set(recipients)
    deliveries = [Delivery.objects.create(alert=alert, channel=channel).pk for channel in configured_channels()]
    if deliveries:
        transaction.on_commit(lambda: _enqueue(deliveries))
    return alert


def notify_handoff(
    *,
    kind: str,
    title: str,
    message: str,
    recipients: Iterable[User],
    organization: Organization | None = None,
    case: Case | None = None,
    details: Mapping[str, Any] | None = None,
    audit_sequence: int | None = None,
) -> Alert | None:
    """Tell the next person in a journey that something waits for them (a link for a second custodian's
    approval, a locked volume for its secret, a finished or failed extraction, a re-identification for its
    approver), over the same channels as the alerts. ``kind`` names the hand-off (``handoff.<what>``);
    confidential values in ``message`` and ``details`` are tagged. Returns None when nobody is left to tell."""
    people = tuple(user for user in recipients if user.is_active)
    if not people:
        return None
    return alert_raise(
        spec=AlertSpec(
            kind=kind,
            title=title,
            message=message,
            severity=Severity.INFO,
            category=Category.HANDOFF,
            organization_id=organization.pk if organization is not None else None,
            case_id=case.pk if case is not None else None,
            details=details or {},
            recipients=people,
            audit_sequence=audit_sequence,
        )
    )


@transaction.atomic
def alert_acknowledge(*, actor: User, alert_id: int, note: str) -> Alert:
    """Acknowledge an alert addressed to ``actor``, with a note saying what was done; audited (alert.ack)."""
    note = (note or "").strip()
    if not note:
        raise ServiceError("Say what was done about it: the note is required.", code="note_required")
    if len(note) > NOTE_MAX_CHARS:
        raise ServiceError(f"The note is longer than {NOTE_MAX_CHARS} characters.", code="note_too_long")
    alert = selectors.alert_get_for(user=actor, alert_id=alert_id)
    alert = Alert.objects.select_for_update().get(pk=alert.pk)
    if alert.acknowledged_at is not None:
        raise Conflict("This alert was acknowledged already.", code="already_acknowledged")
    alert.acknowledged_at = timezone.now()
    alert.acknowledged_by = actor
    alert.acknowledgement_note = note
    alert.save(update_fields=["acknowledged_at", "acknowledged_by", "acknowledgement_note"])
    audit_record(
        action="alert.ack",
        actor=actor,
        target_type="alert",
        target_id=alert.pk,
        case_id=alert.case_id,
        organization_id=alert.organization_id or actor.organization_id,
        details={"kind": alert.kind, "occurrences": alert.occurrences, "note": note},
    )
    return alert


# --- deliveries -----------------------------------------------------------------------------------------


def delivery_send(*, delivery_id: int) -> str:
    """Hand one delivery to its channel. Returns its status; raises ``channels.ChannelError`` after counting
    the failed attempt (the task retries)."""
    delivery = Delivery.objects.select_related("alert").filter(pk=delivery_id).first()
    if delivery is None or delivery.status == DeliveryStatus.SENT:
        return delivery.status if delivery is not None else "gone"
    alert = delivery.alert
    try:
        if delivery.channel == Channel.EMAIL:
            addresses = sorted({user.email for user in alert.recipients.all() if user.email})
            channels.send_email(alert, addresses=addresses)
        elif delivery.channel == Channel.SYSLOG:
            channels.send_syslog(alert)
        elif delivery.channel == Channel.WEBHOOK:
            channels.send_webhook(alert)
        else:
            raise channels.ChannelError(f"unknown channel {delivery.channel!r}")
    except channels.ChannelError as exc:
        Delivery.objects.filter(pk=delivery.pk).update(attempts=F("attempts") + 1, last_error=str(exc)[:200])
        raise
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENT, attempts=F("attempts") + 1, last_error="", sent_at=timezone.now()
    )
    return DeliveryStatus.SENT


def deliveries_requeue(*, older_than: timedelta = timedelta(minutes=5)) -> int:
    """Queue again every delivery still pending after ``older_than`` (its task's retries gave up, or its
    worker died): the sweep that makes sure no alert is dropped. Returns how many were queued."""
    stale = list(
        Delivery.objects.filter(status=DeliveryStatus.PENDING, created_at__lte=timezone.now() - older_than)
        .order_by("id")
        .values_list("pk", flat=True)[:1000]
    )
    _enqueue(stale)
    return len(stale)
