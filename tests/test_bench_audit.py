"""bench/audit.py keeps running: its smoke size end to end, the table's rows printed (no timing asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.servers import POSTGRES_BIN_DIRS

PROJECT_ROOT = Path(__file__).resolve().parent.parent

ROWS = (
    "`verify_trail()` (`audit_verify`)",
    "… of which `read_archive`",
    "floor: one SELECT of the hashed fields",
    "export of DEMO-2026-001",
    "`python3 -I audit/offline_verify.py` on that export",
    "custody report (PDF)",
    "custody report (JSON)",
    "custody-critical write (`evidence.verify`) + checkpoint on commit",
    "non-critical write (`api-evidence-detail.access`)",
    "what the checkpoint adds",
    "`checkpoint_write()` alone",
    "audited requests/s without the privacy model: `GET /api/cases/{case}/`",
    "… with the privacy model (production policy): `GET /api/cases/{case}/`",
    "audited requests/s without the privacy model: `POST /api/cases/{case}/traces/search`",
    "… with the privacy model (production policy): `POST /api/cases/{case}/traces/search`",
)


def test_the_audit_benchmark_runs_at_smoke_size():
    # The test settings' environment, but never the suite's database: each worker makes its own (a temporary
    # SQLite file, and a throw-away PostgreSQL server when the binaries are installed).
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    command = [sys.executable, str(PROJECT_ROOT / "bench" / "audit.py"), "--smoke"]
    if not POSTGRES_BIN_DIRS:
        command += ["--only", "sqlite"]
    completed = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-3000:]
    table = [line for line in completed.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| measure | SQLite | PostgreSQL | floor / reference | goal |")
    for name in ROWS:
        assert any(line.startswith(f"| {name}") for line in table), name
    assert "trail broken" not in completed.stdout and "NOT OK" not in completed.stdout
    assert "offline verifier (exit 0)" in completed.stdout
    assert "Goals (issue #15):" in completed.stdout
    assert "Goals (issue #19):" in completed.stdout and "actor replaced: False" not in completed.stdout
