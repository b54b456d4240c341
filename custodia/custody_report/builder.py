"""The custody report's data: one evidence item, or one case, as a JSON-ready dict (the PDF renders it).

The audit trail is read once, oldest first, in batches (``iterator``), and each event is sorted into the
sections it belongs to as it passes: building the report is linear in the number of events. Every time
is canonical UTC (``2026-12-04T23:59:59.123456Z``) and the report says so; the requester's own time zone,
when they chose one, is named beside it (``requester_time_zone``) without converting any time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Q

from audit.chain import canonical_time
from audit.models import AuditEvent, Outcome
from cases.models import Case, CaseMembership
from cases.times import is_time_zone, zone_offset_text
from custodia.custody_report.chain import ChainFacts
from evidence.models import Evidence, KeyEscrow
from search.models import ExtractionRun

REPORT_FORMAT = "custodia-custody-report/1"
TIME_ZONE = "UTC"
BATCH = 2000

# The event sections, in the order the report shows them, with their headings.
SECTIONS: dict[str, str] = {
    "acquisition": "Acquisition log",
    "verifications": "Verifications",
    "secret_events": "Escrowed secrets: escrow and reveal events",
    "extraction_events": "Extraction events",
    "byte_reads": "Reads of the evidence's bytes",
    "links": "Download links: issued, approved, used, revoked, refused",
    "refusals": "Refused access",
    "case_changes": "Case changes (retention, legal hold, status, team)",
    "reports": "Custody reports produced",
}

ACQUISITION_ACTIONS = frozenset(
    {
        "evidence.register",
        "evidence.upload.start",
        "evidence.upload.truncated",
        "evidence.import.start",
        "evidence.import",
        "evidence.import.resume",
        "evidence.acquire.start",
        "evidence.acquire",
        "evidence.acquire.read_error",
        "evidence.chunk.orphan",
        "evidence.seal",
        # An Azure VM disk's capture: each step is in its evidence item's custody trail (#16).
        "capture.snapshot",
        "capture.access.grant",
        "capture.stream",
        "capture.native_copy",
        "capture.complete",
        "capture.access.revoke",
        "capture.snapshot.delete",
    }
)
VERIFICATION_ACTIONS = frozenset({"evidence.verify", "evidence.verify.queue"})
SECRET_ACTIONS = frozenset(
    {"evidence.secret.escrow", "evidence.secret.reveal", "capture.escrow", "capture.hash_secret"}
)
EXTRACTION_ACTIONS = frozenset({"evidence.extract.start", "evidence.extract"})
LINK_ACTIONS = frozenset({"link.issue", "link.approve", "link.revoke", "link.refused", "link.use", "link.use.end"})
# Requests that send bytes read from the sealed container: a trace's data stream, its thumbnail.
TRACE_BYTE_READS = frozenset({"api-trace-data.access", "trace-thumbnail.access"})
REPORT_ACTIONS = frozenset({"custody.report"})

EVENT_FIELDS = (
    "sequence",
    "occurred_at",
    "actor",
    "action",
    "outcome",
    "target_type",
    "target_id",
    "client_address",
    "request_id",
    "details",
    "hash",
)


def utc(value: datetime | date | None) -> str | None:
    """A time as canonical UTC text; a date (retention) as ISO; None stays None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return canonical_time(value)
    return value.isoformat()


def is_byte_read(event: dict) -> bool:
    """An event that sent bytes of the evidence to someone: a trace stream or thumbnail, the hex view of a
    trace, a link download (its start and its end, with range and client address)."""
    action = event["action"]
    details = event["details"] or {}
    if action in TRACE_BYTE_READS:
        return True
    if action == "trace-detail.access":
        return details.get("view") == "hex"
    if action == "link.use":
        return details.get("what") == "content"
    return action == "link.use.end"


