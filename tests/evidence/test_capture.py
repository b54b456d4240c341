"""Capture of Azure VM disks (#16): the steps, resuming, clean-up, key escrow and the SAS path, through the
real Azure SDK clients over the FAKE transports of tests/evidence/fake_azure_capture.py, with the snapshot
bytes in a real Azurite."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, BlobServiceClient

from audit.models import AuditEvent
from evidence.capture import services as capture
from evidence.capture.services import CaptureRetry, capture_run_execute, capture_start
from evidence.keystore.base import get_keystore, reset_keystore_cache
from evidence.models import (
    CaptureRun,
    CaptureState,
    CaptureStep,
    CaptureStepState,
    Evidence,
    EvidenceKind,
    EvidenceSource,
    EvidenceState,
    KeyEscrow,
    SecretKind,
)
from evidence.reading import unlock_credentials
from evidence.storage.base import get_store
from evidence.tasks import capture_vm_disks
from tests.evidence.fake_azure_capture import (
    FAKE_TOKEN,
    RESOURCE_GROUP,
    SOC_VAULT,
    SOURCE_VAULT,
    SUBSCRIPTION,
    VM_NAME,
    FakeArmTransport,
    FakeDisk,
    FakeVault,
    FakeVaults,
    StaticTokenCredential,
)
from tests.servers import AZURITE_KEY, ServerUnavailable, azurite_server

MIB = 1 << 20


@pytest.fixture(scope="module")
def azurite():
    try:
        with azurite_server() as server:
            yield server
    except ServerUnavailable as reason:
        pytest.skip(f"Azurite unavailable: {reason}")


@dataclass
class Azure:
    arm: FakeArmTransport
    source_vault: FakeVault
    soc_vault: FakeVault
    os_disk: FakeDisk
    data_disk: FakeDisk
    bek: bytes
    container: str
    native_container: str
    connection_string: str


@pytest.fixture
def azure(azurite, settings) -> Azure:
    """A VM with a BitLocker-encrypted OS disk (its BEK wrapped by a KEK) and one plain data disk at LUN 0."""
    container = f"cap-{uuid.uuid4().hex[:10]}"
    native_container = f"{container}-worm"
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(native_container)
    source = FakeVault(vault_url=SOURCE_VAULT, key_names=("kek-production",), ec_key_names=())
    bek = os.urandom(157)  # the size of a BitLocker .BEK file
    wrapped, kek_url = source.wrap_with("kek-production", bek)
    secret_url = source.put_ade_secret(
        name=str(uuid.uuid4()),
        value=wrapped,
        tags={
            "DiskEncryptionKeyFileName": "5D1A3C2B-2F4E-4C1B-9E7A-1B2C3D4E5F60.BEK",
            "VolumeLetter": "C:\\",
            "MachineName": VM_NAME,
            "DiskEncryptionKeyEncryptionAlgorithm": "RSA-OAEP-256",
            "DiskEncryptionKeyEncryptionKeyURL": kek_url,
        },
    )
    os_disk = FakeDisk(
        name=f"{VM_NAME}_OsDisk_1",
        content=os.urandom(2 * MIB + 12345) + bytes(MIB),
        bek_secret_url=secret_url,
        kek_url=kek_url,
    )
    data_disk = FakeDisk(name=f"{VM_NAME}_data_0", content=os.urandom(MIB + 777), lun=0, os_type="")
    other = FakeDisk(name="vm-db-02_OsDisk_1", content=b"another VM", os_type="Linux")
    arm = FakeArmTransport(
        connection_string=azurite.connection_string,
        container=container,
        vms={VM_NAME: [os_disk, data_disk], "vm-db-02": [other]},
    )
    soc = FakeVault(vault_url=SOC_VAULT)
    settings.CUSTODIA_CAPTURE_CLIENT_OPTIONS = {
        "credential": StaticTokenCredential(),
        "arm_transport": arm,
        "vault_transport": FakeVaults(source, soc),
        "polling_interval": 0,
        "native_connection_string": azurite.connection_string,
        "native_container": native_container,
        "download_chunk_bytes": 256 * 1024,
    }
    settings.CUSTODIA_CAPTURE_NATIVE_COPY = False
    return Azure(
        arm=arm,
        source_vault=source,
        soc_vault=soc,
        os_disk=os_disk,
        data_disk=data_disk,
        bek=bek,
        container=container,
        native_container=native_container,
        connection_string=azurite.connection_string,
    )


@pytest.fixture
def soc_key_store(azure, settings):
    """Our key store is the SOC key vault (the FAKE one), as in the seed's architecture."""
    settings.CUSTODIA_KEY_STORE = "evidence.keystore.azure.AzureKeyVaultStore"
    settings.CUSTODIA_KEY_STORE_OPTIONS = {
        "vault_url": SOC_VAULT,
        "key_name": "custodia-kek",
        "credential": StaticTokenCredential(),
        "transport": azure.soc_vault,
    }
    reset_keystore_cache()
    yield azure.soc_vault
    reset_keystore_cache()


