"""Custody reports (#15 item 5): per evidence item and per case, as JSON and as PDF read back with pdftotext."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from audit.chain import row_hash
from audit.checkpoint_writer import checkpoint_write
from audit.checkpoints import case_checkpoint_entries, signer_public_key
from audit.models import AuditEvent
from audit.services import audit_record
from custodia.custody_report import builder, pdf
from custodia.custody_report.chain import chain_facts
from custodia.custody_report.services import evidence_custody_report
from evidence.models import Evidence
from evidence.services.registration import evidence_register
from search.extraction.tools import tool_versions
from search.models import ExtractionRun, RunState
from search.services import extraction_start
from tests.evidence.conftest import hashes_of, upload_all

SEIZED_AT = "2026-03-07T14:30:00+01:00"  # 13:30 UTC
SECRET_VALUE = "235818-357951-secret"

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) is needed")


@pytest.fixture
def sample() -> bytes:
    return os.urandom(300_000)


@pytest.fixture
def custody(api, demo, client, sample):
    """A sealed evidence item with a custody trail: seized, uploaded, sealed, verified, a secret escrowed
    and revealed, an extraction run, a link issued and used with a byte range, a trace stream read, a
    refused look by a detective, a retention change and a revoked link."""
    api.as_user(demo.custodian)
    body = api.post(
        f"/api/cases/{demo.case.pk}/evidence/",
        {
            "label": "Laptop 1, internal SSD",
            "kind": "disk_image",
            "seized_from": "Suspect's flat",
            "seized_by": "Officer Jansen",
            "seized_at": SEIZED_AT,
            "declared_sha256": hashes_of(sample)["sha256"],
        },
        format="json",
    ).json()
    evidence_id = body["id"]
    upload_all(api, evidence_id, sample)
    assert api.post(f"/api/evidence/{evidence_id}/seal").status_code == 200
    assert api.post(f"/api/evidence/{evidence_id}/verify").json()["ok"] is True
    secret = api.post(
        f"/api/evidence/{evidence_id}/secrets/",
        {"kind": "bitlocker_recovery_password", "name": "C: volume", "value": SECRET_VALUE},
        format="json",
    ).json()
    api.as_user(demo.investigator)
    assert api.post(f"/api/evidence/{evidence_id}/secrets/{secret['id']}/reveal").status_code == 200
    evidence = Evidence.objects.get(pk=evidence_id)
    run = extraction_start(actor=demo.investigator, evidence=evidence)
    # What the worker writes when the run ends (the worker itself is tested in tests/search).
    ExtractionRun.objects.filter(pk=run.pk).update(state=RunState.DONE, tools=tool_versions(), traces=12, files=5)
    # A trace's data stream read, as the audit middleware records it (tests/search covers the endpoint).
    audit_record(
        action="api-trace-data.access",
        actor=demo.investigator,
        target_type="trace",
        target_id=f"{evidence_id}:0-1-4",
        case_id=demo.case.pk,
        details={"method": "GET", "stream": "raw", "range": "bytes=0-99", "bytes": "0-99/4096", "status": 206},
    )
    api.as_user(demo.custodian)
    link = api.post(
        f"/api/evidence/{evidence_id}/links", {"recipient": "prosecutor", "reason": "Defence copy"}, format="json"
    ).json()
    url = link["url"].split("testserver", 1)[1]
    b"".join(client.get(url, HTTP_RANGE="bytes=0-99", REMOTE_ADDR="198.51.100.7").streaming_content)
    api.as_user(demo.detective)
    assert api.get(f"/api/evidence/{evidence_id}/custody/report.json").status_code == 403
    api.as_user(demo.custodian)
    assert api.patch(f"/api/cases/{demo.case.pk}/", {"retention_until": "2040-01-01"}, format="json").status_code == 200
    assert api.post(f"/api/links/{link['id']}/revoke").status_code == 200
    return {"id": evidence_id, "hashes": hashes_of(sample), "link": link["id"], "run": run.pk}


def pdf_text(content: bytes, tmp_path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(content)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True).stdout


def test_evidence_report_json_has_every_section(api, demo, custody):
    checkpoint = checkpoint_write()  # the trail so far, signed: the report names what covers it
    api.as_user(demo.prosecutor)
    response = api.get(f"/api/evidence/{custody['id']}/custody/report.json")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    report = json.loads(response.content)
    assert report["format"] == "custodia-custody-report/1" and report["time_zone"] == "UTC"
    assert {
        "case",
        "evidence",
        "hashes",
        "sealing",
        "integrity",
        "secrets",
        "extraction_runs",
        "events",
        "chain",
    } <= set(report)
    assert report["evidence"]["seizure"] == {
        "seized_from": "Suspect's flat",
        "seized_by": "Officer Jansen",
        "seized_at": "2026-03-07T13:30:00.000000Z",
        "seized_at_zone": "UTC",
    }
    assert {k: report["hashes"][k] for k in ("md5", "sha1", "sha256")} == custody["hashes"]
    assert report["hashes"]["declared"]["sha256"] == custody["hashes"]["sha256"]
    assert report["sealing"]["storage_prefix"] == f"evidence/{custody['id']}/"
    assert report["sealing"]["retention_until"] == "2040-01-01" and report["sealing"]["legal_hold"] is False
    assert report["integrity"]["status"] == "intact" and report["integrity"]["last_verified_at"].endswith("Z")
    assert [s["name"] for s in report["secrets"]] == ["C: volume"]
    assert SECRET_VALUE not in response.content.decode()
    assert "reference" not in report["secrets"][0]
    (run,) = report["extraction_runs"]
    assert run["id"] == custody["run"] and run["tools"] == dict(sorted(tool_versions().items())) and run["tools"]
    events = report["events"]
    actions = {name: [e["action"] for e in rows] for name, rows in events.items()}
    assert actions["acquisition"][0] == "evidence.register" and "evidence.seal" in actions["acquisition"]
    assert actions["verifications"] == ["evidence.verify"]
    assert events["verifications"][0]["details"]["ok"] is True
    assert actions["secret_events"] == ["evidence.secret.escrow", "evidence.secret.reveal"]
    assert actions["extraction_events"] == ["evidence.extract.start"]
    reads = events["byte_reads"]
    assert [e["action"] for e in reads] == ["api-trace-data.access", "link.use", "link.use.end"]
    assert reads[1]["client_address"] == "198.51.100.7" and reads[1]["details"]["range"].startswith("bytes 0-99/")
    assert actions["links"] == ["link.issue", "link.use", "link.use.end", "link.revoke"]
    assert [(e["action"], e["actor"]) for e in events["refusals"]] == [
        ("api-evidence-custody-report-json.access", "detective")
    ]
    # A retention change is its own action since the review of item 7 (case.retention, custody-critical).
    assert "case.retention" in actions["case_changes"]
    assert all(e["occurred_at"].endswith("Z") for rows in events.values() for e in rows)
    head = AuditEvent.objects.filter(case_id=demo.case.pk).order_by("-sequence")[1]  # before the report's own row
    assert report["chain"]["head_sequence"] == head.sequence and report["chain"]["head_hash"] == head.hash
    assert (
        report["chain"]["head_case_sequence"] == head.case_sequence
        and report["chain"]["head_case_hash"] == head.case_hash
    )
    [covering] = report["chain"]["checkpoints"]
    assert covering["number"] == checkpoint.number and covering["case_sequence"] == head.case_sequence
    assert covering["case_hash"] == head.case_hash and covering["key_fingerprint"] == signer_public_key().fingerprint
    assert report["chain"]["public_key_fingerprint"] == signer_public_key().fingerprint
    assert f"GET /api/cases/{demo.case.pk}/audit/export" in report["how_to_verify"]
    assert "python3 audit/offline_verify.py export.jsonl --key" in report["how_to_verify"]


def test_evidence_report_pdf_reads_back_with_hashes_and_events(api, demo, custody, tmp_path):
    first = checkpoint_write()
    audit_record(action="evidence.verify", case_id=demo.case.pk, target_type="evidence", target_id=custody["id"])
    newest = checkpoint_write()
    api.as_user(demo.custodian)
    response = api.get(f"/api/evidence/{custody['id']}/custody/report.pdf")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/pdf" and response.content.startswith(b"%PDF-")
    assert response["X-Content-SHA256"] == hashlib.sha256(response.content).hexdigest()
    text = pdf_text(response.content, tmp_path)
    flat = "".join(text.split())  # hashes wrap inside their cells
    for value in custody["hashes"].values():
        assert value in flat
    assert "Custody report: evidence item Laptop 1, internal SSD" in text
    assert demo.case.reference in text and "page 1 of" in text
    assert "2026-03-07T13:30:00.000000Z (UTC, as stored)" in text
    assert "All times in this report are UTC." in text
    for action in (
        "evidence.seal",
        "evidence.verify",
        "link.issue",
        "link.use.end",
        "link.revoke",
        "api-trace-data.access",
    ):
        assert action in text, action
    assert "198.51.100.7" in text and "C: volume" in text and SECRET_VALUE not in text
    assert "python3audit/offline_verify.pyexport.jsonl--key" in flat
    # The newest covering statement in full; the earlier ones counted (all of them are in the JSON and export).
    [statement] = [
        entry
        for entry in case_checkpoint_entries(case_id=demo.case.pk)
        if f'"checkpoint":{newest.number},' in entry["statement"]
    ]
    assert f"Newest checkpoint {newest.number}" in " ".join(text.split())
    assert statement["signature"] in flat
    assert (
        f"newest of 2 signed statements covering the case (checkpoints {first.number} to {newest.number})"
        in " ".join(text.split())
    )


def test_producing_a_report_is_audited_with_its_sha256(api, demo, custody):
    api.as_user(demo.prosecutor)
    response = api.get(f"/api/evidence/{custody['id']}/custody/report.pdf")
    row = AuditEvent.objects.filter(action="custody.report").latest("sequence")
    assert (row.actor, row.target_type, row.target_id, row.case_id) == (
        "prosecutor",
        "evidence",
        custody["id"],
        demo.case.pk,
    )
    assert row.details["format"] == "pdf" and row.details["sha256"] == hashlib.sha256(response.content).hexdigest()
    assert row.details["evidence"] == custody["id"]
    # The next report lists this one.
    report = api.get(f"/api/evidence/{custody['id']}/custody/report.json").json()
    assert row.sequence in [e["sequence"] for e in report["events"]["reports"]]


def test_case_report_json_and_pdf(api, demo, custody, tmp_path):
    api.as_user(demo.custodian)
    report = api.get(f"/api/cases/{demo.case.pk}/custody/report.json").json()
    assert report["scope"] == "case" and report["case"]["reference"] == demo.case.reference
    (item,) = [item for item in report["evidence_items"] if item["id"] == custody["id"]]
    assert item["hashes"]["sha256"] == custody["hashes"]["sha256"]
    assert item["seizure"]["seized_at"] == "2026-03-07T13:30:00.000000Z"
    assert {"acquisition", "verifications", "byte_reads", "links", "refusals", "case_changes"} <= set(report["events"])
    assert [s["name"] for s in report["secrets"]] == ["C: volume"]
    response = api.get(f"/api/cases/{demo.case.pk}/custody/report.pdf")
    assert response.status_code == 200
    text = pdf_text(response.content, tmp_path)
    assert f"Custody report: case {demo.case.reference}" in text
    assert custody["hashes"]["sha256"] in "".join(text.split())
    row = AuditEvent.objects.filter(action="custody.report").latest("sequence")
    assert (row.target_type, row.details["scope"], row.details["format"]) == ("case", "case", "pdf")


@pytest.mark.parametrize("suffix", ["pdf", "json"])
def test_a_detective_gets_403_and_an_outsider_404(api, demo, custody, suffix):
    for url in (
        f"/api/evidence/{custody['id']}/custody/report.{suffix}",
        f"/api/cases/{demo.case.pk}/custody/report.{suffix}",
    ):
        api.as_user(demo.detective)
        refused = api.get(url, HTTP_ACCEPT="application/pdf")
        assert refused.status_code == 403 and refused.json()["error"] == "permission_denied"
        api.as_user(demo.outsider)
        assert api.get(url).status_code == 404
    assert not AuditEvent.objects.filter(action="custody.report", actor__in=["detective", "outsider"]).exists()
    assert AuditEvent.objects.filter(actor="detective", outcome="denied", case_id=demo.case.pk).exists()


def test_the_same_data_at_the_same_time_gives_the_same_pdf(demo, custody):
    """Nothing but the generation time varies: ReportLab's invariant mode, and data in a fixed order."""
    evidence = Evidence.objects.select_related("case").get(pk=custody["id"])
    moment = datetime(2026, 12, 4, 23, 59, 59, tzinfo=UTC)
    made = [
        pdf.render_pdf(
            report=builder.evidence_report(
                evidence=evidence, chain=chain_facts(case_id=demo.case.pk), generated_at=moment, generated_by="x"
            )
        )
        for _ in range(2)
    ]
    assert made[0] == made[1]


