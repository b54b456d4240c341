"""What a custody report says about the audit chain that holds its events: THE SEAM to the checkpoints.

``chain_facts`` is the one function the report builder asks. Today it fills the head only (the case's
newest event: its global sequence and hash) and an empty checkpoint list. When the signed checkpoints and
the per-case chains land (issue #15, items 1 and 3), this function — and nothing else in the report — is
changed to add: the head's ``case_sequence`` and ``case_hash``, every checkpoint statement that covers
the case (number, case sequence, case hash, signing time, signature, key fingerprint) and the
fingerprint of the organisation's public key. The builder, the JSON and the PDF already carry those
fields, so the report shows them as soon as they are filled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from audit.chain import canonical_time
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
    # The case's own chain (CONTRACT15): filled once per-case chains exist; None/"" until then.
    head_case_sequence: int | None = None
    head_case_hash: str = ""
    checkpoints: tuple[CheckpointFacts, ...] = field(default_factory=tuple)
    public_key_fingerprint: str = ""

    def as_dict(self) -> dict:
        facts = asdict(self)
        facts["checkpoints"] = [asdict(checkpoint) for checkpoint in self.checkpoints]
        return facts


def chain_facts(*, case_id: int) -> ChainFacts:
    """The chain facts of one case, read before the report's own audit row is written (the seam: see the
    module's docstring)."""
    head = (
        AuditEvent.objects.filter(case_id=case_id)
        .order_by("-sequence")
        .values("sequence", "hash", "occurred_at")
        .first()
    )
    if head is None:
        return ChainFacts(head_sequence=None, head_hash="", head_occurred_at="")
    return ChainFacts(
        head_sequence=head["sequence"], head_hash=head["hash"], head_occurred_at=canonical_time(head["occurred_at"])
    )