def start(demo) -> CaptureRun:
    return capture_start(
        actor=demo.custodian,
        case=demo.case,
        subscription_id=SUBSCRIPTION,
        resource_group=RESOURCE_GROUP,
        vm_name=VM_NAME,
    )


def hashes_of(data: bytes) -> dict[str, str]:
    return {name: hashlib.new(name, data).hexdigest() for name in ("md5", "sha1", "sha256")}


def evidence_of(run: CaptureRun) -> dict[str, Evidence]:
    return {disk.name: Evidence.objects.get(pk=disk.evidence_id) for disk in run.disks.all() if disk.evidence_id}


def assert_cleaned_up(azure: Azure) -> None:
    assert azure.arm.snapshots == {}  # every snapshot deleted
    assert sorted(azure.arm.revoked) == sorted(azure.arm.granted)  # every grant revoked


# --- the happy path --------------------------------------------------------------------------------------


def test_capture_seals_every_disk_escrows_its_key_and_cleans_up(demo, azure):
    run = start(demo)
    assert run.state == CaptureState.QUEUED
    run = capture_run_execute(run_id=run.pk)
    assert run.state == CaptureState.SUCCEEDED, run.error

    items = evidence_of(run)
    assert set(items) == {azure.os_disk.name, azure.data_disk.name}
    for disk in (azure.os_disk, azure.data_disk):
        evidence = items[disk.name]
        assert evidence.state == EvidenceState.SEALED
        assert (evidence.kind, evidence.source) == (EvidenceKind.VM_DISK, EvidenceSource.AZURE_VM_DISK)
        expected = hashes_of(disk.content)
        assert (evidence.md5, evidence.sha1, evidence.sha256) == (expected["md5"], expected["sha1"], expected["sha256"])
        assert evidence.size == len(disk.content)
        tags = evidence.format_details["capture"]
        assert tags["run"] == str(run.pk) and tags["vm"] == VM_NAME
        assert (tags["disk_name"], tags["disk_id"], tags["lun"]) == (disk.name, disk.resource_id, disk.lun)
        # What was stored is what was hashed: read back through the container.
        from evidence.reading import open_acquired

        with open_acquired(evidence=evidence) as acquired:
            assert hashlib.sha256(acquired.reader.read()).hexdigest() == expected["sha256"]

    # The BEK, unwrapped by the KEK in the VM's vault, escrowed for extraction to unlock by itself.
    os_evidence = items[azure.os_disk.name]
    secret = KeyEscrow.objects.get(evidence=os_evidence)
    assert secret.kind == SecretKind.BITLOCKER_STARTUP_KEY
    assert secret.tags["CaptureRun"] == str(run.pk) and secret.tags["MachineName"] == VM_NAME
    assert secret.tags["DiskId"] == azure.os_disk.resource_id and secret.tags["VolumeLetter"] == "C:\\"
    assert secret.tags["DiskEncryptionKeyFileName"].endswith(".BEK")
    assert unlock_credentials(evidence=os_evidence) == [{"kind": "startup_key", "value": azure.bek}]
    assert not KeyEscrow.objects.filter(evidence=items[azure.data_disk.name]).exists()
    escrow = CaptureStep.objects.get(run=run, disk__name=azure.os_disk.name, key="escrow").outcome
    assert escrow["wrapped_by_kek"] and escrow["kek"]["key_id"] == azure.os_disk.kek_url
    assert get_keystore().get_secret(escrow["kek"]["reference"]).startswith(b"fake-key-backup:kek-production")
    # The SHA-256 of each disk is a secret in the key store too.
    for disk in (azure.os_disk, azure.data_disk):
        outcome = CaptureStep.objects.get(run=run, disk__name=disk.name, key="hash_secret").outcome
        assert get_keystore().get_secret(outcome["reference"]) == hashes_of(disk.content)["sha256"].encode()

    assert_cleaned_up(azure)
    assert len(azure.arm.granted) == 2
    states = dict(CaptureStep.objects.filter(run=run).values_list("key", "state").distinct())
    assert set(states.values()) <= {CaptureStepState.DONE, CaptureStepState.SKIPPED}
    # Each disk's steps are in its evidence's custody trail, from the snapshot to the snapshot's deletion.
    trail = AuditEvent.objects.filter(target_type="evidence", target_id=str(os_evidence.pk)).order_by("sequence")
    assert [a for a in trail.values_list("action", flat=True) if a.startswith("capture.")] == [
        "capture.snapshot", "capture.access.grant", "capture.stream", "capture.native_copy", "capture.escrow",
        "capture.hash_secret", "capture.complete", "capture.access.revoke", "capture.snapshot.delete",
    ]  # fmt: skip
    skipped = trail.get(action="capture.native_copy")
    assert skipped.details["skipped"] == "CUSTODIA_CAPTURE_NATIVE_COPY is off"
    actions = set(AuditEvent.objects.filter(details__capture_run=str(run.pk)).values_list("action", flat=True))
    actions |= set(AuditEvent.objects.filter(target_type="capture_run").values_list("action", flat=True))
    assert {
        "capture.start", "capture.sign_in", "capture.inspect", "capture.snapshot", "capture.access.grant",
        "capture.stream", "capture.escrow", "capture.hash_secret", "capture.complete", "capture.access.revoke",
        "capture.snapshot.delete", "capture.finish",
    } <= actions  # fmt: skip
    assert azure.arm.polls > 0  # the snapshot and the access were long-running operations, polled

    # Executing a finished run again does nothing.
    calls = len(azure.arm.calls)
    assert capture_run_execute(run_id=run.pk).state == CaptureState.SUCCEEDED
    assert len(azure.arm.calls) == calls


