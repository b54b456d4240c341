"""Celery tasks of the audit app: thin wrappers that call a service."""

from celery import shared_task

from audit.services import audit_chain_check
from custodia.errors import AuditUnavailable


@shared_task(autoretry_for=(AuditUnavailable,), retry_backoff=True, max_retries=5)
def verify_audit_chain() -> dict:
    return audit_chain_check()
