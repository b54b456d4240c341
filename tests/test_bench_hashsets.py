"""bench/hashsets.py keeps running: its smoke size end to end, the table's rows printed (no timing asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.servers import POSTGRES_BIN_DIRS

PROJECT_ROOT = Path(__file__).resolve().parent.parent

ROWS = (
    "import of 20,000 SHA-256 (plain list)",
    "import of 20,000 digests as NSRLFile.txt (10,000 rows, SHA-1 + MD5)",
    "extraction, no hash set",
    "extraction, with the 20,000-hash set",
    "added by the look-up",
    "… time in `HashSetMarker.mark_batch` (look-up + marks, per batch)",
    "traces marked",
)


def test_the_hash_set_benchmark_runs_at_smoke_size():
    # Never the suite's database: each worker makes its own (SQLite, and a throw-away PostgreSQL server).
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    command = [sys.executable, str(PROJECT_ROOT / "bench" / "hashsets.py"), "--smoke"]
    if not POSTGRES_BIN_DIRS:
        command += ["--only", "sqlite"]
    completed = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)  # nosec B603
    assert completed.returncode == 0, completed.stderr[-3000:]
    table = [line for line in completed.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| measure | SQLite |")
    for name in ROWS:
        assert any(line.startswith(f"| {name} |") for line in table), name
    marked = next(line for line in table if line.startswith("| traces marked |"))
    assert "| 0 |" not in marked  # half the image's files are in the set: the look-up finds them