def sections_of(event: dict) -> Iterator[str]:
    """The sections an event belongs to (some belong to two: a refused link use is a link event and a
    refusal)."""
    action = event["action"]
    if action in ACQUISITION_ACTIONS:
        yield "acquisition"
    if action in VERIFICATION_ACTIONS:
        yield "verifications"
    if action in SECRET_ACTIONS:
        yield "secret_events"
    if action in EXTRACTION_ACTIONS:
        yield "extraction_events"
    if is_byte_read(event):
        yield "byte_reads"
    if action in LINK_ACTIONS:
        yield "links"
    if event["outcome"] == Outcome.DENIED:
        yield "refusals"
    if action.startswith("case."):
        yield "case_changes"
    if action in REPORT_ACTIONS:
        yield "reports"


def event_row(event: dict) -> dict:
    return {**event, "occurred_at": utc(event["occurred_at"]), "details": event["details"] or {}}


def sort_events(events: Iterable[dict]) -> tuple[dict[str, list[dict]], int]:
    """One pass over the events: the sections, and how many events were read."""
    sections: dict[str, list[dict]] = {name: [] for name in SECTIONS}
    count = 0
    for event in events:
        count += 1
        row = None
        for name in sections_of(event):
            row = row or event_row(event)
            sections[name].append(row)
    return sections, count


def evidence_events(*, evidence: Evidence, through: int | None) -> Iterator[dict]:
    """The audit events about one evidence item up to sequence ``through`` (the chain head the report
    names), oldest first, in batches: those naming the item, those naming one of its traces (uid
    ``<evidence id>:…``), and the case's changes (retention, legal hold)."""
    evidence_id = str(evidence.pk)
    about = (
        Q(target_type="evidence", target_id=evidence_id)
        | Q(target_type="trace", target_id__startswith=f"{evidence_id}:")
        | Q(target_type="case", action__startswith="case.")
    )
    return (
        AuditEvent.objects.filter(about, case_id=evidence.case_id, sequence__lte=through or 0)
        .order_by("sequence")
        .values(*EVENT_FIELDS)
        .iterator(chunk_size=BATCH)
    )


def case_events(*, case: Case, through: int | None) -> Iterator[dict]:
    """Every audit event of a case up to sequence ``through`` (the chain head the report names), oldest
    first, in batches."""
    return (
        AuditEvent.objects.filter(case_id=case.pk, sequence__lte=through or 0)
        .order_by("sequence")
        .values(*EVENT_FIELDS)
        .iterator(chunk_size=BATCH)
    )


def case_facts(*, case: Case) -> dict:
    team = CaseMembership.objects.filter(case=case).select_related("user").order_by("user__username")
    return {
        "id": case.pk,
        "reference": case.reference,
        "title": case.title,
        "description": case.description,
        "organization": case.organization.name,
        "status": case.status,
        "priority": case.priority,
        "retention_until": utc(case.retention_until),
        "legal_hold": case.legal_hold,
        "opened_at": utc(case.created_at),
        "opened_by": case.created_by.username if case.created_by else "",
        "team": [
            {"user": member.user.username, "role": member.role, "since": utc(member.created_at)} for member in team
        ],
    }


def evidence_facts(*, evidence: Evidence) -> dict:
    return {
        "id": str(evidence.pk),
        "label": evidence.label,
        "kind": evidence.kind,
        "description": evidence.description,
        "state": evidence.state,
        "seizure": {
            "seized_from": evidence.seized_from,
            "seized_by": evidence.seized_by,
            "seized_at": utc(evidence.seized_at),
            # The database keeps the instant, in UTC: the offset it was registered with is not kept.
            "seized_at_zone": TIME_ZONE if evidence.seized_at else "",
        },
        "source": evidence.source,
        "original_name": evidence.original_name,
        "format": evidence.format,
        "format_details": evidence.format_details or {},
        "size": evidence.size,
        "acquisition_log": evidence.acquisition_log or [],  # zero-filled ranges a device could not give
        "registered_by": evidence.registered_by.username,
        "registered_at": utc(evidence.created_at),
    }


