"""bench/extract.py and bench/extract_pipeline.py keep running: their smoke size end to end, every row of
their tables printed (no timing asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The benchmarks make their own SQLite database whatever the suite runs on: once (the SQLite pass) is enough.
pytestmark = pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="run in the SQLite pass")


def run_bench(name: str, *arguments: str) -> list[str]:
    # Never the suite's database: the pipeline benchmark makes its own (a fresh SQLite file).
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    command = [sys.executable, str(PROJECT_ROOT / "bench" / name), "--smoke", *arguments]
    completed = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return [line for line in completed.stdout.splitlines() if line.startswith("| ")]


def test_the_walk_benchmark_runs_at_smoke_size():
    table = run_bench("extract.py")
    for image in ("ext4", "ntfs"):
        rows = [line for line in table if line.startswith(f"| {image} |")]
        assert any("Sleuth Kit: fls + tsk_recover + sha256sum" in row for row in rows)
        assert any("libmagic alone" in row for row in rows)
        assert any("walk_image over the sealed container, 1 worker |" in row for row in rows)
        assert any("2 worker processes" in row for row in rows)


def test_the_whole_run_benchmark_runs_at_smoke_size():
    table = run_bench("extract_pipeline.py", "--shards", "2")
    assert table[0].startswith("| image | pipeline | files | MB | seconds | CPU seconds | files/s |")
    for image in ("ext4", "ntfs"):
        rows = [line for line in table if line.startswith(f"| {image} |")]
        names = (
            "Sleuth Kit: fls + tsk_recover + sha256sum",
            "floor: every file read once into MD5 + SHA-1 + SHA-256",
            "floor: libmagic alone",
            "Custodia: the walk alone",
            "Custodia: extraction run, walk + tools + commit (2 shares in 2 processes",
        )
        for name in names:
            assert any(name in row for row in rows), (image, name)
        run_row = next(row for row in rows if "Custodia: extraction run" in row)
        cells = [cell.strip() for cell in run_row.strip("|").split("|")]
        assert int(cells[2].replace(",", "")) >= 300  # every generated file was read (and the file systems' own)
        assert cells[-1].endswith(" s")  # a first committed trace
