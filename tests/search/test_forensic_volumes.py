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
