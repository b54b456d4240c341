"""Forensic correctness of the volume layers (issue 18): volume shadow copies listed once each, and
partitions holding two file systems reported as ambiguous.

Images are built here with Debian's tools (mkntfs/ntfscp, mkfs.vfat/mcopy) in temporary folders; the
answer key is The Sleuth Kit's command-line tools (fls, icat) run on the same bytes, never Custodia.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from dfvfs.vfs import vshadow_file_system

from search.extraction.traces import TraceRecord
from search.extraction.walker import WalkOptions, walk_image
from search.extraction.walker.volumes import inside_shadow_copy

# What a Windows volume carries at 0x1e00 when it has shadow copies: the VSS identifier dfVFS looks for.
VSS_SIGNATURE_OFFSET = 0x1E00
VSS_SIGNATURE = bytes.fromhex("6b87083876c1484eb7ae04046e6cc752")


def require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (make system-packages)")


def run(*command: str, **kwargs) -> bytes:
    return subprocess.run(command, check=True, capture_output=True, **kwargs).stdout


def walk(path: Path, **options) -> list[TraceRecord]:
    with path.open("rb") as file_object:
        return list(
            walk_image(file_object=file_object, evidence_id="ev", options=WalkOptions(file_name=path.name, **options))
        )


def make_ntfs(path: Path, files: dict[str, bytes], *, size: int = 8 * 1024 * 1024) -> Path:
    """An NTFS volume with ``files`` in its root folder, written without mounting (mkntfs, ntfscp)."""
    require_tools("mkntfs", "ntfscp")
    with path.open("wb") as image:
        image.truncate(size)
    run("mkntfs", "-F", "-Q", "-q", str(path))
    for name, data in files.items():
        source_file = path.parent / f"source-{name}"
        source_file.write_bytes(data)
        run("ntfscp", "-f", str(path), str(source_file), name)
    return path


def icat_md5(image: Path, name: str) -> str:
    """The MD5 of a root-folder file as The Sleuth Kit's fls and icat read it."""
    for line in run("fls", str(image)).decode().splitlines():
        kind, _, rest = line.partition(" ")
        address, _, listed_name = rest.partition(":\t")
        if listed_name == name and kind.startswith("r/r"):
            return hashlib.md5(run("icat", str(image), address.split("-")[0]), usedforsecurity=False).hexdigest()
    raise AssertionError(f"fls does not list {name} in {image}")


# ---------------------------------------------------------------------- item 1: volume shadow copies


class FakeStore:
    """A shadow copy store as libvshadow presents one: the whole volume as it was, VSS catalog included."""

    def __init__(self, data: bytes, *, identifier: str, filetime: int):
        self.data = data
        self.offset = 0
        self.volume_size = len(data)
        self.identifier = identifier
        self.copy_identifier = identifier.replace("0", "1")
        self.copy_set_identifier = identifier.replace("0", "2")
        self.filetime = filetime

    def has_in_volume_data(self) -> bool:
        return True

    def get_creation_time_as_integer(self) -> int:
        return self.filetime

    def seek(self, offset: int, whence: int = 0) -> None:
        self.offset = {0: offset, 1: self.offset + offset, 2: self.volume_size + offset}[whence]

    def get_offset(self) -> int:
        return self.offset

    def read(self, size: int | None = None) -> bytes:
        end = self.volume_size if size is None else min(self.offset + size, self.volume_size)
        data = self.data[self.offset : end]
        self.offset += len(data)
        return data


class FakeVShadowVolume:
    """libvshadow's volume, for a volume whose stores are the images given to ``with_stores``.

    libvshadow reads the VSS catalog; Windows alone writes one, and no Debian tool can. The fake keeps the
    one property of real stores that matters here: each store's bytes carry the VSS signature again."""

    stores: list[bytes] = []

    def open_file_object(self, file_object) -> None:
        file_object.seek(VSS_SIGNATURE_OFFSET)
        if file_object.read(len(VSS_SIGNATURE)) != VSS_SIGNATURE:
            raise OSError("no VSS volume header")

    @property
    def number_of_stores(self) -> int:
        return len(self.stores)

    def get_store(self, index: int) -> FakeStore:
        return FakeStore(
            self.stores[index],
            identifier=f"0000000{index}-aaaa-bbbb-cccc-000000000000",
            # 2021-01-0{index+1}T00:00:00Z as a FILETIME
            filetime=(1609459200 + index * 86400 + 11644473600) * 10_000_000,
        )

    def close(self) -> None:
        pass


