"""API tokens made, listed and revoked by their user on a page and over the API; bounded lifetimes (a
1e15 expiry is a 400, not an overflow); every use tied to the user and the token in the audit trail; and
the password rules of local accounts."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from cases.models import ApiToken
from cases.services import hash_token
from tests.conftest import DEMO_PASSWORD


@pytest.mark.parametrize("expires_in", [1e15, 10**30, -5, 0, 59, "1e400", 90 * 24 * 3600 + 1])
def test_out_of_bounds_expiry_is_a_400_on_the_password_login(demo, api, expires_in):
    response = api.post(
        "/api/auth/token",
        {"username": "detective", "password": DEMO_PASSWORD, "expires_in": expires_in},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid"
    assert not ApiToken.objects.exists()


def test_out_of_bounds_expiry_is_a_400_for_a_signed_in_user(demo, api):
    api.as_user(demo.detective)
    response = api.post("/api/tokens/", {"name": "x", "expires_in": 1e15}, format="json")
    assert response.status_code == 400
    assert "less than or equal to" in response.json()["detail"]
    assert api.post("/api/tokens/", {"name": "x", "expires_in": 3600}, format="json").status_code == 201


def test_token_page_creates_lists_and_revokes_with_the_secret_shown_once(demo, client):
    client.force_login(demo.detective)
    page = client.post("/account/tokens/", {"name": "nightly export", "expires_in_days": 7, "scope": "read"})
    assert page.status_code == 200
    raw = re.search(r'id="new-token"[^>]*>(cst_[^<]+)<', page.content.decode()).group(1)
    token = ApiToken.objects.get(name="nightly export")
    assert token.key_hash == hash_token(raw) and raw not in (token.key_hash, token.prefix)
    assert token.scope == "read" and abs((token.expires_at - token.created_at).total_seconds() - 7 * 86400) < 60
    listing = client.get("/account/tokens/").content.decode()
    assert "nightly export" in listing and raw not in listing and token.prefix in listing
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action="auth.token.revoke", actor_id=demo.detective.pk).exists()


def test_token_page_refuses_an_expiry_past_the_policy(demo, client):
    client.force_login(demo.detective)
    page = client.post("/account/tokens/", {"name": "forever", "expires_in_days": 10**15, "scope": "write"})
    assert page.status_code == 200 and b"less than or equal to" in page.content
    assert not ApiToken.objects.filter(name="forever").exists()


def test_a_user_cannot_revoke_anothers_token(demo, client, api):
    api.as_user(demo.custodian)
    theirs = ApiToken.objects.get(user=demo.custodian)
    client.force_login(demo.detective)
    assert client.post(f"/account/tokens/{theirs.pk}/revoke/").status_code == 404
    api.as_user(demo.detective)
    assert api.delete(f"/api/tokens/{theirs.pk}/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_api_lists_own_tokens_only(demo, api):
    api.as_user(demo.custodian)
    api.as_user(demo.detective)
    listed = api.get("/api/tokens/").json()
    assert [token["id"] for token in listed] == [ApiToken.objects.get(user=demo.detective).pk]
    assert ApiToken.objects.count() == 2 and not any("token" in token or "key_hash" in token for token in listed)


def test_every_token_use_is_tied_to_the_user_and_the_token(demo, api):
    api.as_user(demo.detective)
    token = ApiToken.objects.get(user=demo.detective)
    for _ in range(2):
        assert api.get(f"/api/cases/{demo.case.pk}/").status_code == 200
    rows = AuditEvent.objects.filter(action="api-case-detail.access", details__api_token=token.pk)
    assert rows.count() == 2 and {row.actor_id for row in rows} == {demo.detective.pk}
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize("password", ["short-pw-1", "password1234", "123456789012", "detective-demo"])
def test_weak_local_passwords_are_refused(demo, password):
    with pytest.raises(ValidationError):
        validate_password(password, demo.detective)


def test_the_demo_and_factory_passwords_pass_the_rules(demo):
    from tests.factories import UserFactory

    validate_password(DEMO_PASSWORD, demo.detective)
    validate_password("custodia-demo", demo.detective)  # make run's DEMO_PASSWORD
    validate_password("a-long-test-password", UserFactory.build())
