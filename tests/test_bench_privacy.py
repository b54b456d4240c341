"""bench/privacy.py keeps running: its smoke size end to end, every row of its table printed (no timing asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

ROWS = (
    *(f"{code} (one value)" for code in ("PR", "PI", "ER", "EI", "SR", "SI", "MR", "MI", "NR", "NI")),
    "audit row details (4 tagged values, default policy)",
    "log line through PrivacyLogFilter (seed line, Table 3)",
    "floor: SHA-256 of the value",
)


def test_the_privacy_benchmark_runs_at_smoke_size():
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    command = [sys.executable, str(PROJECT_ROOT / "bench" / "privacy.py"), "--smoke"]
    completed = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    table = [line for line in completed.stdout.splitlines() if line.startswith("| ")]
    assert table[0] == "| measure | per second | µs each |"
    for name in ROWS:
        assert any(line.startswith(f"| {name} | ") for line in table), name
