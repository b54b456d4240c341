"""bench/events.py keeps running: its smoke size end to end, every query's row printed (no timing asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.servers import POSTGRES_BIN_DIRS

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def test_the_events_benchmark_runs_at_smoke_size():
    # Never the suite's database: each worker makes its own.
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    command = [sys.executable, str(PROJECT_ROOT / "bench" / "events.py"), "--smoke"]
    if not POSTGRES_BIN_DIRS:
        command += ["--only", "sqlite"]
    completed = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| query (SQLite) | events filter | events p50 / p95 ms |")
    assert any(line.startswith("| `type:email` (sent e-mail in a year)") for line in table)
    assert "error" not in out, out
    if POSTGRES_BIN_DIRS:
        assert any(line.startswith("| query (PostgreSQL)") for line in table)
