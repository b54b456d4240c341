"""Celery tasks of the alerts app: thin wrappers that take ids and call a service."""

from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError

from alerts import rules, services
from alerts.channels import ChannelError
from audit.verify import append_only_trigger_problem


# Retried with a growing pause for about an hour; then the periodic sweep queues it again (never dropped).
@shared_task(autoretry_for=(ChannelError, DatabaseError), retry_backoff=True, retry_backoff_max=600, max_retries=10)
def deliver_alert(delivery_id: int) -> str:
    return services.delivery_send(delivery_id=delivery_id)


@shared_task(autoretry_for=(DatabaseError,), retry_backoff=True, retry_backoff_max=300, max_retries=None)
def raise_audit_write_failure(*, action: str, organization_id: int | None, case_id: int | None, error: str) -> int:
    spec = rules.audit_write_failed_spec(action=action, organization_id=organization_id, case_id=case_id, error=error)
    return services.alert_raise(spec=spec).pk


@shared_task
def requeue_alert_deliveries() -> int:
    return services.deliveries_requeue()


@shared_task(autoretry_for=(DatabaseError,), retry_backoff=True, max_retries=5)
def check_audit_triggers() -> int | None:
    """The append-only triggers, checked between the daily verifications (audit/checks.py checks at deploy)."""
    problem = append_only_trigger_problem()
    if not problem:
        return None
    return services.alert_raise(spec=rules.trail_alert(kind="audit.triggers_missing", problem=problem)).pk
