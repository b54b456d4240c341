"""Benchmark of the sealed evidence container. One command, prints tables (not a timed test):

    .venv/bin/python bench/seal.py [--size-mib 1024] [--rss-size-mib 4096] [--repeat 3] [--write-modes direct,buffered]
    .venv/bin/python bench/seal.py --smoke     # the smallest run, seconds: every table, no meaning

1. Seal throughput of a 1 GiB file of (a) random bytes, (b) half zeros, (c) a tar of text, next to
   ``md5sum`` and ``sha256sum`` of the same file in the same run, with ratios. Sealing is measured into
   a LocalWormStore in a temporary folder (chunks synced by one barrier before the index, as in
   production), once per ``--write-modes`` entry (the first is the one the goal is judged on; ``buffered``
   is the earlier design, page cache left dirty until the barrier), and into a store that discards chunk
   bytes (the pipeline's own speed, without the disk). The three whole-stream hashes alone on two threads
   (MultiHasher) are the hashing floor. Rounds run every contender back to back; MB/s and ratios are
   medians over ``--repeat`` rounds, since the machine is shared and noisy.
2. Peak memory (VmHWM) of a child process sealing a 4 GiB stream generated on the fly.
3. p50/p99 latency of random 4 KiB reads through ContainerReader.
4. The disk's own write speed, ``dd if=/dev/zero bs=4M conv=fsync`` into the same folder: the physical
   limit that sealing into the local store cannot pass, printed beside the seal rows.

The naive single-threaded loop (read, three hashes, per-chunk SHA-256, zstd, AES-GCM, put; one after the
other) is measured too, as the baseline the issue mentions.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import BinaryIO

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.machine import machine_description  # noqa: E402
from evidence.container import CHUNK_SIZE, ContainerReader, MultiHasher, seal_stream  # noqa: E402
from evidence.container.format import ZSTD_LEVEL  # noqa: E402
from evidence.container.writer import ChunkSealer  # noqa: E402
from evidence.storage.base import EvidenceStore, ObjectExists, ObjectMissing  # noqa: E402

try:  # written concurrently by another engineer; fall back to a stand-in when absent
    from evidence.storage.local import LocalWormStore
except ImportError:  # pragma: no cover
    LocalWormStore = None  # type: ignore[assignment,misc]

MIB = 1 << 20
TEXT_SUFFIXES = {".py", ".txt", ".h", ".c", ".html", ".rst", ".md", ".js", ".css", ".json", ".xml", ".pyi"}
TEXT_ROOTS = ["/usr/share/doc", "/usr/include", f"/usr/lib/python3.{sys.version_info.minor}", sys.prefix + "/lib"]


# --- stores -----------------------------------------------------------------------------------------


class DiscardStore(EvidenceStore):
    """Keeps the small index and manifest, counts and drops chunk bytes: sealing speed without a disk."""

    def __init__(self) -> None:
        self._small: dict[str, bytes] = {}
        self._keys: set[str] = set()
        self._lock = threading.Lock()
        self.bytes_put = 0

    def put(self, key: str, data: bytes | BinaryIO, *, length: int | None = None) -> None:
        payload = data if isinstance(data, bytes | bytearray | memoryview) else data.read()
        with self._lock:
            if key in self._keys:
                raise ObjectExists(key)
            self._keys.add(key)
            self.bytes_put += len(payload)
            if not key.rsplit("/", 1)[-1].isdigit():
                self._small[key] = bytes(payload)

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            data = self._small[key]
        except KeyError:
            raise ObjectMissing(key) from None
        return data[offset:] if length is None else data[offset : offset + length]

    def size(self, key: str) -> int:
        return len(self.read(key))

    def exists(self, key: str) -> bool:
        return key in self._keys

    def list(self, prefix: str) -> Iterator[str]:
        return iter(sorted(key for key in self._keys if key.startswith(prefix)))

    def set_retention(self, prefix: str, *, until: date | None, legal_hold: bool) -> None:
        return None

    def delete(self, key: str) -> None:
        raise NotImplementedError


class FolderStore(EvidenceStore):
    """Stand-in used only when evidence.storage.local is missing: one file per key, write-once, fsync'd."""

    def __init__(self, *, root: Path) -> None:
        self.root = Path(root)

    def put(self, key: str, data: bytes | BinaryIO, *, length: int | None = None) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = data if isinstance(data, bytes) else data.read()
        try:
            with open(path, "xb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
        except FileExistsError:
            raise ObjectExists(key) from None

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            with open(self.root / key, "rb") as handle:
                handle.seek(offset)
                return handle.read() if length is None else handle.read(length)
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    def size(self, key: str) -> int:
        return (self.root / key).stat().st_size

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()

    def list(self, prefix: str) -> Iterator[str]:
        keys = (str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())
        return iter(sorted(key for key in keys if key.startswith(prefix)))

    def set_retention(self, prefix: str, *, until: date | None, legal_hold: bool) -> None:
        return None

    def delete(self, key: str) -> None:
        raise NotImplementedError


def local_store(root: Path, write_mode: str | None = None) -> EvidenceStore:
    if LocalWormStore is None:
        return FolderStore(root=root)
    return LocalWormStore(root=root) if write_mode is None else LocalWormStore(root=root, write_mode=write_mode)


def local_store_name() -> str:
    return "LocalWormStore" if LocalWormStore is not None else "FolderStore (stand-in)"


def remove_folder(folder: Path) -> None:
    # Written objects are read-only files; as their folder's owner we may still unlink them.
    shutil.rmtree(folder, ignore_errors=True)


# --- test files ------------------------------------------------------------------------------------------


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as handle:
        for _ in range(size // MIB):
            handle.write(os.urandom(MIB))


def write_half_zero(path: Path, size: int) -> None:
    # Alternating 64 KiB of random bytes and 64 KiB of zeros: every chunk is half empty, like a disk
    # with free space, rather than one half of the file empty and the other half random.
    zeros = bytes(64 << 10)
    with open(path, "wb") as handle:
        for _ in range(size // (128 << 10)):
            handle.write(os.urandom(64 << 10))
            handle.write(zeros)


def text_files() -> list[Path]:
    found = []
    for root in TEXT_ROOTS:
        for folder, _, names in os.walk(root):
            for name in names:
                path = Path(folder, name)
                if (path.suffix in TEXT_SUFFIXES or name in {"copyright", "README"}) and path.is_file():
                    found.append(path)
    return sorted(found)


def write_text_tar(path: Path, size: int) -> None:
    """A tar of the machine's text files (documentation, headers, Python sources), repeated under new
    names until it reaches ``size``, then cut to exactly ``size`` bytes."""
    sources = text_files()
    if not sources:
        raise SystemExit("no text files found to build the tar of text")
    with open(path, "wb") as handle, tarfile.open(fileobj=handle, mode="w", format=tarfile.GNU_FORMAT) as archive:
        round_number = 0
        while handle.tell() < size:
            for source in sources:
                try:
                    archive.add(str(source), arcname=f"round{round_number}/{source}", recursive=False)
                except OSError:
                    continue
                if handle.tell() >= size:
                    break
            round_number += 1
    with open(path, "r+b") as handle:
        handle.truncate(size)


# --- measurements ------------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished children: unlike wall time, it hardly
    moves when other work shares the machine."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_tool(tool: str, path: Path) -> None:
    subprocess.run([tool, str(path)], check=True, stdout=subprocess.DEVNULL)


def hash_file(path: Path) -> None:
    """The hashing floor: MD5 ‖ SHA-1 + SHA-256 of the file on MultiHasher's two lanes, nothing else."""
    hasher = MultiHasher(parallel=True, queue_depth=16)
    with open(path, "rb", buffering=0) as source:
        while block := source.read(CHUNK_SIZE):
            hasher.update(block)
    hasher.result()


def seal_file(path: Path, store: EvidenceStore, *, zstd_level: int = ZSTD_LEVEL) -> None:
    with open(path, "rb") as source:
        seal_stream(
            evidence_id=uuid.uuid4(),
            data_key=os.urandom(32),
            store=store,
            source=source,
            facts={},
            zstd_level=zstd_level,
        )


def naive_seal_file(path: Path, store: EvidenceStore) -> None:
    """The baseline: every step one after the other in one thread."""
    evidence_id, data_key = uuid.uuid4(), os.urandom(32)
    sealer = ChunkSealer(evidence_id=evidence_id, data_key=data_key)
    hasher = MultiHasher()
    with open(path, "rb") as source:
        index = 0
        while block := source.read(CHUNK_SIZE):
            hasher.update(block)
            sealed = sealer.seal(index=index, plaintext=block)
            store.put(f"evidence/{evidence_id}/chunk/{index:08d}", sealed.stored)
            index += 1


def timed(run: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run."""
    started, started_cpu = time.perf_counter(), cpu_seconds()
    run()
    return time.perf_counter() - started, cpu_seconds() - started_cpu


def measure_throughput(*, workdir: Path, size: int, repeat: int, write_modes: list[str]) -> list[dict]:
    """Rounds of md5sum, sha256sum, seal → local store (each write mode), seal → discard and the hashes
    alone, back to back, so that each round's contenders share the same moment's load. Throughputs and
    ratios (seal ÷ md5sum of the same round, which drifting load disturbs least) are medians over rounds."""
    # The tar of text also runs at a negative ("fast") zstd level: compression is its bottleneck.
    kinds = [
        ("random", write_random, [ZSTD_LEVEL]),
        ("half-zero", write_half_zero, [ZSTD_LEVEL]),
        ("tar of text", write_text_tar, [ZSTD_LEVEL, -5]),
    ]
    rows = []
    for name, generate, levels in kinds:
        path = workdir / f"{name.replace(' ', '-')}.bin"
        print(f"  generating {name} ({size // MIB} MiB)…", file=sys.stderr, flush=True)
        generate(path, size)
        run_tool("cat", path)  # into the page cache, so every contender reads from memory alike
        for level in levels:
            print(f"  sealing {name} at zstd level {level}…", file=sys.stderr, flush=True)
            rounds: list[dict[str, tuple[float, float]]] = []
            stored_sizes: list[int] = []
            for _ in range(repeat):
                this_round = {
                    "md5sum": timed(lambda p=path: run_tool("md5sum", p)),
                    "sha256sum": timed(lambda p=path: run_tool("sha256sum", p)),
                }
                for mode in write_modes:
                    folder = Path(tempfile.mkdtemp(prefix="store-", dir=workdir))
                    try:
                        this_round[f"local {mode}"] = timed(
                            lambda p=path, f=folder, lv=level, m=mode: seal_file(p, local_store(f, m), zstd_level=lv)
                        )
                        if mode == write_modes[0]:
                            stored_sizes.append(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()))
                    finally:
                        remove_folder(folder)
                this_round["discard"] = timed(lambda p=path, lv=level: seal_file(p, DiscardStore(), zstd_level=lv))
                this_round["hashes"] = timed(lambda p=path: hash_file(p))
                rounds.append(this_round)
            naive_seconds = (
                timed(lambda p=path: naive_seal_file(p, DiscardStore()))[0] if level == ZSTD_LEVEL else float("nan")
            )

            def median_speed(contender: str, rounds=rounds) -> float:
                return statistics.median(size / r[contender][0] for r in rounds)

            def ratio(contender: str, rounds=rounds) -> float:
                return statistics.median(r["md5sum"][0] / r[contender][0] for r in rounds)

            rows.append(
                {
                    "data": name if level == ZSTD_LEVEL else f"{name}, zstd {level}",
                    "md5sum": median_speed("md5sum"),
                    "sha256sum": median_speed("sha256sum"),
                    "local": {mode: (median_speed(f"local {mode}"), ratio(f"local {mode}")) for mode in write_modes},
                    "seal discard": median_speed("discard"),
                    "ratio discard": ratio("discard"),
                    "hashes": median_speed("hashes"),
                    "ratio hashes": ratio("hashes"),
                    "seal cpu ns/B": statistics.median(r["discard"][1] for r in rounds) / size * 1e9,
                    "local cpu ns/B": statistics.median(r[f"local {write_modes[0]}"][1] for r in rounds) / size * 1e9,
                    "md5sum cpu ns/B": statistics.median(r["md5sum"][1] for r in rounds) / size * 1e9,
                    "naive discard": size / naive_seconds,
                    "stored": min(stored_sizes) / size,
                }
            )
        path.unlink()
    return rows


class GeneratedStream(io.RawIOBase):
    """``size`` bytes made on the fly from a 32 MiB random pool (never written to disk)."""

    def __init__(self, size: int, *, half_zero: bool = False) -> None:
        self._remaining = size
        if half_zero:  # 64 KiB random, 64 KiB zeros, …: compressible to about half, like a used disk
            block = 64 << 10
            self._pool = b"".join(os.urandom(block) + bytes(block) for _ in range(32 * MIB // (2 * block)))
        else:
            self._pool = os.urandom(32 * MIB)
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self._remaining, len(self._pool) - self._position)
        if count <= 0:
            return 0
        buffer[:count] = self._pool[self._position : self._position + count]
        # Step by an odd amount so chunk boundaries never line up with the pool's repeats.
        self._position = (self._position + count + 4099) % (len(self._pool) - MIB)
        self._remaining -= count
        return count


def vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def vm_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def child_peak_rss(size: int, workdir: Path) -> None:
    """Run in a child process: seal a generated stream into a local store, print baseline and peak."""
    stream = io.BufferedReader(GeneratedStream(size), buffer_size=CHUNK_SIZE)
    baseline = vm_rss_kib()
    folder = Path(tempfile.mkdtemp(prefix="rss-store-", dir=workdir))
    try:
        started = time.perf_counter()
        seal_stream(evidence_id=uuid.uuid4(), data_key=os.urandom(32), store=local_store(folder), source=stream,
                    facts={})  # fmt: skip
        seconds = time.perf_counter() - started
    finally:
        remove_folder(folder)
    print(f"{baseline} {vm_hwm_kib()} {seconds:.3f}")


def measure_disk_write(*, workdir: Path, size: int) -> float:
    """Bytes per second of ``dd … conv=fsync`` writing ``size`` bytes into ``workdir`` (one fsync at the end)."""
    target = workdir / "dd.bin"
    count = max(1, size // (4 * MIB))
    started = time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=4M", f"count={count}", "conv=fsync"],
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    target.unlink()
    return count * 4 * MIB / seconds


def measure_peak_rss(*, workdir: Path, size: int) -> tuple[float, float, float]:
    print(f"  sealing a generated {size // MIB} MiB stream in a child process…", file=sys.stderr, flush=True)
    output = subprocess.run(
        [sys.executable, __file__, "--child-peak-rss", "--rss-size-mib", str(size // MIB), "--workdir", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    baseline_kib, peak_kib, seconds = int(output[0]), int(output[1]), float(output[2])
    return baseline_kib / 1024, peak_kib / 1024, size / seconds


def measure_read_latency(*, workdir: Path, size: int, reads: int) -> dict[str, tuple[float, float]]:
    """p50 and p99 of seek + read(4096) at random offsets of a half-compressible image."""
    print("  timing random 4 KiB reads…", file=sys.stderr, flush=True)
    folder = Path(tempfile.mkdtemp(prefix="read-store-", dir=workdir))
    try:
        store = local_store(folder)
        evidence_id, data_key = uuid.uuid4(), os.urandom(32)
        source = io.BufferedReader(GeneratedStream(size, half_zero=True), buffer_size=CHUNK_SIZE)
        seal_stream(evidence_id=evidence_id, data_key=data_key, store=store, source=source, facts={})
        generator = random.Random(4)
        cases = [
            ("anywhere in the image (cache misses)", size - 4096, True),
            ("anywhere, without the per-chunk SHA-256 re-check", size - 4096, False),
            ("within 8 MiB (cache hits)", 8 * MIB - 4096, True),
        ]
        results = {}
        for label, span, check_chunk_hashes in cases:
            reader = ContainerReader(
                evidence_id=evidence_id, data_key=data_key, store=store, check_chunk_hashes=check_chunk_hashes
            )
            with reader:
                latencies = []
                for _ in range(reads):
                    offset = generator.randrange(span)
                    started = time.perf_counter_ns()
                    reader.seek(offset)
                    reader.read(4096)
                    latencies.append((time.perf_counter_ns() - started) / 1e6)
            quantiles = statistics.quantiles(latencies, n=100)
            results[label] = (quantiles[49], quantiles[98])
        return results
    finally:
        remove_folder(folder)


# --- report --------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of each throughput test file")
    parser.add_argument("--rss-size-mib", type=int, default=4096, help="size of the stream for peak memory")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per measurement; medians are printed")
    parser.add_argument(
        "--write-modes",
        default="direct,buffered",
        help="LocalWormStore write modes to seal into, comma-separated; the first is judged against the goal",
    )
    parser.add_argument("--reads", type=int, default=2000, help="random 4 KiB reads per latency measurement")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for temporary files (default: a temp dir)")
    parser.add_argument("--child-peak-rss", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="the smallest sizes: checks the command runs")
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.size_mib, arguments.rss_size_mib, arguments.repeat, arguments.reads = 4, 16, 1, 20

    if arguments.child_peak_rss:
        child_peak_rss(arguments.rss_size_mib * MIB, arguments.workdir)
        return

    write_modes = [mode for mode in arguments.write_modes.split(",") if mode] or ["direct"]
    workdir = Path(tempfile.mkdtemp(prefix="custodia-bench-", dir=arguments.workdir))
    size = arguments.size_mib * MIB
    try:
        print(f"machine: {machine_description()}", flush=True)
        print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; store: {local_store_name()} in {workdir}", flush=True)
        rows = measure_throughput(workdir=workdir, size=size, repeat=arguments.repeat, write_modes=write_modes)
        disk_write = measure_disk_write(workdir=workdir, size=size)
        baseline_mib, peak_mib, rss_speed = measure_peak_rss(workdir=workdir, size=arguments.rss_size_mib * MIB)
        latencies = measure_read_latency(workdir=workdir, size=min(size, 1024 * MIB), reads=arguments.reads)
    finally:
        remove_folder(workdir)

    print()
    print(
        f"Seal throughput, {size // MIB} MiB file, MB/s (1 MB = 10^6 bytes): medians of {arguments.repeat} interleaved "
        "rounds; ratios: median over rounds of md5sum's time ÷ the contender's in the same round:"
    )
    print()
    local_headers = "".join(f"| seal → local store ({mode}) | ratio to md5sum " for mode in write_modes)
    print(
        f"| data | md5sum | sha256sum {local_headers}| seal → discard | ratio to md5sum "
        "| floor: 3 hashes alone, 2 threads | ratio to md5sum "
        "| CPU ns/byte: seal → local (→ discard; md5sum) | naive loop → discard | stored / original |"
    )
    print("|---|---:|---:|" + "---:|---:|" * len(write_modes) + "---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        naive = "-" if row["naive discard"] != row["naive discard"] else f"{row['naive discard'] / 1e6:.0f}"
        local_cells = "".join(f"| {speed / 1e6:.0f} | {ratio:.2f} " for speed, ratio in row["local"].values())
        print(
            f"| {row['data']} | {row['md5sum'] / 1e6:.0f} | {row['sha256sum'] / 1e6:.0f} {local_cells}"
            f"| {row['seal discard'] / 1e6:.0f} | {row['ratio discard']:.2f} "
            f"| {row['hashes'] / 1e6:.0f} | {row['ratio hashes']:.2f} "
            f"| {row['local cpu ns/B']:.2f} ({row['seal cpu ns/B']:.2f}; {row['md5sum cpu ns/B']:.2f}) | {naive} "
            f"| {row['stored']:.1%} |"
        )
    print(
        f"| floor: `dd if=/dev/zero bs=4M conv=fsync`, {size // MIB} MiB into the same folder "
        f"| | | {disk_write / 1e6:.0f} (the disk's physical write limit) |" + " |" * (2 * len(write_modes) + 6)
    )
    print()
    best_local = min(row["local"][write_modes[0]][1] for row in rows if "zstd" not in row["data"])
    print(
        f"Goal (issue #21): seal → local store ≥ 0.6x md5sum on every data kind ({write_modes[0]} writes): "
        f"lowest {best_local:.2f} "
        f"({'met' if best_local >= 0.6 else 'not met'}); the disk writes {disk_write / 1e6:.0f} MB/s with one fsync."
    )
    print()
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other work on this shared machine slows every column)")
    print()
    print(f"Peak memory sealing a {arguments.rss_size_mib} MiB generated stream into {local_store_name()}:")
    print()
    print("| RSS before sealing | peak RSS (VmHWM) | throughput |")
    print("|---:|---:|---:|")
    print(f"| {baseline_mib:.0f} MiB | {peak_mib:.0f} MiB | {rss_speed / 1e6:.0f} MB/s |")
    print()
    print(
        f"Goal: peak < 300 MiB for a 4096 MiB stream: {peak_mib:.0f} MiB for {arguments.rss_size_mib} MiB "
        f"({'met' if peak_mib < 300 else 'not met'}{'' if arguments.rss_size_mib >= 4096 else ', at a smaller size'})."
    )
    print()
    print(
        f"Random 4 KiB reads through ContainerReader ({arguments.reads} each; 1 MiB chunks, half compressible; "
        "8-chunk cache):"
    )
    print()
    print("| offsets | p50 | p99 |")
    print("|---|---:|---:|")
    for label, (p50, p99) in latencies.items():
        print(f"| {label} | {p50:.3f} ms | {p99:.3f} ms |")


if __name__ == "__main__":
    main()
