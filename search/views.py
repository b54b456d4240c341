"""Server-rendered extraction pages (partials loaded into the evidence page)."""

from __future__ import annotations

from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from cases import permissions as perms
from cases.selectors import case_permissions
from cases.views import _run, case_view
from custodia.errors import ServiceError
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


@case_view(perms.SEARCH_TRACES)
def trace_search(request, case):
    query = request.GET.get("q", "")
    result, error = None, ""
    try:
        result = selectors.traces_search(
            user=request.user, case_id=case.pk, query=query, cursor=request.GET.get("cursor") or None, limit=50
        )
    except ServiceError as exc:
        error = exc.detail
    request.audit_details = {"query": query[:2000]}
    facet_links = {}
    if result:
        for name, entries in result["facets"].items():
            facet_links[name] = [
                {**entry, "query": _refine(query, name, entry["value"])} for entry in entries if entry["value"] != ""
            ]
    template = "search/_results.html" if request.headers.get("HX-Request") else "search/search.html"
    return render(
        request,
        template,
        {"case": case, "query": query, "result": result, "error": error, "facets": facet_links},
    )


_FACET_FIELDS = {
    "type": "type",
    "mimeType": "file.mimeType",
    "evidence": "evidence",
    "deleted": "deleted",
    "tag": "tag",
}


def _refine(query: str, facet: str, value) -> str:
    """The query narrowed to one facet value, as a click on the facet does."""
    if facet == "extension":
        clause = f"name:*.{value}"
    else:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        clause = f'{_FACET_FIELDS[facet]}:"{text}"' if facet == "mimeType" else f"{_FACET_FIELDS[facet]}:{text}"
    return f"({query}) AND {clause}" if query.strip() else clause
