"""What every way of sealing evidence shares (resumable upload, server-side import): the acquisition facts
written into the container's manifest, recording a sealed item, and recording a failed one.

The manifest lies in the evidence store unencrypted, beside the data: it carries only de-identified facts.
Who the evidence was seized from or by, and the names of the acquired files, stay in the database and
the audit trail.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from cases.models import User
from evidence.models import Evidence, EvidenceState
from evidence.signals import evidence_sealed
from evidence.storage.base import get_store


def acquisition_facts(*, evidence: Evidence, **extra: Any) -> dict[str, Any]:
    return {
        "evidence": str(evidence.pk),
        "label": evidence.label,
        "kind": evidence.kind,
        "source": evidence.source,
        "seized_at": evidence.seized_at.isoformat() if evidence.seized_at else None,
        "format": evidence.format,
        "key_id": evidence.key_id,
        **extra,
    }


def record_sealed(
    *,
    actor: User | None,
    evidence: Evidence,
    hashes: dict[str, str],
    manifest_sha256: str,
    chunks: int,
    details: dict[str, Any] | None = None,
) -> Evidence:
    """Mark ``evidence`` (locked by the caller, in the caller's transaction) sealed, protect it in the store
    as its case requires, audit the seal, and tell the higher apps once the transaction commits."""
    evidence.md5, evidence.sha1, evidence.sha256 = hashes["md5"], hashes["sha1"], hashes["sha256"]
    evidence.manifest_sha256 = manifest_sha256
    evidence.state = EvidenceState.SEALED
    evidence.sealed_at = timezone.now()
    evidence.hasher_state = None
    evidence.save()
    case = evidence.case
    if case.retention_until or case.legal_hold:
        get_store().set_retention(evidence.storage_prefix, until=case.retention_until, legal_hold=case.legal_hold)
    audit_record(
        action="evidence.seal",
        actor=actor,
        target_type="evidence",
        target_id=evidence.pk,
        case_id=evidence.case_id,
        details={
            "size": evidence.size,
            **hashes,
            "chunks": chunks,
            "manifest_sha256": manifest_sha256,
            "format": evidence.format,
            **(details or {}),
        },
    )
    transaction.on_commit(lambda: evidence_sealed.send(sender=Evidence, evidence=evidence))
    return evidence


@transaction.atomic
def record_failed(
    *, actor: User | None, evidence: Evidence, action: str, reason: str, details: dict[str, Any] | None = None
) -> None:
    """Mark ``evidence`` failed with a reason, and audit it under ``action``, in one transaction."""
    Evidence.objects.filter(pk=evidence.pk).update(state=EvidenceState.FAILED, failure_reason=reason)
    evidence.state, evidence.failure_reason = EvidenceState.FAILED, reason
    audit_record(
        action=action,
        actor=actor,
        outcome="failed",
        target_type="evidence",
        target_id=evidence.pk,
        case_id=evidence.case_id,
        details={"reason": reason, **(details or {})},
    )


def queue_intake(*, evidence: Evidence) -> None:
    """Hand an import's or acquisition's seal to a worker once the caller's transaction commits (the task
    takes the id only and calls ``intake.intake_run``)."""
    from evidence.tasks import seal_evidence  # the tasks call the services: imported here, not at the top

    evidence_id = str(evidence.pk)
    transaction.on_commit(lambda: seal_evidence.delay(evidence_id))
