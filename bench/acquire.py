"""Benchmark of local acquisition (#16 item 3). One command, prints a table (not a timed test):

    .venv/bin/python bench/acquire.py [--size-mib 1024] [--repeat 3] [--write-modes direct,flushed,buffered]
    .venv/bin/python bench/acquire.py --smoke          # the smallest run, seconds: the table, no meaning

A random image file of ``--size-mib`` is acquired the way the worker acquires a device: opened O_RDONLY,
read through ``RecoveringReader`` (pread, retries, zero-fill) into ``seal_stream`` (MD5, SHA-1, SHA-256,
zstd, AES-GCM) and a ``LocalWormStore`` (chunks synced by one barrier before the index), in a child process
whose peak memory (``ru_maxrss``) and CPU seconds are taken. The store's write modes (``direct``: O_DIRECT,
the default; ``flushed``: page cache, fdatasync and drop per object; ``buffered``: the earlier design,
dirty pages until the barrier) each get a row. Next to them, in the same rounds: ``dd if=IMAGE bs=4M |
sha256sum`` and ``| md5sum`` (what an examiner would type), the acquisition into a store that discards the
bytes (the pipeline without the disk), and two floors: the same reads put into the store with no sealing
(what the disk path alone costs while the source is read) and the three hashes alone on two threads (what
the hashing alone costs); ``dd if=/dev/zero bs=4M conv=fsync`` is the disk's physical write limit.
Rounds run every contender back to back (A B C … A B C …); the table gives medians over rounds: MB/s, the
ratio to ``dd | sha256sum`` of the same round, and CPU seconds per GiB (which the shared machine's load
hardly moves).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.machine import machine_description  # noqa: E402

MIB = 1 << 20
GIB = 1 << 30
GOAL_RATIO = 0.8
GOAL_PEAK_MIB = 300
WRITE_MODES = ("direct", "flushed", "buffered")


def work_cpu_seconds() -> float:
    """CPU seconds of this process so far, every thread counted (children subtract their start-up's)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def acquire_in_this_process(*, image: Path, store_dir: Path | None, write_mode: str) -> None:
    """The child: acquire ``image`` as the worker does; print the seconds, the hashes and the read errors."""
    from evidence.container import seal_stream
    from evidence.intake.device import DescriptorSource, RecoveringReader
    from evidence.storage.local import LocalWormStore

    if store_dir is not None:
        store = LocalWormStore(root=store_dir, write_mode=write_mode)
    else:
        from bench.seal import DiscardStore

        store = DiscardStore()
    cpu_before, started = work_cpu_seconds(), time.perf_counter()
    source = DescriptorSource(image)
    try:
        reader = RecoveringReader(source=source, size=source.size, retries=3)
        result = seal_stream(
            evidence_id=uuid.uuid4(),
            data_key=os.urandom(32),
            store=store,
            source=reader,  # type: ignore[arg-type]
            facts={"bench": "acquire"},
            resume=True,
            more_facts=lambda: {"read_errors": reader.errors},
        )
    finally:
        source.close()
    seconds = time.perf_counter() - started
    print(f"{seconds:.6f} {result.hashes.sha256} {len(reader.errors)} {work_cpu_seconds() - cpu_before:.3f}")


def store_alone_in_this_process(*, image: Path, store_dir: Path) -> None:
    """The disk-path floor: the image's chunks read as the acquisition reads them and put, as they are, into
    the store (direct mode, 8 threads, one barrier), with no hashing, compression or encryption."""
    from evidence.container.format import CHUNK_SIZE, chunk_key, chunk_prefix
    from evidence.intake.device import DescriptorSource
    from evidence.storage.local import LocalWormStore

    store = LocalWormStore(root=store_dir)
    evidence_id = uuid.uuid4()
    cpu_before, started = work_cpu_seconds(), time.perf_counter()
    source = DescriptorSource(image)
    try:
        with (
            store.durable_batch(prefix=chunk_prefix(evidence_id)) as batch,
            ThreadPoolExecutor(max_workers=8) as pool,
        ):
            futures = []
            for number, offset in enumerate(range(0, source.size, CHUNK_SIZE)):
                block = source.pread(CHUNK_SIZE, offset)
                futures.append(pool.submit(store.put, chunk_key(evidence_id, number), block))
                if len(futures) >= 32:  # the same bound on chunks in flight as seal_stream's
                    futures.pop(0).result()
            for future in futures:
                future.result()
            batch.sync()
    finally:
        source.close()
    print(f"{time.perf_counter() - started:.6f} - 0 {work_cpu_seconds() - cpu_before:.3f}")


def hash_alone_in_this_process(*, image: Path) -> None:
    """The hashing floor: MD5, SHA-1 and SHA-256 of the image (MultiHasher's two lanes) and nothing else."""
    from evidence.container import MultiHasher
    from evidence.container.format import CHUNK_SIZE
    from evidence.intake.device import DescriptorSource

    cpu_before, started = work_cpu_seconds(), time.perf_counter()
    source = DescriptorSource(image)
    hasher = MultiHasher(parallel=True, queue_depth=16)
    try:
        for offset in range(0, source.size, CHUNK_SIZE):
            hasher.update(source.pread(CHUNK_SIZE, offset))
        digest = hasher.result().sha256
    finally:
        source.close()
    print(f"{time.perf_counter() - started:.6f} {digest} 0 {work_cpu_seconds() - cpu_before:.3f}")


def run_child(*, image: Path, kind: str, store_dir: Path | None = None, write_mode: str = "direct") -> dict:
    """Seconds, SHA-256, peak RSS (MiB, the child's ru_maxrss) and CPU seconds of one child's measured work."""
    command = [sys.executable, __file__, "--child", kind, "--image", str(image), "--write-mode", write_mode]
    if store_dir is not None:
        command += ["--store-dir", str(store_dir)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"the {kind} child failed ({process.returncode})")
    seconds, sha256, errors, cpu = output.split()
    if int(errors):
        raise SystemExit("the benchmark image gave read errors")
    return {
        "seconds": float(seconds),
        "sha256": sha256,
        "peak": usage.ru_maxrss / 1024,
        "cpu": float(cpu),
    }


def children_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dd_pipe(image: Path, tool: str) -> dict:
    """Seconds, digest and CPU seconds of ``dd if=IMAGE bs=4M | TOOL``, two processes joined by a pipe."""
    cpu_before = children_cpu_seconds()
    started = time.perf_counter()
    dd = subprocess.Popen(["dd", f"if={image}", "bs=4M", "status=none"], stdout=subprocess.PIPE)
    digest = subprocess.run([tool], stdin=dd.stdout, check=True, capture_output=True, text=True).stdout
    if dd.stdout is not None:
        dd.stdout.close()
    if dd.wait() != 0:
        raise SystemExit("dd failed")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "sha256": digest.split()[0], "cpu": children_cpu_seconds() - cpu_before, "peak": 0}


