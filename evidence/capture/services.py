"""Capture runs: the Copy-VmDigitalEvidence runbook, done as steps that are each done once.

A custodian starts a run (``capture_start``); a worker of the ``capture`` queue executes it
(``capture_run_execute``). Every step is a row (``CaptureStep``) with its state, times, outcome and error,
and an audit event. A run that a worker dropped (killed, redelivered) or that failed is executed again from
the first step not done: a disk already streamed is not streamed again, a key already escrowed is not
escrowed twice, and a stream cut short is read again into the *same* evidence item, whose chunks already in
the write-once store are recognised and reused (the same bytes give the same hashes).

Per run: sign in, inspect the VM. Per disk (OS disk, then data disks by LUN): snapshot, grant read access,
stream the snapshot through the sealing pipeline (MD5, SHA-1, SHA-256 in one pass of the stored bytes),
the optional server-side copy of the VHD into the immutable container, escrow of the disk's BEK (and KEK),
its SHA-256 as a secret, and only then mark the evidence complete (sealed). In a ``finally``, whatever
happened: revoke access to every snapshot and delete every snapshot.

The SAS URL of a snapshot lives in the worker's memory for one execution only; neither it nor any key or
secret value is written to the database, a log record, an audit row or an error text.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any, BinaryIO

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from cases import permissions as perms
from cases.models import Case, CaseStatus, User
from cases.selectors import case_get
from custodia.errors import ServiceError
from evidence.capture.azure_client import CaptureClient, CaptureError, DiskEncryption, VmDisk, get_capture_client
from evidence.container.errors import ChunkConflict, ContainerError
from evidence.container.reader import load_index, load_manifest
from evidence.container.writer import seal_stream
from evidence.intake.formats import FormatError, detect_format
from evidence.keystore.base import KeyStoreError, get_keystore
from evidence.models import (
    CaptureDisk,
    CaptureRun,
    CaptureState,
    CaptureStep,
    CaptureStepState,
    Evidence,
    EvidenceChunk,
    EvidenceKind,
    EvidenceSource,
    EvidenceState,
    KeyEscrow,
    SecretKind,
)
from evidence.services.escrow import secret_escrow
from evidence.services.registration import data_key_for, evidence_register
from evidence.services.sealing import acquisition_facts, record_failed, record_sealed
from evidence.storage.base import StoreError, get_store

logger = logging.getLogger(__name__)

SUBSCRIPTION_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
RESOURCE_GROUP = re.compile(r"^[-\w.()]{0,89}[-\w()]$")
VM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CAPTURE_TASK = "evidence.tasks.capture_vm_disks"
PROBE_BYTES = 64 * 1024
PROGRESS_EVERY_BYTES = 16 << 20
# The order steps are shown in; per-disk steps are offset by the disk's place.
RUN_STEPS = ("sign_in", "inspect")
DISK_STEPS = (
    "snapshot",
    "grant_access",
    "stream",
    "native_copy",
    "escrow",
    "hash_secret",
    "complete",
    "revoke_access",
    "delete_snapshot",
)
STEP_ACTIONS = {
    "sign_in": "capture.sign_in",
    "inspect": "capture.inspect",
    "snapshot": "capture.snapshot",
    "grant_access": "capture.access.grant",
    "stream": "capture.stream",
    "native_copy": "capture.native_copy",
    "escrow": "capture.escrow",
    "hash_secret": "capture.hash_secret",
    "complete": "capture.complete",
    "revoke_access": "capture.access.revoke",
    "delete_snapshot": "capture.snapshot.delete",
}
STEP_LABELS = {
    "sign_in": "Sign in to Azure",
    "inspect": "Read the VM and its disks",
    "snapshot": "Snapshot",
    "grant_access": "Grant read access",
    "stream": "Stream, hash and seal",
    "native_copy": "Copy the VHD into the immutable container",
    "escrow": "Escrow the disk encryption key",
    "hash_secret": "Store the SHA-256 in the key vault",
    "complete": "Mark the evidence complete",
    "revoke_access": "Revoke access",
    "delete_snapshot": "Delete the snapshot",
}
# Anything that looks like a SAS or a bearer token is cut out of an error text, whatever raised it.
_SECRET_LOOKING = re.compile(r"(https?://\S+\?\S*|sig=\S+|Bearer\s+\S+|se=\S+&\S+)", re.IGNORECASE)


class CaptureRetry(Exception):
    """The run stopped on a transient failure (throttling, a service unavailable): the task tries again."""


def safe_error(error: BaseException) -> str:
    """What failed, fit for the database, the audit trail and the page: our own messages as they are (they
    are built without secrets), anything else by its type only; SAS-looking text removed regardless."""
    if isinstance(error, CaptureError | KeyStoreError | StoreError | ContainerError | FormatError):
        text = str(error)
    elif isinstance(error, ServiceError):
        text = error.detail
    else:
        text = f"unexpected {type(error).__name__}"
    return _SECRET_LOOKING.sub("[removed]", text)[:1000]


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, CaptureError):
        return error.transient
    if isinstance(error, ServiceError):
        return error.status_code == 503
    return isinstance(error, KeyStoreError | StoreError)


# --- starting a run -----------------------------------------------------------------------------------


def _check_target(*, subscription_id: str, resource_group: str, vm_name: str) -> tuple[str, str, str]:
    subscription_id, resource_group, vm_name = subscription_id.strip(), resource_group.strip(), vm_name.strip()
    if not SUBSCRIPTION_ID.match(subscription_id):
        raise ServiceError("subscription_id: give the target subscription's id (a GUID).")
    if not RESOURCE_GROUP.match(resource_group):
        raise ServiceError("resource_group: 1 to 90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'.")
    if not VM_NAME.match(vm_name):
        raise ServiceError("vm_name: 1 to 64 letters, digits, '.', '_' or '-'.")
    return subscription_id, resource_group, vm_name


@transaction.atomic
def capture_start(*, actor: User, case: Case, subscription_id: str, resource_group: str, vm_name: str) -> CaptureRun:
    """Queue a capture of the VM's disks into ``case`` for a worker of the ``capture`` queue."""
    case = case_get(user=actor, case_id=case.pk, permission=perms.REGISTER_EVIDENCE)
    if case.status != CaseStatus.OPEN:
        raise ServiceError(f"Case {case.reference} is closed: open it again to capture evidence.", code="conflict")
    subscription_id, resource_group, vm_name = _check_target(
        subscription_id=subscription_id, resource_group=resource_group, vm_name=vm_name
    )
    active = CaptureRun.objects.filter(
        case=case, subscription_id=subscription_id, resource_group__iexact=resource_group, vm_name__iexact=vm_name,
        state__in=(CaptureState.QUEUED, CaptureState.RUNNING),
    )  # fmt: skip
    if active.exists():
        raise ServiceError("A capture of this VM is already queued or running in this case.", code="conflict")
    run = CaptureRun.objects.create(
        case=case, subscription_id=subscription_id, resource_group=resource_group, vm_name=vm_name, requested_by=actor
    )
    audit_record(
        action="capture.start",
        actor=actor,
        target_type="capture_run",
        target_id=run.pk,
        case_id=case.pk,
        details={"subscription_id": subscription_id, "resource_group": resource_group, "vm_name": vm_name},
    )
    run_id = str(run.pk)
    transaction.on_commit(lambda: _enqueue(run_id))
    return run


