"""Walk the chain and name the first place where it is broken."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from audit.chain import GENESIS_HASH, HASHED_FIELDS, row_hash
from audit.models import AuditEvent


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    first_bad_sequence: int | None = None
    problem: str = ""

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "events": self.events,
            "first_bad_sequence": self.first_bad_sequence,
            "problem": self.problem,
        }


def _original_sequence(row: dict, reach: int = 64) -> int | None:
    """A row moved to another place still hashes right under its old number: find it nearby."""
    for delta in range(1, reach + 1):
        for candidate in (row["sequence"] - delta, row["sequence"] + delta):
            if candidate > 0 and row_hash({**row, "sequence": candidate}, row["prev_hash"]) == row["hash"]:
                return candidate
    return None


def verify_rows(rows: Iterable[dict]) -> ChainReport:
    """Verify rows in sequence order. Each row is a dict with the hashed fields, ``prev_hash`` and ``hash``."""
    expected_sequence = 1
    previous_hash = GENESIS_HASH
    count = 0
    for row in rows:
        sequence = row["sequence"]
        if sequence != expected_sequence:
            kind = "gap" if sequence > expected_sequence else "reordering"
            return ChainReport(
                False,
                count,
                expected_sequence if kind == "gap" else sequence,
                f"{kind}: expected sequence {expected_sequence}, found {sequence}",
            )
        if row_hash(row, row["prev_hash"]) != row["hash"]:
            written_as = _original_sequence(row)
            if written_as is not None:
                return ChainReport(
                    False, count, sequence, f"reordering: the row at {sequence} was written as sequence {written_as}"
                )
            return ChainReport(False, count, sequence, "edited row: its content does not match its hash")
        if row["prev_hash"] != previous_hash:
            return ChainReport(
                False, count, sequence, "broken link: prev_hash does not match the hash of the row before"
            )
        previous_hash = row["hash"]
        expected_sequence += 1
        count += 1
    return ChainReport(True, count)


def verify_chain(*, batch_size: int = 5000) -> ChainReport:
    """Verify the whole chain in the database, reading in batches so memory stays flat."""

    def rows():
        last = 0
        fields = (*HASHED_FIELDS, "prev_hash", "hash")
        while True:
            chunk = list(AuditEvent.objects.filter(sequence__gt=last).order_by("sequence").values(*fields)[:batch_size])
            if not chunk:
                return
            yield from chunk
            last = chunk[-1]["sequence"]

    return verify_rows(rows())
