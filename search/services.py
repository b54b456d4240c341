"""Writes of the search app: extraction runs, and the case's property names their traces carry.

An extraction reads sealed evidence only through the container's file object (``evidence.reading``, no
decrypted copy), walks it with the storage-media walker, runs the content tools on the files they
understand (``search.extraction.pipeline``), and publishes traces in small batches as it goes
(``search.publisher``). A run may be dealt out to several workers, one share each; the last share to finish
closes the run.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record
from cases import permissions as perms
from cases.models import User
from custodia.errors import Conflict
from evidence.models import Evidence, EvidenceState
from evidence.reading import document_passwords, open_acquired, unlock_credentials
from evidence.selectors import evidence_get
from search.extraction import source as media_source
from search.extraction.pipeline import ContentMemo, trace_rows, walk_options
from search.extraction.timezones import convert_local_times
from search.extraction.tools import tool_versions
from search.extraction.tools.documents import DocumentPassword, escrowed_document_passwords
from search.extraction.walker import walk_image
from search.models import CasePropertyName, ExtractionRun, RunState, Trace
from search.priority import extraction_priority
from search.publisher import Publisher, property_names_record

logger = logging.getLogger(__name__)


def extraction_start(*, actor: User | None, evidence: Evidence) -> ExtractionRun:
    """Queue an extraction run (``actor`` None: the automatic run after sealing)."""
    from search.tasks import run_extraction

    with transaction.atomic():
        if actor is not None:
            evidence = evidence_get(user=actor, evidence_id=evidence.pk, permission=perms.EXTRACT_EVIDENCE)
        evidence = Evidence.objects.select_for_update().select_related("case").get(pk=evidence.pk)
        if not evidence.is_sealed:
            raise Conflict("Only sealed evidence can be extracted.", code="not_sealed")
        # A run whose worker or database went away must not block this one (409 forever): fail it first.
        extraction_runs_reap(evidence_id=evidence.pk)
        if ExtractionRun.objects.filter(evidence=evidence, state__in=[RunState.QUEUED, RunState.RUNNING]).exists():
            raise Conflict("An extraction of this evidence is already queued or running.", code="already_running")
        priority, reason = extraction_priority(case=evidence.case, evidence=evidence, requested=actor is not None)
        shards = settings.CUSTODIA_EXTRACTION_SHARDS
        run = ExtractionRun.objects.create(
            evidence=evidence, started_by=actor, priority=priority, priority_reason=reason, shards=shards
        )
        audit_record(
            action="evidence.extract.start",
            actor=actor,
            target_type="evidence",
            target_id=evidence.pk,
            case_id=evidence.case_id,
            details={"run": run.pk, "priority": priority, "priority_reason": reason, "shards": shards},
        )

        def enqueue() -> None:
            for shard in range(shards):
                run_extraction.apply_async(args=[run.pk, shard], priority=priority)

        transaction.on_commit(enqueue)
    return run


def property_names_rebuild(*, case_id: int) -> None:
    """Record every property name of the case's traces, reading them all: for traces written other than
    by extraction, and for those from before names were recorded."""
    if connection.vendor == "postgresql":
        sql = "SELECT DISTINCT key FROM search_trace, jsonb_object_keys(properties) AS key WHERE case_id = %s"
    else:
        sql = (
            "SELECT DISTINCT property.key FROM search_trace, json_each(search_trace.properties) AS property "
            "WHERE search_trace.case_id = %s"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [case_id])
        names = {row[0] for row in cursor.fetchall()}
    CasePropertyName.objects.filter(case_id=case_id).exclude(name__in=names).delete()
    property_names_record(case_id=case_id, names=names)


def extraction_execute(*, run_id: int, shard: int = 0) -> ExtractionRun:
    """The body of one extraction task: share ``shard`` of the run's walk (all of it when the run has one
    share). Safe to run again (redelivery): rows are upserted by uid and a share is counted finished once."""
    run = ExtractionRun.objects.select_related("evidence", "evidence__case").get(pk=run_id)
    if run.state in (RunState.DONE, RunState.FAILED):
        return run
    if not 0 <= shard < run.shards:
        raise ValueError(f"run {run.pk} has {run.shards} shares; there is no share {shard}")
    evidence = run.evidence
    ExtractionRun.objects.filter(pk=run.pk, started_at__isnull=True).update(started_at=timezone.now())
    lease = RunLease(run_id=run.pk)
    ExtractionRun.objects.filter(pk=run.pk).update(state=RunState.RUNNING, **lease.renewal())
    Evidence.objects.filter(pk=evidence.pk).update(state=EvidenceState.EXTRACTING)
    run.refresh_from_db()
    publisher = Publisher(run, shard=shard)
    try:
        passwords = [
            DocumentPassword(reference=f"escrowed secret {pk}", value=value)
            for pk, value in document_passwords(evidence=evidence)
        ]
        with open_acquired(evidence=evidence) as acquired, escrowed_document_passwords(passwords):
            options = walk_options(acquired=acquired, shard=(shard, run.shards) if run.shards > 1 else None)
            resolver_context = media_source.EvidenceResolverContext(files=acquired.files)
            memo = ContentMemo()
            for record in walk_image(
                file_object=acquired.reader,
                evidence_id=str(evidence.pk),
                secrets=unlock_credentials(evidence=evidence),
                options=options,
            ):
                for row in trace_rows(
                    record=record, resolver_context=resolver_context, memo=memo, budget=options.budget
                ):
                    # Local times of unknown zone, converted with the custodian's source time zone if set.
                    row["properties"] = convert_local_times(row["properties"], time_zone=evidence.source_time_zone)
                    publisher.add(row)
                lease.beat()  # between two walker records: a safe point
            publisher.flush()
    except RunLeaseLost:  # the reaper failed the run meanwhile, with its reason: leave it as it is
        logger.warning("extraction run %s (share %s) lost its lease; stopping", run.pk, shard)
        run.refresh_from_db()
        return run
    except Exception as exc:  # a run that cannot go on is recorded, audited and left; nothing is lost
        logger.exception("extraction run %s (share %s) failed", run.pk, shard)
        publisher.flush()
        with transaction.atomic():
            ExtractionRun.objects.filter(pk=run.pk).update(
                state=RunState.FAILED, failure=f"{exc.__class__.__name__}: {exc}"[:2000], finished_at=timezone.now()
            )
            Evidence.objects.filter(pk=evidence.pk).update(state=EvidenceState.SEALED)
            audit_record(
                action="evidence.extract",
                outcome="failed",
                target_type="evidence",
                target_id=evidence.pk,
                case_id=evidence.case_id,
                details={"run": run.pk, "shard": shard, "error": exc.__class__.__name__, "traces": publisher.count},
            )
        run.refresh_from_db()
        return run
    if _finish_share(run=run, shard=shard):
        trace_statistics_refresh()
    run.refresh_from_db()
    return run


# --- run leases (issue #17, finding 3) ------------------------------------------------------------


def lease_duration() -> timedelta:
    return timedelta(seconds=settings.CUSTODIA_EXTRACTION_LEASE_SECONDS)


class RunLeaseLost(Exception):
    """This worker's run was failed by the reaper meanwhile (its lease had run out): stop working on it."""