def test_the_task_runs_the_run(demo, azure):
    run = start(demo)
    result = capture_vm_disks.apply(args=[str(run.pk)])
    assert result.get() == CaptureState.SUCCEEDED
    assert Evidence.objects.filter(capture_disk__run=run, state=EvidenceState.SEALED).count() == 2


def test_the_task_goes_to_the_capture_queue(settings):
    from custodia.celery import app

    assert capture_vm_disks.name == capture.CAPTURE_TASK
    assert app.amqp.router.route({}, capture_vm_disks.name)["queue"].name == "capture"
    assert capture_vm_disks.acks_late


# --- resuming ---------------------------------------------------------------------------------------------


class WorkerKilled(BaseException):
    """What a killed worker looks like from inside: nothing after it runs (but the finally)."""


def test_a_worker_killed_mid_stream_resumes_into_the_same_evidence_with_the_same_hashes(demo, azure, monkeypatch):
    run = start(demo)
    reads = {"count": 0}
    original = capture.ProgressReader.read

    def dying_read(self, size=-1):
        reads["count"] += 1
        if reads["count"] == 3:  # a few chunks are sealed in the store by now
            raise WorkerKilled
        return original(self, size)

    monkeypatch.setattr(capture.ProgressReader, "read", dying_read)
    with pytest.raises(WorkerKilled):
        capture_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == CaptureState.RUNNING  # as a dead worker leaves it: the broker redelivers
    first = run.disks.get(name=azure.os_disk.name).evidence
    stored_before = list(get_store().list(first.storage_prefix))
    assert stored_before and first.state == EvidenceState.RECEIVING
    assert_cleaned_up(azure)  # the finally ran on the way out

    monkeypatch.setattr(capture.ProgressReader, "read", original)
    result = capture_vm_disks.apply(args=[str(run.pk)])  # the redelivered task
    assert result.get() == CaptureState.SUCCEEDED
    run.refresh_from_db()
    assert run.attempts == 2
    assert Evidence.objects.filter(case=demo.case, kind=EvidenceKind.VM_DISK).count() == 2  # no second item
    again = Evidence.objects.get(pk=first.pk)
    assert again.state == EvidenceState.SEALED
    assert again.sha256 == hashes_of(azure.os_disk.content)["sha256"]
    assert KeyEscrow.objects.filter(evidence=again).count() == 1
    assert_cleaned_up(azure)


