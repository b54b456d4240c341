"""Traces made by hand in a case, for tests that need no corpus: the rows extraction would publish,
written straight to the database, with the case's property names recorded as extraction records them."""

from __future__ import annotations

from evidence.models import Evidence
from search.models import ExtractionRun, Trace
from search.services import property_names_rebuild


def synthetic_traces(*, case, registered_by, rows: list[dict]) -> Evidence:
    """One evidence item of ``case`` whose traces are ``rows`` (Trace fields; uid and ordinal given here)."""
    evidence = Evidence.objects.create(
        case=case, label="synthetic", kind="disk_image", registered_by=registered_by, wrapped_key=b"-"
    )
    run = ExtractionRun.objects.create(evidence=evidence)
    Trace.objects.bulk_create(
        Trace(uid=f"{evidence.pk}:0-{ordinal}", evidence=evidence, case=case, run=run, ordinal=ordinal, **row)
        for ordinal, row in enumerate(rows)
    )
    property_names_rebuild(case_id=case.pk)
    return evidence
