"""The alerts app listens to the audit trail (audit/signals.py): every recorded event goes through the rules,
and a failed audit write is raised by a task outside the writer's doomed transaction."""

from __future__ import annotations

import logging

from django.db import transaction
from django.dispatch import receiver

from alerts import rules
from alerts.services import alert_raise
from audit.signals import event_recorded, write_failed

logger = logging.getLogger(__name__)


@receiver(event_recorded, dispatch_uid="alerts.event_recorded")
def raise_alerts(sender, event, details=None, actor_name=None, client_address=None, **kwargs) -> None:
    if not rules.rules_for(event):
        return
    try:
        # A savepoint: a rule that fails rolls back its own writes, never the event's transaction.
        with transaction.atomic():
            for spec in rules.evaluate(event, details, actor_name=actor_name, client_address=client_address):
                alert_raise(spec=spec)
    except Exception:
        logger.exception("alert rules failed on audit event %s (%s)", event.sequence, event.action)


@receiver(write_failed, dispatch_uid="alerts.write_failed")
def raise_write_failure(sender, action: str, organization_id=None, case_id=None, error: str = "", **kwargs) -> None:
    # The writer's transaction is about to roll back (and the database may be what failed): the alert is raised
    # by a worker, which retries until the database takes it. Queued now, not on commit: there is no commit.
    from alerts.tasks import raise_audit_write_failure

    try:
        raise_audit_write_failure.delay(action=action, organization_id=organization_id, case_id=case_id, error=error)
    except Exception:
        logger.exception("could not queue the alert for a failed audit write of %s", action)
