"""Signing and storing checkpoints (the formats and interfaces are in ``audit.checkpoints``).

``checkpoint_write`` runs right after a custody-critical event commits, every
``CUSTODIA_AUDIT_CHECKPOINT_EVENTS`` events, and in the periodic task (``CUSTODIA_AUDIT_CHECKPOINT_SECONDS``).
It never fails the request that triggered it: a failure is logged and the periodic task catches up.
Writers are serialised by a lock (a PostgreSQL advisory lock, or SQLite's write lock) taken before the
next number is chosen, and the archive is asked first whether that number is taken, so no checkpoint
number is ever signed twice; the archive's write-once ``put`` is the last guard.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.chain import GENESIS_HASH, canonical_time
from audit.checkpoints import (
    CASE_CHECKPOINT_FORMAT,
    CHECKPOINT_FORMAT,
    CheckpointArchive,
    CheckpointError,
    CheckpointMissing,
    CheckpointSigner,
    canonical_bytes,
    case_statements_digest,
    checkpoint_name,
    get_archive,
    get_signer,
    key_fingerprint,
    signed_entry,
)
from audit.models import AuditCaseCheckpoint, AuditCheckpoint, AuditEvent
from audit.verify import verify_segment

logger = logging.getLogger(__name__)

# Not the chain's lock (audit.services): checkpoint writers wait for each other, never for event writers.
_CHECKPOINT_LOCK_KEY = 0x43484B50  # "CHKP"


# --- writing --------------------------------------------------------------------------------------


def _lock_checkpoint_writers() -> None:
    # On SQLite the IMMEDIATE transaction already holds the database's write lock.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHECKPOINT_LOCK_KEY])


def _case_heads(*, after_sequence: int, head_sequence: int) -> list[dict]:
    """The head of each case chain that advanced in (after_sequence, head_sequence], by case id."""
    last_sequences = (
        AuditEvent.objects.filter(sequence__gt=after_sequence, sequence__lte=head_sequence, case_id__isnull=False)
        .values("case_id")
        .annotate(last=Max("sequence"))
        .values_list("last", flat=True)
    )
    return [
        dict(head)
        for head in AuditEvent.objects.filter(sequence__in=list(last_sequences))
        .order_by("case_id")
        .values("case_id", "case_sequence", "case_hash")
    ]


def _segment_intact(*, after: AuditCheckpoint | None, head_sequence: int) -> str:
    """Refuse to sign over a chain that no longer matches the checkpoint before (a rewrite) or does not
    link up since (a problem ``audit_verify`` names in full). Returns the problem, or ''."""
    return verify_segment(
        after_sequence=after.sequence if after else 0,
        after_hash=after.hash if after else GENESIS_HASH,
        head_sequence=head_sequence,
    )


def record_checkpoint(document: bytes) -> AuditCheckpoint:
    """Put a checkpoint document read from the archive into the index table (idempotent)."""
    parsed = json.loads(document)
    statement_text = parsed["global"]["statement"]
    statement = json.loads(statement_text)
    digest = hashlib.sha256(statement_text.encode("utf-8")).hexdigest()
    checkpoint, created = AuditCheckpoint.objects.get_or_create(
        number=statement["checkpoint"],
        defaults={
            "sequence": statement["sequence"],
            "hash": statement["hash"],
            "signed_at": parse_datetime(statement["signed_at"]),
            "statement_digest": digest,
            "algorithm": parsed["global"]["algorithm"],
            "key_fingerprint": statement["key_fingerprint"],
        },
    )
    if created:
        AuditCaseCheckpoint.objects.bulk_create(
            [
                AuditCaseCheckpoint(
                    checkpoint=checkpoint,
                    case_id=case_statement["case"],
                    case_sequence=case_statement["case_sequence"],
                    case_hash=case_statement["case_hash"],
                    statement_digest=hashlib.sha256(entry["statement"].encode("utf-8")).hexdigest(),
                )
                for entry in parsed["cases"]
                for case_statement in [json.loads(entry["statement"])]
            ]
        )
    return checkpoint


def checkpoint_write(
    *, signer: CheckpointSigner | None = None, archive: CheckpointArchive | None = None
) -> AuditCheckpoint | None:
    """Sign the chain head as the next checkpoint and store it; None when nothing happened since the last
    one. Raises CheckpointError when the chain since the last checkpoint does not verify, or the signer
    or the archive fails."""
    signer = signer or get_signer()
    archive = archive or get_archive()
    with transaction.atomic():
        _lock_checkpoint_writers()
        while True:
            last = AuditCheckpoint.objects.order_by("-number").first()
            number = last.number + 1 if last else 1
            name = checkpoint_name(number)
            try:
                stored = archive.get(name)
            except CheckpointMissing:
                break
            # The archive is ahead of the index (a writer died between the two, or index rows were
            # removed): the archive is the authority, so index what it holds and move on.
            record_checkpoint(stored)
        head = AuditEvent.objects.order_by("-sequence").values("sequence", "hash").first()
        if head is None or (last is not None and head["sequence"] <= last.sequence):
            return None
        problem = _segment_intact(after=last, head_sequence=head["sequence"])
        if problem:
            raise CheckpointError(f"not signing checkpoint {number}: {problem}")
        public_key = signer.public_key_bytes()
        fingerprint = key_fingerprint(public_key)
        signed_at = canonical_time(timezone.now())
        case_entries = []
        for case_head in _case_heads(after_sequence=last.sequence if last else 0, head_sequence=head["sequence"]):
            case_statement = canonical_bytes(
                {
                    "format": CASE_CHECKPOINT_FORMAT,
                    "checkpoint": number,
                    "case": case_head["case_id"],
                    "case_sequence": case_head["case_sequence"],
                    "case_hash": case_head["case_hash"],
                    "signed_at": signed_at,
                    "key_fingerprint": fingerprint,
                }
            )
            case_entries.append(signed_entry(signer, case_statement))
        statement = canonical_bytes(
            {
                "format": CHECKPOINT_FORMAT,
                "checkpoint": number,
                "sequence": head["sequence"],
                "hash": head["hash"],
                "signed_at": signed_at,
                "previous": last.statement_digest if last else GENESIS_HASH,
                "cases_digest": case_statements_digest([entry["statement"] for entry in case_entries]),
                "key_fingerprint": fingerprint,
            }
        )
        document = canonical_bytes({"global": signed_entry(signer, statement), "cases": case_entries})
        archive.put(name, document)
        return record_checkpoint(document)


def checkpoint_after_commit() -> None:
    """The on-commit hook of ``audit_record``: sign the committed head, never failing the request."""
    try:
        checkpoint_write()
    except Exception:  # any failure here must not fail a request that already committed
        logger.exception("audit checkpoint failed; the periodic checkpoint task will catch up")


def schedule_checkpoint(*, on_commit: Callable[[Callable[[], None]], None] = transaction.on_commit) -> None:
    on_commit(checkpoint_after_commit)
