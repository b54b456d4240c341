"""Server-side imports stay inside the configured import roots: no '..', no symlink out, no special files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evidence.intake.errors import ImportPathRefused
from evidence.intake.paths import open_import_path, resolve_import_path


@pytest.fixture
def layout(tmp_path) -> dict[str, Path]:
    """imports/ (the root) with a case folder, and outside/ holding what must never be imported."""
    root = tmp_path / "imports"
    (root / "case-42").mkdir(parents=True)
    (root / "case-42" / "disk.E01").write_bytes(b"EVF evidence")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "shadow").write_bytes(b"root:secret")
    return {"root": root, "outside": outside, "tmp": tmp_path}


def refusal(*, path: str | Path, roots: list[Path]) -> ImportPathRefused:
    with pytest.raises(ImportPathRefused) as raised:
        resolve_import_path(path=str(path), roots=roots)
    return raised.value


def test_a_file_inside_a_root_is_accepted_by_absolute_and_relative_path(layout):
    root = layout["root"]
    expected = root.resolve() / "case-42" / "disk.E01"

    assert resolve_import_path(path=str(root / "case-42" / "disk.E01"), roots=[root]) == expected
    assert resolve_import_path(path="case-42/disk.E01", roots=[root]) == expected
    assert resolve_import_path(path="./case-42/./disk.E01", roots=[root]) == expected


def test_a_path_outside_the_roots_is_refused(layout):
    error = refusal(path=layout["outside"] / "shadow", roots=[layout["root"]])

    assert error.reason == "it is outside the configured import roots"
    assert error.code == "import_path_refused"
    assert "refused" in str(error)


def test_dot_dot_is_refused_even_when_it_would_land_inside(layout):
    root = layout["root"]
    for path in ("../outside/shadow", f"{root}/../outside/shadow", f"{root}/case-42/../case-42/disk.E01"):
        assert refusal(path=path, roots=[root]).reason == "'..' is not allowed in import paths"


def test_a_symlinked_file_leading_outside_is_refused_without_saying_where_it_leads(layout):
    root = layout["root"]
    (root / "case-42" / "innocent.E01").symlink_to(layout["outside"] / "shadow")

    error = refusal(path=root / "case-42" / "innocent.E01", roots=[root])

    assert "symlink leading outside" in error.reason
    assert str(layout["outside"]) not in str(error)


def test_a_symlinked_folder_leading_outside_is_refused_at_that_component(layout):
    root = layout["root"]
    (root / "mounted").symlink_to(layout["outside"], target_is_directory=True)

    assert "'mounted' is a symlink" in refusal(path="mounted/shadow", roots=[root]).reason


def test_a_symlink_that_leaves_and_comes_back_is_still_refused(layout):
    root, outside = layout["root"], layout["outside"]
    (outside / "back").symlink_to(root / "case-42", target_is_directory=True)
    (root / "detour").symlink_to(outside, target_is_directory=True)

    assert "'detour' is a symlink" in refusal(path=root / "detour" / "back" / "disk.E01", roots=[root]).reason


def test_symlinks_that_stay_inside_the_roots_are_followed(layout):
    root = layout["root"]
    (root / "latest.E01").symlink_to(root / "case-42" / "disk.E01")
    (root / "current").symlink_to("case-42", target_is_directory=True)

    assert resolve_import_path(path="latest.E01", roots=[root]) == root.resolve() / "latest.E01"
    assert resolve_import_path(path="current/disk.E01", roots=[root]) == root.resolve() / "current" / "disk.E01"


def test_a_root_that_is_itself_a_symlink_accepts_both_spellings(layout):
    mount = layout["tmp"] / "mnt-evidence"
    mount.symlink_to(layout["root"], target_is_directory=True)
    expected = layout["root"].resolve() / "case-42" / "disk.E01"

    assert resolve_import_path(path=str(mount / "case-42" / "disk.E01"), roots=[mount]) == expected
    assert resolve_import_path(path=str(layout["root"] / "case-42" / "disk.E01"), roots=[mount]) == expected


def test_missing_files_folders_and_special_files_are_refused(layout):
    root = layout["root"]
    os.mkfifo(root / "pipe")

    assert refusal(path="case-42/nothing.E01", roots=[root]).reason == "it does not exist under any import root"
    assert refusal(path=root / "case-42" / "nothing.E01", roots=[root]).reason == "it does not exist"
    assert refusal(path=root / "case-42", roots=[root]).reason == "it is not a regular file"
    assert refusal(path="pipe", roots=[root]).reason == "it is not a regular file"
    (root / "dangling").symlink_to(root / "gone")
    assert refusal(path="dangling", roots=[root]).reason == "it does not exist"


def test_bad_strings_and_missing_roots_are_refused(layout):
    root = layout["root"]

    assert "non-empty" in refusal(path="", roots=[root]).reason
    assert "NUL" in refusal(path="case-42/disk.E01\0.txt", roots=[root]).reason
    assert "no import root" in refusal(path="case-42/disk.E01", roots=[]).reason
    assert "no import root" in refusal(path="case-42/disk.E01", roots=[layout["tmp"] / "unmounted"]).reason
    # A root that is not mounted right now is skipped; the others still work.
    assert resolve_import_path(path="case-42/disk.E01", roots=[layout["tmp"] / "unmounted", root]).is_file()


def test_a_relative_path_found_under_two_roots_is_ambiguous(layout):
    second = layout["tmp"] / "second-share"
    (second / "case-42").mkdir(parents=True)
    (second / "case-42" / "disk.E01").write_bytes(b"another")

    assert "several import roots" in refusal(path="case-42/disk.E01", roots=[layout["root"], second]).reason
    assert resolve_import_path(path=str(second / "case-42" / "disk.E01"), roots=[layout["root"], second]).is_file()


def test_open_import_path_opens_the_checked_file(layout):
    with open_import_path(path="case-42/disk.E01", roots=[layout["root"]]) as stream:
        assert stream.read() == b"EVF evidence"
    with pytest.raises(ImportPathRefused):
        open_import_path(path=str(layout["outside"] / "shadow"), roots=[layout["root"]])


def test_open_import_path_checks_the_file_it_actually_opened(layout, monkeypatch):
    # Simulate a symlink swapped between the check and the open: the check passed, the open lands outside.
    from evidence.intake import paths

    monkeypatch.setattr(paths, "resolve_import_path", lambda **_: layout["outside"] / "shadow")

    with pytest.raises(ImportPathRefused, match="changed while being opened"):
        open_import_path(path="case-42/disk.E01", roots=[layout["root"]])