class RunLease:
    """The lease a worker holds on the run it works on. ``beat()`` is cheap enough to call after every
    record: it writes (one short UPDATE in its own transaction) only once a tenth of the lease has passed."""

    def __init__(self, *, run_id: int) -> None:
        self.run_id = run_id
        self.worker = f"{socket.gethostname()}:{os.getpid()}"[:200]
        self.interval = lease_duration().total_seconds() / 10
        self.last_beat = time.monotonic()

    def renewal(self) -> dict:
        now = timezone.now()
        return {"heartbeat_at": now, "lease_expires_at": now + lease_duration(), "worker": self.worker}

    def beat(self) -> None:
        if time.monotonic() - self.last_beat < self.interval:
            return
        renewed = ExtractionRun.objects.filter(pk=self.run_id, state=RunState.RUNNING).update(**self.renewal())
        self.last_beat = time.monotonic()
        if not renewed:
            raise RunLeaseLost(f"run {self.run_id} is no longer running (failed by the lease reaper)")


def extraction_runs_reap(*, evidence_id: UUID | None = None, now: datetime | None = None) -> list[int]:
    """Fail every running run whose lease has run out — its worker died, or lost its database for longer
    than the lease — with the reason, audited, so that it can be started again. Runs from before leases
    (none set) count from their start. Returns the ids of the runs failed. Called by the periodic task, at
    worker start and before a run is started ("extract again", for that evidence only)."""
    now = now or timezone.now()
    expired = Q(state=RunState.RUNNING) & (
        Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True, started_at__lt=now - lease_duration())
    )
    candidates = ExtractionRun.objects.filter(expired)
    if evidence_id is not None:
        candidates = candidates.filter(evidence_id=evidence_id)
    failed: list[int] = []
    for run_id in list(candidates.values_list("pk", flat=True)):
        with transaction.atomic():
            run = (
                ExtractionRun.objects.select_for_update().select_related("evidence").filter(expired, pk=run_id).first()
            )
            if run is None:
                continue  # renewed, or closed, meanwhile
            last_sign = run.heartbeat_at or run.started_at
            reason = (
                f"lease expired: no heartbeat from {run.worker or 'its worker'} since "
                f"{last_sign.isoformat() if last_sign else 'it started'}; the worker or its database went away"
            )
            ExtractionRun.objects.filter(pk=run.pk).update(
                state=RunState.FAILED, failure=reason, finished_at=now, lease_expires_at=None
            )
            Evidence.objects.filter(pk=run.evidence_id, state=EvidenceState.EXTRACTING).update(
                state=EvidenceState.SEALED
            )
            audit_record(
                action="evidence.extract.abandoned",
                outcome="failed",
                target_type="evidence",
                target_id=run.evidence_id,
                case_id=run.evidence.case_id,
                details={
                    "run": run.pk,
                    "worker": run.worker,
                    "last_heartbeat": last_sign.isoformat() if last_sign else None,
                    "reason": "lease expired",
                },
            )
            failed.append(run.pk)
    if failed:
        logger.warning("failed %d extraction run(s) whose lease ran out: %s", len(failed), failed)
    return failed


