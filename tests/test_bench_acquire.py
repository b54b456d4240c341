"""bench/acquire.py keeps running: its smoke size end to end, the table printed (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_the_acquisition_benchmark_runs_at_smoke_size():
    command = [sys.executable, str(PROJECT_ROOT / "bench" / "acquire.py"), "--smoke"]
    completed = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = [line for line in completed.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| measure | MB/s |")
    for name in ("acquisition → LocalWormStore", "acquisition → discard", "`dd if=IMAGE bs=4M \\| sha256sum`"):
        assert any(line.startswith(f"| {name}") for line in rows), name
    assert any("conv=fsync" in line for line in rows)
