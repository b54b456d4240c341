"""Celery tasks of the search app: take ids, call a service."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready

from custodia.errors import AuditUnavailable

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,  # a killed worker's run is redelivered; rows are upserted by uid
    autoretry_for=(AuditUnavailable,),
    retry_backoff=True,
    max_retries=5,
)
def run_extraction(run_id: int, shard: int = 0) -> dict:
    from search.services import extraction_execute

    run = extraction_execute(run_id=run_id, shard=shard)
    return {"run": run.pk, "state": run.state, "traces": run.traces}


@shared_task
def reap_extraction_runs() -> list[int]:
    """Fail the runs whose lease ran out (celery beat: CUSTODIA_EXTRACTION_LEASE_SECONDS / 2)."""
    from search.services import extraction_runs_reap

    return extraction_runs_reap()


@worker_ready.connect
def reap_at_worker_start(**_signal) -> None:
    """A worker that starts may be the one that died: fail the runs it left, now rather than at the next beat."""
    from search.services import extraction_runs_reap

    try:
        extraction_runs_reap()
    except Exception:  # the database may be down still; the periodic task tries again
        logger.exception("could not reap extraction runs at worker start")


@shared_task(acks_late=True, reject_on_worker_lost=True)
def mark_traces_for_hash_set(hash_set_id: int) -> int:
    """Mark the traces extracted before the hash set was imported (marking twice marks nothing twice)."""
    from search.hashset_marks import traces_mark_for_hash_set

    return traces_mark_for_hash_set(hash_set_id=hash_set_id)
