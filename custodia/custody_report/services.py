"""Producing a custody report: the only code here that writes (the report's own audit row).

A report is built, rendered and hashed inside one transaction, then ``custody.report`` is recorded with
what was reported on, the format and the SHA-256 of the bytes handed out, so that a report shown in
court can be matched to the trail. The report names the chain head read before its own row is written.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from audit.privacy import Tagged
from audit.services import audit_record
from cases import permissions as perms
from cases.models import Case, User
from cases.selectors import case_get
from custodia.custody_report import builder, pdf
from custodia.custody_report.chain import chain_facts
from custodia.errors import ServiceError
from evidence.models import Evidence
from evidence.selectors import evidence_get

CONTENT_TYPES = {"pdf": "application/pdf", "json": "application/json"}


@dataclass(frozen=True)
class ProducedReport:
    content: bytes
    content_type: str
    filename: str
    sha256: str


def report_bytes(*, report: dict, report_format: str) -> bytes:
    """The report rendered: the JSON (indented, in the report's own section order) or the PDF."""
    if report_format == "json":
        return json.dumps(report, indent=2, ensure_ascii=False, default=builder.json_value).encode("utf-8") + b"\n"
    return pdf.render_pdf(report=report)


def _check_format(report_format: str) -> None:
    if report_format not in CONTENT_TYPES:
        raise ServiceError(f"A custody report is made as {' or '.join(sorted(CONTENT_TYPES))}.", code="invalid")


def _produced(*, report: dict, report_format: str, filename: str) -> tuple[ProducedReport, dict]:
    content = report_bytes(report=report, report_format=report_format)
    produced = ProducedReport(
        content=content,
        content_type=CONTENT_TYPES[report_format],
        filename=f"{filename}.{report_format}",
        sha256=hashlib.sha256(content).hexdigest(),
    )
    details = {
        "format": report_format,
        "sha256": produced.sha256,
        "bytes": len(content),
        "events_read": report["event_counts"]["read"],
        "chain_head_sequence": report["chain"]["head_sequence"],
        "generated_at": report["generated_at"],
    }
    return produced, details


@transaction.atomic
def evidence_custody_report(*, actor: User, evidence: Evidence, report_format: str) -> ProducedReport:
    """The custody report of one evidence item, for those who may read the case's audit trail; audited."""
    _check_format(report_format)
    evidence = evidence_get(user=actor, evidence_id=evidence.pk, permission=perms.VIEW_AUDIT)
    report = builder.evidence_report(
        evidence=evidence,
        chain=chain_facts(case_id=evidence.case_id),
        generated_at=timezone.now(),
        generated_by=actor.username,
        requester_zone=actor.time_zone,
    )
    produced, details = _produced(
        report=report, report_format=report_format, filename=f"custody-report-evidence-{evidence.pk}"
    )
    audit_record(
        action="custody.report",
        actor=actor,
        target_type="evidence",
        target_id=evidence.pk,
        case_id=evidence.case_id,
        details={
            "scope": "evidence",
            "evidence": str(evidence.pk),
            "label": Tagged("evidence_label", evidence.label),
            **details,
        },
    )
    return produced


@transaction.atomic
def case_custody_report(*, actor: User, case: Case, report_format: str) -> ProducedReport:
    """The custody report of a case, for those who may read its audit trail; audited."""
    _check_format(report_format)
    case = case_get(user=actor, case_id=case.pk, permission=perms.VIEW_AUDIT)
    report = builder.case_report(
        case=case,
        chain=chain_facts(case_id=case.pk),
        generated_at=timezone.now(),
        generated_by=actor.username,
        requester_zone=actor.time_zone,
    )
    safe_reference = re.sub(r"[^A-Za-z0-9._-]+", "_", case.reference) or str(case.pk)
    produced, details = _produced(
        report=report, report_format=report_format, filename=f"custody-report-case-{safe_reference}"
    )
    audit_record(
        action="custody.report",
        actor=actor,
        target_type="case",
        target_id=case.pk,
        case_id=case.pk,
        details={"scope": "case", "case": case.pk, "reference": Tagged("case", case.reference), **details},
    )
    return produced
