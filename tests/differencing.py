"""Images for the differencing-disk and nested-image tests (issue #18, items 5 and 8), made with Debian's
tools (qemu-img, mkfs.ext4, debugfs, mkfs.fat, mtools) and, for the differencing VHD qemu-img cannot
make, written here by the VHD specification. Truth always comes from The Sleuth Kit (``fls``/``icat``)
run on a raw image qemu-img or the tools produced, never from Custodia."""

from __future__ import annotations

import hashlib
import re
import shutil
import struct
import subprocess  # nosec B404  # fixed argument lists to Debian's image tools
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

TOOLS = ("qemu-img", "mkfs.ext4", "debugfs", "fls", "icat", "mkfs.fat", "mcopy")
needs_image_tools = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in TOOLS),
    reason="needs qemu-utils, e2fsprogs, sleuthkit, dosfstools and mtools",
)

SECTOR = 512
VHD_BLOCK_SIZE = 2 * 1024 * 1024


def run(*arguments: str | Path) -> str:
    completed = subprocess.run(  # nosec B603  # fixed tools, arguments built here
        [str(argument) for argument in arguments], check=True, capture_output=True, text=True
    )
    return completed.stdout


def ext4_image(path: Path, *, size_mib: int, files: dict[str, bytes]) -> Path:
    """A raw ext4 file system holding ``files`` (paths relative to its root)."""
    tree = path.with_suffix(".tree")
    for name, data in files.items():
        target = tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    tree.mkdir(exist_ok=True)
    run("truncate", "-s", f"{size_mib}M", path)
    run("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1", "-d", tree, path)
    return path


def fat_image(path: Path, *, size_mib: int, files: dict[str, Path]) -> Path:
    """A raw FAT file system holding ``files`` (name at its root → file to copy in)."""
    run("truncate", "-s", f"{size_mib}M", path)
    run("mkfs.fat", "-n", "OUTER", path)
    for name, source in files.items():
        run("mcopy", "-i", path, source, f"::{name}")
    return path


@dataclass(frozen=True)
class TskEntry:
    path: str
    deleted: bool
    inode: str


def fls(image: Path) -> list[TskEntry]:
    """``fls -r -p`` of a raw image: every name, deleted ones marked, as The Sleuth Kit lists them."""
    entries = []
    for line in run("fls", "-r", "-p", image).splitlines():
        found = re.match(r"^\S+\s+(\*\s+)?([^:]+):\t(.*)$", line)
        if found:
            entries.append(TskEntry(path=found.group(3), deleted=bool(found.group(1)), inode=found.group(2).strip()))
    return entries


def icat_sha256(image: Path, inode: str) -> str:
    data = subprocess.run(  # nosec B603 B607  # fixed tool
        ["icat", str(image), inode], check=True, capture_output=True
    ).stdout
    return hashlib.sha256(data).hexdigest()


def qcow2_chain(folder: Path) -> tuple[list[Path], Path]:
    """base.qcow2 ← mid.qcow2 ← top.qcow2 (child first in the list), and the chain converted to raw by
    qemu-img (the truth). The base holds an ext4 file system; mid deletes a file and adds one (only the
    clusters that differ from base are written: ``convert -B``); top is an empty child (``create -b``)."""
    base_raw = ext4_image(
        folder / "base.raw", size_mib=16, files={"base.txt": b"in the base only\n", "docs/r.txt": b"report\n"}
    )
    changed = folder / "changed.raw"
    shutil.copyfile(base_raw, changed)
    added = folder / "added.txt"
    added.write_bytes(b"written in the child\n")
    run("debugfs", "-w", "-R", f"write {added} child.txt", changed)
    run("debugfs", "-w", "-R", "rm base.txt", changed)
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", base_raw, folder / "base.qcow2")
    run(
        "qemu-img",
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        "-B",
        "base.qcow2",
        "-F",
        "qcow2",
        changed,
        folder / "mid.qcow2",
    )
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", folder / "top.qcow2")
    truth = folder / "chain.raw"
    run("qemu-img", "convert", "-O", "raw", folder / "top.qcow2", truth)
    return [folder / "top.qcow2", folder / "mid.qcow2", folder / "base.qcow2"], truth


def _checksum(data: bytes | bytearray) -> int:
    return ~sum(data) & 0xFFFFFFFF


def _vhd_footer(*, current_size: int, geometry: bytes, disk_type: int, unique_id: bytes, data_offset: int) -> bytes:
    footer = bytearray(SECTOR)
    footer[0:8] = b"conectix"
    struct.pack_into(">IIQI", footer, 8, 2, 0x00010000, data_offset, 0)
    footer[28:32] = b"cstd"
    struct.pack_into(">I", footer, 32, 0x00010000)
    footer[36:40] = b"Wi2k"
    struct.pack_into(">QQ", footer, 40, current_size, current_size)
    footer[56:60] = geometry
    struct.pack_into(">I", footer, 60, disk_type)
    footer[68:84] = unique_id
    struct.pack_into(">I", footer, 64, _checksum(footer))
    return bytes(footer)


