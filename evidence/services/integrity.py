"""Integrity verification: re-read every sealed chunk, compare each chunk's SHA-256 and the whole image's
SHA-256 with the values taken at intake. A mismatch flags the evidence and is audited, naming the chunk.
Nothing is ever repaired."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from cases import permissions as perms
from cases.models import User
from custodia.errors import Conflict
from evidence.container import verify_container
from evidence.models import Evidence, IntegrityStatus
from evidence.selectors import evidence_get
from evidence.services.registration import data_key_for
from evidence.storage.base import get_store

logger = logging.getLogger(__name__)


def evidence_verify_request(*, actor: User, evidence: Evidence) -> dict | None:
    """Verify now, or queue the verification when the evidence is larger than
    ``CUSTODIA_VERIFY_INLINE_BYTES``: the report, or None when queued (audited as queued)."""
    from evidence.tasks import verify_evidence

    evidence = _verifiable(actor=actor, evidence=evidence)
    if (evidence.size or 0) <= settings.CUSTODIA_VERIFY_INLINE_BYTES:
        return _verify(actor=actor, evidence=evidence)
    with transaction.atomic():
        audit_record(
            action="evidence.verify.queue",
            actor=actor,
            target_type="evidence",
            target_id=evidence.pk,
            case_id=evidence.case_id,
            details={"size": evidence.size},
        )
        transaction.on_commit(lambda: verify_evidence.delay(str(evidence.pk), actor_id=actor.pk))
    return None


def evidence_verify(*, actor: User | None, evidence: Evidence) -> dict:
    """Verify one sealed evidence item. ``actor`` None is the scheduled check."""
    return _verify(actor=actor, evidence=_verifiable(actor=actor, evidence=evidence))


def _verifiable(*, actor: User | None, evidence: Evidence) -> Evidence:
    """The evidence as ``actor`` may see it (anyone: the scheduled check), refused unless sealed."""
    if actor is not None:
        evidence = evidence_get(user=actor, evidence_id=evidence.pk, permission=perms.VIEW_EVIDENCE)
    if not evidence.is_sealed:
        raise Conflict("Only sealed evidence can be verified.", code="not_sealed")
    return evidence


def _verify(*, actor: User | None, evidence: Evidence) -> dict:
    report = verify_container(
        evidence_id=evidence.pk, data_key=data_key_for(evidence), store=get_store(), expected_sha256=evidence.sha256
    )
    mismatches = [{"chunk": index, "problem": problem} for index, problem in report.bad_chunks]
    mismatches += [{"chunk": None, "problem": problem} for problem in report.problems]
    ok = report.ok and not mismatches
    with transaction.atomic():
        evidence = Evidence.objects.select_for_update().get(pk=evidence.pk)
        evidence.last_verified_at = timezone.now()
        if ok:
            # A mismatch once found stays on record: a later clean read does not erase the flag.
            if evidence.integrity != IntegrityStatus.MISMATCH:
                evidence.integrity = IntegrityStatus.INTACT
        else:
            evidence.integrity = IntegrityStatus.MISMATCH
            named = ", ".join(str(m["chunk"]) for m in mismatches if m["chunk"] is not None)
            evidence.integrity_problem = (
                f"Chunk {named} does not match the hash taken at intake." if named else str(mismatches[0]["problem"])
            )
            logger.error("integrity mismatch in evidence %s: %s", evidence.pk, evidence.integrity_problem)
        evidence.save(update_fields=["integrity", "integrity_problem", "last_verified_at"])
        audit_record(
            action="evidence.verify",
            actor=actor,
            outcome="ok" if ok else "failed",
            target_type="evidence",
            target_id=evidence.pk,
            case_id=evidence.case_id,
            details={
                "ok": ok,
                "chunks_checked": report.chunks_checked,
                "mismatches": mismatches,
                "sha256": report.sha256 or "",
                "scheduled": actor is None,
            },
        )
        if report.orphans:
            # Copies a failed upload request left, superseded by a later attempt: not damage, but on record.
            audit_record(
                action="evidence.chunk.orphan",
                actor=actor,
                target_type="evidence",
                target_id=evidence.pk,
                case_id=evidence.case_id,
                details={"keys": report.orphans, "found": "integrity check"},
            )
    return {
        "ok": ok,
        "chunks_checked": report.chunks_checked,
        "mismatches": mismatches,
        "sha256": report.sha256 or "",
    }


def sealed_evidence_ids() -> list[str]:
    return [str(pk) for pk in Evidence.objects.filter(sealed_at__isnull=False).values_list("pk", flat=True)]
