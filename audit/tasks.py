"""Celery tasks of the audit app: thin wrappers that call a service."""

from celery import shared_task

from audit.checkpoint_writer import checkpoint_write
from audit.services import audit_chain_check
from custodia.errors import AuditUnavailable


@shared_task(autoretry_for=(AuditUnavailable,), retry_backoff=True, max_retries=5)
def verify_audit_chain() -> dict:
    return audit_chain_check()


@shared_task
def write_audit_checkpoint() -> int | None:
    """The periodic checkpoint: signs whatever was appended since the last one (and so catches up after
    a checkpoint that failed). Returns the new checkpoint's number, or None when nothing was new."""
    checkpoint = checkpoint_write()
    return checkpoint.number if checkpoint else None
