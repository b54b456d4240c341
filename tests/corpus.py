"""The shared forensic test corpus (DESIGN.md §12): where it is, its MANIFEST, and skipping without it.

Paths are relative to the corpus folder, as in MANIFEST.tsv's ``file`` column (``files/dfvfs/ext2.E01``).
The corpus is read in place from ``CUSTODIA_TESTDATA`` (default ``../shared/testdata`` next to the
repository), never copied into the project: several files are GPL/AGPL.
"""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def testdata_dir() -> Path:
    return Path(os.environ.get("CUSTODIA_TESTDATA", REPO_ROOT.parent / "shared" / "testdata"))


# Its name starts with "test": keep pytest from collecting it as a test in the modules that import it.
testdata_dir.__test__ = False


def manifest() -> dict[str, dict[str, str]]:
    """MANIFEST.tsv rows keyed by their ``file`` column; empty when the corpus is absent."""
    return _read_manifest(testdata_dir() / "MANIFEST.tsv")


def require_corpus(path: str) -> Path:
    """The absolute path of a corpus file, or skip the test with a reason saying how to get the corpus."""
    full_path = testdata_dir() / path
    if not full_path.exists():
        pytest.skip(f"test corpus file {full_path} is absent (set CUSTODIA_TESTDATA to the shared test data folder)")
    return full_path


@functools.cache
def _read_manifest(manifest_path: Path) -> dict[str, dict[str, str]]:
    if not manifest_path.is_file():
        return {}
    with manifest_path.open(newline="", encoding="utf-8") as stream:
        return {row["file"]: row for row in csv.DictReader(stream, delimiter="\t")}