def evidence_hashes(*, evidence: Evidence) -> dict:
    return {
        "md5": evidence.md5,
        "sha1": evidence.sha1,
        "sha256": evidence.sha256,
        "manifest_sha256": evidence.manifest_sha256,
        "declared": {
            "md5": evidence.declared_md5,
            "sha1": evidence.declared_sha1,
            "sha256": evidence.declared_sha256,
            "size": evidence.declared_size,
        },
    }


def evidence_sealing(*, evidence: Evidence) -> dict:
    case = evidence.case
    return {
        "sealed_at": utc(evidence.sealed_at),
        "store": settings.CUSTODIA_EVIDENCE_STORE,
        "storage_prefix": evidence.storage_prefix,
        "retention_until": utc(case.retention_until),
        "legal_hold": case.legal_hold,
        "data_key": {"key_id": evidence.key_id, "algorithm": evidence.key_algorithm},
    }


def evidence_integrity(*, evidence: Evidence) -> dict:
    return {
        "status": evidence.integrity,
        "problem": evidence.integrity_problem,
        "last_verified_at": utc(evidence.last_verified_at),
    }


def evidence_summary(*, evidence: Evidence) -> dict:
    """One item of a case report: who it is, its hashes, its seal and its integrity."""
    return {
        "id": str(evidence.pk),
        "label": evidence.label,
        "kind": evidence.kind,
        "state": evidence.state,
        "seizure": evidence_facts(evidence=evidence)["seizure"],
        "source": evidence.source,
        "original_name": evidence.original_name,
        "format": evidence.format,
        "size": evidence.size,
        "hashes": evidence_hashes(evidence=evidence),
        "sealed_at": utc(evidence.sealed_at),
        "storage_prefix": evidence.storage_prefix,
        "integrity": evidence_integrity(evidence=evidence),
    }


def secrets_of(*, evidence_ids: list) -> list[dict]:
    """Escrowed secrets by name and kind only: never the value, nor the key store's reference to it."""
    secrets = KeyEscrow.objects.filter(evidence_id__in=evidence_ids).select_related("created_by", "evidence")
    return [
        {
            "evidence": str(secret.evidence_id),
            "evidence_label": secret.evidence.label,
            "name": secret.name,
            "kind": secret.kind,
            "escrowed_by": secret.created_by.username,
            "escrowed_at": utc(secret.created_at),
        }
        for secret in secrets.order_by("created_at", "pk")
    ]


def extraction_runs_of(*, evidence_ids: list) -> list[dict]:
    runs = ExtractionRun.objects.filter(evidence_id__in=evidence_ids).select_related("started_by", "evidence")
    return [
        {
            "id": run.pk,
            "evidence": str(run.evidence_id),
            "evidence_label": run.evidence.label,
            "state": run.state,
            "tools": dict(sorted((run.tools or {}).items())),
            "started_by": run.started_by.username if run.started_by else "system",
            "queued_at": utc(run.created_at),
            "started_at": utc(run.started_at),
            "finished_at": utc(run.finished_at),
            "traces": run.traces,
            "files": run.files,
            "bytes_processed": run.bytes_processed,
            "errors": run.errors,
            "failure": run.failure,
        }
        for run in runs.order_by("created_at", "pk")
    ]


def how_to_verify(*, case: Case, chain: ChainFacts) -> str:
    """The paragraph that tells a reader (a defence expert) how to check the report without trusting us."""
    fingerprint = chain.public_key_fingerprint or "<fingerprint>"
    where_key = (
        "the fingerprint printed in this report"
        if chain.public_key_fingerprint
        else "the fingerprint published at GET /api/audit/public-key"
    )
    head = (
        f"sequence {chain.head_sequence}, hash {chain.head_hash}" if chain.head_sequence is not None else "no event yet"
    )
    return (
        f"Ask Custodia for the case's audit export, GET /api/cases/{case.pk}/audit/export "
        "(custodians and prosecutors; the export is itself audited), save it as export.jsonl and run "
        f"python3 audit/offline_verify.py export.jsonl --key {fingerprint} with {where_key}. The verifier needs "
        "Python 3 and nothing else; it re-hashes every event of the case from the first, checks every signed "
        "checkpoint against the key, and names the line and the reason of any edit, deletion, reordering, "
        "truncation or forged line; events after the newest checkpoint are reported as not yet checkpointed, "
        "never as verified. Every event in this report carries its sequence number (and in the JSON report its "
        f"hash): each must appear in the export unchanged, and the chain head named here ({head}) must be in "
        "it. The export holds every event of the case; this report shows those that concern custody."
    )


