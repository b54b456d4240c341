"""Issue #17, finding 3: a database outage leaves no work stuck and no 500 behind.

A run left ``running`` by a worker (or a database) that went away is failed with the reason, audited, and
can be started again; with PostgreSQL stopped under a real server, pages and the API answer 503 with
``Retry-After``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import timedelta
from unittest import mock

import pytest
from django.db import OperationalError
from django.utils import timezone

from audit.models import AuditEvent
from evidence.models import Evidence, EvidenceState
from evidence.services.registration import evidence_register
from search.models import ExtractionRun, RunState
from search.services import RunLease, extraction_runs_reap
from tests.servers import PROJECT_ROOT, ServerUnavailable, free_port, postgres_server, stop_process, wait_for_port


def sealed_evidence(demo) -> Evidence:
    evidence = evidence_register(actor=demo.custodian, case=demo.case, label="Disk", kind="disk_image")
    Evidence.objects.filter(pk=evidence.pk).update(state=EvidenceState.EXTRACTING)
    return Evidence.objects.get(pk=evidence.pk)


def abandoned_run(evidence: Evidence, *, lease_expires_at) -> ExtractionRun:
    return ExtractionRun.objects.create(
        evidence=evidence,
        state=RunState.RUNNING,
        started_at=timezone.now() - timedelta(hours=2),
        heartbeat_at=timezone.now() - timedelta(hours=1),
        lease_expires_at=lease_expires_at,
        worker="worker-1:4242",
    )


def test_a_run_whose_lease_ran_out_is_failed_with_a_reason_and_can_start_again(demo, api):
    evidence = sealed_evidence(demo)
    run = abandoned_run(evidence, lease_expires_at=timezone.now() - timedelta(minutes=1))
    api.as_user(demo.investigator)
    with mock.patch("search.tasks.run_extraction.apply_async"):
        response = api.post(f"/api/evidence/{evidence.pk}/extract")
    assert response.status_code == 202, response.content
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert "lease expired" in run.failure and "worker-1:4242" in run.failure
    row = AuditEvent.objects.get(action="evidence.extract.abandoned", target_id=str(evidence.pk))
    assert row.outcome == "failed" and row.details["run"] == run.pk
    assert ExtractionRun.objects.filter(evidence=evidence, state=RunState.QUEUED).count() == 1


def test_a_run_with_a_live_lease_is_left_alone(demo):
    evidence = sealed_evidence(demo)
    run = abandoned_run(evidence, lease_expires_at=timezone.now() + timedelta(minutes=5))
    assert extraction_runs_reap() == []
    run.refresh_from_db()
    assert run.state == RunState.RUNNING


def test_the_periodic_reaper_fails_runs_from_before_leases(demo):
    evidence = sealed_evidence(demo)
    run = abandoned_run(evidence, lease_expires_at=None)
    assert extraction_runs_reap() == [run.pk]
    assert Evidence.objects.get(pk=evidence.pk).state == EvidenceState.SEALED


def test_a_heartbeat_renews_the_lease_and_stops_a_reaped_run(demo, settings):
    from search.services import RunLeaseLost

    evidence = sealed_evidence(demo)
    run = abandoned_run(evidence, lease_expires_at=timezone.now() + timedelta(seconds=1))
    lease = RunLease(run_id=run.pk)
    lease.interval = 0
    lease.beat()
    run.refresh_from_db()
    assert run.lease_expires_at > timezone.now() + timedelta(seconds=60) and run.worker == lease.worker
    ExtractionRun.objects.filter(pk=run.pk).update(state=RunState.FAILED)
    with pytest.raises(RunLeaseLost):
        lease.beat()


# --- a database that cannot answer: 503 with Retry-After, never 500 ------------------------------------


def test_a_database_error_in_a_view_is_503_with_retry_after_on_pages_and_the_api(demo, api, client):
    client.force_login(demo.detective)
    api.as_user(demo.detective)
    locked = OperationalError("database is locked")
    with mock.patch("cases.selectors.case_get", side_effect=locked):
        page = client.get(f"/cases/{demo.case.pk}/")
        answer = api.get(f"/api/cases/{demo.case.pk}/")
    assert page.status_code == 503 and page["Retry-After"]
    assert answer.status_code == 503 and answer["Retry-After"]
    assert answer.json()["error"] == "database_unavailable"


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


def status_of(url: str, headers: dict[str, str]) -> tuple[int, str | None]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - a loopback test server
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, response.headers.get("Retry-After")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Retry-After")


SESSION_SCRIPT = """
from django.test import Client
from cases.models import User
from cases.services import token_issue
client = Client()
client.force_login(User.objects.get(username="detective"))
print(client.cookies["sessionid"].value)
print(token_issue(user=User.objects.get(username="detective"), name="outage")[1])
"""


def test_postgresql_stopped_under_a_real_server_answers_503(tmp_path):
    try:
        postgres = postgres_server()
        server = postgres.__enter__()
    except (ServerUnavailable, subprocess.CalledProcessError) as exc:
        pytest.skip(f"PostgreSQL cannot be started here: {exc}")
    process = None
    try:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "custodia.settings.test",
            "DATABASE_URL": server.url,
            "CUSTODIA_DATA_DIR": str(tmp_path),
            "DEMO_PASSWORD": "outage-demo-password",
        }
        manage(env, "migrate", "--noinput")
        manage(env, "seed_demo")
        session, token = manage(env, "shell", "-c", SESSION_SCRIPT).split()[-2:]
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(port, process=process)
        base = f"http://127.0.0.1:{port}"
        cookie = {"Cookie": f"sessionid={session}"}
        bearer = {"Authorization": f"Bearer {token}"}
        assert status_of(f"{base}/cases/", cookie)[0] == 200
        assert status_of(f"{base}/api/cases/", bearer)[0] == 200

        postgres.__exit__(None, None, None)  # PostgreSQL goes away under the running server
        postgres = None
        for path, headers in (("/cases/", cookie), ("/api/cases/", bearer), ("/healthz", {})):
            status, retry_after = status_of(f"{base}{path}", headers)
            assert (status, bool(retry_after)) == (503, True), path
    finally:
        if process is not None:
            stop_process(process)
        if postgres is not None:
            postgres.__exit__(None, None, None)
