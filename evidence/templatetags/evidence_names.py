"""Evidence by its name on pages that hold only its id (issue #20, item 1): ``{% load evidence_names %}``."""

from __future__ import annotations

import uuid

from django import template

from evidence.models import Evidence

register = template.Library()


@register.filter
def audit_target_label(event) -> str:
    """``e|audit_target_label``: an audit row's evidence target as "label (id)", looked up in the row's own
    case only; the id alone for any other target, or an item that is not found."""
    target = str(getattr(event, "target_id", "") or "")
    if getattr(event, "target_type", "") != "evidence" or not target:
        return target
    try:
        evidence_id = uuid.UUID(target)
    except ValueError:
        return target
    label = Evidence.objects.filter(pk=evidence_id, case_id=event.case_id).values_list("label", flat=True).first()
    return f"{label} ({target})" if label is not None else target