def dd_fsync(folder: Path, size: int) -> float:
    target = folder / "dd-floor.bin"
    count = max(1, size // (4 * MIB))
    started = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=4M", f"count={count}", "conv=fsync"], check=True,
                   capture_output=True)  # fmt: skip
    seconds = time.perf_counter() - started
    target.unlink()
    return count * 4 * MIB / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the image file")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the table gives medians over them")
    parser.add_argument(
        "--write-modes", default=",".join(WRITE_MODES), help="LocalWormStore write modes to compare, comma-separated"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the image and the store")
    parser.add_argument("--smoke", action="store_true", help="the smallest sizes: checks the command runs")
    parser.add_argument("--child", choices=("acquire", "store-alone", "hash-alone"), help=argparse.SUPPRESS)
    parser.add_argument("--image", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--store-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--write-mode", default="direct", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child == "acquire":
        acquire_in_this_process(image=arguments.image, store_dir=arguments.store_dir, write_mode=arguments.write_mode)
        return
    if arguments.child == "store-alone":
        store_alone_in_this_process(image=arguments.image, store_dir=arguments.store_dir)
        return
    if arguments.child == "hash-alone":
        hash_alone_in_this_process(image=arguments.image)
        return
    if arguments.smoke:
        arguments.size_mib, arguments.repeat = 8, 1
    modes = [mode for mode in arguments.write_modes.split(",") if mode]
    if not modes or any(mode not in WRITE_MODES for mode in modes):
        raise SystemExit(f"--write-modes takes some of {', '.join(WRITE_MODES)}")

    size = arguments.size_mib * MIB
    workdir = Path(tempfile.mkdtemp(prefix="custodia-bench-acquire-", dir=arguments.workdir))
    rounds: list[dict[str, dict]] = []
    try:
        print(f"machine: {machine_description()}", flush=True)
        image = workdir / "image.dd"
        with open(image, "wb") as handle:
            for _ in range(arguments.size_mib):
                handle.write(os.urandom(MIB))
        subprocess.run(["cat", str(image)], stdout=subprocess.DEVNULL, check=True)  # into the page cache

        def in_a_store(kind: str, write_mode: str = "direct") -> dict:
            store_dir = Path(tempfile.mkdtemp(prefix="store-", dir=workdir))
            try:
                return run_child(image=image, kind=kind, store_dir=store_dir, write_mode=write_mode)
            finally:
                shutil.rmtree(store_dir)

        for number in range(arguments.repeat):
            print(f"  round {number + 1} of {arguments.repeat}…", file=sys.stderr, flush=True)
            this_round = {"sha256sum": dd_pipe(image, "sha256sum"), "md5sum": dd_pipe(image, "md5sum")}
            for mode in modes:
                this_round[mode] = in_a_store("acquire", mode)
            this_round["discard"] = run_child(image=image, kind="acquire")
            this_round["store alone"] = in_a_store("store-alone")
            this_round["hash alone"] = run_child(image=image, kind="hash-alone")
            reference = this_round["sha256sum"]["sha256"]
            if any(this_round[name]["sha256"] != reference for name in [*modes, "discard", "hash alone"]):
                raise SystemExit("an acquisition's SHA-256 differs from sha256sum's")
            rounds.append(this_round)
        floor = dd_fsync(workdir, size)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def speed(name: str) -> float:
        return statistics.median(size / r[name]["seconds"] / 1e6 for r in rounds)

    def ratio(name: str, reference: str = "sha256sum") -> float:
        return statistics.median(r[reference]["seconds"] / r[name]["seconds"] for r in rounds)

    def cpu(name: str) -> str:
        return f"{statistics.median(r[name]['cpu'] for r in rounds) * GIB / size:.2f}"

    def peak(name: str) -> str:
        return f"{max(r[name]['peak'] for r in rounds):.0f} MiB"

    described = {
        "direct": "O_DIRECT from an aligned buffer, no page cache (the default)",
        "flushed": "page cache, fdatasync and drop per chunk",
        "buffered": "page cache left dirty until the barrier (the earlier design)",
    }
    default_mode = modes[0]
    print()
    print(
        f"Local acquisition of a {arguments.size_mib} MiB image file (page-cached); medians of {arguments.repeat} "
        "interleaved rounds:"
    )
    print()
    print(
        "| measure | MB/s | ratio to `dd \\| sha256sum` | ratio to `dd \\| md5sum` | CPU s per GiB | peak RSS | goal |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for mode in modes:
        goal = ""
        if mode == default_mode:
            met = ratio(mode) >= GOAL_RATIO
            peak_met = max(r[mode]["peak"] for r in rounds) < GOAL_PEAK_MIB
            goal = f"≥ {GOAL_RATIO}, < {GOAL_PEAK_MIB} MiB: {'met' if met else 'not met'}, "
            goal += "met" if peak_met else "not met"
        print(
            f"| acquisition → LocalWormStore, {mode}: {described[mode]} | {speed(mode):.0f} | {ratio(mode):.2f} "
            f"| {ratio(mode, 'md5sum'):.2f} | {cpu(mode)} | {peak(mode)} | {goal} |"
        )
    print(
        f"| acquisition → discard (the pipeline without the disk) | {speed('discard'):.0f} "
        f"| {ratio('discard'):.2f} | {ratio('discard', 'md5sum'):.2f} | {cpu('discard')} | {peak('discard')} | |"
    )
    print(
        f"| `dd if=IMAGE bs=4M \\| sha256sum` | {speed('sha256sum'):.0f} | 1.00 | | {cpu('sha256sum')} | | reference |"
    )
    print(f"| `dd if=IMAGE bs=4M \\| md5sum` | {speed('md5sum'):.0f} | | 1.00 | {cpu('md5sum')} | | reference |")
    print(
        f"| floor: the same reads put into LocalWormStore (direct) unsealed, one barrier | {speed('store alone'):.0f} "
        f"| {ratio('store alone'):.2f} | | {cpu('store alone')} | {peak('store alone')} | the disk path |"
    )
    print(
        f"| floor: MD5 ‖ SHA-1 + SHA-256 alone (MultiHasher, 2 threads) | {speed('hash alone'):.0f} "
        f"| {ratio('hash alone'):.2f} | | {cpu('hash alone')} | {peak('hash alone')} | the hashing |"
    )
    print(
        f"| floor: `dd if=/dev/zero bs=4M conv=fsync` (the disk's write limit) | {floor / 1e6:.0f} | | | | | the disk |"
    )
    print()
    print(
        "Acquisition: O_RDONLY pread through RecoveringReader, MD5 + SHA-1 + SHA-256 of the stream, per-chunk "
        "SHA-256, zstd, AES-256-GCM, chunks synced by one barrier before the index and the manifest."
    )
    print(
        f"Goal (issue #16): acquisition → LocalWormStore ({default_mode}) ≥ {GOAL_RATIO}x `dd | sha256sum`: "
        f"{ratio(default_mode):.2f}x ({'met' if ratio(default_mode) >= GOAL_RATIO else 'not met'})."
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other work on this shared machine slows every row)")


if __name__ == "__main__":
    main()
