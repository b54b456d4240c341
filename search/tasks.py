"""Celery tasks of the search app: take ids, call a service."""

from __future__ import annotations

from celery import shared_task

from custodia.errors import AuditUnavailable


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
