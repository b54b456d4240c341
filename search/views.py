"""Server-rendered extraction pages (partials loaded into the evidence page)."""

from __future__ import annotations

from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from cases import permissions as perms
from cases.selectors import case_permissions
from cases.views import _run
from evidence.views import evidence_view
from search import selectors, services
from search.models import RunState, Trace


@evidence_view()
def evidence_extractions(request, evidence):
    runs = list(selectors.extraction_runs(evidence=evidence)[:10])
    locked = Trace.objects.filter(evidence=evidence, **{"properties__encryptedVolume.unlocked": False}).count()
    context = {
        "evidence": evidence,
        "runs": runs,
        "busy": any(run.state in (RunState.QUEUED, RunState.RUNNING) for run in runs),
        "counts": selectors.trace_counts(evidence=evidence),
        "locked_volumes": locked,
        "granted": case_permissions(user=request.user, case=evidence.case),
    }
    return render(request, "search/_extractions.html", context)


@require_POST
@evidence_view(perms.EXTRACT_EVIDENCE)
def evidence_extract(request, evidence):
    _run(request, lambda: services.extraction_start(actor=request.user, evidence=evidence), "Extraction queued.")
    return redirect("evidence:detail", evidence_id=evidence.pk)
