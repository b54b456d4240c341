"""API tokens (login, expiry, revocation, read scope), organisation administration and the Django admin."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.utils import timezone
from guardian.models import UserObjectPermission

from audit.models import AuditEvent
from cases.models import ApiToken, User
from tests.conftest import DEMO_PASSWORD


def login(api, username: str, **extra):
    return api.post("/api/auth/token", {"username": username, "password": DEMO_PASSWORD, **extra}, format="json")


def test_password_login_gives_an_expiring_bearer_token(demo, api):
    response = login(api, "detective")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token"].startswith("cst_")
    assert body["expires_at"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    assert api.get(f"/api/cases/{demo.case.pk}/").status_code == 200
    stored = ApiToken.objects.get(pk=body["id"])
    assert body["token"] not in (stored.key_hash, stored.prefix)  # only a hash is kept


def test_wrong_password_is_401_and_audited(demo, api):
    response = api.post("/api/auth/token", {"username": "detective", "password": "nope-nope-nope"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_credentials"
    assert AuditEvent.objects.filter(action="auth.token.login", outcome="denied").exists()


def test_expired_and_revoked_tokens_are_refused(demo, api):
    token = login(api, "detective").json()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token['token']}")
    ApiToken.objects.filter(pk=token["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api.get("/api/cases/")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]

    fresh = login(api, "detective").json()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {fresh['token']}")
    assert api.delete(f"/api/tokens/{fresh['id']}/").status_code == 204
    assert "revoked" in api.get("/api/cases/").json()["detail"]


def test_garbage_token_is_401(demo, api):
    api.credentials(HTTP_AUTHORIZATION="Bearer cst_not-a-real-token")
    assert api.get("/api/cases/").status_code == 401


def test_read_scoped_token_cannot_write(demo, api):
    token = login(api, "custodian", scope="read").json()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token['token']}")
    assert api.get(f"/api/cases/{demo.case.pk}/").status_code == 200
    response = api.patch(f"/api/cases/{demo.case.pk}/", {"title": "Changed"}, format="json")
    assert response.status_code == 403
    assert "read-only" in response.json()["detail"]


def test_browser_session_needs_csrf_for_api_writes(demo):
    from rest_framework.test import APIClient

    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(demo.custodian)
    assert browser.get(f"/api/cases/{demo.case.pk}/").status_code == 200
    response = browser.patch(f"/api/cases/{demo.case.pk}/", {"title": "Forged"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_org_admin_manages_own_users_only(demo, api):
    api.as_user(demo.orgadmin)
    listed = {user["username"] for user in api.get("/api/users/").json()}
    assert "outsider" not in listed and "detective" in listed
    created = api.post("/api/users/", {"username": "newbie", "password": "a-long-password-1"}, format="json")
    assert created.status_code == 201, created.content
    assert User.objects.get(username="newbie").organization == demo.orgadmin.organization
    outsider = User.objects.get(username="outsider")
    assert api.patch(f"/api/users/{outsider.pk}/", {"is_active": False}, format="json").status_code == 404
    assert User.objects.get(username="outsider").is_active

    api.as_user(demo.detective)
    assert api.get("/api/users/").status_code == 403
    sneaky = api.post("/api/users/", {"username": "sneaky", "password": "a-long-password-1"}, format="json")
    assert sneaky.status_code == 403
    assert not User.objects.filter(username="sneaky").exists()


def test_admin_offers_no_way_to_grant_permissions(demo):
    exposed = {model._meta.label for model in admin.site._registry}
    assert "auth.Group" not in exposed
    assert not any(label.startswith("guardian.") for label in exposed)
    user_admin = admin.site._registry[User]
    fields = {field for _, options in user_admin.fieldsets for field in options["fields"]}
    assert not fields & {"user_permissions", "groups", "is_superuser", "is_staff"}


def test_staff_cannot_edit_own_powers_in_admin(demo, client):
    staff = demo.orgadmin
    staff.is_staff = True
    staff.save()
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="cases", codename__endswith="_user"))
    client.force_login(staff)
    response = client.post(f"/admin/cases/user/{staff.pk}/change/", {"username": staff.username, "is_org_admin": "on"})
    assert response.status_code == 403
    before = UserObjectPermission.objects.count()
    client.post(
        f"/admin/cases/user/{demo.detective.pk}/change/",
        {"username": "detective", "user_permissions": [1, 2, 3], "is_active": "on"},
    )
    assert UserObjectPermission.objects.count() == before
    assert not demo.detective.user_permissions.exists()
