"""Disk images inside files and archives (issue #18, item 8): walked as child sources, bounded by the
evidence item's absolute budget instead of a compression ratio. Truth: The Sleuth Kit run on each inner
image directly, never Custodia's own listing."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

from search.extraction.budget import BUDGET_ERROR_PREFIX, ExtractionBudget
from search.extraction.pipeline import trace_rows
from search.extraction.walker import Walk, WalkOptions
from tests.differencing import (
    fat_image,
    fls,
    icat_sha256,
    images_in_a_fat_image,
    needs_image_tools,
    sparse_ext4_with,
)

pytestmark = needs_image_tools

MIB = 1024 * 1024


def rows_of(image: Path, *, budget: ExtractionBudget | None) -> list[dict]:
    walk = Walk(
        file_object=image.open("rb"),
        evidence_id="ev",
        secrets=None,
        options=WalkOptions(file_name=image.name, keep_content=True, budget=budget),
    )
    return [
        row for record in walk.run() for row in trace_rows(record=record, resolver_context=walk.context, budget=budget)
    ]


def listing_below(rows: list[dict], prefix: str) -> set[tuple[str, bool]]:
    """(path below the inner file system's trace, deleted) of every file row under ``prefix``."""
    return {
        (row["path"][len(prefix) + 1 :], row["deleted"])
        for row in rows
        if row["path"].startswith(prefix + "/") and "file" in row["types"]
    }


def truth(raw: Path) -> set[tuple[str, bool]]:
    return {(entry.path, entry.deleted) for entry in fls(raw)}


def sha256_of(rows: list[dict], path: str) -> str:
    row = next(row for row in rows if row["path"] == path)
    return next(stream["sha256"] for stream in row["streams"] if stream["name"] == "raw")


def test_a_vhd_and_an_ext_image_inside_a_fat_image_are_walked_below_their_files(tmp_path):
    outer, inner = images_in_a_fat_image(tmp_path)
    rows = rows_of(outer, budget=ExtractionBudget())
    vhd_fs = next(row for row in rows if row["path"].startswith("/outer.raw/fat16/INNER.VHD/vhd/fat"))["path"]
    vhd_fs = "/".join(vhd_fs.split("/")[:6])
    assert listing_below(rows, vhd_fs) == truth(inner["INNER.VHD"])
    note = next(entry for entry in fls(inner["INNER.VHD"]) if entry.path == "NOTE.TXT")
    assert sha256_of(rows, f"{vhd_fs}/NOTE.TXT") == icat_sha256(inner["INNER.VHD"], note.inode)
    ext_fs = "/outer.raw/fat16/INNER.EXT/raw/ext4"
    assert listing_below(rows, ext_fs) == truth(inner["INNER.EXT"])
    deep = next(entry for entry in fls(inner["INNER.EXT"]) if entry.path == "deep.txt")
    assert sha256_of(rows, f"{ext_fs}/deep.txt") == icat_sha256(inner["INNER.EXT"], deep.inode)
    image_layer = next(row for row in rows if row["path"] == "/outer.raw/fat16/INNER.VHD/vhd")
    assert image_layer["types"] == ["image"] and image_layer["properties"]["image.nested"] is True


def test_a_sparse_ext4_image_in_a_zip_and_in_a_gz_is_walked_though_its_ratio_passes_the_bomb_limit(tmp_path):
    inner = sparse_ext4_with(tmp_path / "inner.img", size_mib=100, text=b"deep in the archive\n")
    with zipfile.ZipFile(tmp_path / "disk.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.write(inner, "inner.img")
    (tmp_path / "inner.img.gz").write_bytes(gzip.compress(inner.read_bytes(), compresslevel=9))
    ratio = inner.stat().st_size / (tmp_path / "disk.zip").stat().st_size
    assert ratio > 500 and inner.stat().st_size > 64 * MIB  # refused by the ratio check before #18
    outer = fat_image(
        tmp_path / "outer.raw",
        size_mib=8,
        files={"DISK.ZIP": tmp_path / "disk.zip", "IMG.GZ": tmp_path / "inner.img.gz"},
    )
    budget = ExtractionBudget()
    rows = rows_of(outer, budget=budget)
    expected = truth(inner)
    deep = next(entry for entry in fls(inner) if entry.path == "inner/deep.txt")
    for prefix in ("/outer.raw/fat12/DISK.ZIP/inner.img/raw/ext4", "/outer.raw/fat12/IMG.GZ/IMG/raw/ext4"):
        assert listing_below(rows, prefix) == expected, prefix
        assert sha256_of(rows, f"{prefix}/inner/deep.txt") == icat_sha256(inner, deep.inode)
        file_rows = [row for row in rows if row["path"].startswith(prefix)]
        assert all(stream["data_path"] == "" for row in file_rows for stream in row["streams"])
    assert budget.decompressed_bytes == 2 * inner.stat().st_size and not budget.hits


def test_the_budget_stops_what_would_exceed_it_and_says_so_on_the_trace(tmp_path):
    inner = sparse_ext4_with(tmp_path / "inner.img", size_mib=80, text=b"never read\n")
    (tmp_path / "inner.img.gz").write_bytes(gzip.compress(inner.read_bytes(), compresslevel=9))
    outer = fat_image(tmp_path / "outer.raw", size_mib=8, files={"IMG.GZ": tmp_path / "inner.img.gz"})

    small = ExtractionBudget(max_decompressed_bytes=16 * MIB)
    rows = rows_of(outer, budget=small)
    member = next(row for row in rows if row["path"] == "/outer.raw/fat12/IMG.GZ/IMG")
    assert any(error["message"].startswith(f"{BUDGET_ERROR_PREFIX}: gzip stream") for error in member["errors"])
    assert not any("/IMG/raw" in row["path"] for row in rows)

    shallow = ExtractionBudget(max_nesting=0)
    rows = rows_of(outer, budget=shallow)
    member = next(row for row in rows if row["path"] == "/outer.raw/fat12/IMG.GZ/IMG")
    assert any("nested more than 0 deep" in error["message"] for error in member["errors"])
    assert not any("/IMG/raw" in row["path"] for row in rows)

    (tmp_path / "more").mkdir()
    outer_with_image, _inner = images_in_a_fat_image(tmp_path / "more")
    rows = rows_of(outer_with_image, budget=ExtractionBudget(max_nesting=0))
    vhd_file = next(row for row in rows if row["path"] == "/outer.raw/fat16/INNER.VHD")
    assert [error["tool"] for error in vhd_file["errors"]] == ["custodia"]
    assert not any(row["path"].startswith("/outer.raw/fat16/INNER.VHD/") for row in rows)


def test_without_a_budget_a_compressed_image_is_still_held_to_the_ratio(tmp_path):
    inner = sparse_ext4_with(tmp_path / "inner.img", size_mib=80, text=b"x\n")
    (tmp_path / "inner.img.gz").write_bytes(gzip.compress(inner.read_bytes(), compresslevel=9))
    outer = fat_image(tmp_path / "outer.raw", size_mib=8, files={"IMG.GZ": tmp_path / "inner.img.gz"})
    rows = rows_of(outer, budget=None)
    member = next(row for row in rows if row["path"] == "/outer.raw/fat12/IMG.GZ/IMG")
    assert any("compression ratio limit" in error["message"] for error in member["errors"])


def test_which_streams_count_as_disk_images(tmp_path):
    from evidence.reading import disk_image_format

    ext = sparse_ext4_with(tmp_path / "x.img", size_mib=4, text=b"x")
    head = ext.read_bytes()[: 64 * 1024]
    assert disk_image_format(head=head, tail=None, name="anything.bin") == "raw"
    assert disk_image_format(head=b"hello world\n" * 100, tail=None, name="notes.txt") is None
    assert disk_image_format(head=bytes(8192), tail=None, name="blank.img") is None  # no structure to walk
    segment = b"EVF\x09\x0d\x0a\xff\x00\x01" + (2).to_bytes(2, "little") + bytes(2)
    assert disk_image_format(head=segment.ljust(8192, b"\0"), tail=None, name="disk.E02") is None
    assert disk_image_format(head=b"not a vhd".ljust(8192, b"\0"), tail=None, name="fake.vhd") is None
