"""Registering evidence: the item, its random UUID and its wrapped data key, before any byte arrives."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime

from django.db import transaction
from django.db.models import CharField

from audit.privacy import Tagged
from audit.services import audit_record
from cases import permissions as perms
from cases.models import Case, CaseStatus, User
from cases.selectors import case_get
from custodia.errors import ServiceError
from evidence.container.format import CHUNK_SIZE
from evidence.keystore.base import KeyStoreError, get_keystore
from evidence.models import RECORDED_FIELDS, Evidence, EvidenceKind, EvidenceSource
from evidence.storage.base import StoreError, get_store

HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
_HEX = re.compile(r"^[0-9a-f]*$")


def normalise_declared_hashes(declared: dict[str, str]) -> dict[str, str]:
    """Lower-case hex, of the right length per algorithm, or a clear error."""
    clean = {}
    for algorithm, value in declared.items():
        value = (value or "").strip().lower()
        if not value:
            continue
        if algorithm not in HASH_LENGTHS:
            raise ServiceError(f"Unknown hash algorithm {algorithm!r}: use md5, sha1 or sha256.")
        if len(value) != HASH_LENGTHS[algorithm] or not _HEX.match(value):
            raise ServiceError(f"declared_{algorithm} must be {HASH_LENGTHS[algorithm]} hexadecimal characters.")
        clean[algorithm] = value
    return clean


def recorded_facts(values: Mapping[str, object]) -> dict[str, str]:
    """The registration facts (exhibit, bag and seal numbers, make, model, serial number, acquisition tool
    and version, examiner: ``evidence.models.RECORDED_FIELDS``) found in ``values``, trimmed; a value too
    long for its field is an error. Other keys are ignored, so a form's or a command's options can be
    passed whole."""
    facts = {}
    for name, title in RECORDED_FIELDS.items():
        value = values.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ServiceError(f"{name}: give text.")
        value = value.strip()
        field = Evidence._meta.get_field(name)
        limit = field.max_length if isinstance(field, CharField) and field.max_length else 0
        if len(value) > limit:
            raise ServiceError(f"{name}: {title} is at most {limit} characters.")
        if value:
            facts[name] = value
    return facts


def pop_recorded_facts(data: dict) -> dict[str, str]:
    """Take the registration facts out of validated request data (the rest goes to the service as is)."""
    return recorded_facts({name: data.pop(name) for name in list(data) if name in RECORDED_FIELDS})


def _check_backends_ready() -> None:
    try:
        get_store().check_ready()
    except StoreError as exc:
        raise ServiceError(
            f"The evidence store cannot accept evidence: {exc}", code="store_unavailable", status_code=503
        ) from exc
    try:
        get_keystore().check_ready()
    except KeyStoreError as exc:
        raise ServiceError(
            f"The key store cannot be used: {exc}", code="keystore_unavailable", status_code=503
        ) from exc


@transaction.atomic
def evidence_register(
    *,
    actor: User,
    case: Case,
    label: str,
    kind: str,
    description: str = "",
    seized_from: str = "",
    seized_by: str = "",
    seized_at: datetime | None = None,
    declared_size: int | None = None,
    declared_md5: str = "",
    declared_sha1: str = "",
    declared_sha256: str = "",
    source: str = EvidenceSource.UPLOAD,
    original_name: str = "",
    recorded: Mapping[str, str] | None = None,
) -> Evidence:
    """Register an evidence item; ``recorded`` holds the lab's registration facts (``recorded_facts``)."""
    case = case_get(user=actor, case_id=case.pk, permission=perms.REGISTER_EVIDENCE)
    if case.status != CaseStatus.OPEN:
        raise ServiceError(f"Case {case.reference} is closed: open it again to register evidence.", code="conflict")
    if kind not in EvidenceKind.values:
        raise ServiceError(f"kind must be one of {', '.join(EvidenceKind.values)}.")
    if not label.strip():
        raise ServiceError("label: give the evidence a label.")
    if declared_size is not None and declared_size < 0:
        raise ServiceError("declared_size cannot be negative.")
    declared = normalise_declared_hashes({"md5": declared_md5, "sha1": declared_sha1, "sha256": declared_sha256})
    facts = recorded_facts(recorded or {})
    _check_backends_ready()
    data_key = os.urandom(32)
    try:
        wrapped = get_keystore().wrap_key(data_key)
    except KeyStoreError as exc:
        raise ServiceError(
            "The key store could not wrap the data key.", code="keystore_unavailable", status_code=503
        ) from exc
    finally:
        del data_key  # only the wrapped form is kept
    evidence = Evidence.objects.create(
        case=case,
        label=label.strip()[:200],
        kind=kind,
        description=description,
        seized_from=seized_from,
        seized_by=seized_by,
        seized_at=seized_at,
        source=source,
        original_name=original_name[:500],
        declared_size=declared_size,
        declared_md5=declared.get("md5", ""),
        declared_sha1=declared.get("sha1", ""),
        declared_sha256=declared.get("sha256", ""),
        chunk_size=CHUNK_SIZE,
        wrapped_key=wrapped.wrapped,
        key_id=wrapped.key_id,
        key_algorithm=wrapped.algorithm,
        registered_by=actor,
        **facts,
    )
    audit_record(
        action="evidence.register",
        actor=actor,
        target_type="evidence",
        target_id=evidence.pk,
        case_id=case.pk,
        details={
            "label": Tagged("evidence_label", evidence.label),
            "kind": kind,
            "source": source,
            "seized_from": Tagged("evidence_label", seized_from),
            "seized_by": Tagged("user", seized_by),
            "seized_at": seized_at,
            "declared_size": declared_size,
            "declared": declared,
            "recorded": facts,
            "key_id": wrapped.key_id,
        },
    )
    return evidence


def data_key_for(evidence: Evidence) -> bytes:
    """Unwrap the evidence's data key for the duration of one operation. Callers never keep or log it."""
    from evidence.keystore.base import WrappedKey

    try:
        return get_keystore().unwrap_key(
            WrappedKey(key_id=evidence.key_id, algorithm=evidence.key_algorithm, wrapped=bytes(evidence.wrapped_key))
        )
    except KeyStoreError as exc:
        raise ServiceError(
            "The key store could not unwrap this evidence's data key.", code="keystore_unavailable", status_code=503
        ) from exc
