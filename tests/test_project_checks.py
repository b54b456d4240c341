"""Project-level checks that must hold on every commit: deployment settings and migrations."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from tests.servers import PROJECT_ROOT


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_production_settings_pass_check_deploy():
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CUSTODIA_"))},
        "DJANGO_SETTINGS_MODULE": "custodia.settings.production",
        "DJANGO_SECRET_KEY": "a-real-production-secret-" + "k9Xw2" * 10,
        "DJANGO_ALLOWED_HOSTS": "custodia.example.org",
        "CUSTODIA_DATA_DIR": tempfile.mkdtemp(prefix="custodia-deploy-"),
        "CUSTODIA_MASTER_KEY": "dGVzdC1tYXN0ZXIta2V5LW5vdC1mb3ItcHJvZC0zMmI=",
        # #15: production also needs the audit signing key, apart from the master key.
        "CUSTODIA_AUDIT_SIGNING_KEY": "dGVzdC1hdWRpdC1zaWduaW5nLWtleS1ub3QtZm9yLXA=",
        # #19: and the privacy model's key (audit.privacy), apart from both.
        "CUSTODIA_PRIVACY_KEY": "dGVzdC1wcml2YWN5LWtleS1ub3QtZm9yLXByb2QtMzI=",
    }
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    without_privacy_key = {name: value for name, value in env.items() if name != "CUSTODIA_PRIVACY_KEY"}
    result = manage("check", "--deploy", env=without_privacy_key)
    assert result.returncode != 0
    assert "audit.E003" in result.stderr and "CUSTODIA_PRIVACY_KEY" in result.stderr
    without_signing_key = {name: value for name, value in env.items() if name != "CUSTODIA_AUDIT_SIGNING_KEY"}
    result = manage("check", "--deploy", env=without_signing_key)
    assert result.returncode != 0
    assert "audit.E002" in result.stderr and "audit signing key" in result.stderr
    env.pop("CUSTODIA_MASTER_KEY")
    result = manage("check", "--deploy", env=env)
    assert result.returncode != 0
    assert "custodia.E002" in result.stderr and "master key" in result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CUSTODIA_"))},
        "DJANGO_SETTINGS_MODULE": "custodia.settings.production",
        "CUSTODIA_DATA_DIR": tempfile.mkdtemp(prefix="custodia-deploy-"),
    }
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize(("name", "value"), [("CUSTODIA_SESSION_SECONDS", "soon"), ("DJANGO_DEBUG", "maybe")])
def test_bad_environment_values_fail_at_start(name, value):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "custodia.settings.test", name: value}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert name in result.stderr


def test_models_and_migrations_agree():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "custodia.settings.test"}
    result = manage("makemigrations", "--check", "--dry-run", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_openapi_schema_and_browsable_docs(demo, api, client):
    api.as_user(demo.detective)
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/cases/", "/api/cases/{case_id}/members/", "/api/audit/", "/api/auth/token"} <= set(schema["paths"])
    assert "bearerToken" in schema["components"]["securitySchemes"]
    client.force_login(demo.detective)
    assert b"swagger" in client.get("/api/docs/").content.lower()


def test_healthz_answers_without_login(client, db):
    assert client.get("/healthz").json() == {"ok": True}


def test_every_page_links_an_icon_and_favicon_ico_leads_to_it(client, db):
    page = client.get("/login/").content.decode()
    assert 'rel="icon"' in page and "img/favicon.svg" in page
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"].endswith("img/favicon.svg")


def test_compose_file_is_accepted_by_docker_compose():
    import shutil

    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (apt: docker-compose; make test installs it)")
    env = {**os.environ, "DJANGO_SECRET_KEY": "x" * 50, "CUSTODIA_MASTER_KEY": "y" * 44}
    result = subprocess.run(
        [compose, "-f", "docker/compose.yml", "config", "-q"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_a_worker_started_like_make_run_finds_its_settings():
    """`celery -A custodia worker` with no DJANGO_SETTINGS_MODULE must load the same settings as manage.py."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CUSTODIA_"))}
    env["CUSTODIA_DATA_DIR"] = tempfile.mkdtemp(prefix="custodia-worker-")
    result = subprocess.run(
        [sys.executable, "-c", "import custodia.celery, django; django.setup(); print('ok')"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
