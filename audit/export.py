"""A case's audit trail as JSON lines, for the offline verifier (CONTRACT: "Case export").

One header line (the case and the public keys), every event of the case in case-chain order with its
hashes, then every case statement of the checkpoints that cover those events, with its signature. A
case's export carries its own events and statements only: nothing of another case or organisation.
The lines are built lazily and the events read in batches, so a long trail streams in flat memory and
no transaction (nor SQLite's write lock) is held while it goes out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.utils import timezone

from audit.chain import HASHED_FIELDS, canonical_time
from audit.checkpoints import case_checkpoint_entries, signer_public_key
from audit.models import AuditEvent

EXPORT_FORMAT = "custodia-audit-export/1"


def _line(value: dict) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def case_export_lines(
    *, case_id: int, case_reference: str, through_sequence: int | None = None, batch_size: int = 2000
) -> Iterator[str]:
    """The export of one case, line by line. ``through_sequence`` bounds it at a global sequence (the
    export's own audit row), so rows appended while it streams are left for the next export."""
    yield _line(
        {
            "type": "export",
            "format": EXPORT_FORMAT,
            "case": {"id": case_id, "reference": case_reference},
            "exported_at": canonical_time(timezone.now()),
            "keys": [signer_public_key().as_dict()],
        }
    )
    events = AuditEvent.objects.filter(case_id=case_id, case_sequence__isnull=False)
    if through_sequence is not None:
        events = events.filter(sequence__lte=through_sequence)
    fields = (*HASHED_FIELDS, "prev_hash", "hash", "case_sequence", "case_prev_hash", "case_hash")
    last_case_sequence = 0
    while True:
        batch = list(
            events.filter(case_sequence__gt=last_case_sequence).order_by("case_sequence").values(*fields)[:batch_size]
        )
        if not batch:
            break
        for event in batch:
            row = {name: event[name] for name in HASHED_FIELDS}
            row["occurred_at"] = canonical_time(row["occurred_at"])
            yield _line(
                {
                    "type": "event",
                    "row": row,
                    "prev_hash": event["prev_hash"],
                    "hash": event["hash"],
                    "case_sequence": event["case_sequence"],
                    "case_prev_hash": event["case_prev_hash"],
                    "case_hash": event["case_hash"],
                }
            )
        last_case_sequence = batch[-1]["case_sequence"]
    for entry in case_checkpoint_entries(case_id=case_id, through_case_sequence=last_case_sequence):
        yield _line({"type": "checkpoint", **entry})