def _enqueue(run_id: str) -> None:
    # By the task's name (its address; settings route it to the ``capture`` queue): evidence.tasks imports
    # this module, so importing the task here would make the two depend on each other.
    current_app.send_task(CAPTURE_TASK, args=[run_id])


def capture_vm_choices(*, actor: User, case: Case, subscription_id: str, resource_group: str) -> list[str] | None:
    """The VMs of a resource group for the start form's pick list; None when the organisation's identity
    may not list them (or none is configured here): the custodian then types the VM's name."""
    case = case_get(user=actor, case_id=case.pk, permission=perms.REGISTER_EVIDENCE)
    try:
        subscription_id, resource_group, _ = _check_target(
            subscription_id=subscription_id, resource_group=resource_group, vm_name="x"
        )
        client = get_capture_client(organisation=case.organization.slug)
        client.sign_in()
        return client.list_vms(subscription_id=subscription_id, resource_group=resource_group)
    except (ServiceError, CaptureError):
        return None


# --- executing a run ------------------------------------------------------------------------------------


class _Execution:
    """One worker's execution of a run: the client, and the SAS URLs it holds in memory."""

    def __init__(self, *, run: CaptureRun, client: CaptureClient) -> None:
        self.run = run
        self.client = client
        self.access: dict[int, str] = {}  # disk pk -> SAS URL, this execution only
        self.location = ""
        self.target = {
            "subscription_id": run.subscription_id,
            "resource_group": run.resource_group,
        }

    # --- steps ---

    def step(
        self,
        key: str,
        work: Callable[[CaptureStep], dict[str, Any] | None],
        *,
        disk: CaptureDisk | None = None,
        again: bool = False,
        atomic: bool = False,
    ) -> dict[str, Any]:
        """Run ``work`` as step ``key`` unless it is done (``again``: run it anyway); record and audit it.
        ``atomic``: the work's own writes, the step's record and its audit row commit together."""
        position = _position(key, disk)
        step, _ = CaptureStep.objects.get_or_create(run=self.run, disk=disk, key=key, defaults={"position": position})
        if step.state in (CaptureStepState.DONE, CaptureStepState.SKIPPED) and not again:
            return step.outcome
        CaptureStep.objects.filter(pk=step.pk).update(
            state=CaptureStepState.RUNNING, started_at=timezone.now(), finished_at=None, error="", progress_bytes=0
        )
        try:
            if atomic:
                with transaction.atomic():
                    outcome = work(step) or {}
                    self._done(step, key=key, disk=disk, outcome=outcome)
            else:
                outcome = work(step) or {}
                with transaction.atomic():
                    self._done(step, key=key, disk=disk, outcome=outcome)
        except BaseException as error:
            self._failed(step, key=key, disk=disk, error=error)
            raise
        return outcome

    def skip(self, key: str, *, disk: CaptureDisk, reason: str) -> None:
        """Record step ``key`` as not needed for ``disk`` (and audit that), unless it is done."""
        step, _ = CaptureStep.objects.get_or_create(
            run=self.run, disk=disk, key=key, defaults={"position": _position(key, disk)}
        )
        if step.state in (CaptureStepState.DONE, CaptureStepState.SKIPPED):
            return
        now = timezone.now()
        with transaction.atomic():
            CaptureStep.objects.filter(pk=step.pk).update(
                state=CaptureStepState.SKIPPED, started_at=now, finished_at=now, outcome={"skipped": reason}
            )
            audit_record(
                action=STEP_ACTIONS[key],
                case_id=self.run.case_id,
                organization_id=self.run.case.organization_id,
                details={"capture_run": str(self.run.pk), "disk": disk.name, "skipped": reason},
                **self._audit_target(disk),
            )

    def _audit_target(self, disk: CaptureDisk | None) -> dict[str, Any]:
        """A disk's steps are events of its evidence item (its custody trail shows its capture); the run's
        own steps, of the run."""
        if disk is not None and disk.evidence_id is not None:
            return {"target_type": "evidence", "target_id": disk.evidence_id}
        return {"target_type": "capture_run", "target_id": self.run.pk}

    def _done(self, step: CaptureStep, *, key: str, disk: CaptureDisk | None, outcome: dict[str, Any]) -> None:
        CaptureStep.objects.filter(pk=step.pk).update(
            state=CaptureStepState.DONE, finished_at=timezone.now(), outcome=outcome, error=""
        )
        audit_record(
            action=STEP_ACTIONS[key],
            case_id=self.run.case_id,
            organization_id=self.run.case.organization_id,
            details={
                "capture_run": str(self.run.pk),
                "disk": disk.name if disk else None,
                "on_behalf_of": self.run.requested_by.username,
                **outcome,
            },
            **self._audit_target(disk),
        )

    def _failed(self, step: CaptureStep, *, key: str, disk: CaptureDisk | None, error: BaseException) -> None:
        text = safe_error(error)
        try:
            with transaction.atomic():
                CaptureStep.objects.filter(pk=step.pk).update(
                    state=CaptureStepState.FAILED, finished_at=timezone.now(), error=text
                )
                audit_record(
                    action=STEP_ACTIONS[key],
                    outcome="failed",
                    case_id=self.run.case_id,
                    organization_id=self.run.case.organization_id,
                    details={"capture_run": str(self.run.pk), "disk": disk.name if disk else None, "error": text},
                    **self._audit_target(disk),
                )
        except Exception:  # recording the failure must not hide the failure itself
            logger.exception("could not record the failure of capture step %s of run %s", key, self.run.pk)

    # --- the run ---

    def execute(self) -> None:
        identity = self.step("sign_in", lambda step: self.client.sign_in(), again=True)
        del identity
        description = self.step("inspect", self._inspect)
        self.location = description.get("location", "")
        for disk in self.run.disks.order_by("-is_os_disk", "lun", "pk"):
            self._capture_disk(disk)

    def _inspect(self, step: CaptureStep) -> dict[str, Any]:
        vm = self.client.describe_vm(vm_name=self.run.vm_name, **self.target)
        if not vm.disks:
            raise CaptureError("the VM has no managed disks to capture")
        with transaction.atomic():
            CaptureRun.objects.filter(pk=self.run.pk).update(vm_id=vm.vm_id)
            for disk in vm.disks:
                CaptureDisk.objects.update_or_create(
                    run=self.run,
                    name=disk.name,
                    defaults={
                        "disk_id": disk.disk_id,
                        "lun": disk.lun,
                        "is_os_disk": disk.is_os_disk,
                        "os_type": disk.os_type,
                        "size_bytes": disk.size_bytes,
                        "encryption": disk.encryption.as_dict() if disk.encryption else {},
                    },
                )
        return {
            "vm_id": vm.vm_id,
            "location": vm.location,
            "disks": [
                {"name": d.name, "lun": d.lun, "os_disk": d.is_os_disk, "encrypted": d.encryption is not None}
                for d in vm.disks
            ],
        }

    def _step_done(self, disk: CaptureDisk, key: str) -> bool:
        return CaptureStep.objects.filter(
            run=self.run, disk=disk, key=key, state__in=(CaptureStepState.DONE, CaptureStepState.SKIPPED)
        ).exists()

    def _capture_disk(self, disk: CaptureDisk) -> None:
        # Registered first, so that every step of the disk, the snapshot included, is in its custody trail.
        self._evidence_for(disk)
        native = native_copy_enabled()
        needs_snapshot = not self._step_done(disk, "stream") or (native and not self._step_done(disk, "native_copy"))
        if needs_snapshot:
            self.step("snapshot", lambda step: self._snapshot(disk), disk=disk, again=not disk.snapshot_exists)
            self.step("grant_access", lambda step: self._grant(disk), disk=disk, again=True)
        self.step("stream", lambda step: self._stream(disk, step), disk=disk)
        if native:
            self.step("native_copy", lambda step: self._native_copy(disk), disk=disk)
        else:
            self.skip("native_copy", disk=disk, reason="CUSTODIA_CAPTURE_NATIVE_COPY is off")
        if disk.encryption:
            self.step("escrow", lambda step: self._escrow(disk), disk=disk, atomic=True)
        else:
            self.skip("escrow", disk=disk, reason="the disk is not encrypted with Azure Disk Encryption")
        self.step("hash_secret", lambda step: self._hash_secret(disk), disk=disk)
        self.step("complete", lambda step: self._complete(disk), disk=disk, atomic=True)

    # --- per-disk steps ---

    def _snapshot(self, disk: CaptureDisk) -> dict[str, Any]:
        name = disk.snapshot_name or f"custodia-{self.run.pk.hex[:12]}-{'os' if disk.is_os_disk else f'lun{disk.lun}'}"
        vm_disk = VmDisk(name=disk.name, disk_id=disk.disk_id, lun=disk.lun, is_os_disk=disk.is_os_disk)
        # Recorded before the call: the finally must delete it even if the answer never arrives.
        disk.snapshot_name, disk.snapshot_exists = name, True
        disk.save(update_fields=["snapshot_name", "snapshot_exists"])
        snapshot = self.client.create_snapshot(location=self.location, disk=vm_disk, snapshot_name=name, **self.target)
        disk.snapshot_id = snapshot.snapshot_id
        disk.save(update_fields=["snapshot_id"])
        return {"snapshot_name": snapshot.name, "snapshot_id": snapshot.snapshot_id}

    def _grant(self, disk: CaptureDisk) -> dict[str, Any]:
        seconds = settings.CUSTODIA_CAPTURE_ACCESS_SECONDS
        disk.access_granted = True
        disk.save(update_fields=["access_granted"])
        self.access[disk.pk] = self.client.grant_access(
            snapshot_name=disk.snapshot_name, seconds=seconds, **self.target
        )
        return {"snapshot_name": disk.snapshot_name, "seconds": seconds}

    def _sas(self, disk: CaptureDisk) -> str:
        sas = self.access.get(disk.pk)
        if sas is None:
            raise CaptureError("no read access to the snapshot in this execution")
        return sas

    def _evidence_for(self, disk: CaptureDisk) -> Evidence:
        """The disk's evidence item: the one registered by an earlier attempt (so that a resumed stream
        reuses its chunks), or a new one, registered and linked to the disk in one transaction."""
        disk.refresh_from_db()
        if disk.evidence_id is not None:
            evidence = Evidence.objects.get(pk=disk.evidence_id)
            if evidence.state != EvidenceState.FAILED:
                return evidence
        run = self.run
        with transaction.atomic():
            evidence = evidence_register(
                actor=run.requested_by,
                case=run.case,
                label=f"{run.vm_name}: {disk.label} ({disk.name})"[:200],
                kind=EvidenceKind.VM_DISK,
                description=f"Captured from Azure VM {run.vm_name} by capture run {run.pk}.",
                seized_from=f"Azure VM {run.vm_name} ({run.resource_group})",
                seized_by="Custodia capture",
                seized_at=timezone.now(),
                source=EvidenceSource.AZURE_VM_DISK,
                # No declared size: Azure's disk size leaves out the 512-byte footer of the VHD a snapshot reads as.
                original_name=f"{disk.name}.vhd",
            )
            disk.evidence = evidence
            disk.save(update_fields=["evidence"])
        return evidence

    def _stream(self, disk: CaptureDisk, step: CaptureStep) -> dict[str, Any]:
        evidence = self._evidence_for(disk)
        sas = self._sas(disk)
        size = self.client.snapshot_size(sas_url=sas)
        head = self.client.read_snapshot_range(sas_url=sas, offset=0, length=min(PROBE_BYTES, size)) if size else b""
        tail_start = max(0, size - PROBE_BYTES)
        tail = (
            self.client.read_snapshot_range(sas_url=sas, offset=tail_start, length=size - tail_start) if size else b""
        )
        # Named as Azure names the disk, without a guessed extension: the bytes say what it is (a fixed VHD).
        detected = detect_format(head=head, tail=tail, name=disk.name)
        tags = capture_tags(run=self.run, disk=disk)
        evidence.state = EvidenceState.RECEIVING
        evidence.format = detected.format
        evidence.format_details = {**(evidence.format_details or {}), **detected.details, "capture": tags}
        evidence.save(update_fields=["state", "format", "format_details"])
        CaptureStep.objects.filter(pk=step.pk).update(total_bytes=size)
        # Deterministic facts: a resumed stream writes the same manifest, byte for byte.
        facts = acquisition_facts(evidence=evidence, capture=tags)
        source = self.client.open_snapshot(sas_url=sas)
        try:
            result = seal_stream(
                evidence_id=evidence.pk,
                data_key=data_key_for(evidence),
                store=get_store(),
                source=ProgressReader(source, step_id=step.pk),  # type: ignore[arg-type]
                facts=facts,
                declared={"size": size},
                chunk_size=evidence.chunk_size,
                resume=True,  # a redelivered step checks the chunks a killed worker stored instead of resealing
            )
        except ChunkConflict as error:
            # The snapshot taken now differs from the one an earlier attempt began to seal: that item
            # cannot be finished (write-once); it is marked failed and the next attempt starts a new one.
            record_failed(
                actor=None, evidence=evidence, action="capture.stream",
                reason="a later snapshot differs from the bytes an earlier attempt sealed",
            )  # fmt: skip
            raise CaptureError("the snapshot differs from the chunks an earlier attempt sealed") from error
        finally:
            source.close()
        hashes = result.hashes.as_dict()
        return {
            "evidence": str(evidence.pk),
            "size": result.hashes.size,
            **hashes,
            "manifest_sha256": result.manifest_sha256,
            "chunks": result.chunk_count,
            # Copies a crash left torn in the write-once store, replaced by the next attempt (never the value
            # of anything: chunk numbers, keys, lengths and digests of ciphertext).
            "chunks_superseded": list(result.chunks_superseded),
            "format": detected.format,
        }

    def _native_copy(self, disk: CaptureDisk) -> dict[str, Any]:
        evidence = self._evidence_for(disk)
        blob_name = f"capture/{self.run.pk}/{disk.name}.vhd"
        properties = self.client.copy_snapshot(sas_url=self._sas(disk), blob_name=blob_name)
        with transaction.atomic():
            evidence = Evidence.objects.select_for_update().get(pk=evidence.pk)
            evidence.format_details = {**(evidence.format_details or {}), "native_blob": properties}
            evidence.save(update_fields=["format_details"])
        return {"native_blob": {key: properties.get(key) for key in ("container", "blob", "size", "copy_status")}}

    def _escrow(self, disk: CaptureDisk) -> dict[str, Any]:
        evidence = self._evidence_for(disk)
        run_tag = str(self.run.pk)
        existing = [s for s in KeyEscrow.objects.filter(evidence=evidence) if s.tags.get("CaptureRun") == run_tag]
        if existing:  # escrowed by an attempt that stopped before recording the step
            return {"secret_id": existing[0].pk, "kind": existing[0].kind, "reused": True}
        material = self.client.read_encryption_material(encryption=DiskEncryption(**disk.encryption))
        tags = {
            "MachineName": self.run.vm_name,
            "VolumeLetter": material.tags.get("VolumeLetter", ""),
            "DiskEncryptionKeyFileName": material.tags.get("DiskEncryptionKeyFileName", ""),
            "DiskId": disk.disk_id,
            "DiskName": disk.name,
            "CaptureRun": run_tag,
        }
        is_bitlocker = disk.os_type.lower() == "windows" or tags["DiskEncryptionKeyFileName"].upper().endswith(".BEK")
        kind = SecretKind.BITLOCKER_STARTUP_KEY if is_bitlocker else SecretKind.LUKS_PASSPHRASE
        secret = secret_escrow(
            actor=self.run.requested_by,
            evidence=evidence,
            kind=kind,
            name=f"capture {run_tag} BEK {disk.name}",
            value=material.bek,
            tags=tags,
        )
        outcome: dict[str, Any] = {"secret_id": secret.pk, "kind": kind, "wrapped_by_kek": bool(material.kek_id)}
        if material.kek_backup is not None:
            try:
                kek = get_keystore().put_secret(
                    material.kek_backup, tags={**tags, "Kind": "KEK backup", "KeyId": material.kek_id}
                )
            except KeyStoreError as error:
                raise ServiceError(
                    "The key store could not keep the KEK.", code="keystore_unavailable", status_code=503
                ) from error
            outcome["kek"] = {"reference": kek.reference, "key_id": material.kek_id}
        return outcome

    def _hash_secret(self, disk: CaptureDisk) -> dict[str, Any]:
        sha256 = CaptureStep.objects.get(run=self.run, disk=disk, key="stream").outcome["sha256"]
        tags = {
            "MachineName": self.run.vm_name,
            "DiskId": disk.disk_id,
            "DiskName": disk.name,
            "CaptureRun": str(self.run.pk),
            "Kind": "SHA-256",
        }
        try:
            escrowed = get_keystore().put_secret(sha256.encode("ascii"), tags=tags)
        except KeyStoreError as error:
            raise ServiceError(
                "The key store could not keep the disk's SHA-256.", code="keystore_unavailable", status_code=503
            ) from error
        return {"reference": escrowed.reference, "sha256": sha256}

    def _complete(self, disk: CaptureDisk) -> dict[str, Any]:
        stream = CaptureStep.objects.get(run=self.run, disk=disk, key="stream").outcome
        evidence = Evidence.objects.select_for_update().get(pk=stream["evidence"])
        if evidence.is_sealed:
            return {"evidence": str(evidence.pk), "already": True}
        store = get_store()
        manifest, _ = load_manifest(evidence_id=evidence.pk, store=store)
        index = load_index(evidence_id=evidence.pk, store=store, manifest=manifest)
        EvidenceChunk.objects.filter(evidence=evidence).delete()
        EvidenceChunk.objects.bulk_create(
            EvidenceChunk(
                evidence=evidence,
                index=record.index,
                plain_length=record.plain_length,
                stored_length=record.stored_length,
                sha256=record.sha256,
            )
            for record in index.chunks
        )
        evidence.size = evidence.received_bytes = evidence.hashed_through = stream["size"]
        record_sealed(
            actor=None,
            evidence=evidence,
            hashes={name: stream[name] for name in ("md5", "sha1", "sha256")},
            manifest_sha256=stream["manifest_sha256"],
            chunks=stream["chunks"],
            details={
                "source": "azure_vm_disk",
                "capture_run": str(self.run.pk),
                "disk": disk.name,
                "chunks_superseded": stream.get("chunks_superseded", []),
            },
        )
        return {"evidence": str(evidence.pk), "sha256": stream["sha256"]}

    # --- the finally ---

    def clean_up(self) -> list[str]:
        """Revoke access to and delete every snapshot of the run; go on past a failure. Returns the errors."""
        problems = []
        for disk in self.run.disks.order_by("-is_os_disk", "lun", "pk"):
            if disk.access_granted:
                try:
                    self.step("revoke_access", partial(self._revoke, disk), disk=disk, again=True)
                except Exception as error:
                    problems.append(f"revoke access to {disk.snapshot_name}: {safe_error(error)}")
            if disk.snapshot_exists:
                try:
                    self.step("delete_snapshot", partial(self._delete, disk), disk=disk, again=True)
                except Exception as error:
                    problems.append(f"delete {disk.snapshot_name}: {safe_error(error)}")
        self.access.clear()
        return problems

    def _revoke(self, disk: CaptureDisk, step: CaptureStep) -> dict[str, Any]:
        self.client.revoke_access(snapshot_name=disk.snapshot_name, **self.target)
        self.access.pop(disk.pk, None)
        disk.access_granted = False
        disk.save(update_fields=["access_granted"])
        return {"snapshot_name": disk.snapshot_name}

    def _delete(self, disk: CaptureDisk, step: CaptureStep) -> dict[str, Any]:
        self.client.delete_snapshot(snapshot_name=disk.snapshot_name, **self.target)
        disk.snapshot_exists = False
        disk.save(update_fields=["snapshot_exists"])
        return {"snapshot_name": disk.snapshot_name}