def test_a_step_failing_after_access_was_granted_still_revokes_and_deletes(demo, azure):
    azure.source_vault.secrets.clear()  # the BEK is gone from the VM's vault: the escrow step fails
    run = capture_run_execute(run_id=start(demo).pk)
    assert run.state == CaptureState.FAILED
    assert "not found" in run.error
    failed = CaptureStep.objects.get(run=run, state=CaptureStepState.FAILED)
    assert failed.key == "escrow" and failed.disk.name == azure.os_disk.name
    assert azure.arm.granted and azure.arm.sas_urls
    assert_cleaned_up(azure)
    assert CaptureStep.objects.filter(run=run, key="revoke_access", state=CaptureStepState.DONE).exists()
    assert CaptureStep.objects.filter(run=run, key="delete_snapshot", state=CaptureStepState.DONE).exists()
    # Not complete without its key: sealed chunks, but not marked sealed.
    assert run.disks.get(name=azure.os_disk.name).evidence.state == EvidenceState.RECEIVING
    row = AuditEvent.objects.filter(action="capture.finish").latest("sequence")
    assert row.outcome == "failed"


# --- Key Vault throttling -----------------------------------------------------------------------------------


def test_key_vault_429_and_500_are_retried_with_backoff(demo, azure, soc_key_store):
    soc_key_store.secret_write_failures = [429, 500]
    writes_before = soc_key_store.secret_writes
    run = capture_run_execute(run_id=start(demo).pk)
    assert run.state == CaptureState.SUCCEEDED, run.error
    assert soc_key_store.secret_write_failures == []
    # BEK, KEK and two SHA-256 secrets, and the two refused writes that were tried again.
    assert soc_key_store.secret_writes - writes_before == 4 + 2
    os_evidence = run.disks.get(name=azure.os_disk.name).evidence
    assert unlock_credentials(evidence=os_evidence) == [{"kind": "startup_key", "value": azure.bek}]


def test_evidence_is_not_complete_until_its_key_is_escrowed(demo, azure, soc_key_store):
    soc_key_store.secret_write_failures = [403]  # refused outright, for a while
    run = start(demo)
    with pytest.raises(CaptureRetry):
        capture_run_execute(run_id=run.pk, final_attempt=False)
    run.refresh_from_db()
    assert run.state == CaptureState.QUEUED and run.error.startswith("will try again")
    evidence = run.disks.get(name=azure.os_disk.name).evidence
    assert evidence.state == EvidenceState.RECEIVING and not KeyEscrow.objects.filter(evidence=evidence).exists()
    assert_cleaned_up(azure)

    run = capture_run_execute(run_id=run.pk)  # the task's next try
    assert run.state == CaptureState.SUCCEEDED
    evidence.refresh_from_db()
    assert evidence.state == EvidenceState.SEALED and KeyEscrow.objects.filter(evidence=evidence).count() == 1
    assert evidence.sha256 == hashes_of(azure.os_disk.content)["sha256"]
    assert Evidence.objects.filter(case=demo.case).count() == 2


def test_the_task_tries_again_with_backoff_after_a_refused_escrow(demo, azure, soc_key_store):
    soc_key_store.secret_write_failures = [403, 403]
    run = start(demo)
    result = capture_vm_disks.apply(args=[str(run.pk)])
    assert result.get() == CaptureState.SUCCEEDED
    run.refresh_from_db()
    assert run.attempts == 3 and capture_vm_disks.retry_backoff


# --- no secret anywhere ---------------------------------------------------------------------------------------


def test_no_key_sas_or_secret_appears_in_logs_audit_errors_or_pages(demo, azure, caplog, client, api):
    caplog.set_level(logging.DEBUG)
    azure.source_vault.secrets.clear()
    failed = capture_run_execute(run_id=start(demo).pk)
    assert failed.state == CaptureState.FAILED
    # A second run, of another VM, that succeeds.
    ok = capture_run_execute(
        run_id=capture_start(
            actor=demo.custodian, case=demo.case, subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
            vm_name="vm-db-02",
        ).pk
    )  # fmt: skip
    assert ok.state == CaptureState.SUCCEEDED

    secrets = [FAKE_TOKEN, AZURITE_KEY, base64.b64encode(azure.bek).decode(), azure.bek.hex()]
    for url in azure.arm.sas_urls:
        query = url.split("?", 1)[1]
        secrets += [query, dict(part.split("=", 1) for part in query.split("&"))["sig"]]
    client.force_login(demo.custodian)
    api.as_user(demo.custodian)
    places = {
        "log": caplog.text,
        "audit": json.dumps(list(AuditEvent.objects.values("details")), default=str),
        "runs": json.dumps(list(CaptureRun.objects.values()), default=str),
        "steps": json.dumps(list(CaptureStep.objects.values()), default=str),
        "evidence": json.dumps(list(Evidence.objects.values("format_details", "failure_reason")), default=str),
        "page": client.get(f"/cases/{demo.case.pk}/captures/").content.decode(),
        "run page": client.get(f"/captures/{failed.pk}/").content.decode(),
        "api": api.get(f"/api/captures/{failed.pk}").content.decode()
        + api.get(f"/api/cases/{demo.case.pk}/captures").content.decode(),
    }
    assert azure.arm.sas_urls
    for place, text in places.items():
        for secret in secrets:
            assert secret not in text, f"a secret in the {place}"
    assert "not found" in places["run page"]  # the error is shown, without anything secret


