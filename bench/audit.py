"""The proof for court, timed: verifying a long audit trail against its signed checkpoints, the offline
verifier on a large case export, a custody report of a busy evidence item, and what a checkpoint adds to a
custody-critical request; on SQLite and on PostgreSQL, each beside the floor of the same work in the same run.

    .venv/bin/python bench/audit.py [--quick | --smoke] [--only sqlite|postgres] [--events N] [--seed S]

What it does, per database (each in its own process, since Django's settings are per process):

1. A fresh data folder and database with the test settings, ``migrate`` and ``seed_demo``; 19 more cases
   opened with ``case_create`` beside DEMO-2026-001 (20 in all), and one evidence item registered in
   DEMO-2026-001 with ``evidence_register``.
2. The trail: N synthetic events (default 1,000,000; ``--quick`` 100,000; ``--smoke`` 3,000), deterministic
   from ``--seed``. DEMO-2026-001 gets one event in ten (so its export holds N/10 events), and one in ten of
   those names the evidence item (so its custody report reads N/100 events: 10,000 at the default size);
   about 5 % have no case (logins) and the rest fall on the other 19 cases. Mostly reads (``<route>.access``
   rows as the audit middleware writes them), with link uses, verifications and other custody-critical
   actions among them. Each row's links are computed exactly as ``audit.services.audit_record`` computes
   them (``audit.chain``: the canonical row, the global ``prev_hash``/``hash``, and the case chain's
   ``case_sequence``/``case_prev_hash``/``case_hash``), and the rows are bulk-inserted
   ``CUSTODIA_AUDIT_CHECKPOINT_EVENTS`` (100) at a time, each batch followed by a real signed checkpoint,
   ``audit.checkpoint_writer.checkpoint_write()``, as the system writes one at least every 100 events.
   (The system also writes one after every custody-critical event; the trail has fewer checkpoints than
   that would give, never fewer than one per 100 events.) The built trail is verified once with
   ``verify_trail()`` and must be OK before anything is timed.
3. ``verify_trail()``, what ``manage.py audit_verify`` runs (checkpoints read from the archive and their
   signatures checked, both chains re-hashed, every signed head compared, the triggers checked), timed
   ``--repeats`` times; ``read_archive`` alone (the checkpoint part of it) beside it. Floor: one SELECT of
   the hashed fields and the two previous hashes through the bare DB-API cursor, iterated, each row made
   canonical JSON and hashed twice with hashlib (what verification cannot avoid).
4. The export of DEMO-2026-001 written to a file with the real builder ``audit.export.case_export_lines``
   (the export endpoint's work), then ``python3 -I audit/offline_verify.py FILE --key <fingerprint>`` as a
   subprocess, which must exit 0. Floors: ``sha256sum FILE``, and hashlib over each line of the file.
5. The custody report of the evidence item as PDF and as JSON,
   ``custodia.custody_report.services.evidence_custody_report`` (the endpoint's work: its own audit row and
   the checkpoint written when it commits included).
6. The cost of a checkpoint to a custody-critical request: ``--samples`` (100; at least 50) times, in turn,
   (b) a non-critical event (``api-evidence-detail.access``) written through ``audit_record`` in its own
   committed transaction, ``checkpoint_write()`` alone (signing that event), and (a) a custody-critical event
   (``evidence.verify``) the same way, which writes a checkpoint when it commits; p50 and p95 of each, and
   the difference (a) - (b).
7. The cost of the privacy model (issue #19) on the audit path: audited requests per second through the whole
   middleware stack (Django's test client, a signed-in session), without the model (the row written as it
   comes: ``audit.services.replace_row`` replaced by the identity) and with it (the production policy,
   ``audit.privacy.DEFAULT_POLICY``, and the database's look-up table), in alternating blocks of
   ``PRIVACY_BLOCK`` requests, ``--requests`` of each (default 2,000). Two requests: the cheapest audited read
   (``GET /api/cases/<id>/``: actor and client address replaced) and a trace search (``POST
   /api/cases/<id>/traces/search``: the query too, session-scoped). Goal: under 10 % slower.

Without ``DATABASE_URL`` the PostgreSQL part runs on a throw-away server on loopback (``tests/servers.py``,
fsync off as in the test suite); with it, on that database (which should be empty). The evidence store
(where the checkpoints are archived) is the local write-once store in the worker's temporary data folder,
which fsyncs every object it writes. Figures are only comparable within one run: the machine is shared.
Not a timed test: it reports the goals, never asserts. ``--profile`` runs each timed operation once more under
cProfile, after its timed runs, and prints where the time goes to stderr.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

DEMO_CASE = "DEMO-2026-001"
OTHER_CASES = 19
EXPORT_SHARE = 10  # one event in ten is DEMO-2026-001's
REPORT_SHARE = 10  # one in ten of those names the evidence item
NO_CASE_PERCENT = 5
FLOOR_BATCH = 5000

GOAL_VERIFY_SECONDS_PER_MILLION = 30.0
GOAL_OFFLINE_SECONDS_PER_100K = 10.0
GOAL_REPORT_SECONDS = 10.0
GOAL_CHECKPOINT_P95_MS = 20.0
GOAL_PRIVACY_SLOWER_PERCENT = 10.0
PRIVACY_BLOCK = 10  # requests per block; blocks with and without the model alternate

SIZES = {
    "default": {"events": 1_000_000, "samples": 100, "repeats": 1, "requests": 2000},
    "quick": {"events": 100_000, "samples": 50, "repeats": 2, "requests": 1000},
    "smoke": {"events": 3_000, "samples": 10, "repeats": 1, "requests": 40},
}

# Reads as the audit middleware writes them: (action, target type, path pattern).
READS = [
    ("api-case-detail.access", "case", "/api/cases/{case}/"),
    ("case-detail.access", "case", "/cases/{case}/"),
    ("api-traces-search.access", "case", "/api/cases/{case}/traces/?q=invoice+AND+type%3Aemail"),
    ("api-trace-detail.access", "trace", "/api/traces/{evidence}:0-1-{n}"),
    ("case-audit.access", "case", "/cases/{case}/audit/"),
    ("api-evidence-list.access", "case", "/api/cases/{case}/evidence/"),
]
EVIDENCE_ACTIONS = (
    "link.use",
    "link.use.end",
    "api-evidence-detail.access",
    "api-trace-data.access",
    "evidence.verify",
)
OTHER_CRITICAL = ("link.use", "evidence.verify", "evidence.secret.reveal", "link.issue")
NO_CASE_ACTIONS = ("auth.login", "auth.logout", "auth.token.issue")
USERS = ("custodian", "investigator", "detective", "prosecutor")


def log(message: str) -> None:
    print(f"  [{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def median(samples: list[float]) -> float:
    return percentile(samples, 0.5)


def print_profile(label: str, function) -> None:
    """Run ``function`` once more under cProfile (never a timed run: the profiler slows it down) and print the
    top of the profile to stderr."""
    profile = cProfile.Profile()
    profile.runcall(function)
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(18)
    print(f"\n--- cProfile of {label} (by own time) ---\n{text.getvalue()}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------- the trail


class TrailGenerator:
    """Synthetic events, deterministic from the seed: rows of ``audit.chain.HASHED_FIELDS`` without the
    sequence, which the builder gives them."""

    def __init__(
        self,
        *,
        seed: int,
        demo_case_id: int,
        other_case_ids: list[int],
        evidence_id: int,
        organization_id: int,
        users: dict[str, int],
        started: datetime,
    ) -> None:
        self.random = random.Random(seed)
        self.demo_case_id = demo_case_id
        self.other_case_ids = other_case_ids
        self.evidence_id = evidence_id
        self.organization_id = organization_id
        self.users = users
        self.started = started

    def row(self, index: int) -> dict:
        rnd = self.random
        username = USERS[rnd.randrange(len(USERS))]
        row = {
            "occurred_at": self.started + timedelta(microseconds=100 * index),
            "actor_id": self.users[username],
            "actor": username,
            "organization_id": self.organization_id,
            "outcome": "ok",
            "request_id": f"{rnd.getrandbits(128):032x}",
            "client_address": f"10.1.{rnd.randrange(4)}.{rnd.randrange(1, 250)}",
        }
        if index % EXPORT_SHARE == 0:
            case_id = self.demo_case_id
            if (index // EXPORT_SHARE) % REPORT_SHARE == 0:
                return {**row, **self._evidence_event(case_id, index)}
        elif rnd.randrange(100) < NO_CASE_PERCENT:
            action = NO_CASE_ACTIONS[rnd.randrange(len(NO_CASE_ACTIONS))]
            return {
                **row,
                "action": action,
                "target_type": "user",
                "target_id": str(row["actor_id"]),
                "case_id": None,
                "details": {"method": "POST", "path": "/accounts/login/"},
            }
        else:
            case_id = self.other_case_ids[rnd.randrange(len(self.other_case_ids))]
        if rnd.randrange(100) == 0:
            action = OTHER_CRITICAL[rnd.randrange(len(OTHER_CRITICAL))]
            return {
                **row,
                "action": action,
                "target_type": "evidence",
                "target_id": str(10_000 + case_id),
                "case_id": case_id,
                "details": {"link": rnd.randrange(1, 50), "ok": True},
            }
        action, target_type, path = READS[rnd.randrange(len(READS))]
        status = 403 if rnd.randrange(50) == 0 else 200
        target_id = str(case_id) if target_type == "case" else f"{10_000 + case_id}:0-1-{index % 9000}"
        return {
            **row,
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "case_id": case_id,
            "outcome": "denied" if status == 403 else "ok",
            "details": {
                "method": "GET",
                "path": path.format(case=case_id, evidence=10_000 + case_id, n=index % 9000),
                "status": status,
            },
        }

    def _evidence_event(self, case_id: int, index: int) -> dict:
        action = EVIDENCE_ACTIONS[(index // (EXPORT_SHARE * REPORT_SHARE)) % len(EVIDENCE_ACTIONS)]
        evidence = str(self.evidence_id)
        if action == "api-trace-data.access":
            return {
                "action": action,
                "target_type": "trace",
                "target_id": f"{evidence}:0-1-4",
                "case_id": case_id,
                "details": {
                    "method": "GET",
                    "stream": "raw",
                    "range": "bytes=0-99",
                    "bytes": "0-99/4096",
                    "status": 206,
                },
            }
        details = {"method": "GET", "path": f"/api/evidence/{evidence}/", "status": 200}
        if action.startswith("link.use"):
            details = {"link": 1, "what": "content", "range": f"bytes {index}-{index + 99}/1000000", "status": 206}
        elif action == "evidence.verify":
            details = {"ok": True, "sha256": hashlib.sha256(evidence.encode()).hexdigest()}
        return {
            "action": action,
            "target_type": "evidence",
            "target_id": evidence,
            "case_id": case_id,
            "details": details,
        }


def build_trail(*, generator: TrailGenerator, events: int, checkpoint_every: int, database: str) -> dict:
    """Append ``events`` rows after the current head, linked as audit_record links them, ``checkpoint_every``
    at a time, each batch followed by a real signed checkpoint."""
    from django.db import transaction
    from django.db.models import Max

    from audit.chain import GENESIS_HASH, canonical_json, link_hash
    from audit.checkpoint_writer import checkpoint_write
    from audit.models import AuditEvent

    head = AuditEvent.objects.order_by("-sequence").values("sequence", "hash").first()
    sequence, prev_hash = (head["sequence"], head["hash"]) if head else (0, GENESIS_HASH)
    case_heads: dict[int, tuple[int, str]] = {}
    last_by_case = AuditEvent.objects.filter(case_id__isnull=False).values("case_id").annotate(last=Max("sequence"))
    for row in AuditEvent.objects.filter(sequence__in=[item["last"] for item in last_by_case]).values(
        "case_id", "case_sequence", "case_hash"
    ):
        case_heads[row["case_id"]] = (row["case_sequence"], row["case_hash"])
    make_seconds = insert_seconds = checkpoint_seconds = 0.0
    checkpoints = 0
    started = time.perf_counter()
    done = 0
    while done < events:
        t0 = time.perf_counter()
        batch = []
        for index in range(done, min(events, done + checkpoint_every)):
            sequence += 1
            row = {"sequence": sequence, **generator.row(index)}
            canonical = canonical_json(row)
            links = {}
            if row["case_id"] is not None:
                case_sequence, case_prev_hash = case_heads.get(row["case_id"], (0, GENESIS_HASH))
                case_hash = link_hash(case_prev_hash, canonical)
                links = {"case_sequence": case_sequence + 1, "case_prev_hash": case_prev_hash, "case_hash": case_hash}
                case_heads[row["case_id"]] = (case_sequence + 1, case_hash)
            event_hash = link_hash(prev_hash, canonical)
            batch.append(AuditEvent(**row, prev_hash=prev_hash, hash=event_hash, **links))
            prev_hash = event_hash
        t1 = time.perf_counter()
        with transaction.atomic():
            AuditEvent.objects.bulk_create(batch)
        t2 = time.perf_counter()
        if checkpoint_write() is not None:
            checkpoints += 1
        t3 = time.perf_counter()
        make_seconds += t1 - t0
        insert_seconds += t2 - t1
        checkpoint_seconds += t3 - t2
        done += len(batch)
        if done % max(checkpoint_every, events // 10 // checkpoint_every * checkpoint_every) == 0:
            log(f"{database}: {done:,} events, {checkpoints:,} checkpoints, {time.perf_counter() - started:.0f} s")
    return {
        "events": done,
        "checkpoints": checkpoints,
        "make_seconds": make_seconds,
        "insert_seconds": insert_seconds,
        "checkpoint_seconds": checkpoint_seconds,
        "seconds": time.perf_counter() - started,
    }


# ------------------------------------------------------------------------------------------- the floors


def verification_floor() -> int:
    """Read every row once (one SELECT, the bare DB-API cursor, fetched in batches) and hash each canonical
    row twice: what re-hashing both chains cannot avoid. Nothing is compared."""
    from django.db import connection

    from audit.chain import HASHED_FIELDS, canonical_time

    columns = ", ".join(f'"{name}"' for name in (*HASHED_FIELDS, "prev_hash", "case_prev_hash"))
    count = 0
    sha256 = hashlib.sha256
    dumps = json.dumps
    loads = json.loads
    width = len(HASHED_FIELDS)
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT {columns} FROM "audit_auditevent" ORDER BY "sequence"')  # noqa: S608 - constants
        while True:
            rows = cursor.fetchmany(FLOOR_BATCH)
            if not rows:
                break
            for values in rows:
                body = dict(zip(HASHED_FIELDS, values[:width], strict=True))
                if isinstance(body["details"], str):
                    body["details"] = loads(body["details"])
                if isinstance(body["occurred_at"], datetime):
                    body["occurred_at"] = canonical_time(body["occurred_at"])
                canonical = dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
                sha256(values[width].encode("ascii") + b"\n" + canonical).hexdigest()
                sha256((values[width + 1] or "").encode("ascii") + b"\n" + canonical).hexdigest()
                count += 1
    return count


def lines_floor(path: Path) -> int:
    """hashlib over each line of the export: reading and hashing every byte once, line by line."""
    count = 0
    with path.open("rb") as handle:
        for line in handle:
            hashlib.sha256(line).digest()
            count += 1
    return count


# ------------------------------------------------------------------------------------------- one database


def timed(function, repeats: int = 1, *, profile_as: str | None = None) -> tuple[list[float], object]:
    """Wall-clock times of ``repeats`` runs and the last result; with ``profile_as``, one more run profiled."""
    samples, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        samples.append(time.perf_counter() - started)
    if profile_as:
        print_profile(profile_as, function)
    return samples, result


def python3() -> str:
    """The defence expert's interpreter: the system's python3 (3.11 or later), else this one."""
    found = shutil.which("python3")
    if found:
        version = subprocess.run(
            [found, "-c", "import sys; print(sys.version_info >= (3, 11))"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if version == "True":
            return found
    return sys.executable


def run_database(
    *, database: str, events: int, samples: int, repeats: int, seed: int, profile: bool, requests: int
) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"custodia-bench-audit-{database}-"))
    try:
        return measure_database(
            database=database,
            workdir=workdir,
            events=events,
            samples=samples,
            repeats=repeats,
            seed=seed,
            profile=profile,
            requests=requests,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the SQLite file of 1 M events takes gigabytes


def measure_database(
    *,
    database: str,
    workdir: Path,
    events: int,
    samples: int,
    repeats: int,
    seed: int,
    profile: bool,
    requests: int,
) -> dict:
    from bench.extract_pipeline import setup_django

    setup_django(workdir)
    from django.conf import settings
    from django.db import connection, transaction

    from audit.checkpoint_writer import checkpoint_write
    from audit.checkpoints import read_archive, signer_public_key
    from audit.export import case_export_lines
    from audit.models import AuditCheckpoint, AuditEvent
    from audit.services import audit_record
    from audit.verify import verify_trail
    from cases.models import Case, User
    from cases.services import case_create
    from custodia.custody_report.services import evidence_custody_report
    from evidence.services.registration import evidence_register

    users = {user.username: user for user in User.objects.all()}
    demo_case = Case.objects.get(reference=DEMO_CASE)
    other_cases = [
        case_create(actor=users["orgadmin"], reference=f"BENCH-{number:02d}", title=f"Bench case {number}")
        for number in range(1, OTHER_CASES + 1)
    ]
    evidence = evidence_register(
        actor=users["custodian"],
        case=demo_case,
        label="Laptop 1, internal SSD",
        kind="disk_image",
        seized_from="Suspect's flat",
        seized_by="Officer Jansen",
    )
    checkpoint_every = settings.CUSTODIA_AUDIT_CHECKPOINT_EVENTS
    generator = TrailGenerator(
        seed=seed,
        demo_case_id=demo_case.pk,
        other_case_ids=[case.pk for case in other_cases],
        evidence_id=evidence.pk,
        organization_id=demo_case.organization_id,
        users={name: users[name].pk for name in USERS},
        started=AuditEvent.objects.order_by("-sequence").first().occurred_at + timedelta(milliseconds=1),
    )
    log(f"{database}: building a trail of {events:,} events, a checkpoint every {checkpoint_every}")
    build = build_trail(generator=generator, events=events, checkpoint_every=checkpoint_every, database=database)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")  # as autovacuum would after a bulk load
    total_events = AuditEvent.objects.count()
    total_checkpoints = AuditCheckpoint.objects.count()
    export_events = AuditEvent.objects.filter(case_id=demo_case.pk).count()

    log(f"{database}: {total_events:,} events, {total_checkpoints:,} checkpoints; checking the trail once")
    check = verify_trail()
    result: dict = {
        "database": database,
        "server": connection.pg_version if connection.vendor == "postgresql" else None,
        "sqlite_version": __import__("sqlite3").sqlite_version,
        "events": total_events,
        "checkpoints": total_checkpoints,
        "checkpoint_every": checkpoint_every,
        "build": build,
        "check": check.summary(),
        "check_ok": check.ok,
    }
    if not check.ok:
        return result  # nothing else is worth timing on a broken trail: the table says why

    log(f"{database}: timing verify_trail")
    verify_samples, report = timed(verify_trail, repeats, profile_as="verify_trail" if profile else None)
    result["verify"] = {"samples": verify_samples, "summary": report.summary(), "ok": report.ok}
    archive_samples, archive = timed(lambda: read_archive(keys=[signer_public_key()]), repeats=repeats)
    result["archive"] = {
        "samples": archive_samples,
        "checkpoints": len(archive.checkpoints),
        "statements": sum(1 + len(checkpoint.cases) for checkpoint in archive.checkpoints),
    }
    floor_samples, floor_rows = timed(verification_floor, repeats=repeats)
    result["verify_floor"] = {"samples": floor_samples, "rows": floor_rows}

    log(f"{database}: exporting {DEMO_CASE} ({export_events:,} events) and verifying it offline")
    export_path = workdir / "export.jsonl"
    fingerprint = signer_public_key().fingerprint

    def write_export() -> dict:
        counts = {"lines": 0, "checkpoint_lines": 0}
        with export_path.open("w", encoding="utf-8") as handle:
            for line in case_export_lines(case_id=demo_case.pk, case_reference=demo_case.reference):
                handle.write(line)
                counts["lines"] += 1
                counts["checkpoint_lines"] += line.startswith('{"algorithm"')  # keys sorted: only a checkpoint line
        return counts

    export_samples, counts = timed(write_export, profile_as="case_export_lines" if profile else None)
    interpreter = python3()
    command = [
        interpreter,
        "-I",
        str(PROJECT_ROOT / "audit" / "offline_verify.py"),
        str(export_path),
        "--key",
        fingerprint,
    ]
    offline_samples, completed = timed(
        lambda: subprocess.run(command, capture_output=True, text=True, check=False), repeats=repeats
    )
    result["export"] = {
        "samples": export_samples,
        "events": export_events,
        "lines": counts["lines"],
        "statements": counts["checkpoint_lines"],
        "bytes": export_path.stat().st_size,
    }
    output_lines = completed.stdout.strip().splitlines()
    result["offline"] = {
        "samples": offline_samples,
        "exit": completed.returncode,
        "said": output_lines[-1] if output_lines else completed.stderr.strip()[-300:],
        "python": subprocess.run([interpreter, "--version"], capture_output=True, text=True).stdout.strip(),
    }
    if profile:
        profiled_run = subprocess.run(
            [interpreter, "-I", "-m", "cProfile", "-s", "tottime", *command[2:]], capture_output=True, text=True
        )
        top = "\n".join(profiled_run.stdout.splitlines()[:40])
        print(f"\n--- cProfile of offline_verify.py (by own time) ---\n{top}", file=sys.stderr, flush=True)
    sha256sum = shutil.which("sha256sum")
    result["offline_floor"] = {
        "sha256sum": timed(
            lambda: subprocess.run([sha256sum, str(export_path)], capture_output=True, check=True), repeats=repeats
        )[0]
        if sha256sum
        else [],
        "lines": timed(lambda: lines_floor(export_path), repeats=repeats)[0],
    }

    log(f"{database}: custody reports of the evidence item")
    custodian = users["custodian"]
    for report_format in ("json", "pdf"):
        report_samples, produced = timed(
            lambda f=report_format: evidence_custody_report(actor=custodian, evidence=evidence, report_format=f),
            repeats,
            profile_as=f"evidence_custody_report({report_format})" if profile else None,
        )
        result[f"report_{report_format}"] = {
            "samples": report_samples,
            "bytes": len(produced.content),
            "pages": produced.content.count(b"/Type /Page\n") if report_format == "pdf" else None,
        }
        if report_format == "json":  # the events the report read: the item's, its traces' and the case's changes
            report_events = json.loads(produced.content)["event_counts"]["read"]
        result[f"report_{report_format}"]["events"] = report_events

    log(f"{database}: {samples} custody-critical and ordinary writes, and checkpoint_write alone")
    critical, ordinary, alone = [], [], []
    checkpoint_after_ordinary = missing_after_critical = 0

    def write(action: str, details: dict) -> None:
        with transaction.atomic():
            audit_record(
                action=action,
                actor=custodian,
                target_type="evidence",
                target_id=evidence.pk,
                case_id=demo_case.pk,
                details=details,
            )

    for index in range(samples):
        before = AuditCheckpoint.objects.count()
        started = time.perf_counter()
        write("api-evidence-detail.access", {"method": "GET", "path": f"/api/evidence/{evidence.pk}/", "status": 200})
        ordinary.append(time.perf_counter() - started)
        checkpoint_after_ordinary += AuditCheckpoint.objects.count() != before  # every 100th event
        started = time.perf_counter()
        checkpoint_write()
        alone.append(time.perf_counter() - started)
        before = AuditCheckpoint.objects.count()
        started = time.perf_counter()
        write("evidence.verify", {"ok": True, "sample": index})
        critical.append(time.perf_counter() - started)
        missing_after_critical += AuditCheckpoint.objects.count() != before + 1
    if profile:
        write("api-evidence-detail.access", {"method": "GET", "path": f"/api/evidence/{evidence.pk}/", "status": 200})
        print_profile("checkpoint_write (one new event)", checkpoint_write)
    result["latency"] = {
        "critical": critical,
        "ordinary": ordinary,
        "alone": alone,
        "checkpoint_after_ordinary": checkpoint_after_ordinary,
        "missing_after_critical": missing_after_critical,
    }
    log(f"{database}: {requests} audited requests of each kind with and without the privacy model")
    result["privacy"] = {
        kind: measure_privacy_cost(kind=kind, case_id=demo_case.pk, user=users[username], requests=requests)
        for kind, (_, _, _, username) in PRIVACY_REQUESTS.items()
    }
    final = verify_trail()
    result["final_check"] = final.summary()
    connection.close()
    return result


# The audited requests timed with and without the privacy model: (method, path, body, who asks).
PRIVACY_REQUESTS = {
    "read": ("get", "/api/cases/{case}/", None, "custodian"),
    "search": ("post", "/api/cases/{case}/traces/search", {"query": "Jan Jansen AND type:email"}, "detective"),
}


def measure_privacy_cost(*, kind: str, case_id: int, user, requests: int) -> dict:
    """Requests per second of one audited request through the whole stack, without and with the model, in
    alternating blocks (so that the machine's drift falls on both alike). Each must answer 200 and write its
    access row."""
    from unittest import mock

    from django.test import Client, override_settings

    from audit import services as audit_services
    from audit.models import AuditEvent
    from audit.privacy import DEFAULT_POLICY
    from audit.replacement import ReplacedRow

    def unreplaced(*, actor, organization_id, client_address, details):
        return ReplacedRow(actor=actor, client_address=client_address, details=dict(details))

    method, path, body, _ = PRIVACY_REQUESTS[kind]
    path = path.format(case=case_id)
    client = Client()
    client.force_login(user)
    call = getattr(client, method)

    def one() -> None:
        response = call(path, body, content_type="application/json") if body else call(path)
        if response.status_code != 200:
            raise RuntimeError(f"{kind}: {path} answered {response.status_code}")

    production = override_settings(
        CUSTODIA_PRIVACY_POLICY=dict(DEFAULT_POLICY), CUSTODIA_PRIVACY_LOOKUP="audit.privacy_store.DatabaseLookupTable"
    )
    seconds = {"without": 0.0, "with": 0.0}
    done = {"without": 0, "with": 0}
    before = AuditEvent.objects.count()
    for _ in range(2):  # warm both paths (caches, the first session-key derivation)
        with mock.patch.object(audit_services, "replace_row", unreplaced):
            one()
        with production:
            one()
    while done["with"] < requests:
        block = min(PRIVACY_BLOCK, requests - done["with"])
        with mock.patch.object(audit_services, "replace_row", unreplaced):
            started = time.perf_counter()
            for _ in range(block):
                one()
            seconds["without"] += time.perf_counter() - started
        with production:
            started = time.perf_counter()
            for _ in range(block):
                one()
            seconds["with"] += time.perf_counter() - started
        done["without"] += block
        done["with"] += block
    last = AuditEvent.objects.order_by("-sequence").first()
    return {
        "path": f"{method.upper()} {PRIVACY_REQUESTS[kind][1]}",
        "requests": done["with"],
        "rows": AuditEvent.objects.count() - before,
        "without_per_second": done["without"] / seconds["without"],
        "with_per_second": done["with"] / seconds["with"],
        "last_actor_replaced": last is not None and last.actor != user.username,
    }


# ------------------------------------------------------------------------------------------- reporting


def privacy_slower(privacy: dict) -> float:
    """How much slower the audited request is with the privacy model, in per cent (negative: faster)."""
    return (privacy["without_per_second"] / privacy["with_per_second"] - 1) * 100


def seconds_text(value: float) -> str:
    if value != value:  # nan
        return "-"
    return f"{value:,.1f} s" if value >= 0.95 else f"{value:.2f} s"


def ms_pair(samples: list[float]) -> str:
    return f"{percentile(samples, 0.5) * 1000:.1f} / {percentile(samples, 0.95) * 1000:.1f} ms"


def ratio_text(value: float, floor: float) -> str:
    if not floor or value != value or floor != floor:
        return "-"
    times = value / floor
    return f"{times:,.0f} ×" if times >= 10 else f"{times:.1f} ×"  # noqa: RUF001


def print_report(results: dict[str, dict], *, events_asked: int) -> None:
    titles = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    databases = [name for name in ("sqlite", "postgres") if name in results]
    for name in databases:
        result = results[name]
        version = (
            f"SQLite {result['sqlite_version']}"
            if name == "sqlite"
            else f"PostgreSQL {result['server'] // 10000}.{result['server'] % 10000}"
        )
        build = result["build"]
        print(
            f"{titles[name]} ({version}): trail of {result['events']:,} events ({build['events']:,} built: rows made "
            f"and hashed {build['make_seconds']:,.1f} s, bulk-inserted {build['insert_seconds']:,.1f} s, "
            f"{build['checkpoints']:,} checkpoint_write() {build['checkpoint_seconds']:,.1f} s = "
            f"{build['checkpoint_seconds'] / max(1, build['checkpoints']) * 1000:.1f} ms each); "
            f"{result['checkpoints']:,} checkpoints in all, one every {result['checkpoint_every']} events; "
            f"checked before timing: {result['check']}"
        )
    print()

    def cell(name: str, render) -> str:
        result = results.get(name)
        if result is None:
            return ""
        if not result.get("check_ok"):
            return "trail broken"
        return render(result)

    def row(measure: str, render, reference: str, goal: str) -> None:
        print(
            "| "
            + " | ".join([measure, *(cell(name, render) for name in ("sqlite", "postgres")), reference, goal])
            + " |"
        )

    verified = [results[name] for name in databases if results[name].get("check_ok")]
    if not verified:
        for name in databases:
            print(f"{titles[name]}: the built trail did not verify, nothing was timed: {results[name]['check']}")
        return
    first = verified[0]  # the sizes in the labels (the same trail on both databases)
    events = first["events"]
    print("| measure | SQLite | PostgreSQL | floor / reference | goal |")
    print("|---|---:|---:|---|---|")

    def verify_cell(result: dict) -> str:
        value = median(result["verify"]["samples"])
        floor = median(result["verify_floor"]["samples"])
        return f"{seconds_text(value)} ({ratio_text(value, floor)} floor)" + (
            "" if result["verify"]["ok"] else " NOT OK"
        )

    goal_verify = GOAL_VERIFY_SECONDS_PER_MILLION * events / 1_000_000
    row(
        f"`verify_trail()` (`audit_verify`): {events:,} events, {first['checkpoints']:,} signed checkpoints",
        verify_cell,
        "floor: row below",
        f"< 30 s for 1 M (pro rata < {goal_verify:,.1f} s)" if events < 1_000_000 else "< 30 s for 1 M",
    )
    row(
        "… of which `read_archive`: checkpoints read from the store, signatures checked",
        lambda r: f"{seconds_text(median(r['archive']['samples']))} ({r['archive']['statements']:,} statements)",
        "",
        "",
    )
    row(
        "floor: one SELECT of the hashed fields (bare cursor), canonical JSON, 2 × sha256 a row",  # noqa: RUF001
        lambda r: seconds_text(median(r["verify_floor"]["samples"])),
        "(the floor)",
        "",
    )
    export = first["export"]
    row(
        f"export of {DEMO_CASE}: {export['events']:,} events + {export['statements']:,} case statements "
        "(`case_export_lines` → file)",
        lambda r: f"{seconds_text(median(r['export']['samples']))} ({r['export']['bytes'] / 1e6:,.1f} MB)",
        "",
        "- (the export endpoint's work)",
    )

    def offline_cell(result: dict) -> str:
        value = median(result["offline"]["samples"])
        floor = median(result["offline_floor"]["lines"])
        text = f"{seconds_text(value)} ({ratio_text(value, floor)} hashlib lines)"
        return text if result["offline"]["exit"] == 0 else text + f" EXIT {result['offline']['exit']}"

    def offline_floor(result: dict) -> str:
        sha256sum = result["offline_floor"]["sha256sum"]
        return (f"sha256sum {seconds_text(median(sha256sum))}, " if sha256sum else "") + (
            f"hashlib per line {seconds_text(median(result['offline_floor']['lines']))}"
        )

    goal_offline = GOAL_OFFLINE_SECONDS_PER_100K * export["events"] / 100_000
    row(
        f"`python3 -I audit/offline_verify.py` on that export ({first['offline']['python']})",
        offline_cell,
        " / ".join(
            f"{titles[name]}: {offline_floor(results[name])}" for name in databases if results[name].get("check_ok")
        ),
        "< 10 s for 100 k" + (f" (pro rata < {goal_offline:,.1f} s)" if export["events"] < 100_000 else ""),
    )
    for report_format in ("pdf", "json"):
        report = first.get(f"report_{report_format}", {"events": 0})
        row(
            f"custody report ({report_format.upper()}) of an evidence item with {report['events']:,} events",
            lambda r, f=report_format: (
                f"{seconds_text(median(r[f'report_{f}']['samples']))} ({r[f'report_{f}']['bytes'] / 1e6:,.1f} MB"
                + (f", {r[f'report_{f}']['pages']:,} pages)" if r[f"report_{f}"]["pages"] else ")")
            ),
            "",
            "< 10 s",
        )
    samples = len(first["latency"]["critical"])
    row(
        f"custody-critical write (`evidence.verify`) + checkpoint on commit, p50 / p95 (n={samples})",
        lambda r: ms_pair(r["latency"]["critical"]),
        "",
        "",
    )
    row(
        f"non-critical write (`api-evidence-detail.access`), p50 / p95 (n={samples})",
        lambda r: ms_pair(r["latency"]["ordinary"]),
        "(the reference)",
        "",
    )

    def difference(result: dict) -> str:
        latency = result["latency"]
        p50 = (percentile(latency["critical"], 0.5) - percentile(latency["ordinary"], 0.5)) * 1000
        p95 = (percentile(latency["critical"], 0.95) - percentile(latency["ordinary"], 0.95)) * 1000
        return f"{p50:.1f} / {p95:.1f} ms"

    row("what the checkpoint adds (critical − non-critical), p50 / p95", difference, "", "< 20 ms at p95")  # noqa: RUF001
    row(
        f"`checkpoint_write()` alone (signs the one new event), p50 / p95 (n={samples})",
        lambda r: ms_pair(r["latency"]["alone"]),
        "",
        "< 20 ms at p95",
    )
    for kind in PRIVACY_REQUESTS:
        privacy = first["privacy"][kind]
        row(
            f"audited requests/s without the privacy model: `{privacy['path']}` (n={privacy['requests']:,})",
            lambda r, k=kind: f"{r['privacy'][k]['without_per_second']:,.0f}/s",
            "(the reference)",
            "",
        )
        row(
            f"… with the privacy model (production policy): `{privacy['path']}`",
            lambda r, k=kind: f"{r['privacy'][k]['with_per_second']:,.0f}/s ({privacy_slower(r['privacy'][k]):+.1f} %)",
            "",
            f"< {GOAL_PRIVACY_SLOWER_PERCENT:.0f} % slower",
        )
    print()
    print("Times are medians of the timed runs (wall clock); floor ratios = the measure ÷ its floor in the same")
    print("process. The floor of verification reads each row once through the bare DB-API cursor and hashes its")
    print("canonical JSON twice (global and case chain), comparing nothing. The custody reports include their own")
    print("audit row and the checkpoint written when it commits. Figures are only comparable within one run.")
    for name in databases:
        result = results[name]
        if not result.get("check_ok"):
            print(f"{titles[name]}: the built trail did not verify, nothing was timed: {result['check']}")
            continue
        latency = result["latency"]
        print(
            f"{titles[name]}: timed verification said: {result['verify']['summary']}; offline verifier (exit "
            f"{result['offline']['exit']}) said: {result['offline']['said']}; {latency['checkpoint_after_ordinary']} "
            f"of the non-critical writes also wrote a checkpoint (every {result['checkpoint_every']}th event); "
            f"custody-critical writes without their own checkpoint: {latency['missing_after_critical']}; "
            f"after the run: {result['final_check']}"
        )
    print()
    print("Goals (issue #15):")
    for name in databases:
        result = results[name]
        if not result.get("check_ok"):
            continue
        verify = median(result["verify"]["samples"])
        offline = median(result["offline"]["samples"])
        reports = max(median(result["report_pdf"]["samples"]), median(result["report_json"]["samples"]))
        critical_p95 = percentile(result["latency"]["critical"], 0.95) - percentile(result["latency"]["ordinary"], 0.95)
        alone_p95 = percentile(result["latency"]["alone"], 0.95)
        scaled = " pro rata for this size; fixed costs weigh more in a small run" if events_asked < 1_000_000 else ""
        print(
            f"- {titles[name]}: verification {seconds_text(verify)} (goal < {seconds_text(goal_verify)}{scaled}): "
            f"{'met' if verify < goal_verify and result['verify']['ok'] else 'not met'}; offline verifier "
            f"{seconds_text(offline)} (goal < {seconds_text(goal_offline)}{scaled}): "
            f"{'met' if offline < goal_offline and result['offline']['exit'] == 0 else 'not met'}; custody report "
            f"{seconds_text(reports)} (goal < 10 s): {'met' if reports < GOAL_REPORT_SECONDS else 'not met'}; "
            f"checkpoint p95 {max(critical_p95, alone_p95) * 1000:.1f} ms (the larger of the difference and "
            f"checkpoint_write alone; goal < 20 ms): "
            f"{'met' if max(critical_p95, alone_p95) * 1000 < GOAL_CHECKPOINT_P95_MS else 'not met'}"
        )
    print()
    print("Goals (issue #19):")
    for name in databases:
        result = results[name]
        if not result.get("check_ok"):
            continue
        parts = [
            f"{result['privacy'][kind]['path']} {privacy_slower(result['privacy'][kind]):+.1f} % "
            f"({'met' if privacy_slower(result['privacy'][kind]) < GOAL_PRIVACY_SLOWER_PERCENT else 'not met'}; "
            f"actor replaced: {result['privacy'][kind]['last_actor_replaced']})"
            for kind in PRIVACY_REQUESTS
        ]
        print(f"- {titles[name]}: the privacy model on an audited request (goal < 10 % slower): " + "; ".join(parts))


# ------------------------------------------------------------------------------------------- the command


# Where a worker's data would otherwise go, and the keys it would use: it must stay in its own temporary
# folder with the test settings' fixed keys (a million rows and ten thousand write-once checkpoints must never
# land in a real database, store or key store, nor be signed with an organisation's real key).
OWN_DATA_ONLY = (
    "CUSTODIA_MASTER_KEY",
    "CUSTODIA_AUDIT_SIGNING_KEY",
    "CUSTODIA_SQLITE_PATH",
    "CUSTODIA_EVIDENCE_DIR",
    "CUSTODIA_EVIDENCE_STORE",
    "CUSTODIA_KEYSTORE_PATH",
    "CUSTODIA_KEY_STORE",
    "CUSTODIA_AUDIT_SIGNER",
    "CUSTODIA_AUDIT_ARCHIVE",
    "CUSTODIA_AUDIT_CHECKPOINT_PREFIX",
)


def run_worker(*, database: str, arguments, env: dict) -> dict:
    env = {
        key: value
        for key, value in env.items()
        if key not in OWN_DATA_ONLY and key.removesuffix("_FILE") not in OWN_DATA_ONLY
    }
    output = Path(tempfile.mkstemp(prefix=f"custodia-bench-audit-{database}-", suffix=".json")[1])
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        database,
        "--output",
        str(output),
        "--events",
        str(arguments.events),
        "--samples",
        str(arguments.samples),
        "--repeats",
        str(arguments.repeats),
        "--seed",
        str(arguments.seed),
        "--requests",
        str(arguments.requests),
        *(["--profile"] if arguments.profile else []),
    ]
    try:
        subprocess.run(command, env=env, check=True, cwd=PROJECT_ROOT)
        return json.loads(output.read_text())
    finally:
        output.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a tenth: 100,000 events")
    size.add_argument("--smoke", action="store_true", help="tiny (seconds): 3,000 events; for the test")
    parser.add_argument("--events", type=int, default=None, help="events in the trail (default 1,000,000)")
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    parser.add_argument("--samples", type=int, default=None, help="writes timed for the checkpoint's cost")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs of each whole-trail measure")
    parser.add_argument("--requests", type=int, default=None, help="audited requests timed with and without privacy")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions to stderr")
    parser.add_argument("--worker", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    mode = SIZES["smoke" if arguments.smoke else "quick" if arguments.quick else "default"]
    for name in ("events", "samples", "repeats", "requests"):
        if getattr(arguments, name) is None:
            setattr(arguments, name, mode[name])

    if arguments.worker:
        result = run_database(
            database=arguments.worker,
            events=arguments.events,
            samples=arguments.samples,
            repeats=arguments.repeats,
            seed=arguments.seed,
            profile=arguments.profile,
            requests=arguments.requests,
        )
        Path(arguments.output).write_text(json.dumps(result))
        return

    from bench.machine import machine_description

    print(f"machine: {machine_description()}")
    print(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; command: .venv/bin/python bench/{Path(__file__).name} "
        + " ".join(sys.argv[1:])
    )
    print(
        f"{arguments.events:,} synthetic audit events over 20 cases (seed {arguments.seed}); {arguments.samples} "
        f"latency samples; {arguments.repeats} timed run(s) of each whole-trail measure",
        flush=True,
    )
    results: dict[str, dict] = {}
    if arguments.only in (None, "sqlite"):
        env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
        results["sqlite"] = run_worker(database="sqlite", arguments=arguments, env=env)
    if arguments.only in (None, "postgres"):
        if os.environ.get("DATABASE_URL"):
            results["postgres"] = run_worker(database="postgres", arguments=arguments, env=dict(os.environ))
        else:
            from tests.servers import postgres_server

            with postgres_server() as server:
                env = {**os.environ, "DATABASE_URL": server.url}
                results["postgres"] = run_worker(database="postgres", arguments=arguments, env=env)
    print()
    print_report(results, events_asked=arguments.events)


if __name__ == "__main__":
    main()
