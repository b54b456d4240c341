"""Walk the chains and name the first place where the trail is broken.

``verify_chain`` re-hashes the global chain and every case chain in the database. ``verify_trail`` does
that against the signed checkpoints read from the archive (the authority, not the index table), and
also checks that the append-only triggers are in place: what ``manage.py audit_verify``, the scheduled
check and the audit page report. A plain hash chain is only as good as the last hash someone outside
the database holds: the checkpoints are those hashes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection

from audit.actions import is_custody_critical
from audit.chain import GENESIS_HASH, HASHED_FIELDS, canonical_json, link_hash, row_hash
from audit.checkpoints import CheckpointError, read_archive, signer_public_key
from audit.models import AuditEvent

ROW_FIELDS = (*HASHED_FIELDS, "prev_hash", "hash", "case_sequence", "case_prev_hash", "case_hash")


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    first_bad_sequence: int | None = None
    problem: str = ""
    # Filled by verify_trail: the newest checkpoint the trail was verified against, and what lies after it.
    checkpoint: int | None = None
    checkpoint_sequence: int | None = None
    not_checkpointed: int | None = None

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "events": self.events,
            "first_bad_sequence": self.first_bad_sequence,
            "problem": self.problem,
            "checkpoint": self.checkpoint,
            "checkpoint_sequence": self.checkpoint_sequence,
            "not_checkpointed": self.not_checkpointed,
        }

    def summary(self) -> str:
        """The one line ``audit_verify`` prints."""
        if not self.ok:
            where = f" at sequence {self.first_bad_sequence}" if self.first_bad_sequence is not None else ""
            return f"BROKEN{where}: {self.problem}"
        if self.not_checkpointed is None:
            return f"OK {self.events} events"
        if self.checkpoint is None:
            return f"OK {self.events} events, no checkpoint yet; not yet checkpointed: {self.not_checkpointed} rows"
        return (
            f"OK {self.events} events, checkpoint {self.checkpoint} at sequence {self.checkpoint_sequence}; "
            f"not yet checkpointed: {self.not_checkpointed} rows"
        )


class _Broken(Exception):
    def __init__(self, sequence: int | None, problem: str) -> None:
        super().__init__(problem)
        self.sequence = sequence
        self.problem = problem


def _original_sequence(row: dict, reach: int = 64) -> int | None:
    """A row moved to another place still hashes right under its old number: find it nearby."""
    for delta in range(1, reach + 1):
        for candidate in (row["sequence"] - delta, row["sequence"] + delta):
            if candidate > 0 and row_hash({**row, "sequence": candidate}, row["prev_hash"]) == row["hash"]:
                return candidate
    return None


@dataclass
class _Walk:
    """The state of one pass over the rows in sequence order."""

    expected_sequence: int = 1
    previous_hash: str = GENESIS_HASH
    count: int = 0
    # case id -> (case_sequence, case_hash) of its last event so far; None: do not check the case chains
    case_heads: dict[int, tuple[int, str]] | None = None
    # sequence -> (checkpoint number, hash it signed); (case, case_sequence) -> (number, case_hash)
    signed_heads: dict[int, tuple[int, str]] | None = None
    signed_case_heads: dict[tuple[int, int], tuple[int, str]] | None = None
    # custody-critical rows after this sequence are not covered by any checkpoint
    covered_through: int | None = None
    uncovered_critical: tuple[int, str] | None = None

    def step(self, row: dict) -> None:
        sequence = row["sequence"]
        if sequence != self.expected_sequence:
            kind = "gap" if sequence > self.expected_sequence else "reordering"
            raise _Broken(
                self.expected_sequence if kind == "gap" else sequence,
                f"{kind}: expected sequence {self.expected_sequence}, found {sequence}",
            )
        canonical = canonical_json(row)
        if link_hash(row["prev_hash"], canonical) != row["hash"]:
            written_as = _original_sequence(row)
            if written_as is not None:
                raise _Broken(sequence, f"reordering: the row at {sequence} was written as sequence {written_as}")
            raise _Broken(sequence, "edited row: its content does not match its hash")
        if row["prev_hash"] != self.previous_hash:
            raise _Broken(sequence, "broken link: prev_hash does not match the hash of the row before")
        if self.signed_heads is not None and sequence in self.signed_heads:
            number, signed_hash = self.signed_heads[sequence]
            if signed_hash != row["hash"]:
                raise _Broken(
                    sequence,
                    f"rewritten: checkpoint {number} signed another hash for this row "
                    "(a row up to here was changed and the hashes after it recomputed)",
                )
        if self.case_heads is not None and "case_sequence" in row:
            self._step_case(row, canonical)
        if (
            self.covered_through is not None
            and self.uncovered_critical is None
            and sequence > self.covered_through
            and is_custody_critical(row["action"], row["details"])
        ):
            self.uncovered_critical = (sequence, row["action"])
        self.previous_hash = row["hash"]
        self.expected_sequence += 1
        self.count += 1

    def _step_case(self, row: dict, canonical: bytes) -> None:
        assert self.case_heads is not None  # nosec B101 # narrows the type for mypy; step() checks it first
        sequence, case_id = row["sequence"], row["case_id"]
        if case_id is None:
            if row["case_sequence"] is not None or row["case_hash"]:
                raise _Broken(sequence, "case chain: a row without a case carries case links")
            return
        last_sequence, last_hash = self.case_heads.get(case_id, (0, GENESIS_HASH))
        if row["case_sequence"] != last_sequence + 1:
            raise _Broken(
                sequence,
                f"case chain of case {case_id}: expected case sequence {last_sequence + 1}, "
                f"found {row['case_sequence']}",
            )
        if row["case_prev_hash"] != last_hash:
            raise _Broken(
                sequence, f"case chain of case {case_id}: case_prev_hash does not match the case's row before"
            )
        if link_hash(last_hash, canonical) != row["case_hash"]:
            raise _Broken(sequence, f"case chain of case {case_id}: the row does not match its case hash")
        if self.signed_case_heads is not None:
            signed = self.signed_case_heads.pop((case_id, row["case_sequence"]), None)
            if signed is not None and signed[1] != row["case_hash"]:
                raise _Broken(
                    sequence,
                    f"rewritten: checkpoint {signed[0]} signed another case hash for case {case_id} "
                    f"event {row['case_sequence']}",
                )
        self.case_heads[case_id] = (row["case_sequence"], row["case_hash"])


def verify_rows(rows: Iterable[dict]) -> ChainReport:
    """Verify rows in sequence order. Each row is a dict with the hashed fields, ``prev_hash`` and ``hash``,
    and, when it has them, the case links (``case_sequence``, ``case_prev_hash``, ``case_hash``)."""
    walk = _Walk(case_heads={})
    try:
        for row in rows:
            walk.step(row)
    except _Broken as broken:
        return ChainReport(False, walk.count, broken.sequence, broken.problem)
    return ChainReport(True, walk.count)


def database_rows(*, after: int = 0, through: int | None = None, batch_size: int = 5000) -> Iterator[dict]:
    """The rows of the trail after sequence ``after`` (up to ``through``), read in batches so memory stays flat.

    Read through the bare DB-API cursor, not the ORM: at a million rows Django's per-row conversions cost
    as much as the hashing. The two values the ORM would convert are converted here, exactly as the writer
    hashed them: the time (SQLite returns its stored text) and the details (SQLite returns JSON text)."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(name) for name in ROW_FIELDS)  # plain fields: each column is named as its field
    table, sequence = quote(AuditEvent._meta.db_table), quote("sequence")
    bound = f" AND {sequence} <= %s" if through is not None else ""
    sql = f"SELECT {columns} FROM {table} WHERE {sequence} > %s{bound} ORDER BY {sequence} LIMIT %s"  # noqa: S608 - the model's own names
    last = after
    with connection.cursor() as cursor:
        while True:
            cursor.execute(sql, [last, through, batch_size] if through is not None else [last, batch_size])
            chunk = cursor.fetchall()
            if not chunk:
                return
            for values in chunk:
                row = dict(zip(ROW_FIELDS, values, strict=True))
                row["occurred_at"] = _stored_time(row["occurred_at"])
                if isinstance(row["details"], str):
                    row["details"] = json.loads(row["details"])
                yield row
            last = chunk[-1][0]


