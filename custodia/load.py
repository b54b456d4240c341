"""What administrators see of the system: load, not content (issue #19 item 5).

Per organisation: work waiting and running (extraction runs, evidence being received, captures, links and
re-identifications waiting for a second person), runs finished and failed, throughput (traces and bytes
extracted), storage used (sealed evidence bytes), and request rates and errors from the audit trail. Only
counts and the organisation's name: no case name or reference, no query, no user, no address. Here, above
the apps, because it counts the rows of every app.

Besides the application's own waiting work, the broker's: with a Redis broker, the length of each Celery queue
(``broker_queue_lengths``). Per queue, not per organisation: a queued task names no organisation the broker
could count by.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from audit.actions import ACCESS_SUFFIX
from audit.models import AuditEvent, Outcome, ReIdentificationRequest, ReIdentificationStatus
from cases.models import Organization, User
from evidence.models import CaptureRun, CaptureState, DownloadLink, Evidence, EvidenceState, LinkState
from search.models import ExtractionRun, RunState

logger = logging.getLogger(__name__)

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


# --- the broker's queues ------------------------------------------------------------------------------

BROKER_QUEUES_NOTE = "Per queue, not per organisation: the broker holds tasks, not whose they are."
# How long the load page waits for the broker before it says it could not read it.
BROKER_TIMEOUT_SECONDS = 2.0


@dataclass
class BrokerQueues:
    """Tasks waiting in the broker, by queue name. ``error`` says why they could not be read (never the broker's
    URL, which may hold a password)."""

    transport: str
    queues: dict[str, int] = field(default_factory=dict)
    error: str = ""
    note: str = BROKER_QUEUES_NOTE


def broker_queue_names() -> list[str]:
    """The queues Celery sends to: the default one and every queue named in ``CELERY_TASK_ROUTES``."""
    names = {getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", None) or "celery"}
    routes = getattr(settings, "CELERY_TASK_ROUTES", None) or {}
    for route in routes.values() if isinstance(routes, dict) else ():
        if isinstance(route, dict) and route.get("queue"):
            names.add(str(route["queue"]))
    return sorted(names)


def broker_queue_lengths(*, broker_url: str | None = None) -> BrokerQueues | None:
    """The length of each of ``broker_queue_names()`` in a Redis broker (``CELERY_BROKER_URL`` unless given):
    LLEN of the queue's list and of its priority lists (kombu keeps one list per priority step, named
    ``<queue>\\x06\\x16<step>``). None for a broker that is not Redis (the filesystem broker of ``make run``:
    its queue is a folder that every queue shares)."""
    url = broker_url if broker_url is not None else settings.CELERY_BROKER_URL
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss"):
        return None
    # kombu's own naming, so that the keys stay the ones its Redis transport writes.
    from kombu.transport.redis import Channel

    steps = [step for step in Channel.priority_steps if step]
    names = broker_queue_names()
    result = BrokerQueues(transport="redis")
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=BROKER_TIMEOUT_SECONDS, socket_timeout=BROKER_TIMEOUT_SECONDS
        )
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(name)
                for step in steps:
                    pipe.llen(f"{name}{Channel.sep}{step}")
            lengths = pipe.execute()
        client.close()
    except redis.RedisError as exc:
        logger.warning("broker queue lengths could not be read: %s", type(exc).__name__)
        result.error = f"the broker could not be read ({type(exc).__name__})"
        return result
    per_queue = 1 + len(steps)
    for index, name in enumerate(names):
        result.queues[name] = sum(int(length) for length in lengths[index * per_queue : (index + 1) * per_queue])
    return result


def broker_as_dict(queues: BrokerQueues | None) -> dict | None:
    return asdict(queues) if queues is not None else None


__all__ = [
    "BROKER_QUEUES_NOTE",
    "LOAD_WINDOW",
    "BrokerQueues",
    "OrganizationLoad",
    "broker_as_dict",
    "broker_queue_lengths",
    "broker_queue_names",
    "load_as_dicts",
    "load_organizations_for",
    "organization_load",
]
