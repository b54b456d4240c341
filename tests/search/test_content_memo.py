"""Copies of a content are analysed once per walk (``ContentMemo``), and their rows are exactly those a walk
without the memo gives."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile

import pytest

from search.extraction import source as media_source
from search.extraction.pipeline import ContentMemo, trace_rows
from search.extraction.walker import WalkOptions, walk_image


def image_with_copies(folder) -> bytes:
    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 is not installed (apt: e2fsprogs)")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as members:
        members.writestr("minutes.txt", "the meeting of the ninth\n" * 20)
        members.writestr("inner.zip", b"PK\x05\x06" + bytes(18))
    tree = folder / "tree"
    for name in ("a", "b", "c"):
        (tree / name).mkdir(parents=True)
        (tree / name / "papers.zip").write_bytes(archive.getvalue())  # the same name and bytes: a copy
        (tree / name / "note.txt").write_text("statement of the witness\n")
    (tree / "c" / "other-name.zip").write_bytes(archive.getvalue())  # same bytes, another name: analysed anew
    image = folder / "disk.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), "8M"], check=True)
    return image.read_bytes()


def rows(data: bytes, *, memo: ContentMemo | None) -> list[dict]:
    options = WalkOptions(file_name="disk.ext4", keep_content=True)
    context = media_source.EvidenceResolverContext(files={"disk.ext4": io.BytesIO(data)})
    result = []
    for record in walk_image(file_object=io.BytesIO(data), evidence_id="memo-test", options=options):
        result.extend(trace_rows(record=record, resolver_context=context, memo=memo))
    return result


def test_copies_are_analysed_once_and_give_the_rows_of_a_walk_without_memo(tmp_path, monkeypatch):
    data = image_with_copies(tmp_path)
    without = rows(data, memo=None)
    from search.extraction import pipeline

    analysed = []
    original = pipeline.analyse_file
    monkeypatch.setattr(pipeline, "analyse_file", lambda **kw: analysed.append(kw["record"].path) or original(**kw))
    with_memo = rows(data, memo=ContentMemo())
    assert with_memo == without
    zips = [path for path in analysed if path.endswith(".zip")]
    assert len(zips) == 2, zips  # papers.zip once for its three copies, other-name.zip once
    assert sum(1 for row in with_memo if row["name"] == "minutes.txt") == 4  # every copy has its members