# --- the SAS path ---------------------------------------------------------------------------------------------


def test_a_captured_disk_can_be_given_out_as_an_azure_sas_that_reads_that_blob_only(demo, azure, settings, api, caplog):
    caplog.set_level(logging.DEBUG)
    settings.CUSTODIA_CAPTURE_NATIVE_COPY = True
    run = capture_run_execute(run_id=start(demo).pk)
    assert run.state == CaptureState.SUCCEEDED, run.error
    evidence = run.disks.get(name=azure.os_disk.name).evidence
    native = evidence.format_details["native_blob"]
    assert native["container"] == azure.native_container and native["blob"].endswith(f"{azure.os_disk.name}.vhd")
    assert native["size"] == len(azure.os_disk.content) and native["copy_status"] == "success"
    assert_cleaned_up(azure)  # the native copy outlives the snapshot it was copied from
    for url in azure.arm.sas_urls:  # the copy source went out in a header: its signature is in no log
        assert url.split("sig=")[1].split("&")[0] not in caplog.text

    settings.CUSTODIA_LINK_SAS_ALLOW_ACCOUNT_KEY = True
    settings.CUSTODIA_LINK_SAS_DEV_CONNECTION_STRING = azure.connection_string
    api.as_user(demo.custodian)
    response = api.post(
        f"/api/evidence/{evidence.pk}/links",
        {"recipient": "prosecutor", "reason": "Court order 12/2026", "kind": "azure_sas", "expires_in": 600},
        format="json",
    )
    assert response.status_code == 201, response.content
    url = response.json()["url"]
    assert BlobClient.from_blob_url(url).download_blob().readall() == azure.os_disk.content

    def refused(blob_url: str) -> int:
        with pytest.raises(HttpResponseError) as error:
            BlobClient.from_blob_url(blob_url).download_blob().readall()
        return error.value.status_code

    data_blob = run.disks.get(name=azure.data_disk.name).evidence.format_details["native_blob"]["blob"]
    assert refused(url.replace(native["blob"], data_blob)) == 403  # the other disk
    with pytest.raises(HttpResponseError):
        BlobClient.from_blob_url(url).upload_blob(b"altered", overwrite=True)  # read-only
    assert BlobClient.from_blob_url(url).download_blob().readall() == azure.os_disk.content


# --- starting a run -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value",
    [
        ("subscription_id", "not-a-guid"),
        ("resource_group", "rg/../../x"),
        ("resource_group", "ends."),
        ("vm_name", "vm name with spaces"),
        ("vm_name", "x" * 65),
    ],
)
def test_a_capture_of_a_malformed_target_is_refused(demo, field, value):
    from custodia.errors import ServiceError

    target = {"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP, "vm_name": VM_NAME, field: value}
    with pytest.raises(ServiceError, match=field):
        capture_start(actor=demo.custodian, case=demo.case, **target)
    assert not CaptureRun.objects.exists()


def test_a_second_capture_of_the_same_vm_waits_for_the_first(demo, azure):
    from custodia.errors import ServiceError

    start(demo)
    with pytest.raises(ServiceError, match="already"):
        start(demo)


def test_the_pick_list_lists_the_vms_when_the_identity_may(demo, azure):
    choices = capture.capture_vm_choices(
        actor=demo.custodian, case=demo.case, subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP
    )
    assert choices == ["vm-db-02", VM_NAME]
    azure.arm.refuse_list = True
    assert (
        capture.capture_vm_choices(
            actor=demo.custodian, case=demo.case, subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP
        )
        is None
    )
