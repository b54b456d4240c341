"""The capture API (#16): start a capture (202, queued for the capture queue), follow it, list a case's."""

from __future__ import annotations

import pytest

from evidence.capture.services import capture_run_execute
from evidence.models import CaptureRun, CaptureState
from tests.evidence.fake_azure_capture import RESOURCE_GROUP, SUBSCRIPTION, VM_NAME
from tests.evidence.test_capture import azure, azurite  # noqa: F401 - fixtures

TARGET = {"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP, "vm_name": VM_NAME}


def test_starting_a_capture_answers_202_and_queues_it(demo, api, django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    monkeypatch.setattr(
        "evidence.capture.services.current_app.send_task", lambda name, args: queued.append((name, *args))
    )
    api.as_user(demo.custodian)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/cases/{demo.case.pk}/captures", TARGET, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == "queued" and body["vm_name"] == VM_NAME and body["steps"] == []
    assert queued == [("evidence.tasks.capture_vm_disks", body["id"])]
    listed = api.get(f"/api/cases/{demo.case.pk}/captures").json()
    assert [run["id"] for run in listed] == [body["id"]]


@pytest.mark.parametrize(
    "body",
    [
        {**TARGET, "subscription_id": "x"},
        {**TARGET, "vm_name": "<script>"},
        {**TARGET, "resource_group": ""},
        {**TARGET, "extra": 1},
        {"vm_name": VM_NAME},
        {**TARGET, "vm_name": "v" * 500},
    ],
)
def test_hostile_input_is_a_clear_400(demo, api, body):
    api.as_user(demo.custodian)
    response = api.post(f"/api/cases/{demo.case.pk}/captures", body, format="json")
    assert response.status_code == 400, response.content
    assert "error" in response.json()
    assert not CaptureRun.objects.exists()


def test_a_closed_case_takes_no_capture(demo, api):
    demo.case.status = "closed"
    demo.case.save()
    api.as_user(demo.custodian)
    assert api.post(f"/api/cases/{demo.case.pk}/captures", TARGET, format="json").status_code == 400


def test_the_run_shows_its_steps_and_evidence(demo, api, azure):  # noqa: F811
    api.as_user(demo.custodian)
    run_id = api.post(f"/api/cases/{demo.case.pk}/captures", TARGET, format="json").json()["id"]
    assert capture_run_execute(run_id=run_id).state == CaptureState.SUCCEEDED
    api.as_user(demo.detective)  # the case team follows captures
    body = api.get(f"/api/captures/{run_id}").json()
    assert body["state"] == "succeeded" and body["attempts"] == 1
    assert [disk["lun"] for disk in body["disks"]] == [None, 0]
    assert all(disk["evidence"] for disk in body["disks"])
    keys = [step["key"] for step in body["steps"]]
    assert keys[:2] == ["sign_in", "inspect"] and keys.count("stream") == 2
    stream = next(step for step in body["steps"] if step["key"] == "stream")
    assert stream["state"] == "done" and stream["progress"] == 1.0 and len(stream["outcome"]["sha256"]) == 64
    assert stream["label"] == "Stream, hash and seal"


def test_the_pick_list_over_the_api(demo, api, azure):  # noqa: F811
    api.as_user(demo.custodian)
    query = f"subscription_id={SUBSCRIPTION}&resource_group={RESOURCE_GROUP}"
    assert api.get(f"/api/cases/{demo.case.pk}/captures/vms?{query}").json() == {"vms": ["vm-db-02", VM_NAME]}
    azure.arm.refuse_list = True
    assert api.get(f"/api/cases/{demo.case.pk}/captures/vms?{query}").json() == {"vms": None}
