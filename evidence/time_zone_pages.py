"""The evidence page's form for the item's source time zone (issue #18 item 6)."""

from __future__ import annotations

from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from cases import permissions as perms
from custodia.web import evidence_view, run_service
from evidence.services.time_zone import evidence_source_time_zone_set


@require_POST
@evidence_view(perms.REGISTER_EVIDENCE)
def evidence_source_time_zone(request, evidence):
    time_zone = request.POST.get("time_zone", "")[:200]
    run_service(
        request,
        lambda: evidence_source_time_zone_set(actor=request.user, evidence=evidence, time_zone=time_zone),
        success=f"Source time zone set to {time_zone.strip()}." if time_zone.strip() else "Source time zone cleared.",
    )
    return redirect("evidence:detail", evidence_id=evidence.pk)