def trace_statistics_refresh() -> None:
    """Tell the database's query planner how the trace table looks now, after a run added many traces.

    SQLite keeps no statistics unless asked: without them it checks a rare word's few hits by scanning
    a whole case's index instead of looking them up. It reads every index (about 3 s at a million traces,
    once a run): a sample (``analysis_limit``) sees too few rows to tell that one case holds them all, and
    the plans it leads to are worse than none. PostgreSQL samples by itself, and its autovacuum would get
    there too, later.
    """
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE search_trace")


def _finish_share(*, run: ExtractionRun, shard: int) -> bool:
    """Count this share finished; the last share to finish closes the run (exactly once): True then."""
    with transaction.atomic():
        run = ExtractionRun.objects.select_for_update().select_related("evidence").get(pk=run.pk)
        if run.state != RunState.RUNNING:
            return False
        if shard not in run.shards_finished:
            run.shards_finished = sorted([*run.shards_finished, shard])
            run.save(update_fields=["shards_finished"])
        if len(run.shards_finished) < run.shards:
            return False
        evidence = run.evidence
        versions = {**tool_versions(), **_media_tool_versions()}
        traces = Trace.objects.filter(run=run)
        totals = {
            "traces": traces.count(),
            "traces_with_errors": traces.filter(has_errors=True).count(),
            # Encrypted volumes no escrowed secret opened: the custodians are told (alerts, a hand-off).
            "locked_volumes": traces.filter(**{"properties__encryptedVolume.unlocked": False}).count(),
        }
        ExtractionRun.objects.filter(pk=run.pk).update(
            state=RunState.DONE,
            finished_at=timezone.now(),
            tools=versions,
            traces=totals["traces"],
            errors=totals["traces_with_errors"],
        )
        # Traces of an earlier run that this run no longer produced do not linger.
        Trace.objects.filter(evidence=evidence).exclude(run=run).delete()
        Evidence.objects.filter(pk=evidence.pk).update(state=EvidenceState.EXTRACTED)
        run.refresh_from_db()
        audit_record(
            action="evidence.extract",
            target_type="evidence",
            target_id=evidence.pk,
            case_id=evidence.case_id,
            details={
                "run": run.pk,
                "shards": run.shards,
                "traces": totals["traces"],
                "files": run.files,
                "bytes": run.bytes_processed,
                "traces_with_errors": totals["traces_with_errors"],
                "locked_volumes": totals["locked_volumes"],
                "tools": versions,
            },
        )
    return True


def _media_tool_versions() -> dict[str, str]:
    import dfvfs
    import pytsk3

    return {"dfvfs": dfvfs.__version__, "pytsk3": pytsk3.TSK_VERSION_STR}


def extract_on_seal(*, evidence: Evidence) -> None:
    """Receiver of ``evidence_sealed``: start the automatic run when the setting asks for it."""
    if settings.CUSTODIA_EXTRACT_ON_SEAL:
        extraction_start(actor=None, evidence=evidence)
