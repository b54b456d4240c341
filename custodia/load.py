"""What administrators see of the system: load, not content (issue #19 item 5).

Per organisation: work waiting and running (extraction runs, evidence being received, captures, links and
re-identifications waiting for a second person), runs finished and failed, throughput (traces and bytes
extracted), storage used (sealed evidence bytes), and request rates and errors from the audit trail. Only
counts and the organisation's name: no case name or reference, no query, no user, no address. Here, above
the apps, because it counts the rows of every app.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from audit.actions import ACCESS_SUFFIX
from audit.models import AuditEvent, Outcome, ReIdentificationRequest, ReIdentificationStatus
from cases.models import Organization, User
from evidence.models import CaptureRun, CaptureState, DownloadLink, Evidence, EvidenceState, LinkState
from search.models import ExtractionRun, RunState

# The window of the rates (requests, errors) and of finished runs and throughput.
LOAD_WINDOW = timedelta(hours=1)
RUNS_WINDOW = timedelta(hours=24)


@dataclass
class OrganizationLoad:
    organization_id: int
    organization: str
    queues: dict[str, int] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    throughput: dict[str, int] = field(default_factory=dict)
    storage_bytes: int = 0
    requests: dict[str, float | int] = field(default_factory=dict)


def _by_org(queryset: QuerySet[Any], path: str, **aggregates: Any) -> dict[int, dict]:
    rows = queryset.values(path).annotate(**aggregates)
    return {row[path]: row for row in rows if row[path] is not None}


def organization_load(*, organization_ids: list[int]) -> list[OrganizationLoad]:
    """The load of each of ``organization_ids``: counts only (see the module docstring)."""
    now = timezone.now()
    since_runs, since_requests = now - RUNS_WINDOW, now - LOAD_WINDOW
    runs = _by_org(
        ExtractionRun.objects.filter(evidence__case__organization_id__in=organization_ids),
        "evidence__case__organization_id",
        queued=Count("id", filter=Q(state=RunState.QUEUED)),
        running=Count("id", filter=Q(state=RunState.RUNNING)),
        done=Count("id", filter=Q(state=RunState.DONE, finished_at__gte=since_runs)),
        failed=Count("id", filter=Q(state=RunState.FAILED, finished_at__gte=since_runs)),
        traces=Sum("traces", filter=Q(finished_at__gte=since_runs)),
        bytes=Sum("bytes_processed", filter=Q(finished_at__gte=since_runs)),
    )
    evidence = _by_org(
        Evidence.objects.filter(case__organization_id__in=organization_ids),
        "case__organization_id",
        receiving=Count("id", filter=Q(state=EvidenceState.RECEIVING)),
        sealed_bytes=Sum("size", filter=~Q(state__in=[EvidenceState.REGISTERED, EvidenceState.RECEIVING])),
        sealed_recently=Count("id", filter=Q(sealed_at__gte=since_runs)),
    )
    captures = _by_org(
        CaptureRun.objects.filter(case__organization_id__in=organization_ids),
        "case__organization_id",
        queued=Count("id", filter=Q(state=CaptureState.QUEUED)),
        running=Count("id", filter=Q(state=CaptureState.RUNNING)),
    )
    links = _by_org(
        DownloadLink.objects.filter(evidence__case__organization_id__in=organization_ids, state=LinkState.PENDING),
        "evidence__case__organization_id",
        pending=Count("id"),
    )
    reidentifications = _by_org(
        ReIdentificationRequest.objects.filter(
            organization_id__in=organization_ids, status=ReIdentificationStatus.PENDING
        ),
        "organization_id",
        pending=Count("id"),
    )
    access = Q(action__endswith=ACCESS_SUFFIX)
    request_counts = _by_org(
        AuditEvent.objects.filter(organization_id__in=organization_ids, occurred_at__gte=since_requests),
        "organization_id",
        requests=Count("sequence", filter=access),
        denied=Count("sequence", filter=access & Q(outcome=Outcome.DENIED)),
        failed=Count("sequence", filter=Q(outcome=Outcome.FAILED)),
        events=Count("sequence"),
    )
    names = dict(Organization.objects.filter(pk__in=organization_ids).values_list("pk", "name"))
    minutes = LOAD_WINDOW.total_seconds() / 60
    loads = []
    for organization_id in sorted(names, key=lambda pk: names[pk]):
        run, item = runs.get(organization_id, {}), evidence.get(organization_id, {})
        capture, request = captures.get(organization_id, {}), request_counts.get(organization_id, {})
        loads.append(
            OrganizationLoad(
                organization_id=organization_id,
                organization=names[organization_id],
                queues={
                    "extraction_runs_queued": run.get("queued", 0),
                    "evidence_receiving": item.get("receiving", 0),
                    "captures_queued": capture.get("queued", 0),
                    "links_waiting_for_approval": links.get(organization_id, {}).get("pending", 0),
                    "reidentifications_waiting": reidentifications.get(organization_id, {}).get("pending", 0),
                },
                runs={
                    "extraction_running": run.get("running", 0),
                    "extraction_done_24h": run.get("done", 0),
                    "extraction_failed_24h": run.get("failed", 0),
                    "captures_running": capture.get("running", 0),
                },
                throughput={
                    "traces_extracted_24h": run.get("traces") or 0,
                    "bytes_extracted_24h": run.get("bytes") or 0,
                    "evidence_sealed_24h": item.get("sealed_recently", 0),
                },
                storage_bytes=item.get("sealed_bytes") or 0,
                requests={
                    "audited_requests_1h": request.get("requests", 0),
                    "per_minute": round(request.get("requests", 0) / minutes, 2),
                    "refused_1h": request.get("denied", 0),
                    "failed_1h": request.get("failed", 0),
                    "audit_events_1h": request.get("events", 0),
                },
            )
        )
    return loads


def load_organizations_for(*, user: User) -> list[int]:
    """Whose load ``user`` may see: every organisation for staff, their own for an organisation's
    administrator, none for anyone else."""
    if user.is_staff:
        return list(Organization.objects.values_list("pk", flat=True))
    if user.is_org_admin and user.organization_id is not None:
        return [user.organization_id]
    return []


def load_as_dicts(loads: list[OrganizationLoad]) -> list[dict]:
    return [asdict(load) for load in loads]


__all__ = ["LOAD_WINDOW", "OrganizationLoad", "load_as_dicts", "load_organizations_for", "organization_load"]
