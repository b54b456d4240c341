"""Server-side import: images already on the server or a mounted share, read once from below the configured
import roots, hashed and sealed in the same pass. Split images (E01/E02…, .001/.002…) are one evidence item."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction

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
from evidence.intake.formats import FormatError, SegmentedReader, detect_format, group_segments
from evidence.intake.paths import ImportPathRefused, resolve_import_path
from evidence.models import Evidence, EvidenceChunk, EvidenceKind, EvidenceSource, EvidenceState
from evidence.services.registration import data_key_for, evidence_register, normalise_declared_hashes
from evidence.services.sealing import acquisition_facts, record_failed, record_sealed
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
            details={"reason": reason, "paths": paths},
        )


def _probe(paths: list[Path]) -> tuple[bytes, bytes]:
    with paths[0].open("rb") as first:
        head = first.read(PROBE_BYTES)
    with paths[-1].open("rb") as last:
        size = last.seek(0, 2)
        last.seek(max(0, size - PROBE_BYTES))
        tail = last.read()
    return head, tail


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
) -> Evidence:
    case = case_get(user=actor, case_id=case.pk, permission=perms.REGISTER_EVIDENCE)
    roots = list(settings.CUSTODIA_IMPORT_ROOTS)
    try:
        if not roots:
            raise ImportPathRefused("no import roots are configured (CUSTODIA_IMPORT_ROOTS)", path=paths[0])
        resolved = [resolve_import_path(path=path, roots=roots) for path in paths]
        groups = group_segments(resolved)
        if len(groups) != 1:
            raise FormatError(f"these paths are {len(groups)} images; import one image (all its segments) at a time")
        segments = list(groups[0].paths)
        head, tail = _probe(segments)
        detected = detect_format(head=head, tail=tail, name=segments[0].name)
    except (ImportPathRefused, FormatError, OSError) as exc:
        reason = exc.detail if not isinstance(exc, OSError) else f"cannot read {exc.filename}: {exc.strerror}"
        _audit_refusal(actor=actor, case=case, reason=reason, paths=paths)
        raise ServiceError(f"Import refused: {reason}.", code="import_refused") from exc
    declared = normalise_declared_hashes({"md5": declared_md5, "sha1": declared_sha1, "sha256": declared_sha256})
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
        declared_size=sum(path.stat().st_size for path in segments),
        declared_md5=declared.get("md5", ""),
        declared_sha1=declared.get("sha1", ""),
        declared_sha256=declared.get("sha256", ""),
    )
    segment_sizes = [{"name": path.name, "size": path.stat().st_size} for path in segments]
    with transaction.atomic():
        evidence.state = EvidenceState.RECEIVING
        evidence.format = detected.format
        # The segment sizes let extraction cut the sealed concatenation back into the files libewf expects.
        evidence.format_details = {**detected.details, "segments": segment_sizes}
        evidence.save(update_fields=["state", "format", "format_details"])
        audit_record(
            action="evidence.import.start",
            actor=actor,
            target_type="evidence",
            target_id=evidence.pk,
            case_id=evidence.case_id,
            details={"format": detected.format, "segments": [segment["size"] for segment in segment_sizes]},
        )
    # Sizes only: the acquired files' names stay out of the manifest, which lies unencrypted in the store.
    facts = acquisition_facts(evidence=evidence, segment_sizes=[segment["size"] for segment in segment_sizes])
    try:
        with SegmentedReader(segments) as source:
            result = seal_stream(
                evidence_id=evidence.pk,
                data_key=data_key_for(evidence),
                store=get_store(),
                source=source,
                facts=facts,
                declared=None,  # compared below, so that a mismatch is recorded with both values
                chunk_size=evidence.chunk_size,
            )
    except (OSError, StoreError, ContainerError) as exc:
        _mark_failed(actor=actor, evidence=evidence, reason=f"reading or storing failed: {exc.__class__.__name__}")
        raise ServiceError(
            "The import failed while reading or storing; nothing was sealed.", code="import_failed"
        ) from exc
    hashes = result.hashes.as_dict()
    mismatches = declared_mismatches(evidence=evidence, hashes=hashes)
    if mismatches:
        algorithm, value, computed = mismatches[0]
        _mark_failed(
            actor=actor,
            evidence=evidence,
            reason=f"Declared {algorithm} {value} differs from the computed {computed}.",
            details={"declared": {m[0]: m[1] for m in mismatches}, "computed": hashes},
        )
        raise Conflict(
            f"The declared {algorithm} does not match: declared {value}, computed {computed}. "
            "The evidence is marked failed.",
            code="hash_mismatch",
        )
    ewf_check = _check_ewf(actor=actor, evidence=evidence, segments=segments) if detected.format == "ewf" else None
    return _record_sealed(actor=actor, evidence=evidence, result=result, hashes=hashes, ewf_check=ewf_check)


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
    *, actor: User, evidence: Evidence, result: SealResult, hashes: dict[str, str], ewf_check: dict | None
) -> Evidence:
    evidence = Evidence.objects.select_for_update().get(pk=evidence.pk)
    manifest, _ = load_manifest(evidence_id=evidence.pk, store=get_store())
    index = load_index(evidence_id=evidence.pk, store=get_store(), manifest=manifest)
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
    evidence.size = evidence.received_bytes = evidence.hashed_through = result.hashes.size
    if ewf_check is not None:
        evidence.format_details = {**evidence.format_details, "ewf_check": ewf_check}
    return record_sealed(
        actor=actor,
        evidence=evidence,
        hashes=hashes,
        manifest_sha256=result.manifest_sha256,
        chunks=result.chunk_count,
        details={"source": "server_import", "ewf_check": ewf_check},
    )


def _mark_failed(*, actor: User, evidence: Evidence, reason: str, details: dict | None = None) -> None:
    record_failed(actor=actor, evidence=evidence, action="evidence.import", reason=reason, details=details)