def _stored_time(value: datetime | str) -> datetime:
    """The event time as the ORM would give it: SQLite stores UTC as text without a zone."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def verify_chain(*, batch_size: int = 5000) -> ChainReport:
    """Verify the global chain and every case chain in the database (not against the checkpoints)."""
    return verify_rows(database_rows(batch_size=batch_size))


def verify_segment(*, after_sequence: int, after_hash: str, head_sequence: int) -> str:
    """'' when the row at ``after_sequence`` still has ``after_hash`` and the rows after it up to
    ``head_sequence`` link up; otherwise the problem (the checkpoint writer's check before it signs)."""
    if after_sequence:
        at = AuditEvent.objects.filter(sequence=after_sequence).values_list("hash", flat=True).first()
        if at != after_hash:
            return f"the row at sequence {after_sequence} no longer has the hash the last checkpoint signed"
    walk = _Walk(expected_sequence=after_sequence + 1, previous_hash=after_hash)
    try:
        for row in database_rows(after=after_sequence, through=head_sequence):
            walk.step(row)
    except _Broken as broken:
        return f"sequence {broken.sequence}: {broken.problem}"
    return ""


def verify_trail(*, batch_size: int = 5000) -> ChainReport:
    """Verify the database against the signed checkpoints in the archive and the append-only triggers.
    Rows after the newest checkpoint are counted as not yet checkpointed, never reported as verified."""
    try:
        archive = read_archive(keys=[signer_public_key()])
    except CheckpointError as error:
        return ChainReport(False, 0, None, f"checkpoints: cannot read the archive: {error}")
    except Exception as error:  # a key store or store outage is reported, not raised
        return ChainReport(False, 0, None, f"checkpoints: cannot read them ({type(error).__name__}: {error})")
    checkpoints = archive.checkpoints
    newest = checkpoints[-1] if checkpoints else None
    walk = _Walk(
        case_heads={},
        signed_heads={cp.statement["sequence"]: (cp.number, cp.statement["hash"]) for cp in checkpoints},
        signed_case_heads={
            (entry["statement"]["case"], entry["statement"]["case_sequence"]): (
                cp.number,
                entry["statement"]["case_hash"],
            )
            for cp in checkpoints
            for entry in cp.cases
        },
        covered_through=newest.statement["sequence"] if newest else 0,
    )
    try:
        for row in database_rows(batch_size=batch_size):
            walk.step(row)
    except _Broken as broken:
        return ChainReport(False, walk.count, broken.sequence, broken.problem)
    events = walk.count
    if archive.problem:
        return ChainReport(False, events, None, archive.problem)
    if newest is not None and newest.statement["sequence"] > events:
        return ChainReport(
            False,
            events,
            events + 1,
            f"tail truncated: checkpoint {newest.number} signed sequence {newest.statement['sequence']}, "
            f"but the trail ends at sequence {events}",
        )
    if walk.signed_case_heads:
        (case_id, case_sequence), (number, _) = min(walk.signed_case_heads.items(), key=lambda item: item[1][0])
        return ChainReport(
            False,
            events,
            None,
            f"case chain of case {case_id} truncated: checkpoint {number} signed its event {case_sequence}, "
            "which is not in the trail",
        )
    if walk.uncovered_critical is not None:
        sequence, action = walk.uncovered_critical
        return ChainReport(
            False,
            events,
            sequence,
            f"unsigned custody-critical event: no checkpoint covers this {action} "
            "(a forged row, or its checkpoint failed: run manage.py audit_checkpoint once the store is back)",
        )
    trigger_problem = append_only_trigger_problem()
    if trigger_problem:
        return ChainReport(False, events, None, trigger_problem)
    covered = newest.statement["sequence"] if newest else 0
    return ChainReport(
        True,
        events,
        checkpoint=newest.number if newest else None,
        checkpoint_sequence=covered if newest else None,
        not_checkpointed=events - covered,
    )


# The triggers of audit/migrations/0002 (and 0003, which recreates them): name -> the events it refuses.
SQLITE_TRIGGERS = ("audit_event_no_update", "audit_event_no_delete")
POSTGRES_TRIGGERS = ("audit_event_no_update_delete", "audit_event_no_truncate")


def append_only_trigger_problem() -> str:
    """'' when every append-only trigger of the audit table is present and enabled, else what is wrong."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'audit_auditevent'::regclass "
                "AND NOT tgisinternal"
            )
            found = {name: enabled for name, enabled in cursor.fetchall()}
            missing = [name for name in POSTGRES_TRIGGERS if name not in found]
            # tgenabled: 'O' fires in origin mode (the default), 'A' always; 'D' disabled; 'R' replica only.
            disabled = [name for name in POSTGRES_TRIGGERS if found.get(name) in ("D", "R")]
        elif connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_auditevent'")
            found_names = {name for (name,) in cursor.fetchall()}
            missing = [name for name in SQLITE_TRIGGERS if name not in found_names]
            disabled = []
        else:
            return f"append-only triggers: unknown on {connection.vendor}"
    if missing:
        return f"append-only triggers missing: {', '.join(missing)} (the audit table accepts UPDATE or DELETE)"
    if disabled:
        return f"append-only triggers disabled: {', '.join(disabled)} (the audit table accepts UPDATE or DELETE)"
    return ""