def _position(key: str, disk: CaptureDisk | None) -> int:
    if disk is None:
        return RUN_STEPS.index(key) if key in RUN_STEPS else 0
    place = 0 if disk.is_os_disk else 1 + (disk.lun if disk.lun is not None else 99)
    return 10 + place * 20 + DISK_STEPS.index(key)


def capture_tags(*, run: CaptureRun, disk: CaptureDisk) -> dict[str, Any]:
    """What ties a captured disk's evidence to its VM and run (kept on the evidence and in its manifest)."""
    return {
        "run": str(run.pk),
        "subscription_id": run.subscription_id,
        "resource_group": run.resource_group,
        "vm": run.vm_name,
        "vm_id": run.vm_id,
        "disk_name": disk.name,
        "disk_id": disk.disk_id,
        "lun": disk.lun,
        "os_disk": disk.is_os_disk,
        "disk_size_bytes": disk.size_bytes,
    }


def native_copy_enabled() -> bool:
    return bool(settings.CUSTODIA_CAPTURE_NATIVE_COPY)


class ProgressReader:
    """Passes reads through, noting the bytes read on the step now and then (for the progress bar)."""

    def __init__(self, source: BinaryIO, *, step_id: int) -> None:
        self._source = source
        self._step_id = step_id
        self._read = 0
        self._reported = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._read += len(data)
        if self._read - self._reported >= PROGRESS_EVERY_BYTES or (not data and self._read != self._reported):
            CaptureStep.objects.filter(pk=self._step_id).update(progress_bytes=self._read)
            self._reported = self._read
        return data


