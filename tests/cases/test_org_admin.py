"""Issue #20 item 10: the organisation administrator's screen and its API: users created (with a one-time
link to set their own password), deactivated, a password reset through a link that works once; memberships
changed from the same screen."""

from __future__ import annotations

from audit.models import AuditEvent
from cases.models import User


def test_a_one_time_link_sets_a_new_password_once(demo, api, client):
    api.as_user(demo.users["orgadmin"])
    detective = demo.users["detective"]
    response = api.post(f"/api/users/{detective.pk}/password-reset")
    assert response.status_code == 201, response.content
    path = response.json()["url"].split("testserver", 1)[1]
    assert AuditEvent.objects.filter(action="user.password_reset_link", target_id=str(detective.pk)).count() == 1
    token = path.rstrip("/").rsplit("/", 1)[1]
    assert token not in str(list(AuditEvent.objects.values()))  # the link is not kept anywhere

    # Django's confirm view swaps the token for a session marker, then takes the new password.
    page = client.get(path, follow=True)
    assert page.status_code == 200 and b"Set a new password" in page.content
    done = client.post(
        page.redirect_chain[-1][0],
        {"new_password1": "A-new-long-passphrase-20", "new_password2": "A-new-long-passphrase-20"},
    )
    assert done.status_code == 302 and done["Location"] == "/account/reset/done/"
    detective.refresh_from_db()
    assert detective.check_password("A-new-long-passphrase-20")
    assert AuditEvent.objects.filter(action="user.password_reset", actor="detective").count() == 1
    # Used once: the same link no longer works.
    again = client.get(path, follow=True)
    assert b"does not work any more" in again.content


def test_only_an_org_admin_makes_reset_links(demo, api):
    api.as_user(demo.users["custodian"])
    assert api.post(f"/api/users/{demo.users['detective'].pk}/password-reset").status_code == 403
    api.as_user(demo.users["orgadmin"])
    outsider = demo.users["outsider"]
    assert api.post(f"/api/users/{outsider.pk}/password-reset").status_code == 404


def test_the_screen_creates_a_user_with_a_link_and_keeps_input_on_error(demo, client):
    client.force_login(demo.users["orgadmin"])
    taken = client.post(
        "/account/organisation/", {"username": "detective", "display_name": "Dee Two", "email": "dee@example.org"}
    )
    assert taken.status_code == 200  # the form again, not a redirect
    html = taken.content.decode()
    assert 'value="Dee Two"' in html and 'value="dee@example.org"' in html and "aria-invalid" in html
    created = client.post("/account/organisation/", {"username": "newbie", "display_name": "New Bie"}, follow=True)
    html = created.content.decode()
    assert "One-time link for newbie" in html and "/account/reset/" in html
    assert User.objects.get(username="newbie").organization_id == demo.users["orgadmin"].organization_id
    # The page lists users and every case's members with confirm steps on role changes and removals.
    assert 'data-confirm="Change the role of' in html and 'data-confirm="Remove' in html
    assert "DEMO-2026-001" in html


def test_an_admin_acts_only_on_users_of_their_organisation(demo, client):
    client.force_login(demo.users["orgadmin"])
    detective = demo.users["detective"]
    response = client.post(f"/account/organisation/users/{detective.pk}/active/", {"active": "0"})
    assert response.status_code == 302 and response["Location"] == "/account/organisation/"
    detective.refresh_from_db()
    assert detective.is_active is False
    outsider = demo.users["outsider"]
    assert client.post(f"/account/organisation/users/{outsider.pk}/active/", {"active": "0"}).status_code == 403
    assert client.post(f"/account/organisation/users/{outsider.pk}/reset/").status_code == 403
    client.force_login(demo.custodian)
    assert client.post(f"/account/organisation/users/{detective.pk}/reset/").status_code == 403


def test_a_role_change_from_the_screen_returns_to_it(demo, client):
    client.force_login(demo.users["orgadmin"])
    response = client.post(
        f"/cases/{demo.case.pk}/members/detective/role/", {"role": "prosecutor", "next": "/account/organisation/"}
    )
    assert response.status_code == 302 and response["Location"] == "/account/organisation/"
    elsewhere = client.post(
        f"/cases/{demo.case.pk}/members/prosecutor/role/", {"role": "detective", "next": "https://evil.example/"}
    )
    assert elsewhere["Location"] == f"/cases/{demo.case.pk}/"
