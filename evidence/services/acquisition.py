"""Local acquisition: a block device or an image file read strictly read-only into a sealed evidence item.

``evidence_acquire`` checks what may be read (``evidence.intake.device``: image files below the import
roots, block devices named in ``CUSTODIA_ACQUIRE_DEVICES``), registers the evidence and queues its seal; a
worker then reads it through the same ``intake.intake_run`` as a server-side import. Read errors are
retried ``CUSTODIA_ACQUIRE_READ_RETRIES`` times, then the unreadable sectors are zero-filled and recorded:
in the evidence's ``acquisition_log``, in the manifest's facts (``read_errors``) and as one
``evidence.acquire.read_error`` audit row per range. See docs/acquisition.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.db import transaction

from audit.privacy import Tagged
from audit.services import audit_record
from cases import permissions as perms
from cases.models import Case, User
from cases.selectors import case_get
from custodia.errors import ServiceError
from evidence.intake.device import DescriptorSource, PositionalSource, RecoveringReader, resolve_acquisition_path
from evidence.intake.errors import ImportPathRefused
from evidence.intake.formats import FormatError, SegmentedReader, detect_format
from evidence.intake.paths import resolve_import_path
from evidence.models import Evidence, EvidenceKind, EvidenceSource, EvidenceState
from evidence.services.registration import evidence_register, normalise_declared_hashes
from evidence.services.sealing import queue_intake

PROBE_BYTES = 64 * 1024

# Tests replace it to inject read errors; production reads with os.pread on an O_RDONLY descriptor.
SourceOpener = Callable[[Path], PositionalSource]


def open_descriptor_source(path: Path) -> PositionalSource:
    return DescriptorSource(path)


source_opener: SourceOpener = open_descriptor_source


def evidence_acquire(
    *,
    actor: User,
    case: Case,
    device: str,
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
    queue: bool = True,
) -> Evidence:
    """Register the acquisition of ``device`` and queue it (``queue=False``: the caller runs
    ``intake.intake_run`` itself, as ``acquire_device --now`` does). Refused, and audited, when the path
    is neither an allowed block device nor an image file below the import roots."""
    case = case_get(user=actor, case_id=case.pk, permission=perms.REGISTER_EVIDENCE)
    try:
        resolved = resolve_acquisition_path(
            path=device,
            roots=list(settings.CUSTODIA_IMPORT_ROOTS),
            devices=list(settings.CUSTODIA_ACQUIRE_DEVICES),
        )
        detected_format, format_details = _detect(resolved.path, size=resolved.size)
    except (ImportPathRefused, OSError) as exc:
        reason = exc.detail if isinstance(exc, ImportPathRefused) else f"cannot read it: {exc.strerror}"
        with transaction.atomic():
            audit_record(
                action="evidence.acquire",
                actor=actor,
                outcome="denied",
                target_type="case",
                target_id=case.pk,
                case_id=case.pk,
                details={"reason": reason, "device": Tagged("path", device)},
            )
        raise ServiceError(f"Acquisition refused: {reason}.", code="acquire_refused") from exc
    declared = normalise_declared_hashes({"md5": declared_md5, "sha1": declared_sha1, "sha256": declared_sha256})
    evidence = evidence_register(
        actor=actor,
        case=case,
        label=label or resolved.path.name,
        kind=kind or EvidenceKind.DISK_IMAGE,
        description=description,
        seized_from=seized_from,
        seized_by=seized_by,
        seized_at=seized_at,
        source=EvidenceSource.LOCAL_DEVICE,
        original_name=str(resolved.path),
        declared_size=resolved.size,
        declared_md5=declared.get("md5", ""),
        declared_sha1=declared.get("sha1", ""),
        declared_sha256=declared.get("sha256", ""),
        recorded=recorded,
    )
    with transaction.atomic():
        evidence.state = EvidenceState.RECEIVING
        evidence.format, evidence.format_details = detected_format, format_details
        evidence.size = resolved.size
        evidence.intake_paths = [str(resolved.path)]
        evidence.save(update_fields=["state", "format", "format_details", "size", "intake_paths"])
        audit_record(
            action="evidence.acquire.start",
            actor=actor,
            target_type="evidence",
            target_id=evidence.pk,
            case_id=evidence.case_id,
            details={
                "device": Tagged("path", str(resolved.path)),
                "block_device": resolved.is_device,
                "size": resolved.size,
                "read_retries": settings.CUSTODIA_ACQUIRE_READ_RETRIES,
            },
        )
        if queue:
            queue_intake(evidence=evidence)
    return evidence


def _detect(path: Path, *, size: int) -> tuple[str, dict]:
    """The format from the first and last bytes (read-only); a device that is no known image is raw."""
    source = source_opener(path)
    try:
        head = source.pread(min(PROBE_BYTES, size), 0)
        tail = source.pread(min(PROBE_BYTES, size), max(0, size - PROBE_BYTES))
    except OSError:
        return "raw", {"probe": "unreadable"}  # a damaged first or last sector: the seal records it
    finally:
        _close(source)
    try:
        detected = detect_format(head=head, tail=tail, name=path.name)
    except FormatError:
        return "raw", {}
    return str(detected.format), dict(detected.details)


def _close(source: PositionalSource) -> None:
    close = getattr(source, "close", None)
    if close is not None:
        close()


@dataclass
class IntakeSource:
    """The stream a worker seals, with the facts it adds to the manifest before and after reading."""

    stream: BinaryIO
    facts: dict[str, Any] = field(default_factory=dict)
    reader: RecoveringReader | None = None

    def facts_after_reading(self) -> Mapping[str, Any]:
        return {"read_errors": self.read_errors()} if self.reader is not None else {}

    def read_errors(self) -> list[dict]:
        return [dict(error) for error in self.reader.errors] if self.reader is not None else []


@contextlib.contextmanager
def open_intake_source(*, evidence: Evidence) -> Iterator[IntakeSource]:
    """Open what ``evidence`` is acquired from, checking the path again (roots or devices may have changed
    since it was queued) and that its size is still the one registered."""
    paths = [Path(path) for path in evidence.intake_paths]
    if not paths:
        raise ServiceError("Nothing to read: this evidence names no source.", code="import_failed")
    try:
        if evidence.source == EvidenceSource.LOCAL_DEVICE:
            resolved = resolve_acquisition_path(
                path=str(paths[0]),
                roots=list(settings.CUSTODIA_IMPORT_ROOTS),
                devices=list(settings.CUSTODIA_ACQUIRE_DEVICES),
            )
            paths = [resolved.path]
        else:
            paths = [resolve_import_path(path=str(path), roots=list(settings.CUSTODIA_IMPORT_ROOTS)) for path in paths]
    except ImportPathRefused as exc:
        raise ServiceError(f"The source is no longer allowed: {exc.reason}.", code="import_refused") from exc
    if evidence.source == EvidenceSource.LOCAL_DEVICE:
        positional = source_opener(paths[0])
        try:
            reader = RecoveringReader(
                source=positional,
                size=evidence.size or 0,
                retries=settings.CUSTODIA_ACQUIRE_READ_RETRIES,
                retry_delay=settings.CUSTODIA_ACQUIRE_RETRY_DELAY_MS / 1000,
                block_size=evidence.chunk_size,
            )
            yield IntakeSource(
                stream=reader,  # type: ignore[arg-type]  # a RawIOBase read once, start to end
                facts={"acquired": "local_device", "read_retries": reader.retries, "sector_size": 512},
                reader=reader,
            )
        finally:
            _close(positional)
        return
    with SegmentedReader(paths) as segmented:
        if segmented.size != evidence.size:
            raise ServiceError(
                f"The image changed since it was queued: {segmented.size} bytes, {evidence.size} registered.",
                code="import_failed",
            )
        sizes = [end - start for _, start, end in segmented.segments]
        yield IntakeSource(stream=segmented, facts={"segment_sizes": sizes})  # type: ignore[arg-type]


def record_read_errors(*, actor: User | None, evidence: Evidence, read_errors: list[dict]) -> None:
    """One custody-critical audit row per zero-filled range, in the caller's (sealing) transaction."""
    for error in read_errors:
        audit_record(
            action="evidence.acquire.read_error",
            actor=actor,
            outcome="failed",
            target_type="evidence",
            target_id=evidence.pk,
            case_id=evidence.case_id,
            details=dict(error),
        )
