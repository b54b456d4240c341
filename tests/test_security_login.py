"""Issue #17, finding 4: login brute force is limited on every login path, per account and per client
address, and a forged X-Forwarded-For buys no fresh tries."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from audit.middleware import client_address
from audit.models import AuditEvent
from custodia.api import ClientAddressScopedThrottle
from tests.conftest import DEMO_PASSWORD

LIMIT = 3


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT


def form_login(client: Client, username: str, password: str, **extra):
    return client.post("/login/", {"username": username, "password": password}, **extra)


def admin_login(client: Client, username: str, password: str, **extra):
    return client.post("/admin/login/", {"username": username, "password": password}, **extra)


def api_login(client: Client, username: str, password: str, **extra):
    body = {"username": username, "password": password}
    return client.post("/api/auth/token", body, content_type="application/json", **extra)


@pytest.mark.parametrize("login", [form_login, admin_login, api_login])
def test_wrong_passwords_lock_the_account_even_from_another_address(demo, login):
    for attempt in range(LIMIT):
        login(Client(), "detective", f"wrong-{attempt}", REMOTE_ADDR=f"10.0.0.{attempt + 1}")
    refused = login(Client(), "detective", DEMO_PASSWORD, REMOTE_ADDR="10.9.9.9")
    assert refused.status_code == 429
    assert refused["Retry-After"]
    assert AuditEvent.objects.filter(action="auth.lockout", details__username="detective").exists()


@pytest.mark.parametrize("login", [form_login, api_login])
def test_wrong_passwords_lock_the_address_for_every_account(demo, login):
    for attempt in range(LIMIT):
        login(Client(), f"nobody-{attempt}", "wrong", REMOTE_ADDR="10.1.1.1")
    assert login(Client(), "prosecutor", DEMO_PASSWORD, REMOTE_ADDR="10.1.1.1").status_code == 429
    assert login(Client(), "prosecutor", DEMO_PASSWORD, REMOTE_ADDR="10.1.1.2").status_code in (200, 201, 302)


def test_a_fresh_x_forwarded_for_per_try_is_no_fresh_count(demo):
    for attempt in range(LIMIT):
        api_login(Client(), f"guess-{attempt}", "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{attempt}")
    response = api_login(Client(), "custodian", DEMO_PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.200")
    assert response.status_code == 429
    assert response.json()["error"] == "locked_out"


def test_behind_a_trusted_proxy_only_its_hop_counts(demo, settings):
    settings.CUSTODIA_TRUST_X_FORWARDED_FOR = True
    proxy_saw = "203.0.113.9"
    for attempt in range(LIMIT):
        forged = f"192.0.2.{attempt}, {proxy_saw}"
        api_login(Client(), f"guess-{attempt}", "wrong", HTTP_X_FORWARDED_FOR=forged, REMOTE_ADDR="10.0.0.1")
    locked = api_login(
        Client(), "custodian", DEMO_PASSWORD, HTTP_X_FORWARDED_FOR=f"192.0.2.77, {proxy_saw}", REMOTE_ADDR="10.0.0.1"
    )
    assert locked.status_code == 429
    other = api_login(Client(), "custodian", DEMO_PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.10", REMOTE_ADDR="10.0.0.1")
    assert other.status_code == 201


def test_the_client_address_is_computed_in_one_place(settings):
    request = RequestFactory().get("/", HTTP_X_FORWARDED_FOR="1.1.1.1, 2.2.2.2", REMOTE_ADDR="10.0.0.1")
    settings.CUSTODIA_TRUST_X_FORWARDED_FOR = False
    assert client_address(request) == "10.0.0.1"
    assert ClientAddressScopedThrottle().get_ident(request) == "10.0.0.1"
    settings.CUSTODIA_TRUST_X_FORWARDED_FOR = True
    assert client_address(request) == "2.2.2.2"
    assert ClientAddressScopedThrottle().get_ident(request) == "2.2.2.2"
