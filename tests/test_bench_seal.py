"""bench/seal.py keeps running: its smoke size end to end, every table printed (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_the_seal_benchmark_runs_at_smoke_size():
    command = [sys.executable, str(PROJECT_ROOT / "bench" / "seal.py"), "--smoke"]
    completed = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    for data in ("random", "half-zero", "tar of text"):
        assert any(line.startswith(f"| {data} |") for line in rows), data
    assert any("conv=fsync" in line for line in rows)
    assert "Goal (issue #21): seal → local store ≥ 0.6x md5sum" in out
    assert "peak RSS (VmHWM)" in out and "Goal: peak < 300 MiB" in out