def with_vss_signature(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    assert not any(data[VSS_SIGNATURE_OFFSET : VSS_SIGNATURE_OFFSET + 16]), "mkntfs wrote something at 0x1e00"
    data[VSS_SIGNATURE_OFFSET : VSS_SIGNATURE_OFFSET + 16] = VSS_SIGNATURE
    path.write_bytes(bytes(data))
    return bytes(data)


@pytest.fixture
def shadowed_volume(tmp_path, monkeypatch):
    """A volume (NTFS, VSS signature) with two shadow copies: the older states of its one file."""
    states = []
    for index, text in enumerate([b"first state\n", b"second state, longer\n"]):
        older = make_ntfs(tmp_path / f"state{index}.img", {"notes.txt": text * 10})
        states.append((older, with_vss_signature(older)))
    now = make_ntfs(tmp_path / "now.img", {"notes.txt": b"the volume as seized\n"})
    with_vss_signature(now)

    class Volume(FakeVShadowVolume):
        stores = [data for _, data in states]

    monkeypatch.setattr(vshadow_file_system.pyvshadow, "volume", Volume)
    return now, [path for path, _ in states]


def test_each_shadow_copy_appears_once_directly_under_its_volume(shadowed_volume):
    now, _ = shadowed_volume
    traces = walk(now)
    by_uid = {trace.uid: trace for trace in traces}
    stores = [trace for trace in traces if "volumeShadowCopy" in trace.types]
    assert [store.name for store in stores] == ["vss1", "vss2"]
    assert {store.parent_uid for store in stores} == {"ev:0"}
    # no store under a store, at any depth
    for trace in traces:
        ancestor = by_uid.get(trace.parent_uid or "")
        while ancestor is not None:
            assert not ("volumeShadowCopy" in ancestor.types and "volumeShadowCopy" in trace.types)
            ancestor = by_uid.get(ancestor.parent_uid or "")
    assert not any(trace.name == "unreadable" for trace in traces)
    assert not any("nested too deep" in error.message for trace in traces for error in trace.errors)
    assert stores[0].properties["volumeShadowCopy.createdOn"].startswith("2021-01-01T00:00:00")
    assert stores[1].properties["volumeShadowCopy.identifier"] == "00000001-aaaa-bbbb-cccc-000000000000"
    # one file system per store, plus the volume's own
    file_systems = [trace for trace in traces if "fileSystem" in trace.types]
    assert sorted(by_uid[fs.parent_uid].name for fs in file_systems) == ["now.img", "vss1", "vss2"]


def test_a_stores_file_system_is_read_through_the_vshadow_path(shadowed_volume):
    now, states = shadowed_volume
    traces = walk(now)
    stores = {trace.uid: trace for trace in traces if "volumeShadowCopy" in trace.types}
    notes = {}
    for trace in traces:
        if trace.name == "notes.txt":
            store_uid = next((uid for uid in stores if trace.uid.startswith(uid + "-")), None)
            notes[stores[store_uid].name if store_uid else "live"] = trace
    assert notes["live"].stream("raw").md5 == icat_md5(now, "notes.txt")
    for index, state in enumerate(states):
        trace = notes[f"vss{index + 1}"]
        assert trace.stream("raw").md5 == icat_md5(state, "notes.txt")
        assert '"type_indicator": "VSHADOW"' in trace.stream("raw").data_path


def test_inside_shadow_copy_looks_through_the_whole_chain():
    from dfvfs.lib import definitions
    from dfvfs.path import factory

    os_spec = factory.Factory.NewPathSpec(definitions.TYPE_INDICATOR_OS, location="/image.raw")
    store = factory.Factory.NewPathSpec(definitions.TYPE_INDICATOR_VSHADOW, store_index=0, parent=os_spec)
    partition = factory.Factory.NewPathSpec(definitions.TYPE_INDICATOR_TSK_PARTITION, location="/p1", parent=store)
    assert inside_shadow_copy(partition) and inside_shadow_copy(store) and not inside_shadow_copy(os_spec)


# ---------------------------------------------------------------------- item 2: ambiguous file systems

MIB = 1024 * 1024
SECTOR = 512


def nonzero_sectors(data: bytes) -> set[int]:
    return {index for index in range(len(data) // SECTOR) if any(data[index * SECTOR : (index + 1) * SECTOR])}


def make_ntfs_over_ext(folder: Path) -> Path:
    """An NTFS volume over the remains of an ext2 one, as Brian Carrier's "NTFS autodetect" images are.

    Both are built into files of the same size; every sector the ext2 uses (its superblock at 1024 among
    them) is written over the NTFS where the NTFS has only zeros. 64 KiB NTFS clusters keep the $MFT clear
    of ext2's inode table; the test checks that no sector holds both."""
    require_tools("mkntfs", "ntfscp", "mkfs.ext2", "fls", "icat")
    size = 40 * MIB
    ntfs = folder / "ntfs.img"
    with ntfs.open("wb") as image:
        image.truncate(size)
    run("mkntfs", "-F", "-Q", "-q", "-c", "65536", str(ntfs))
    (folder / "ntfs-side.txt").write_bytes(b"written by Windows, last\n" * 40)
    run("ntfscp", "-f", str(ntfs), str(folder / "ntfs-side.txt"), "ntfs-side.txt")
    ext_files = folder / "ext-files"
    ext_files.mkdir()
    (ext_files / "ext-side.txt").write_bytes(b"left from the Linux install before\n" * 30)
    ext = folder / "ext.img"
    with ext.open("wb") as image:
        image.truncate(size)
    run(
        "mkfs.ext2", "-q", "-F", "-b", "1024", "-N", "64", "-m", "0",
        "-O", "^resize_inode,^dir_index,^sparse_super", "-d", str(ext_files), str(ext),
    )  # fmt: skip
    both = bytearray(ntfs.read_bytes())
    ext_data = ext.read_bytes()
    ext_sectors = nonzero_sectors(ext_data) - {0, 1}  # sector 0 stays the NTFS boot sector
    assert not ext_sectors & nonzero_sectors(bytes(both)), "the two file systems collide"
    for index in ext_sectors:
        both[index * SECTOR : (index + 1) * SECTOR] = ext_data[index * SECTOR : (index + 1) * SECTOR]
    volume = folder / "volume.img"
    volume.write_bytes(bytes(both))
    return volume


def in_a_partition(volume: Path, disk: Path) -> Path:
    """``volume`` as the one partition of an MBR disk (sfdisk on a file), at sector 2048."""
    require_tools("sfdisk")
    with disk.open("wb") as image:
        image.write(bytes(MIB))
        image.write(volume.read_bytes())
    run("sfdisk", "-q", str(disk), input=b"2048,,7\n")
    return disk


def fls_files(image: Path, fs_type: str) -> dict[str, str]:
    """name → MD5 of every allocated regular file in the root folder, by fls -f and icat -f."""
    listed = {}
    for line in run("fls", "-f", fs_type, str(image)).decode().splitlines():
        kind, _, rest = line.partition(" ")
        address, _, name = rest.partition(":\t")
        if kind == "r/r" and not name.startswith("$") and "*" not in address:
            data = run("icat", "-f", fs_type, str(image), address.split("-")[0].strip())
            listed[name] = hashlib.md5(data, usedforsecurity=False).hexdigest()
    return listed


def test_a_partition_holding_two_file_systems_is_reported_and_both_are_walked(tmp_path):
    volume = make_ntfs_over_ext(tmp_path)
    # The answer key's own words: TSK refuses to choose, and each type opens when named.
    fsstat = subprocess.run(["fsstat", str(volume)], capture_output=True, text=True)
    assert "EXT2/3/4 or NTFS" in fsstat.stderr + fsstat.stdout
    expected = {"ntfs": fls_files(volume, "ntfs"), "ext2": fls_files(volume, "ext2")}
    assert expected == {
        "ntfs": {"ntfs-side.txt": hashlib.md5(b"written by Windows, last\n" * 40, usedforsecurity=False).hexdigest()},
        "ext2": {
            "ext-side.txt": hashlib.md5(b"left from the Linux install before\n" * 30, usedforsecurity=False).hexdigest()
        },
    }

    traces = walk(in_a_partition(volume, tmp_path / "disk.img"))
    (partition,) = [trace for trace in traces if "volume" in trace.types]
    assert sorted(partition.properties["volume.ambiguousFileSystems"]) == ["ext2", "ntfs"]
    (warning,) = [error for error in partition.errors if error.message.startswith("warning:")]
    assert "EXT2/3/4 or NTFS" in warning.message
    file_systems = {trace.name: trace for trace in traces if "fileSystem" in trace.types}
    assert set(file_systems) == {"ext2", "ntfs"}
    for name, file_system in file_systems.items():
        assert file_system.parent_uid == partition.uid
        assert file_system.properties["fileSystem.ambiguous"] is True
        assert file_system.properties["fileSystem.ambiguousWith"] == [other for other in file_systems if other != name]
        assert file_system.tools["fileSystem"].name == "pytsk3"  # no silent dfVFS fallback
        walked = {
            trace.name: trace.stream("raw").md5
            for trace in traces
            if trace.parent_uid == file_system.uid and trace.name in expected[name]
        }
        assert walked == expected[name]


def test_a_file_system_listed_through_dfvfs_says_what_it_cannot_show(tmp_path):
    volume = make_ntfs(tmp_path / "ntfs.img", {"a.txt": b"a\n"})
    (file_system,) = [trace for trace in walk(volume, prefer_tsk=False) if "fileSystem" in trace.types]
    assert file_system.tools["fileSystem"].name == "dfvfs"
    note = file_system.properties["fileSystem.notListed"]
    assert "deleted files" in note and "$OrphanFiles" in note and "not The Sleuth Kit" in note


# ---------------------------------------------------------------------- item 11: an E01 uploaded without a name

# The corpus's answer key (GROUND_TRUTH.md, from fls/icat): /passwords.txt of the dfvfs ext2 volume.
PASSWORDS_SHA256 = "02a2a6af2f1ecf4720d7d49d640f0d0a269a7ec733e41973bdd34f09dad0e252"


@pytest.mark.corpus
def test_an_e01_uploaded_without_its_name_is_read_as_an_e01(api, demo):
    from evidence.models import Evidence
    from evidence.reading import open_acquired
    from search.models import Trace
    from search.services import extraction_execute, extraction_start
    from tests.corpus import require_corpus
    from tests.evidence.conftest import upload_all

    data = require_corpus("files/dfvfs/ext2.E01").read_bytes()
    api.as_user(demo.custodian)
    response = api.post(
        f"/api/cases/{demo.case.pk}/evidence/", {"label": "E01 without a name", "kind": "disk_image"}, format="json"
    )
    assert response.status_code == 201, response.content
    evidence_id = response.json()["id"]
    upload_all(api, evidence_id, data)
    assert api.post(f"/api/evidence/{evidence_id}/seal").json()["format"] == "ewf"
    evidence = Evidence.objects.get(pk=evidence_id)
    assert evidence.original_name == ""  # nothing invented where the custodian gave nothing
    with open_acquired(evidence=evidence) as acquired:
        assert acquired.first_name == "image.E01" and acquired.original_names == ()

    extraction_execute(run_id=extraction_start(actor=demo.investigator, evidence=evidence).pk)
    root = Trace.objects.get(evidence_id=evidence_id, parent_uid="")
    assert root.name == "image.E01" and root.properties["image.format"] == "ewf"
    passwords = Trace.objects.get(evidence_id=evidence_id, name="passwords.txt", deleted=False)
    assert next(s for s in passwords.streams if s["name"] == "raw")["sha256"] == PASSWORDS_SHA256


def test_names_that_already_fit_the_format_are_kept_and_others_follow_it():
    from evidence.reading import presented_names

    assert presented_names(image_format="ewf", names=["image.raw"]) == ["image.E01"]
    assert presented_names(image_format="ewf", names=["disk.E01", "disk.E02"]) == ["disk.E01", "disk.E02"]
    assert presented_names(image_format="ewf", names=["part-a", "part-b"]) == ["part-a.E01", "part-a.E02"]
    assert presented_names(image_format="vhd", names=["upload"]) == ["upload.vhd"]
    assert presented_names(image_format="raw", names=["image.raw"]) == ["image.raw"]
    assert presented_names(image_format="vmdk", names=["disk.vmdk", "disk-s001.vmdk"]) == [
        "disk.vmdk",
        "disk-s001.vmdk",
    ]


@pytest.mark.corpus
def test_a_misnamed_e01_given_to_the_walker_says_why_libewf_refuses_it():
    from tests.corpus import require_corpus

    path = require_corpus("files/dfvfs/ext2.E01")
    with path.open("rb") as file_object:
        (root,) = walk_image(file_object=file_object, evidence_id="ev", options=WalkOptions(file_name="image.raw"))
    assert root.properties["image.format"] == "ewf"
    (error,) = root.errors
    assert "named 'image.raw'" in error.message and ".E01" in error.message
    assert "segment file extension" not in error.message  # libewf's own words stay out
