"""#15: a legal hold or retention set on a case after its evidence was sealed reaches every sealed object of
the case at once (local and Azure stores); only custodians change them; shortening or lifting needs a reason;
a store refusal changes nothing and is audited."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from audit.models import AuditEvent
from cases.models import Case
from evidence.services import retention
from evidence.storage.base import RetentionViolation, StoreError, get_store
from tests.evidence.conftest import upload_all
from tests.evidence.fake_azure import FakeContainer
from tests.evidence.test_storage_azure import fake_store


@pytest.fixture
def two_sealed(api, register, sample, demo) -> list[str]:
    ids = []
    for label in ("Laptop", "Phone"):
        body = register(label=label)
        upload_all(api, body["id"], sample)
        assert api.post(f"/api/evidence/{body['id']}/seal").status_code == 200
        ids.append(body["id"])
    return ids


def first_key(evidence_id: str) -> str:
    return next(iter(get_store().list(f"evidence/{evidence_id}/")))


def patch_case(api, demo, user, **fields):
    api.as_user(user)
    return api.patch(f"/api/cases/{demo.case.pk}/", fields, format="json")


def test_a_hold_set_after_sealing_reaches_every_sealed_object(api, demo, two_sealed):
    for evidence_id in two_sealed:
        assert get_store().protection(first_key(evidence_id)) is None  # the demo case had no hold at sealing
    response = patch_case(api, demo, demo.custodian, legal_hold=True)
    assert response.status_code == 200, response.content
    for evidence_id in two_sealed:
        key = first_key(evidence_id)
        assert "legal hold" in get_store().protection(key)
        with pytest.raises(RetentionViolation):
            get_store().delete(key)
    row = AuditEvent.objects.filter(action="case.hold").get()
    assert row.details["after"] is True and row.details["store"]["sealed_items"] == 2
    assert not AuditEvent.objects.filter(action="case.update").exists()  # hold has its own row
    page = api.get(f"/api/cases/{demo.case.pk}/").json()
    assert page["legal_hold"] is True


def test_only_custodians_change_retention_or_hold(api, demo, two_sealed):
    refused = patch_case(api, demo, demo.investigator, legal_hold=True)
    assert refused.status_code == 403 and "custodian" in refused.json()["detail"]
    later = (date.today() + timedelta(days=400)).isoformat()
    assert patch_case(api, demo, demo.investigator, retention_until=later).status_code == 403
    assert patch_case(api, demo, demo.investigator, title="Renamed").status_code == 200  # still edits the case
    assert get_store().protection(first_key(two_sealed[0])) is None


def test_the_edit_form_of_an_investigator_has_no_retention_or_hold(client, demo):
    client.force_login(demo.investigator)
    page = client.get(f"/cases/{demo.case.pk}/").content.decode()
    assert 'name="title"' in page and 'name="legal_hold"' not in page and 'name="retention_until"' not in page
    client.force_login(demo.custodian)
    page = client.get(f"/cases/{demo.case.pk}/").content.decode()
    assert 'name="legal_hold"' in page and 'name="reason"' in page


def test_lifting_a_hold_needs_a_reason_and_is_audited(api, demo, two_sealed):
    assert patch_case(api, demo, demo.custodian, legal_hold=True).status_code == 200
    without = patch_case(api, demo, demo.custodian, legal_hold=False)
    assert without.status_code == 400 and "reason" in without.json()["detail"]
    assert Case.objects.get(pk=demo.case.pk).legal_hold is True
    lifted = patch_case(api, demo, demo.custodian, legal_hold=False, reason="Court released the items")
    assert lifted.status_code == 200, lifted.content
    assert get_store().protection(first_key(two_sealed[1])) is None
    row = AuditEvent.objects.filter(action="case.hold").order_by("-sequence").first()
    assert row.details["reason"] == "Court released the items" and row.details["after"] is False


def test_retention_extends_in_the_store_and_cannot_shorten_once_sealed(api, demo, two_sealed):
    until = date.today() + timedelta(days=3650)
    assert patch_case(api, demo, demo.custodian, retention_until=until.isoformat()).status_code == 200
    assert until.isoformat() in get_store().protection(first_key(two_sealed[0]))
    shorter = until - timedelta(days=10)
    no_reason = patch_case(api, demo, demo.custodian, retention_until=shorter.isoformat())
    assert no_reason.status_code == 400
    refused = patch_case(api, demo, demo.custodian, retention_until=shorter.isoformat(), reason="Mistyped")
    assert refused.status_code == 409 and "never shortened" in refused.json()["detail"]
    assert Case.objects.get(pk=demo.case.pk).retention_until == until
    failed = AuditEvent.objects.filter(action="case.retention", outcome="failed").get()
    assert failed.details["reason"] == "Mistyped" and "never shortened" in failed.details["error"]


def test_a_store_failure_changes_nothing(api, demo, two_sealed, monkeypatch):
    store = get_store()
    real = store.set_retention
    calls = []

    def failing_on_the_second(prefix, *, until, legal_hold):
        calls.append(prefix)
        if len(calls) == 2:
            raise StoreError("disk full")
        return real(prefix, until=until, legal_hold=legal_hold)

    monkeypatch.setattr(store, "set_retention", failing_on_the_second)
    response = patch_case(api, demo, demo.custodian, legal_hold=True, title="Renamed too")
    assert response.status_code == 409 and "disk full" in response.json()["detail"]
    case = Case.objects.get(pk=demo.case.pk)
    assert case.legal_hold is False and case.title != "Renamed too"
    monkeypatch.setattr(store, "set_retention", real)
    for evidence_id in two_sealed:
        assert store.protection(first_key(evidence_id)) is None  # the first item's hold was put back
    assert not AuditEvent.objects.filter(action__in=["case.hold", "case.update"], outcome="ok").exists()
    assert AuditEvent.objects.filter(action="case.hold", outcome="failed").exists()


def test_the_azure_store_gets_the_hold_on_every_blob(api, demo, two_sealed, monkeypatch):
    store, transport = fake_store(FakeContainer(default_policy_state="Locked"))
    for evidence_id in two_sealed:
        store.put(f"evidence/{evidence_id}/manifest", b"{}")
    monkeypatch.setattr(retention, "get_store", lambda: store)
    assert patch_case(api, demo, demo.custodian, legal_hold=True).status_code == 200
    held = {name: blob.legal_hold for name, blob in transport.container.blobs.items() if name.startswith("evidence/")}
    assert held and all(held.values()), held
