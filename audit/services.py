"""The only writer of the audit trail.

``audit_record`` appends one row to the chain inside the caller's transaction: when the caller's
change rolls back, so does its audit row, and when the audit row cannot be written the caller's change
fails with it (``AuditUnavailable``). The chain stays linear under concurrent writers because the
append happens under a lock held until the transaction commits: a PostgreSQL advisory lock, or the
write lock that SQLite's IMMEDIATE transactions take at BEGIN. The same lock keeps each case's own
chain linear: an event with a case is linked, in the same insert, after the case's previous event.

A custody-critical event (``audit.actions``), and every ``CUSTODIA_AUDIT_CHECKPOINT_EVENTS``-th event, is
followed by a signed checkpoint as soon as its transaction commits (``audit.checkpoints``).
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Iterator
from typing import Any, Protocol

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit import context, signals
from audit.actions import UndeclaredAuditAction, is_custody_critical, is_declared
from audit.chain import GENESIS_HASH, canonical_json, json_safe, link_hash
from audit.checkpoint_writer import schedule_checkpoint
from audit.export import EXPORT_FORMAT, case_export_lines
from audit.models import AuditEvent, Outcome
from audit.privacy import DEFAULT_TRANSFORMATION, policy_from_settings
from audit.replacement import SYSTEM_ACTOR, policy_digest, replace_row
from audit.verify import verify_trail
from custodia.errors import AuditUnavailable

logger = logging.getLogger(__name__)

# Any constant will do; it only has to be the same for every writer of this database.
_ADVISORY_LOCK_KEY = 0x43555354  # "CUST"


class Actor(Protocol):
    pk: Any
    username: str


def _lock_chain_head() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK_KEY])


def audit_record(
    *,
    action: str,
    actor: Actor | None = None,
    outcome: str = Outcome.OK,
    target_type: str = "",
    target_id: str | int | uuid.UUID = "",
    case_id: int | None = None,
    organization_id: int | None = None,
    details: dict | None = None,
) -> AuditEvent:
    """Append one event to the chain in the current transaction and return it.

    ``action`` must be declared in ``audit.actions``: an undeclared name is a programming error, refused
    before anything is written."""
    if not is_declared(action):
        raise UndeclaredAuditAction(f"The audit action {action!r} is not declared in audit/actions.py.")
    ctx = context.current()
    if organization_id is None and actor is not None:
        organization_id = getattr(actor, "organization_id", None)
    try:
        with transaction.atomic():
            _lock_chain_head()
            record_policy_change()  # under the lock, before this row: its own link of the chain
            last = AuditEvent.objects.order_by("-sequence").values("sequence", "hash").first()
            prev_hash = last["hash"] if last else GENESIS_HASH
            # The confidential fields as the privacy policy says, before the row is hashed: the chain covers
            # the stored, replaced row (MR entries go to the look-up table in this transaction).
            replaced = replace_row(
                actor=actor.username if actor is not None else SYSTEM_ACTOR,
                organization_id=organization_id,
                client_address=ctx.client_address if ctx else "",
                details=details or {},
            )
            row = {
                "sequence": (last["sequence"] + 1) if last else 1,
                "occurred_at": timezone.now(),
                "actor_id": actor.pk if actor is not None and actor.pk is not None else None,
                "actor": replaced.actor,
                "organization_id": organization_id,
                "action": action,
                "target_type": target_type,
                "target_id": str(target_id) if target_id != "" else "",
                "case_id": case_id,
                "outcome": str(outcome),
                "request_id": ctx.request_id if ctx else "",
                "client_address": replaced.client_address,
                "details": json_safe(replaced.details),
            }
            canonical = canonical_json(row)
            case_links = _case_links(case_id=case_id, canonical=canonical)
            event = AuditEvent.objects.create(
                **row, prev_hash=prev_hash, hash=link_hash(prev_hash, canonical), **case_links
            )
    except DatabaseError as exc:
        logger.error("audit write failed for action %s: %s", action, exc.__class__.__name__)
        signals.write_failed.send_robust(
            sender=AuditEvent, action=action, organization_id=organization_id, case_id=case_id, error=type(exc).__name__
        )
        raise AuditUnavailable(
            "The audit trail could not be written, so the request was refused and nothing was changed."
        ) from exc
    if ctx is not None:
        ctx.events_written += 1
    # The clear actor and address go with the event: a listener that passes them on tags them afresh, and the
    # stored ones are already replaced (tagging those would transform them twice).
    signals.event_recorded.send_robust(
        sender=AuditEvent,
        event=event,
        details=details,
        actor_name=actor.username if actor is not None else SYSTEM_ACTOR,
        client_address=ctx.client_address if ctx else "",
    )
    if is_custody_critical(action, event.details) or event.sequence % settings.CUSTODIA_AUDIT_CHECKPOINT_EVENTS == 0:
        schedule_checkpoint()
    return event


# The policy digest this process last found recorded in the trail (so that the check below costs one
# comparison per row once the trail has it).
_recorded_policy: list[str] = []
_recording_policy: contextvars.ContextVar[bool] = contextvars.ContextVar("recording_policy", default=False)
POLICY_CHANGED_ACTION = "privacy.policy_changed"


def record_policy_change() -> bool:
    """Write a ``privacy.policy_changed`` row when the configured privacy policy is not the one the trail
    last recorded (the first row a process writes after a deployment changed the setting, or a test's
    override): the mapping can change without code, and every change is in the trail. Called under the chain
    lock by ``audit_record``; returns whether it wrote one. Off with ``CUSTODIA_PRIVACY_RECORD_POLICY``."""
    if not getattr(settings, "CUSTODIA_PRIVACY_RECORD_POLICY", True) or _recording_policy.get():
        return False
    policy = policy_from_settings()
    digest = policy_digest(dict(policy.mapping), policy.default)
    if _recorded_policy and _recorded_policy[0] == digest:
        return False
    last = AuditEvent.objects.filter(action=POLICY_CHANGED_ACTION).order_by("-sequence").values("details").first()
    if last is not None and isinstance(last["details"], dict) and last["details"].get("digest") == digest:
        _recorded_policy[:] = [digest]
        return False
    # Recorded before the row that triggered it, as its own link of the chain; remembered once it commits
    # (a rolled-back record is written again by the next row).
    token = _recording_policy.set(True)
    try:
        audit_record(
            action=POLICY_CHANGED_ACTION,
            target_type="privacy_policy",
            target_id=digest[:16],
            details={
                "digest": digest,
                "previous": (last["details"] or {}).get("digest", "") if last is not None else "",
                "policy": dict(sorted(policy.mapping.items())),
                "default": policy.default or DEFAULT_TRANSFORMATION,
            },
        )
    finally:
        _recording_policy.reset(token)
    transaction.on_commit(lambda: _recorded_policy.__setitem__(slice(None), [digest]))
    return True


def _case_links(*, case_id: int | None, canonical: bytes) -> dict:
    """The row's place in its case's chain (called under the chain lock)."""
    if case_id is None:
        return {}
    last = AuditEvent.objects.filter(case_id=case_id).order_by("-sequence").values("case_sequence", "case_hash").first()
    # Every event with a case has its case links (migration 0003 gave them to the events before it).
    last_case_sequence = (last["case_sequence"] or 0) if last else 0
    case_prev_hash = (last["case_hash"] or GENESIS_HASH) if last else GENESIS_HASH
    return {
        "case_sequence": last_case_sequence + 1,
        "case_prev_hash": case_prev_hash,
        "case_hash": link_hash(case_prev_hash, canonical),
    }


def case_audit_export(
    *, actor: Actor, case_id: int, case_reference: str, organization_id: int | None = None
) -> Iterator[str]:
    """Record the export of a case's trail (``audit.export``, custody-critical: the checkpoint that covers
    it is written when the request's transaction commits, before the first line goes out) and return its
    lines, bounded at that row. The caller has checked that ``actor`` may read the case's audit trail."""
    event = audit_record(
        action="audit.export",
        actor=actor,
        target_type="case",
        target_id=case_id,
        case_id=case_id,
        organization_id=organization_id,
        details={"format": EXPORT_FORMAT},
    )
    return case_export_lines(case_id=case_id, case_reference=case_reference, through_sequence=event.sequence)


@transaction.atomic
def audit_chain_check() -> dict:
    """Verify the whole chain and record the result in the chain itself (the scheduled check)."""
    report = verify_trail()
    if not report.ok:
        logger.error("audit chain broken at sequence %s: %s", report.first_bad_sequence, report.problem)
    audit_record(
        action="audit.verify",
        outcome=Outcome.OK if report.ok else Outcome.FAILED,
        target_type="audit_chain",
        details=report.as_dict(),
    )
    return report.as_dict()