def requester_time_zone(*, zone_name: str, generated_at: datetime) -> dict | None:
    """The requester's own time zone beside the report's UTC (issue #20 item 13), when they chose one on
    their account page: its IANA name, its offset and the generation time there. The report's times stay
    UTC, the record; this only helps the reader place them. None when no zone (or an unknown one) is set."""
    if not zone_name or not is_time_zone(zone_name):
        return None
    there = generated_at.astimezone(ZoneInfo(zone_name))
    return {
        "name": zone_name,
        "offset": zone_offset_text(there),
        "generated_at": there.isoformat(timespec="seconds"),
    }


def evidence_report(
    *, evidence: Evidence, chain: ChainFacts, generated_at: datetime, generated_by: str, requester_zone: str = ""
) -> dict:
    """The custody report of one evidence item (``evidence.case`` loaded)."""
    case = evidence.case
    sections, count = sort_events(evidence_events(evidence=evidence, through=chain.head_sequence))
    return {
        "format": REPORT_FORMAT,
        "scope": "evidence",
        "generated_at": utc(generated_at),
        "generated_by": generated_by,
        "time_zone": TIME_ZONE,
        "requester_time_zone": requester_time_zone(zone_name=requester_zone, generated_at=generated_at),
        "case": case_facts(case=case),
        "evidence": evidence_facts(evidence=evidence),
        "hashes": evidence_hashes(evidence=evidence),
        "sealing": evidence_sealing(evidence=evidence),
        "integrity": evidence_integrity(evidence=evidence),
        "secrets": secrets_of(evidence_ids=[evidence.pk]),
        "extraction_runs": extraction_runs_of(evidence_ids=[evidence.pk]),
        "events": sections,
        "event_counts": {"read": count, **{name: len(rows) for name, rows in sections.items()}},
        "chain": chain.as_dict(),
        "how_to_verify": how_to_verify(case=case, chain=chain),
    }


def case_report(
    *, case: Case, chain: ChainFacts, generated_at: datetime, generated_by: str, requester_zone: str = ""
) -> dict:
    """The custody report of a case: its facts, every evidence item's summary, and the case's events."""
    items = list(Evidence.objects.filter(case=case).select_related("case", "registered_by").order_by("created_at"))
    evidence_ids = [item.pk for item in items]
    sections, count = sort_events(case_events(case=case, through=chain.head_sequence))
    return {
        "format": REPORT_FORMAT,
        "scope": "case",
        "generated_at": utc(generated_at),
        "generated_by": generated_by,
        "time_zone": TIME_ZONE,
        "requester_time_zone": requester_time_zone(zone_name=requester_zone, generated_at=generated_at),
        "case": case_facts(case=case),
        "evidence_items": [evidence_summary(evidence=item) for item in items],
        "store": settings.CUSTODIA_EVIDENCE_STORE,
        "secrets": secrets_of(evidence_ids=evidence_ids),
        "extraction_runs": extraction_runs_of(evidence_ids=evidence_ids),
        "events": sections,
        "event_counts": {"read": count, **{name: len(rows) for name, rows in sections.items()}},
        "chain": chain.as_dict(),
        "how_to_verify": how_to_verify(case=case, chain=chain),
    }


def json_value(value: Any) -> Any:
    """For ``json.dumps(default=…)``: what the database hands back that JSON does not know."""
    if isinstance(value, datetime | date):
        return utc(value)
    return str(value)
