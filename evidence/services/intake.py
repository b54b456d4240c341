"""Server-side import: images already on the server or a mounted share, read once from below the configured
import roots, hashed and sealed in the same pass. Split images (E01/E02…, .001/.002…) are one evidence item.

The request (or ``manage.py import_evidence``) only checks the paths, registers the evidence and queues the
seal; a worker reads and seals (``intake_run``, which local acquisition shares: see acquisition.py and
docs/acquisition.md)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Literal

from django.conf import settings
from django.db import DatabaseError, transaction

from audit.privacy import Tagged
from audit.services import audit_record
from cases import permissions as perms
from cases.models import Case, User
from cases.selectors import case_get
from custodia.errors import Conflict, ServiceError
from evidence.container.errors import ContainerError
from evidence.container.reader import load_index, load_manifest
from evidence.container.writer import SealResult, seal_stream
from evidence.intake.errors import MissingDependency
from evidence.intake.ewf import verify_ewf_media
from evidence.intake.formats import (
    DetectedFormat,
    FormatError,
    chain_link,
    detect_file_format,
    detect_format,
    group_segments,
    order_parent_chain,
)
from evidence.intake.paths import ImportPathRefused, resolve_import_path
from evidence.models import Evidence, EvidenceChunk, EvidenceKind, EvidenceSource, EvidenceState
from evidence.services.acquisition import open_intake_source, record_read_errors
from evidence.services.registration import data_key_for, evidence_register, normalise_declared_hashes
from evidence.services.sealing import acquisition_facts, queue_intake, record_failed, record_sealed
from evidence.services.upload import declared_mismatches
from evidence.storage.base import StoreError, get_store

logger = logging.getLogger(__name__)
PROBE_BYTES = 64 * 1024

KIND_BY_FORMAT = {
    "ewf": EvidenceKind.DISK_IMAGE,
    "raw": EvidenceKind.DISK_IMAGE,
    "vhd": EvidenceKind.VM_DISK,
    "vhdx": EvidenceKind.VM_DISK,
    "vmdk": EvidenceKind.VM_DISK,
    "qcow2": EvidenceKind.VM_DISK,
    "archive": EvidenceKind.ARCHIVE,
}


def _audit_refusal(*, actor: User, case: Case, reason: str, paths: list[str]) -> None:
    with transaction.atomic():
        audit_record(
            action="evidence.import",
            actor=actor,
            outcome="denied",
            target_type="case",
            target_id=case.pk,
            case_id=case.pk,
            details={"reason": reason, "paths": [Tagged("path", path) for path in paths]},
        )


def _probe(paths: list[Path]) -> tuple[bytes, bytes]:
    with paths[0].open("rb") as first:
        head = first.read(PROBE_BYTES)
    with paths[-1].open("rb") as last:
        size = last.seek(0, 2)
        last.seek(max(0, size - PROBE_BYTES))
        tail = last.read()
    return head, tail


IntakeMode = Literal["auto", "now", "queue"]


def evidence_import(
    *,
    actor: User,
    case: Case,
    paths: list[str],
    label: str = "",
    kind: str = "",
    description: str = "",
    seized_from: str = "",
    seized_by: str = "",
    seized_at: datetime | None = None,
    declared_md5: str = "",
    declared_sha1: str = "",
    declared_sha256: str = "",
    recorded: Mapping[str, str] | None = None,
    mode: IntakeMode = "auto",
) -> Evidence:
    """Check the paths, register the evidence and queue its seal for a worker (``intake_run``).

    ``mode``: ``queue`` always queues; ``now`` seals in the caller (the command's ``--now``); ``auto``
    seals in the caller only an image of at most ``CUSTODIA_IMPORT_INLINE_BYTES`` (0 by default: every
    import is queued, so no request holds the database while an image is read). The evidence comes back
    ``receiving`` when queued, ``sealed`` when sealed here.
    """
    case = case_get(user=actor, case_id=case.pk, permission=perms.REGISTER_EVIDENCE)
    roots = list(settings.CUSTODIA_IMPORT_ROOTS)
    try:
        if not roots:
            raise ImportPathRefused("no import roots are configured (CUSTODIA_IMPORT_ROOTS)", path=paths[0])
        resolved = [resolve_import_path(path=path, roots=roots) for path in paths]
        groups = group_segments(resolved)
        chain = _parent_chain(groups) if len(groups) > 1 else None
        if len(groups) != 1 and chain is None:
            raise FormatError(f"these paths are {len(groups)} images; import one image (all its segments) at a time")
        if chain is not None:
            segments = [path for path, _detected in chain]
            detected = chain[0][1]
        else:
            segments = list(groups[0].paths)
            head, tail = _probe(segments)
            detected = detect_format(head=head, tail=tail, name=segments[0].name)
    except (ImportPathRefused, FormatError, OSError) as exc:
        reason = exc.detail if not isinstance(exc, OSError) else f"cannot read {exc.filename}: {exc.strerror}"
        _audit_refusal(actor=actor, case=case, reason=reason, paths=paths)
        raise ServiceError(f"Import refused: {reason}.", code="import_refused") from exc
    declared = normalise_declared_hashes({"md5": declared_md5, "sha1": declared_sha1, "sha256": declared_sha256})
    total = sum(path.stat().st_size for path in segments)
    evidence = evidence_register(
        actor=actor,
        case=case,
        label=label or segments[0].name,
        kind=kind or KIND_BY_FORMAT.get(detected.format, EvidenceKind.FILE),
        description=description,
        seized_from=seized_from,
        seized_by=seized_by,
        seized_at=seized_at,
        source=EvidenceSource.SERVER_IMPORT,
        original_name=", ".join(path.name for path in segments),
        declared_size=total,
        declared_md5=declared.get("md5", ""),
        declared_sha1=declared.get("sha1", ""),
        declared_sha256=declared.get("sha256", ""),
        recorded=recorded,
    )
    segment_sizes = [{"name": path.name, "size": path.stat().st_size} for path in segments]
    with transaction.atomic():
        evidence.state = EvidenceState.RECEIVING
        evidence.format = detected.format
        evidence.size = total
        evidence.intake_paths = [str(path) for path in segments]
        # The segment sizes let extraction cut the sealed concatenation back into the files libewf expects.
        evidence.format_details = {**detected.details, "segments": segment_sizes}
        if chain is not None:
            # A differencing disk with its parents, child first: the custody fact extraction reads it by.
            evidence.format_details["parent_chain"] = [
                {"name": path.name, "format": found.format, "size": path.stat().st_size, **chain_link(found)}
                for path, found in chain
            ]
        evidence.save(update_fields=["state", "format", "size", "intake_paths", "format_details"])
        audit_record(
            action="evidence.import.start",
            actor=actor,
            target_type="evidence",
            target_id=evidence.pk,
            case_id=evidence.case_id,
            details={"format": detected.format, "segments": [segment["size"] for segment in segment_sizes]},
        )
        if not _runs_inline(mode=mode, size=total):
            queue_intake(evidence=evidence)
            return evidence
    return intake_run(evidence_id=evidence.pk)


def _parent_chain(groups: list) -> list[tuple[Path, DetectedFormat]] | None:
    """The files as one differencing chain (child first, each with what detection found), or None when
    they are not one (then they are several images, refused as before)."""
    if any(group.is_split for group in groups):
        return None
    found = [(group.paths[0], detect_file_format(path=group.paths[0])) for group in groups]
    ordered = order_parent_chain(found)
    if ordered is None:
        return None
    by_path = dict(found)
    return [(path, by_path[path]) for path in ordered]


def _runs_inline(*, mode: IntakeMode, size: int) -> bool:
    if mode == "auto":
        return size <= settings.CUSTODIA_IMPORT_INLINE_BYTES
    return mode == "now"


def intake_run(*, evidence_id: uuid.UUID | str) -> Evidence:
    """The worker's part of a server-side import or a local acquisition: read the source once and seal it.

    Safe to run again after a worker was killed (the task is delivered again, ``acks_late``): the same
    evidence item is sealed, with the same hashes, and every chunk the killed run stored is checked and
    kept rather than written again (``seal_stream(resume=True)``). A run of an item already sealed or
    failed does nothing. An expected failure is recorded on the evidence and raised as a ServiceError.
    """
    with transaction.atomic():
        evidence = Evidence.objects.select_for_update().get(pk=evidence_id)
        if evidence.state != EvidenceState.RECEIVING or evidence.source not in INTAKE_SOURCES:
            return evidence
        resumed = evidence.intake_runs > 0
        evidence.intake_runs += 1
        evidence.save(update_fields=["intake_runs"])
        if resumed:
            audit_record(
                action="evidence.import.resume",
                actor=evidence.registered_by,
                target_type="evidence",
                target_id=evidence.pk,
                case_id=evidence.case_id,
                details={"run": evidence.intake_runs, "sealed_before": evidence.received_bytes},
            )
    actor = evidence.registered_by
    failure_action = "evidence.acquire" if evidence.source == EvidenceSource.LOCAL_DEVICE else "evidence.import"
    progress = ProgressRecorder(evidence_id=evidence.pk)
    try:
        with open_intake_source(evidence=evidence) as source:
            # Sizes only: the acquired files' names stay out of the manifest, lying unencrypted in the store.
            facts = acquisition_facts(evidence=evidence, **source.facts)
            result = seal_stream(
                evidence_id=evidence.pk,
                data_key=data_key_for(evidence),
                store=get_store(),
                source=source.stream,
                facts=facts,
                declared=None,  # compared below, so that a mismatch is recorded with both values
                chunk_size=evidence.chunk_size,
                resume=True,
                progress=progress,
                more_facts=source.facts_after_reading,
            )
            read_errors = source.read_errors()
    except ServiceError as exc:
        record_failed(actor=actor, evidence=evidence, action=failure_action, reason=exc.detail)
        raise
    except (OSError, StoreError, ContainerError) as exc:
        record_failed(
            actor=actor,
            evidence=evidence,
            action=failure_action,
            reason=f"reading or storing failed: {exc.__class__.__name__}",
        )
        raise ServiceError(
            "The import failed while reading or storing; nothing was sealed.", code="import_failed"
        ) from exc
    hashes = result.hashes.as_dict()
    mismatches = declared_mismatches(evidence=evidence, hashes=hashes)
    if mismatches:
        algorithm, value, computed = mismatches[0]
        record_failed(
            actor=actor,
            evidence=evidence,
            action=failure_action,
            reason=f"Declared {algorithm} {value} differs from the computed {computed}.",
            details={"declared": {m[0]: m[1] for m in mismatches}, "computed": hashes},
        )
        raise Conflict(
            f"The declared {algorithm} does not match: declared {value}, computed {computed}. "
            "The evidence is marked failed.",
            code="hash_mismatch",
        )
    ewf_check = None
    if evidence.format == "ewf" and evidence.source == EvidenceSource.SERVER_IMPORT:
        ewf_check = _check_ewf(actor=actor, evidence=evidence, segments=[Path(p) for p in evidence.intake_paths])
    return _record_sealed(
        actor=actor, evidence=evidence, result=result, hashes=hashes, ewf_check=ewf_check, read_errors=read_errors
    )


INTAKE_SOURCES = (EvidenceSource.SERVER_IMPORT, EvidenceSource.LOCAL_DEVICE)


class ProgressRecorder:
    """Writes the bytes sealed so far to the evidence row (``received_bytes``), each time in its own short
    transaction and at most every ``CUSTODIA_INTAKE_PROGRESS_SECONDS``: the page and the API show it, and
    the database is never held while the image is read."""

    def __init__(self, *, evidence_id: uuid.UUID) -> None:
        self.evidence_id = evidence_id
        self._interval = settings.CUSTODIA_INTAKE_PROGRESS_SECONDS
        self._last_write = 0.0

    def __call__(self, sealed_bytes: int) -> None:
        now = time.monotonic()
        if now - self._last_write < self._interval:
            return
        self._last_write = now
        try:
            Evidence.objects.filter(pk=self.evidence_id, state=EvidenceState.RECEIVING).update(
                received_bytes=sealed_bytes
            )
        except DatabaseError:
            # Progress is a courtesy: a busy database must not stop the seal (the next update catches up).
            logger.warning("could not record the sealing progress of evidence %s", self.evidence_id)


def _check_ewf(*, actor: User, evidence: Evidence, segments: list[Path]) -> dict:
    """An E01 carries the MD5 of the media it holds: decode the media and compare."""
    try:
        check = verify_ewf_media(segments=segments)
    except MissingDependency as exc:
        return {"checked": False, "reason": exc.detail}
    except FormatError as exc:
        _mark_failed(actor=actor, evidence=evidence, reason=f"The E01 image is damaged: {exc.detail}")
        raise Conflict(f"The E01 image is damaged: {exc.detail}", code="ewf_damaged") from exc
    result = {
        "checked": True,
        "stored_md5": check.stored_md5,
        "media_md5": check.computed_md5,
        "stored_sha1": check.stored_sha1,
        "media_sha1": check.computed_sha1,
        "media_size": check.media_size,
        "matches": check.matches,
    }
    if check.matches is False:
        _mark_failed(
            actor=actor,
            evidence=evidence,
            reason=f"The E01's stored MD5 {check.stored_md5} differs from its media's MD5 {check.computed_md5}.",
            details={"ewf": result},
        )
        raise Conflict("The E01's own stored MD5 does not match its media.", code="ewf_hash_mismatch")
    return result


@transaction.atomic
def _record_sealed(
    *,
    actor: User,
    evidence: Evidence,
    result: SealResult,
    hashes: dict[str, str],
    ewf_check: dict | None,
    read_errors: list[dict],
) -> Evidence:
    evidence = Evidence.objects.select_for_update().get(pk=evidence.pk)
    if evidence.is_sealed:  # another delivery of the same task finished first: the same container
        return evidence
    manifest, _ = load_manifest(evidence_id=evidence.pk, store=get_store())
    index = load_index(evidence_id=evidence.pk, store=get_store(), manifest=manifest)
    EvidenceChunk.objects.bulk_create(
        EvidenceChunk(
            evidence=evidence,
            index=record.index,
            plain_length=record.plain_length,
            stored_length=record.stored_length,
            sha256=record.sha256,
            attempt=record.attempt,
        )
        for record in index.chunks
    )
    evidence.size = evidence.received_bytes = evidence.hashed_through = result.hashes.size
    if ewf_check is not None:
        evidence.format_details = {**evidence.format_details, "ewf_check": ewf_check}
    evidence.acquisition_log = read_errors
    record_read_errors(actor=actor, evidence=evidence, read_errors=read_errors)
    source = "local_device" if evidence.source == EvidenceSource.LOCAL_DEVICE else "server_import"
    return record_sealed(
        actor=actor,
        evidence=evidence,
        hashes=hashes,
        manifest_sha256=result.manifest_sha256,
        chunks=result.chunk_count,
        details={
            "source": source,
            "ewf_check": ewf_check,
            "zero_filled_ranges": len(read_errors),
            "chunks_reused": result.chunks_reused,
            # Copies a killed run left torn, superseded by the next attempt (docs/acquisition.md).
            "chunks_superseded": list(result.chunks_superseded),
        },
    )


def _mark_failed(*, actor: User, evidence: Evidence, reason: str, details: dict | None = None) -> None:
    record_failed(actor=actor, evidence=evidence, action="evidence.import", reason=reason, details=details)
