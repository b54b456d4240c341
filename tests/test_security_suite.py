"""Issue #17, item 6: the security suite that runs in CI (`make test`).

- schemathesis against the OpenAPI schema with the outsider's token, over a real server: no 5xx, and no
  object of the other organisation in any answer;
- `manage.py check --deploy` with the production settings is clean; a request for `Host: evil` gets 400;
- bandit over the code base (the Makefile's lint target, with the same arguments);
- Celery accepts JSON only: a pickled message pushed into a real Redis broker is refused, not run.
(The permission grid over every endpoint, two organisations and every role: tests/cases/test_permission_grid.py
and tests/test_endpoint_permissions.py.)
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from audit.models import AuditEvent
from audit.tasks import verify_audit_chain
from cases.services import token_issue
from custodia.celery import app
from evidence.services.registration import evidence_register
from tests.servers import PROJECT_ROOT, ServerUnavailable, redis_server
from tests.test_worker import celery_worker, wait_for

# Examples per API operation: about a minute for the whole API on two shared cores.
EXAMPLES_PER_OPERATION = int(os.environ.get("CUSTODIA_SCHEMATHESIS_EXAMPLES", "8"))


# --- schemathesis ------------------------------------------------------------------------------------


def openapi_document() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def foreign_markers(demo) -> list[str]:
    """What may never appear in an answer to the outsider: the demo organisation's case, people, evidence."""
    evidence = evidence_register(actor=demo.custodian, case=demo.case, label="Seized laptop", kind="disk_image")
    return [
        demo.case.reference,
        demo.case.title,
        str(evidence.pk),
        "Demo Police",
        *(user.display_name for user in demo.users.values() if user.organization_id == demo.case.organization_id),
    ]


def fuzz(operation, base_url: str, headers: dict[str, str], markers: list[str], failures: list[str]) -> None:
    """Call one operation with the examples schemathesis generates; note 5xx answers and foreign objects."""
    label = f"{operation.method.upper()} {operation.path}"

    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def exercise(case):
        response = case.call(base_url=base_url, headers=headers, timeout=60)
        if response.status_code >= 500:
            failures.append(f"{label}: {response.status_code} for {case.path_parameters} {case.query}")
        for marker in markers:
            if marker in response.text:
                failures.append(f"{label}: answered with another organisation's {marker!r}")

    exercise()


@pytest.mark.slow
def test_schemathesis_finds_no_5xx_and_no_foreign_object_for_the_outsider(demo, live_server):
    import schemathesis

    markers = foreign_markers(demo)
    schema = schemathesis.openapi.from_dict(openapi_document())
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        # A fresh token per operation: one operation may revoke the token it was given.
        _, token = token_issue(user=demo.outsider, name="schemathesis", scope="write")

        fuzz(operation, live_server.url, {"Authorization": f"Bearer {token}"}, markers, failures)
    assert operations > 20, "the schema should describe the whole API"
    assert not failures, "\n".join(sorted(set(failures))[:40])


# --- deployment checks -------------------------------------------------------------------------------


def test_check_deploy_with_production_settings_is_clean(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "custodia.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "custodia.example.org",
        "CUSTODIA_DATA_DIR": str(tmp_path),
        "DATABASE_URL": "",
    }
    # The test settings' switches, and the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE (set in this process when
    # they ran first in the same session), are the harness's, not a deployment's.
    for name in (
        "DJANGO_DEBUG",
        "DJANGO_SECURE_SSL_REDIRECT",
        "DJANGO_SECURE_COOKIES",
        "DJANGO_HSTS_SECONDS",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
    ):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identified no issues" in result.stdout


@pytest.mark.parametrize("path", ["/healthz", "/login/", "/api/cases/"])
def test_a_request_for_another_host_is_400(client, db, path):
    assert client.get(path, HTTP_HOST="evil").status_code == 400
    assert client.get(path, HTTP_HOST="evil.example:80").status_code == 400


def test_bandit_finds_nothing_unexplained():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    arguments = re.search(r"^BANDIT_ARGS := (.+)$", makefile, re.MULTILINE).group(1)
    bandit = PROJECT_ROOT / ".venv" / "bin" / "bandit"
    command = f"{bandit if bandit.exists() else 'bandit'} {arguments}"
    result = subprocess.run(command, shell=True, cwd=PROJECT_ROOT, capture_output=True, text=True)  # noqa: S602
    assert result.returncode == 0, result.stdout + result.stderr


# --- Celery: JSON only ---------------------------------------------------------------------------------


def test_celery_accepts_json_only():
    assert settings.CELERY_ACCEPT_CONTENT == ["json"]
    assert settings.CELERY_TASK_SERIALIZER == settings.CELERY_RESULT_SERIALIZER == "json"
    assert app.conf.accept_content == ["json"]


@pytest.mark.slow
def test_a_pickled_message_in_the_broker_is_refused_not_run(committing_db):
    try:
        redis = redis_server()
        server = redis.__enter__()
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        with celery_worker(server.url) as worker, app.connection_for_write(server.url) as broker:
            # The pickled message goes first; the worker runs one task at a time, in order.
            verify_audit_chain.apply_async(connection=broker, serializer="pickle")
            verify_audit_chain.apply_async(connection=broker)
            assert wait_for(lambda: AuditEvent.objects.filter(action="audit.verify").exists()), "no JSON task ran"
            assert worker.poll() is None, "the worker died"
        assert AuditEvent.objects.filter(action="audit.verify").count() == 1
    finally:
        redis.__exit__(None, None, None)
