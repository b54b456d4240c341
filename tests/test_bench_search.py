"""bench/search.py keeps running: its smoke size end to end, every query's row printed (no timing asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.servers import POSTGRES_BIN_DIRS

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def test_the_search_benchmark_runs_at_smoke_size():
    # Never the suite's database: each worker makes its own (a temporary SQLite file, and a throw-away
    # PostgreSQL server when the binaries are installed).
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    command = [sys.executable, str(PROJECT_ROOT / "bench" / "search.py"), "--smoke"]
    if not POSTGRES_BIN_DIRS:
        command += ["--only", "sqlite"]
    completed = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| query | matches (bare) | SQLite Custodia p50 / p95 ms |")
    assert any(line.startswith("| `invoice AND type:email -deleted:true`") for line in table)
    assert any(line.startswith("| **all 20 queries (pooled samples)**") for line in table)
    assert "error on" not in out, out
    assert "indexing, SQLite" in out and "Goals (issues #5 and #21):" in out
    if POSTGRES_BIN_DIRS:
        assert "indexing, PostgreSQL" in out
