"""Key escrow: custodians attach secrets (BitLocker, LUKS, document passwords) to evidence. The value goes to
the key store; the database keeps a reference, a name and tags. Revealing a value is its own audited act."""

from __future__ import annotations

from django.db import transaction

from audit.privacy import Tagged
from audit.services import audit_record
from cases import permissions as perms
from cases.models import User
from custodia.errors import ServiceError
from evidence.keystore.base import KeyStoreError, get_keystore
from evidence.models import Evidence, KeyEscrow, SecretKind
from evidence.selectors import evidence_get

MAX_SECRET_BYTES = 64 * 1024  # a BEK file is 100-odd bytes; passwords are shorter still


@transaction.atomic
def secret_escrow(
    *, actor: User, evidence: Evidence, kind: str, name: str, value: bytes, tags: dict[str, str] | None = None
) -> KeyEscrow:
    evidence = evidence_get(user=actor, evidence_id=evidence.pk, permission=perms.REGISTER_EVIDENCE)
    if kind not in SecretKind.values:
        raise ServiceError(f"kind must be one of {', '.join(SecretKind.values)}.")
    if not name.strip():
        raise ServiceError("name: say what the secret opens, e.g. 'C: volume recovery password'.")
    if not value:
        raise ServiceError("value: the secret is empty.")
    if len(value) > MAX_SECRET_BYTES:
        raise ServiceError(f"value: a secret may be at most {MAX_SECRET_BYTES} bytes.")
    tags = {str(k)[:64]: str(v)[:256] for k, v in (tags or {}).items()}
    try:
        escrowed = get_keystore().put_secret(value, tags={**tags, "evidence": str(evidence.pk), "kind": kind})
    except KeyStoreError as exc:
        raise ServiceError(
            "The key store could not keep the secret.", code="keystore_unavailable", status_code=503
        ) from exc
    secret = KeyEscrow.objects.create(
        evidence=evidence, kind=kind, name=name.strip()[:200], reference=escrowed.reference, tags=tags, created_by=actor
    )
    audit_record(
        action="evidence.secret.escrow",
        actor=actor,
        target_type="evidence",
        target_id=evidence.pk,
        case_id=evidence.case_id,
        details={"secret_id": secret.pk, "kind": kind, "name": Tagged("evidence_label", secret.name), "tags": tags},
    )
    return secret


@transaction.atomic
def secret_reveal(*, actor: User, secret: KeyEscrow) -> bytes:
    """The value of an escrowed secret, for a role allowed to see it; every reveal is audited."""
    evidence_get(user=actor, evidence_id=secret.evidence_id, permission=perms.REVEAL_SECRETS)
    try:
        value = get_keystore().get_secret(secret.reference)
    except KeyStoreError as exc:
        raise ServiceError(
            "The key store could not return the secret.", code="keystore_unavailable", status_code=503
        ) from exc
    audit_record(
        action="evidence.secret.reveal",
        actor=actor,
        target_type="evidence",
        target_id=secret.evidence_id,
        case_id=secret.evidence.case_id,
        details={"secret_id": secret.pk, "kind": secret.kind, "name": Tagged("evidence_label", secret.name)},
    )
    return value


def secret_values_for_extraction(*, evidence: Evidence) -> list[dict]:
    """Secrets for the extraction engine (a system actor, audited by the caller's run)."""
    values = []
    for secret in KeyEscrow.objects.filter(evidence=evidence).order_by("pk"):
        try:
            values.append({"kind": secret.kind, "value": get_keystore().get_secret(secret.reference), "id": secret.pk})
        except KeyStoreError:
            continue
    return values
