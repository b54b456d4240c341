"""A real Celery worker process runs our tasks: over Redis (the real stack) and over the file-system
broker that the embedded default uses. No eager mode anywhere."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from django.db import connection

from audit.models import AuditEvent
from audit.tasks import verify_audit_chain
from custodia.celery import app
from tests.servers import PROJECT_ROOT, ServerUnavailable, redis_server, stop_process

pytestmark = pytest.mark.slow


def worker_environment(broker_url: str) -> dict[str, str]:
    """The worker must use the very database the test uses (the test database, not the configured one)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "custodia.settings.test", "CELERY_BROKER_URL": broker_url}
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        env["CUSTODIA_SQLITE_PATH"] = str(database["NAME"])
    else:
        env["DATABASE_URL"] = (
            f"postgres://{database['USER']}:{database['PASSWORD'] or ''}@{database['HOST']}:{database['PORT']}/"
            f"{database['NAME']}"
        )
    return env


@contextlib.contextmanager
def celery_worker(broker_url: str) -> Iterator[subprocess.Popen]:
    command = [sys.executable, "-m", "celery", "-A", "custodia", "worker", "--pool=solo", "--loglevel=WARNING"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=worker_environment(broker_url))
    try:
        yield process
    finally:
        stop_process(process, timeout=20)


def wait_for(predicate, *, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(params=["redis", "filesystem"])
def broker_url(request) -> Iterator[str]:
    if request.param == "filesystem":
        yield "filesystem://"
        return
    try:
        with redis_server() as redis:
            yield redis.url
    except ServerUnavailable as exc:
        pytest.skip(str(exc))


def test_worker_process_runs_a_task_that_writes_the_audit_trail(committing_db, broker_url):
    with celery_worker(broker_url) as worker:
        with app.connection_for_write(broker_url) as broker:
            verify_audit_chain.apply_async(connection=broker)
        done = wait_for(lambda: AuditEvent.objects.filter(action="audit.verify").exists())
        assert worker.poll() is None, "the worker died"
    assert done, "the worker did not run the task within a minute"
    event = AuditEvent.objects.get(action="audit.verify")
    assert (event.outcome, event.actor, event.details["ok"]) == ("ok", "system", True)
