"""bench/capture.py keeps running: its smoke size end to end, the table's rows printed (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import ServerUnavailable, azurite_binary

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def test_the_capture_benchmark_runs_at_smoke_size():
    try:
        azurite_binary()
    except ServerUnavailable as reason:
        pytest.skip(f"Azurite unavailable: {reason}")
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "capture.py"), "--smoke"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    table = [line for line in completed.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| measure | MiB/s | seconds | peak RSS (MiB) | ratio to download | goal |")
    assert any(line.startswith("| plain `download_blob(") for line in table)
    assert any(line.startswith("| capture: SAS stream") for line in table)
    assert "SHA-256 of the sealed stream equals the blob's: OK" in completed.stdout
    assert "Goals (issue #16):" in completed.stdout
