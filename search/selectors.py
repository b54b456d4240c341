"""Reads of traces and extraction runs, through the one access policy."""

from __future__ import annotations

from django.db.models import QuerySet

from cases import permissions as perms
from cases.models import User
from cases.selectors import case_get
from custodia.errors import NotFound
from evidence.models import Evidence
from search.models import ExtractionRun, Trace


def extraction_runs(*, evidence: Evidence) -> QuerySet[ExtractionRun]:
    return ExtractionRun.objects.filter(evidence=evidence).select_related("started_by", "evidence")


def trace_get(*, user: User, case_id: int, uid: str) -> Trace:
    case = case_get(user=user, case_id=case_id, permission=perms.SEARCH_TRACES)
    trace = Trace.objects.filter(case=case, uid=uid).first()
    if trace is None:
        raise NotFound("No such trace.")
    return trace


def trace_children(*, trace: Trace) -> QuerySet[Trace]:
    return Trace.objects.filter(case_id=trace.case_id, parent_uid=trace.uid).order_by("ordinal")


def trace_counts(*, evidence: Evidence) -> dict[str, int]:
    traces = Trace.objects.filter(evidence=evidence)
    return {
        "traces": traces.count(),
        "with_content": traces.exclude(sha256="").count(),
        "deleted": traces.filter(deleted=True).count(),
        "with_errors": traces.filter(has_errors=True).count(),
    }