def capture_run_execute(*, run_id: uuid.UUID | str, final_attempt: bool = True) -> CaptureRun:
    """Execute (or resume) a run: every step not yet done, then the clean-up, whatever happened.

    On a transient failure (throttling, an unavailable vault or store) the run is put back in the queue and
    ``CaptureRetry`` raised, for the task to try again later, unless this is the ``final_attempt``.
    """
    with transaction.atomic():
        run = CaptureRun.objects.select_for_update().select_related("case__organization", "requested_by").get(pk=run_id)
        if run.state == CaptureState.SUCCEEDED:
            return run
        run.state, run.error, run.finished_at = CaptureState.RUNNING, "", None
        run.attempts += 1
        run.started_at = run.started_at or timezone.now()
        run.save(update_fields=["state", "error", "finished_at", "attempts", "started_at"])
    execution: _Execution | None = None
    failure: Exception | None = None
    try:
        execution = _Execution(run=run, client=get_capture_client(organisation=run.case.organization.slug))
        execution.execute()
    except Exception as error:
        failure = error
    finally:
        # Also when a worker shuts down mid-step (a BaseException, passed on): access revoked, snapshots gone.
        problems = execution.clean_up() if execution is not None else []
    retrying = failure is not None and _is_transient(failure) and not final_attempt
    _finish(run=run, failure=failure, problems=problems, retrying=retrying)
    if failure is not None and retrying:
        raise CaptureRetry(safe_error(failure)) from None
    run.refresh_from_db()
    return run


@transaction.atomic
def _finish(*, run: CaptureRun, failure: BaseException | None, problems: list[str], retrying: bool) -> None:
    if failure is None and not problems:
        state, error, outcome = CaptureState.SUCCEEDED, "", "ok"
    elif failure is None:
        state, error, outcome = CaptureState.FAILED, "clean-up: " + "; ".join(problems), "failed"
    else:
        error = safe_error(failure) + (f" (clean-up: {'; '.join(problems)})" if problems else "")
        state, outcome = (CaptureState.QUEUED, "failed") if retrying else (CaptureState.FAILED, "failed")
        if retrying:
            error = "will try again: " + error
    CaptureRun.objects.filter(pk=run.pk).update(
        state=state, error=error[:2000], finished_at=None if retrying else timezone.now()
    )
    audit_record(
        action="capture.finish",
        outcome=outcome,
        target_type="capture_run",
        target_id=run.pk,
        case_id=run.case_id,
        organization_id=run.case.organization_id,
        details={
            "state": state,
            "error": error[:2000],
            "disks": [
                {"name": disk.name, "evidence": str(disk.evidence_id) if disk.evidence_id else None}
                for disk in run.disks.all()
            ],
        },
    )