def test_a_trail_of_ten_thousand_events_renders(demo):
    """The events are read in batches and laid out in short tables of plain text (bench/audit.py times it)."""
    evidence = evidence_register(actor=demo.custodian, case=demo.case, label="Disk", kind="disk_image")
    head = AuditEvent.objects.order_by("-sequence").first()
    case_head = AuditEvent.objects.filter(case_id=demo.case.pk).order_by("-sequence").first()
    rows, prev_hash = [], head.hash
    case_sequence, case_prev_hash = case_head.case_sequence, case_head.case_hash
    actions = ("link.use", "link.use.end", "api-evidence-detail.access", "evidence.verify")
    for index in range(10_000):
        row = {
            "sequence": head.sequence + 1 + index,
            "occurred_at": datetime.now(UTC),
            "actor_id": None,
            "actor": "custodian",
            "organization_id": demo.case.organization_id,
            "action": actions[index % 4],
            "target_type": "evidence",
            "target_id": str(evidence.pk),
            "case_id": demo.case.pk,
            "outcome": "denied" if index % 7 == 0 else "ok",
            "request_id": f"{index:032x}",
            "client_address": "192.0.2.10",
            "details": {"link": 1, "what": "content", "range": f"bytes {index}-{index + 99}/1000000", "status": 206},
        }
        event_hash = row_hash(row, prev_hash)
        case_sequence += 1
        case_hash = row_hash(row, case_prev_hash)  # the case's own chain links the same canonical row
        rows.append(
            AuditEvent(
                **row,
                prev_hash=prev_hash,
                hash=event_hash,
                case_sequence=case_sequence,
                case_prev_hash=case_prev_hash,
                case_hash=case_hash,
            )
        )
        prev_hash, case_prev_hash = event_hash, case_hash
    AuditEvent.objects.bulk_create(rows, batch_size=2000)
    produced = evidence_custody_report(actor=demo.custodian, evidence=evidence, report_format="pdf")
    assert produced.content.startswith(b"%PDF-")


