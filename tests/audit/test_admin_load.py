"""Administrators see load, not content (issue #19 item 5): the load page and ``GET /api/admin/load`` show
counts per organisation, never a case, a query, a user or an address; the Django admin shows audit rows only
in their stored, replaced form."""

from __future__ import annotations

import json

import pytest

from audit.privacy import DEFAULT_POLICY
from tests.factories import UserFactory

QUERY = "Jan Jansen"
CLIENT = "198.51.100.23"


@pytest.fixture
def busy(demo, api, settings):
    """Under the production policy: a search with a query, from a known address."""
    settings.CUSTODIA_PRIVACY_POLICY = dict(DEFAULT_POLICY)
    settings.CUSTODIA_PRIVACY_LOOKUP = "audit.privacy_store.DatabaseLookupTable"
    api.as_user(demo.detective)
    response = api.post(f"/api/cases/{demo.case.pk}/traces/search", {"query": QUERY}, format="json", REMOTE_ADDR=CLIENT)
    assert response.status_code == 200
    api.get(f"/api/cases/{demo.other_case.pk}/", REMOTE_ADDR=CLIENT)  # refused: another organisation's case
    return demo


def clear_values(demo) -> set[str]:
    return {QUERY, CLIENT, demo.case.reference, demo.case.title, demo.other_case.reference, "detective", "custodian"}


def test_an_org_admin_sees_the_load_of_their_organisation_only(busy, api):
    api.as_user(busy.orgadmin)
    response = api.get("/api/admin/load")
    assert response.status_code == 200, response.content
    body = response.json()
    assert [org["organization_id"] for org in body["organizations"]] == [busy.orgadmin.organization_id]
    load = body["organizations"][0]
    assert load["requests"]["audited_requests_1h"] >= 1
    assert set(load) == {"organization_id", "organization", "queues", "runs", "throughput", "storage_bytes", "requests"}
    text = json.dumps(body)
    assert sorted(value for value in clear_values(busy) if value in text) == []


def test_staff_see_every_organisation_and_others_are_refused(busy, api):
    staff = UserFactory(organization=None, username="operator", is_staff=True)
    staff.save()
    api.as_user(staff)
    assert len(api.get("/api/admin/load").json()["organizations"]) == 2
    for who in ("detective", "custodian", "prosecutor"):
        api.as_user(busy.users[who])
        assert api.get("/api/admin/load").status_code == 403


def test_the_load_page_shows_counts_only(busy, client):
    client.force_login(busy.orgadmin)
    page = client.get("/load/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "extraction_runs_queued" in text and "audited_requests_1h" in text
    assert sorted(value for value in clear_values(busy) - {busy.case.title} if value in text) == []
    client.force_login(busy.detective)
    assert client.get("/load/").status_code == 403


def test_the_django_admin_shows_audit_rows_only_replaced(busy, client):
    superuser = UserFactory(organization=None, username="root-admin", is_staff=True, is_superuser=True)
    superuser.save()
    client.force_login(superuser)
    listing = client.get("/admin/audit/auditevent/")
    assert listing.status_code == 200
    text = listing.content.decode()
    assert "api-trace-search.access" in text
    assert sorted(value for value in {QUERY, CLIENT, "detective"} if value in text) == []


# --- the broker's queues (a real Redis) ---------------------------------------------------------------


@pytest.fixture
def redis_broker(settings):
    from tests.servers import ServerUnavailable, redis_server

    try:
        with redis_server() as server:
            settings.CELERY_BROKER_URL = server.url
            yield server.url
    except ServerUnavailable as exc:
        pytest.skip(str(exc))


def queue_tasks(url: str, counts: dict[str, int]) -> None:
    """Tasks sent to the broker as Celery sends them (nobody consumes them), some with a priority (kombu keeps
    a list per priority step)."""
    from custodia.celery import app

    with app.connection_for_write(url) as connection:
        for queue, count in counts.items():
            for number in range(count):
                app.send_task(
                    "audit.tasks.verify_audit_chain", queue=queue, priority=number % 2 * 6, connection=connection
                )


def test_staff_see_the_broker_queue_lengths_per_queue(demo, api, client, redis_broker):
    from custodia.load import BROKER_QUEUES_NOTE, broker_queue_names

    assert broker_queue_names() == ["capture", "celery"]
    queue_tasks(redis_broker, {"celery": 3, "capture": 2})
    staff = UserFactory(organization=None, username="operator", is_staff=True)
    staff.save()
    api.as_user(staff)
    broker = api.get("/api/admin/load").json()["broker"]
    assert broker == {
        "transport": "redis",
        "queues": {"capture": 2, "celery": 3},
        "error": "",
        "note": BROKER_QUEUES_NOTE,
    }
    client.force_login(staff)
    page = client.get("/load/").content.decode()
    assert "Broker queues (redis)" in page and "not per organisation" in page
    # an organisation's administrator sees their organisation's load, not the broker's (every organisation's)
    api.as_user(demo.orgadmin)
    assert api.get("/api/admin/load").json()["broker"] is None


def test_an_unreachable_broker_is_said_so_without_its_url(demo, api, settings):
    from tests.servers import free_port

    settings.CELERY_BROKER_URL = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    staff = UserFactory(organization=None, username="operator", is_staff=True)
    staff.save()
    api.as_user(staff)
    response = api.get("/api/admin/load")
    assert response.status_code == 200
    broker = response.json()["broker"]
    assert broker["queues"] == {} and broker["error"].startswith("the broker could not be read")
    assert "hunter2" not in response.content.decode()


def test_no_broker_queues_for_the_filesystem_broker(settings):
    from custodia.load import broker_queue_lengths

    assert broker_queue_lengths(broker_url="filesystem://") is None
