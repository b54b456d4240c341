"""What a custody report says about the audit chain that holds its events.

``chain_facts`` is the one function the report builder asks: the case's chain head when the report was
produced (its newest event: global sequence and hash, and its place in the case's own chain), every signed
checkpoint statement that covers the case (read from the write-once archive, as the export carries them),
and the fingerprint of the key that signs checkpoints now — the one an expert compares with
``GET /api/audit/public-key`` before running ``audit/offline_verify.py``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from audit.chain import canonical_time
from audit.checkpoints import CheckpointError, case_checkpoint_entries, signer_public_key
from audit.models import AuditEvent


@dataclass(frozen=True)
class CheckpointFacts:
    """One signed checkpoint statement that covers the case (CONTRACT15: ``custodia-case-checkpoint/1``)."""

    number: int
    case_sequence: int
    case_hash: str
    signed_at: str  # canonical UTC time, as signed
    signature: str  # standard base64
    key_fingerprint: str  # sha256 hex of the public key bytes


@dataclass(frozen=True)
class ChainFacts:
    """The chain head of a case when the report was produced, and the checkpoints that cover it."""

    head_sequence: int | None  # the global sequence of the case's newest event (None: no event yet)
    head_hash: str  # that event's global hash
    head_occurred_at: str  # that event's time, canonical UTC
    # The head's place in the case's own chain (docs/audit.md).
    head_case_sequence: int | None = None
    head_case_hash: str = ""
    checkpoints: tuple[CheckpointFacts, ...] = field(default_factory=tuple)
    public_key_fingerprint: str = ""

    def as_dict(self) -> dict:
        facts = asdict(self)
        facts["checkpoints"] = [asdict(checkpoint) for checkpoint in self.checkpoints]
        return facts


def chain_facts(*, case_id: int) -> ChainFacts:
    """The chain facts of one case, read before the report's own audit row is written."""
    head = (
        AuditEvent.objects.filter(case_id=case_id)
        .order_by("-sequence")
        .values("sequence", "hash", "occurred_at", "case_sequence", "case_hash")
        .first()
    )
    if head is None:
        return ChainFacts(head_sequence=None, head_hash="", head_occurred_at="")
    return ChainFacts(
        head_sequence=head["sequence"],
        head_hash=head["hash"],
        head_occurred_at=canonical_time(head["occurred_at"]),
        head_case_sequence=head["case_sequence"],
        head_case_hash=head["case_hash"] or "",
        checkpoints=_checkpoints(case_id=case_id, through_case_sequence=head["case_sequence"]),
        public_key_fingerprint=_signing_key_fingerprint(),
    )


def _checkpoints(*, case_id: int, through_case_sequence: int | None) -> tuple[CheckpointFacts, ...]:
    facts = []
    for entry in case_checkpoint_entries(case_id=case_id, through_case_sequence=through_case_sequence):
        statement = json.loads(entry["statement"])
        facts.append(
            CheckpointFacts(
                number=statement["checkpoint"],
                case_sequence=statement["case_sequence"],
                case_hash=statement["case_hash"],
                signed_at=statement["signed_at"],
                signature=entry["signature"],
                key_fingerprint=entry["key_fingerprint"] or "",
            )
        )
    return tuple(facts)


def _signing_key_fingerprint() -> str:
    try:
        return signer_public_key().fingerprint
    except CheckpointError:  # no signing key configured: the report says so by leaving it empty
        return ""