def test_the_evidence_case_and_audit_pages_offer_the_reports_to_auditors_only(client, demo, custody):
    pages = {
        f"/evidence/{custody['id']}/": f"/api/evidence/{custody['id']}/custody/report.pdf",
        f"/cases/{demo.case.pk}/": f"/api/cases/{demo.case.pk}/custody/report.pdf",
        f"/cases/{demo.case.pk}/audit/": f"/api/cases/{demo.case.pk}/custody/report.pdf",
    }
    client.force_login(demo.prosecutor)
    for page, report in pages.items():
        html = client.get(page).content.decode()
        assert f'href="{report}"' in html and f'href="{report.replace(".pdf", ".json")}"' in html, page
    downloaded = client.get(pages[f"/evidence/{custody['id']}/"])  # the button, with the page's session
    assert downloaded.status_code == 200 and downloaded["Content-Type"] == "application/pdf"
    assert downloaded["Content-Disposition"] == f'attachment; filename="custody-report-evidence-{custody["id"]}.pdf"'
    client.force_login(demo.detective)
    for page in list(pages)[:2]:
        assert "custody/report" not in client.get(page).content.decode(), page


def test_every_action_the_report_sorts_into_a_section_is_declared():
    """The report's sections name actions by hand: each must be one the trail can hold (audit/actions.py),
    or a section would silently stay empty after a rename."""
    from audit.actions import is_declared

    named = builder.ACQUISITION_ACTIONS | builder.VERIFICATION_ACTIONS | builder.SECRET_ACTIONS
    named |= builder.EXTRACTION_ACTIONS | builder.LINK_ACTIONS | builder.REPORT_ACTIONS
    assert named and not sorted(name for name in named if not is_declared(name))
