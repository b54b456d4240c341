"""Celery tasks of the evidence app: take ids, call a service, retry on the decorator."""

from __future__ import annotations

from celery import shared_task

from cases.models import User
from custodia.errors import AuditUnavailable, ServiceError
from evidence.capture import services as capture_services
from evidence.capture.services import CaptureRetry
from evidence.models import Evidence
from evidence.services import intake, integrity, link_guesses


@shared_task(autoretry_for=(AuditUnavailable,), retry_backoff=True, max_retries=5, acks_late=True)
def verify_evidence(evidence_id: str, actor_id: int | None = None) -> dict:
    """Verify one item: for the user who asked (``actor_id``), or as the scheduled check."""
    actor = User.objects.get(pk=actor_id) if actor_id is not None else None
    return integrity.evidence_verify(actor=actor, evidence=Evidence.objects.get(pk=evidence_id))


@shared_task
def verify_all_evidence() -> int:
    """The periodic check: one task per sealed item, so a big one does not hold up the rest."""
    ids = integrity.sealed_evidence_ids()
    for evidence_id in ids:
        verify_evidence.delay(evidence_id)
    return len(ids)


@shared_task(autoretry_for=(AuditUnavailable,), retry_backoff=True, max_retries=5)
def close_link_guess_windows() -> int:
    """The periodic close of finished windows of link guesses: their counts go into the audit trail."""
    return link_guesses.link_guess_windows_close()


@shared_task(
    bind=True,
    autoretry_for=(CaptureRetry, AuditUnavailable),
    retry_backoff=30,
    retry_backoff_max=600,
    max_retries=5,
    acks_late=True,
    reject_on_worker_lost=True,
)
def capture_vm_disks(self, run_id: str) -> str:
    """Execute (or resume) one capture run on the ``capture`` queue: a killed worker's run is redelivered
    (acks_late) and resumes where it stopped; a transient failure is tried again with backoff."""
    run = capture_services.capture_run_execute(run_id=run_id, final_attempt=self.request.retries >= self.max_retries)
    return run.state


@shared_task(autoretry_for=(AuditUnavailable,), retry_backoff=True, max_retries=5, acks_late=True)
def seal_evidence(evidence_id: str) -> dict:
    """Seal a queued server-side import or local acquisition. Delivered again after a killed worker
    (acks_late, reject on worker lost): the run resumes over what the killed one stored."""
    try:
        evidence = intake.intake_run(evidence_id=evidence_id)
    except ServiceError as error:  # recorded on the evidence and in the audit trail by the service
        return {"evidence": evidence_id, "state": "failed", "error": error.code}
    return {"evidence": evidence_id, "state": evidence.state}
