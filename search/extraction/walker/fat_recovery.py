"""Deleted FAT files read back from unallocated clusters, fragmented ones included.

A deleted FAT file keeps its first cluster and its size in its directory entry, but its cluster chain is
gone (the FAT entries are zeroed). The Sleuth Kit reads such a file as if contiguous: from the first
cluster on, as many clusters as the size needs, whoever they belong to now. That is right for a file
written in one piece and wrong for a fragmented one (DFTT #6: ``frag1.dat`` takes clusters 2 and 4, because
``frag2.dat`` began at 3 in between).

`FatRecovery` assigns clusters to every deleted file of one FAT file system at once, from clusters that
are free in the FAT only, never one allocated to a live file, never another deleted entry's first cluster:

1. A file whose contiguous run is free, holds no other entry's first cluster and whose last cluster's slack
   (after the file's end) is zero — the file system's fresh state — keeps its run.
2. The others, in the order of their first clusters (the order the allocator handed them out), take the
   next clusters still unclaimed, first fit.

Every content read this way is marked recovered on its trace (``file.recovered``), with its clusters.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytsk3

# Clusters of one file recovered at most (a 4 GiB file of 512-byte clusters is 8 Mi clusters): a larger
# recovery is left to TSK's contiguous reading.
MAX_RECOVERED_CLUSTERS = 1 << 23


@dataclass(frozen=True)
class FatGeometry:
    """Where a FAT file system keeps its table and clusters (from its boot sector)."""

    bytes_per_sector: int
    sectors_per_cluster: int
    fat_offset: int  # bytes
    first_data_sector: int
    cluster_count: int
    fat_bits: int  # 12, 16 or 32

    @property
    def cluster_size(self) -> int:
        return self.bytes_per_sector * self.sectors_per_cluster

    def cluster_of_sector(self, sector: int) -> int:
        return (sector - self.first_data_sector) // self.sectors_per_cluster + 2

    def cluster_offset(self, cluster: int) -> int:
        return (self.first_data_sector + (cluster - 2) * self.sectors_per_cluster) * self.bytes_per_sector


def read_geometry(boot_sector: bytes) -> FatGeometry | None:
    """The geometry a FAT boot sector declares, or None when it does not look like one."""
    if len(boot_sector) < 64:
        return None
    bytes_per_sector, sectors_per_cluster, reserved, fat_count, root_entries, total16 = struct.unpack_from(
        "<HBHBHH", boot_sector, 11
    )
    (fat_size16,) = struct.unpack_from("<H", boot_sector, 22)
    total32, fat_size32 = struct.unpack_from("<II", boot_sector, 32)
    if bytes_per_sector not in (512, 1024, 2048, 4096) or sectors_per_cluster == 0 or fat_count == 0:
        return None
    fat_size = fat_size16 or fat_size32
    total = total16 or total32
    root_sectors = (root_entries * 32 + bytes_per_sector - 1) // bytes_per_sector
    first_data_sector = reserved + fat_count * fat_size + root_sectors
    if not fat_size or total <= first_data_sector:
        return None
    cluster_count = (total - first_data_sector) // sectors_per_cluster
    fat_bits = 12 if cluster_count < 4085 else 16 if cluster_count < 65525 else 32
    return FatGeometry(
        bytes_per_sector=bytes_per_sector,
        sectors_per_cluster=sectors_per_cluster,
        fat_offset=reserved * bytes_per_sector,
        first_data_sector=first_data_sector,
        cluster_count=cluster_count,
        fat_bits=fat_bits,
    )


def allocated_clusters(*, fat: bytes, geometry: FatGeometry) -> list[bool]:
    """Whether each cluster (index = cluster number) is in use according to the first FAT."""
    last = geometry.cluster_count + 2
    allocated = [True, True] + [False] * geometry.cluster_count
    for cluster in range(2, last):
        if geometry.fat_bits == 12:
            offset = cluster + cluster // 2
            if offset + 2 > len(fat):
                break
            (pair,) = struct.unpack_from("<H", fat, offset)
            value = pair >> 4 if cluster & 1 else pair & 0x0FFF
        elif geometry.fat_bits == 16:
            if 2 * cluster + 2 > len(fat):
                break
            (value,) = struct.unpack_from("<H", fat, 2 * cluster)
        else:
            if 4 * cluster + 4 > len(fat):
                break
            (value,) = struct.unpack_from("<I", fat, 4 * cluster)
            value &= 0x0FFFFFFF
        allocated[cluster] = value != 0
    return allocated


@dataclass
class DeletedEntry:
    """A deleted FAT directory entry: its first cluster and the clusters its size needs."""

    inode: int
    first_cluster: int
    size: int
    is_directory: bool
    clusters: list[int] = field(default_factory=list)


class FatRecovery:
    """The clusters of every deleted file of one FAT file system, assigned as the module says."""

    def __init__(self, *, geometry: FatGeometry, allocated: list[bool], read_at: Callable[[int, int], bytes]):
        self.geometry = geometry
        self.allocated = allocated
        self.read_at = read_at
        self.assigned: dict[int, list[int]] = {}

    def needed_clusters(self, size: int) -> int:
        return max(1, -(-size // self.geometry.cluster_size))

    def _free(self, cluster: int) -> bool:
        return 2 <= cluster < len(self.allocated) and not self.allocated[cluster]

    def _slack_is_zero(self, *, cluster: int, size: int) -> bool:
        used = size % self.geometry.cluster_size
        if not used:
            return True
        slack = self.read_at(self.geometry.cluster_offset(cluster) + used, self.geometry.cluster_size - used)
        return not slack.strip(b"\0")

    def assign(self, entries: list[DeletedEntry]) -> None:
        """Give each deleted file (directories keep their first cluster only) its clusters."""
        first_clusters = {entry.first_cluster for entry in entries}
        claimed: set[int] = set(first_clusters)
        files = sorted(
            (entry for entry in entries if not entry.is_directory and self._free(entry.first_cluster)),
            key=lambda entry: (entry.first_cluster, entry.inode),
        )
        files = [entry for entry in files if self.needed_clusters(entry.size) <= MAX_RECOVERED_CLUSTERS]
        fragmented = []
        for entry in files:
            if entry.inode in self.assigned:
                continue
            needed = self.needed_clusters(entry.size)
            run = list(range(entry.first_cluster, entry.first_cluster + needed))
            clean = all(self._free(cluster) for cluster in run) and not (first_clusters & set(run[1:]))
            if clean and not (claimed & set(run[1:])) and self._slack_is_zero(cluster=run[-1], size=entry.size):
                self.assigned[entry.inode] = run
                claimed.update(run)
            else:
                fragmented.append(entry)
        for entry in fragmented:
            if entry.inode in self.assigned:
                continue
            needed = self.needed_clusters(entry.size)
            clusters = [entry.first_cluster]
            cluster = entry.first_cluster + 1
            while len(clusters) < needed and cluster < len(self.allocated):
                if self._free(cluster) and cluster not in claimed:
                    clusters.append(cluster)
                cluster += 1
            if len(clusters) == needed:  # else too few free clusters are left: TSK's reading stands
                self.assigned[entry.inode] = clusters
                claimed.update(clusters)

    def reader(self, *, inode: int, size: int) -> Callable[[int, int], bytes] | None:
        """``read_at(offset, length)`` over the recovered clusters of ``inode``, None when it has none."""
        clusters = self.assigned.get(inode)
        if clusters is None:
            return None
        cluster_size = self.geometry.cluster_size

        def read_at(offset: int, length: int) -> bytes:
            length = max(0, min(length, size - offset))
            parts = []
            while length > 0:
                index, within = divmod(offset, cluster_size)
                chunk = min(length, cluster_size - within)
                parts.append(self.read_at(self.geometry.cluster_offset(clusters[index]) + within, chunk))
                offset += chunk
                length -= chunk
            return b"".join(parts)

        return read_at


def cluster_runs(clusters: list[int]) -> list[list[int]]:
    """``[2, 4, 5, 12]`` → ``[[2, 1], [4, 2], [12, 1]]``: (first cluster, count) of each fragment."""
    runs: list[list[int]] = []
    for cluster in clusters:
        if runs and runs[-1][0] + runs[-1][1] == cluster:
            runs[-1][1] += 1
        else:
            runs.append([cluster, 1])
    return runs


def deleted_entries(*, fs_info, geometry: FatGeometry) -> Iterator[DeletedEntry]:
    """Every deleted entry of the file system with a first cluster, each inode once (TSK lists a deleted
    file found in two deleted folders twice)."""
    seen: set[int] = set()
    stack = [int(fs_info.info.root_inum)]
    visited: set[int] = set()
    while stack:
        directory = stack.pop()
        if directory in visited:
            continue
        visited.add(directory)
        try:
            listing = fs_info.open_dir(inode=directory)
        except OSError:
            continue
        for entry in listing:
            name = getattr(entry.info, "name", None)
            meta = getattr(entry.info, "meta", None)
            if name is None or meta is None or name.name in (b".", b"..", ".", ".."):
                continue
            inode = int(meta.addr)
            is_directory = int(meta.type) == int(pytsk3.TSK_FS_META_TYPE_DIR)
            if is_directory:
                stack.append(inode)
            if int(meta.flags) & int(pytsk3.TSK_FS_META_FLAG_ALLOC) or inode in seen:
                continue
            first_sector = _first_sector(entry)
            if first_sector is None:
                continue
            seen.add(inode)
            yield DeletedEntry(
                inode=inode,
                first_cluster=geometry.cluster_of_sector(first_sector),
                size=int(meta.size),
                is_directory=is_directory,
            )


def _first_sector(entry) -> int | None:
    try:
        for attribute in entry:
            for run in attribute:
                return int(run.addr)
    except (OSError, RuntimeError):
        return None
    return None


def fat_recovery(*, fs_info, read_at: Callable[[int, int], bytes]) -> FatRecovery | None:
    """The recovery of every deleted file of a FAT file system read by ``read_at``; None when its boot
    sector or table cannot be read."""
    geometry = read_geometry(read_at(0, 512))
    if geometry is None:
        return None
    fat_bytes = (geometry.cluster_count + 2) * geometry.fat_bits // 8 + 4
    allocated = allocated_clusters(fat=read_at(geometry.fat_offset, fat_bytes), geometry=geometry)
    recovery = FatRecovery(geometry=geometry, allocated=allocated, read_at=read_at)
    recovery.assign(list(deleted_entries(fs_info=fs_info, geometry=geometry)))
    return recovery
