"""Hash sets over the API and on their page (issue #20 item 6): who may list, import and delete."""

from __future__ import annotations

import hashlib

import pytest
from django.test import Client

from audit.models import AuditEvent
from hashsets.models import HashEntry, HashSet

SHA256 = hashlib.sha256(b"a").hexdigest()


def upload(api, *, body: bytes = SHA256.encode(), query="name=bad&kind=known-bad"):
    return api.post(f"/api/hashsets/?{query}", body, content_type="application/octet-stream")


def test_only_an_org_admin_imports(demo, api):
    for user in (demo.custodian, demo.detective, demo.outsider):
        assert upload(api.as_user(user)).status_code == 403
    response = upload(api.as_user(demo.orgadmin), query="name=bad&kind=known-bad&source_name=list.txt")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["kind"], body["entries"], body["state"], body["source_name"]) == (
        "bad",
        "known-bad",
        1,
        "ready",
        "list.txt",
    )
    assert body["algorithms"] == ["sha256"]
    assert AuditEvent.objects.filter(action="hashset.import", actor="orgadmin").exists()


@pytest.mark.parametrize(
    ("query", "body", "code"),
    [
        ("name=bad&kind=known-bad", b"no digest here\n", "invalid_hash_set"),
        ("name=bad&kind=known-bad", b"", "invalid_hash_set"),
        ("name=bad&kind=maybe", SHA256.encode(), None),
        ("name=a%20b&kind=known-bad", SHA256.encode(), "invalid_name"),
        ("kind=known-bad", SHA256.encode(), None),
        ("name=bad&kind=known-bad&extra=1", SHA256.encode(), None),
        ("name=bad&kind=known-bad", b"SQLite format 3\x00" + b"\x00" * 100, "invalid_hash_set"),
    ],
)
def test_what_is_no_hash_set_is_a_400(demo, api, query, body, code):
    response = upload(api.as_user(demo.orgadmin), body=body, query=query)
    assert response.status_code == 400, response.content
    if code:
        assert response.json()["error"] == code
    assert not HashSet.objects.exists() and not HashEntry.objects.exists()


def test_a_taken_name_is_a_409(demo, api):
    api.as_user(demo.orgadmin)
    assert upload(api).status_code == 201
    assert upload(api).status_code == 409


def test_members_list_their_organisations_sets(demo, api):
    created = upload(api.as_user(demo.orgadmin)).json()
    listed = api.as_user(demo.detective).get("/api/hashsets/").json()
    assert [hash_set["name"] for hash_set in listed] == ["bad"]
    assert api.get(f"/api/hashsets/{created['id']}/").json()["entries"] == 1
    # Another organisation sees neither the list nor the set.
    api.as_user(demo.outsider)
    assert api.get("/api/hashsets/").json() == []
    assert api.get(f"/api/hashsets/{created['id']}/").status_code == 404
    assert api.as_user(None).get("/api/hashsets/").status_code in (401, 403)


def test_only_an_admin_deletes(demo, api):
    created = upload(api.as_user(demo.orgadmin)).json()
    assert api.as_user(demo.detective).delete(f"/api/hashsets/{created['id']}/").status_code == 403
    assert api.as_user(demo.outsider).delete(f"/api/hashsets/{created['id']}/").status_code == 404
    page = Client()
    page.force_login(demo.detective)
    assert page.post(f"/hashsets/{created['id']}/delete/").status_code == 403
    assert HashSet.objects.filter(pk=created["id"]).exists()
    assert api.as_user(demo.orgadmin).delete(f"/api/hashsets/{created['id']}/").status_code == 204
    assert not HashSet.objects.exists() and not HashEntry.objects.exists()
    assert AuditEvent.objects.filter(action="hashset.delete", actor="orgadmin").exists()


def test_the_page_lists_for_members_and_imports_for_admins(demo):
    from django.core.files.uploadedfile import SimpleUploadedFile

    admin = Client()
    admin.force_login(demo.orgadmin)
    sent = SimpleUploadedFile("bad.txt", f"{SHA256}\n".encode())
    response = admin.post("/hashsets/", {"name": "bad", "kind": "known-bad", "file": sent}, follow=True)
    assert response.status_code == 200
    assert b"Hash set imported" in response.content
    refused = admin.post(
        "/hashsets/", {"name": "worse", "kind": "known-bad", "file": SimpleUploadedFile("x.txt", b"nope\n")}
    )
    assert b"not a hash set Custodia reads" in refused.content
    assert list(HashSet.objects.values_list("name", "source_name")) == [("bad", "bad.txt")]
    member = Client()
    member.force_login(demo.detective)
    page = member.get("/hashsets/")
    assert page.status_code == 200 and b"<code>bad</code>" in page.content and b"Import a hash set" not in page.content
    assert member.post("/hashsets/", {"name": "x", "kind": "known-bad"}).status_code == 403
    assert Client().get("/hashsets/").status_code == 302  # to the login page
