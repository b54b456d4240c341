"""What evidence does when a lower app announces a change (connected in EvidenceConfig.ready)."""

from __future__ import annotations

from django.dispatch import receiver

from cases.signals import case_retention_changed
from evidence.services.retention import case_retention_apply


@receiver(case_retention_changed, dispatch_uid="evidence.protect_sealed_evidence")
def protect_sealed_evidence(sender, *, case, previous_retention_until, previous_legal_hold, **kwargs) -> dict:
    """A case's retention or hold changed: every sealed object of the case gets it now, in the same
    transaction (a store refusal refuses the change)."""
    return case_retention_apply(
        case=case, previous_retention_until=previous_retention_until, previous_legal_hold=previous_legal_hold
    )