def differencing_vhd(*, child: Path, parent: Path, parent_name: str, changed_raw: Path) -> Path:
    """Write ``child``, a dynamic differencing VHD whose parent is ``parent`` (a VHD, read by its footer),
    holding exactly the sectors where ``changed_raw`` differs from the parent's media (read with qemu-img
    as raw): each such sector is marked in its block's bitmap, every other sector reads through to the
    parent. The header names the parent ``parent_name`` and carries a W2ru (relative) locator."""
    parent_bytes = parent.read_bytes()
    parent_footer = parent_bytes[-SECTOR:]
    (current_size,) = struct.unpack_from(">Q", parent_footer, 48)
    parent_media = child.with_suffix(".parent.raw")
    run("qemu-img", "convert", "-f", "vpc", "-O", "raw", parent, parent_media)
    old = parent_media.read_bytes().ljust(current_size, b"\0")
    new = changed_raw.read_bytes().ljust(current_size, b"\0")
    entries = -(-current_size // VHD_BLOCK_SIZE)
    header_offset, table_offset = SECTOR, 3 * SECTOR
    table_bytes = -(-entries * 4 // SECTOR) * SECTOR
    locator_offset = table_offset + table_bytes
    locator = ("." + "\\" + parent_name).encode("utf-16-le")
    next_block = locator_offset + SECTOR
    table = [0xFFFFFFFF] * entries
    blocks = bytearray()
    sectors_per_block = VHD_BLOCK_SIZE // SECTOR
    for index in range(entries):
        start = index * VHD_BLOCK_SIZE
        bitmap = bytearray(sectors_per_block // 8)
        data = bytearray(VHD_BLOCK_SIZE)
        changed = False
        for sector in range(sectors_per_block):
            offset = start + sector * SECTOR
            if offset >= current_size:
                break
            if new[offset : offset + SECTOR] != old[offset : offset + SECTOR]:
                bitmap[sector // 8] |= 0x80 >> (sector % 8)
                data[sector * SECTOR : (sector + 1) * SECTOR] = new[offset : offset + SECTOR]
                changed = True
        if changed:
            table[index] = (next_block + len(blocks)) // SECTOR
            blocks += bitmap.ljust(SECTOR, b"\0") + data
    footer = _vhd_footer(
        current_size=current_size,
        geometry=parent_footer[56:60],
        disk_type=4,
        unique_id=uuid.uuid4().bytes,
        data_offset=header_offset,
    )
    header = bytearray(1024)
    header[0:8] = b"cxsparse"
    struct.pack_into(">QQIII", header, 8, 0xFFFFFFFFFFFFFFFF, table_offset, 0x00010000, entries, VHD_BLOCK_SIZE)
    header[40:56] = parent_footer[68:84]  # the parent's unique id
    header[56:60] = parent_footer[24:28]  # and its time stamp
    header[64 : 64 + 2 * len(parent_name)] = parent_name.encode("utf-16-be")
    struct.pack_into(">4sIIIQ", header, 576, b"W2ru", 1, len(locator), 0, locator_offset)
    struct.pack_into(">I", header, 36, _checksum(header))
    image = bytearray()
    image += footer + header
    image += b"".join(struct.pack(">I", entry) for entry in table).ljust(table_bytes, b"\xff")
    image += locator.ljust(SECTOR, b"\0")
    image += blocks + footer
    child.write_bytes(bytes(image))
    return child


def vhd_parent_and_child(folder: Path) -> tuple[Path, Path, Path]:
    """base.vhd (dynamic, by qemu-img) and child.vhd (differencing, by ``differencing_vhd``), and the raw
    image the chain must read as (the truth for fls/icat): a FAT volume where the child deleted a file and
    added one."""
    base_raw = folder / "vbase.raw"
    first = folder / "first.txt"
    first.write_bytes(b"first, in the parent\n")
    fat_image(base_raw, size_mib=8, files={"FIRST.TXT": first})
    run("qemu-img", "convert", "-f", "raw", "-O", "vpc", base_raw, folder / "base.vhd")
    changed = folder / "vchanged.raw"
    shutil.copyfile(base_raw, changed)
    second = folder / "second.txt"
    second.write_bytes(b"second, in the child only\n")
    run("mcopy", "-i", changed, second, "::SECOND.TXT")
    run("mdel", "-i", changed, "::FIRST.TXT")
    differencing_vhd(
        child=folder / "child.vhd", parent=folder / "base.vhd", parent_name="base.vhd", changed_raw=changed
    )
    return folder / "child.vhd", folder / "base.vhd", changed


def sparse_ext4_with(path: Path, *, size_mib: int, text: bytes) -> Path:
    """A sparse raw ext4 image (mostly zeros: it compresses far beyond the archive tools' 500:1 ratio)."""
    return ext4_image(path, size_mib=size_mib, files={"inner/deep.txt": text})


def images_in_a_fat_image(folder: Path) -> tuple[Path, dict[str, Path]]:
    """outer.raw, a FAT volume holding INNER.VHD (a dynamic VHD by qemu-img holding a FAT volume) and
    INNER.EXT (a raw ext4 image), and the raw images each inner one holds (the truth for fls/icat)."""
    vhd_raw = folder / "vhd-media.raw"
    note = folder / "note.txt"
    note.write_bytes(b"inside the vhd inside the fat\n")
    fat_image(vhd_raw, size_mib=8, files={"NOTE.TXT": note})
    run("qemu-img", "convert", "-f", "raw", "-O", "vpc", vhd_raw, folder / "inner.vhd")
    # The media qemu-img's VHD presents (rounded up to its disk geometry): what TSK is run on.
    vhd_media = folder / "inner-vhd-media.raw"
    run("qemu-img", "convert", "-f", "vpc", "-O", "raw", folder / "inner.vhd", vhd_media)
    ext = ext4_image(folder / "inner.ext4", size_mib=4, files={"deep.txt": b"inside the ext inside the fat\n"})
    outer = fat_image(folder / "outer.raw", size_mib=40, files={"INNER.VHD": folder / "inner.vhd", "INNER.EXT": ext})
    return outer, {"INNER.VHD": vhd_media, "INNER.EXT": ext}
