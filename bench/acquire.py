"""Benchmark of local acquisition (#16 item 3). One command, prints a table (not a timed test):

    .venv/bin/python bench/acquire.py [--size-mib 1024] [--repeat 2]
    .venv/bin/python bench/acquire.py --smoke          # the smallest run, seconds: the table, no meaning

A random image file of ``--size-mib`` is acquired the way the worker acquires a device: opened O_RDONLY,
read through ``RecoveringReader`` (pread, retries, zero-fill) into ``seal_stream`` (MD5, SHA-1, SHA-256,
zstd, AES-GCM) and a ``LocalWormStore`` (every chunk fsync'd), in a child process whose peak memory
(``ru_maxrss``) is taken. Next to it, in the same rounds: ``dd if=IMAGE bs=4M | sha256sum`` and
``| md5sum`` (what an examiner would type), the same acquisition into a store that discards the bytes (the
pipeline without the disk), and ``dd if=/dev/zero bs=4M conv=fsync`` (the disk's physical write limit).
Best of ``--repeat`` rounds; ratios are medians over rounds of dd-pipe time ÷ acquisition time.
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
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.machine import machine_description  # noqa: E402

MIB = 1 << 20


def acquire_in_this_process(*, image: Path, store_dir: Path | None) -> None:
    """The child: acquire ``image`` as the worker does; print the seconds, the hashes and the read errors."""
    from evidence.container import seal_stream
    from evidence.intake.device import DescriptorSource, RecoveringReader
    from evidence.storage.local import LocalWormStore

    if store_dir is not None:
        store = LocalWormStore(root=store_dir)
    else:
        from bench.seal import DiscardStore

        store = DiscardStore()
    started = time.perf_counter()
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
    print(f"{seconds:.6f} {result.hashes.sha256} {len(reader.errors)}")


def run_child(*, image: Path, store_dir: Path | None) -> tuple[float, str, float]:
    """Seconds, SHA-256 and peak RSS (MiB, the child's ru_maxrss) of one acquisition in a child process."""
    command = [sys.executable, __file__, "--child", "--image", str(image)]
    if store_dir is not None:
        command += ["--store-dir", str(store_dir)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"the acquisition child failed ({process.returncode})")
    seconds, sha256, errors = output.split()
    if int(errors):
        raise SystemExit("the benchmark image gave read errors")
    return float(seconds), sha256, usage.ru_maxrss / 1024


def dd_pipe(image: Path, tool: str) -> tuple[float, str]:
    """Seconds and digest of ``dd if=IMAGE bs=4M | TOOL``, as two processes joined by a pipe."""
    started = time.perf_counter()
    dd = subprocess.Popen(["dd", f"if={image}", "bs=4M", "status=none"], stdout=subprocess.PIPE)
    digest = subprocess.run([tool], stdin=dd.stdout, check=True, capture_output=True, text=True).stdout
    if dd.stdout is not None:
        dd.stdout.close()
    if dd.wait() != 0:
        raise SystemExit("dd failed")
    return time.perf_counter() - started, digest.split()[0]


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
    parser.add_argument("--repeat", type=int, default=2, help="rounds; the best counts")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the image and the store")
    parser.add_argument("--smoke", action="store_true", help="the smallest sizes: checks the command runs")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--image", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--store-dir", type=Path, default=None, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        acquire_in_this_process(image=arguments.image, store_dir=arguments.store_dir)
        return
    if arguments.smoke:
        arguments.size_mib, arguments.repeat = 8, 1

    size = arguments.size_mib * MIB
    workdir = Path(tempfile.mkdtemp(prefix="custodia-bench-acquire-", dir=arguments.workdir))
    try:
        print(f"machine: {machine_description()}", flush=True)
        image = workdir / "image.dd"
        with open(image, "wb") as handle:
            for _ in range(arguments.size_mib):
                handle.write(os.urandom(MIB))
        subprocess.run(["cat", str(image)], stdout=subprocess.DEVNULL, check=True)  # into the page cache
        rounds = []
        for number in range(arguments.repeat):
            print(f"  round {number + 1} of {arguments.repeat}…", file=sys.stderr, flush=True)
            store_dir = workdir / f"store-{number}"
            store_dir.mkdir()
            sha256_seconds, reference = dd_pipe(image, "sha256sum")
            md5_seconds, _ = dd_pipe(image, "md5sum")
            local_seconds, sealed_sha256, local_peak = run_child(image=image, store_dir=store_dir)
            discard_seconds, _, discard_peak = run_child(image=image, store_dir=None)
            shutil.rmtree(store_dir)
            if sealed_sha256 != reference:
                raise SystemExit("the acquisition's SHA-256 differs from sha256sum's")
            rounds.append(
                {
                    "sha256sum": sha256_seconds,
                    "md5sum": md5_seconds,
                    "local": local_seconds,
                    "discard": discard_seconds,
                    "local peak": local_peak,
                    "discard peak": discard_peak,
                }
            )
        floor = dd_fsync(workdir, size)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def speed(name: str) -> float:
        return size / min(r[name] for r in rounds) / 1e6

    def ratio(name: str, reference: str) -> float:
        return statistics.median(r[reference] / r[name] for r in rounds)

    peak = max(r["local peak"] for r in rounds)
    print()
    print(
        f"Local acquisition of a {arguments.size_mib} MiB image file (page-cached), MB/s, best of {arguments.repeat}:"
    )
    print()
    print("| measure | MB/s | ratio to `dd \\| sha256sum` | ratio to `dd \\| md5sum` | peak RSS | goal |")
    print("|---|---:|---:|---:|---:|---|")
    print(
        "| acquisition → LocalWormStore (O_RDONLY pread, MD5+SHA-1+SHA-256, zstd, AES-GCM, fsync) "
        f"| {speed('local'):.0f} "
        f"| {ratio('local', 'sha256sum'):.2f} | {ratio('local', 'md5sum'):.2f} | {peak:.0f} MiB "
        f"| ≥ 0.8, < 300 MiB: {'met' if ratio('local', 'sha256sum') >= 0.8 else 'not met'}, "
        f"{'met' if peak < 300 else 'not met'} |"
    )
    print(
        f"| acquisition → discard (the pipeline without the disk) | {speed('discard'):.0f} "
        f"| {ratio('discard', 'sha256sum'):.2f} | {ratio('discard', 'md5sum'):.2f} "
        f"| {max(r['discard peak'] for r in rounds):.0f} MiB | |"
    )
    print(f"| `dd if=IMAGE bs=4M \\| sha256sum` | {speed('sha256sum'):.0f} | 1.00 | | | reference |")
    print(f"| `dd if=IMAGE bs=4M \\| md5sum` | {speed('md5sum'):.0f} | | 1.00 | | reference |")
    print(f"| floor: `dd if=/dev/zero bs=4M conv=fsync` (the disk's write limit) | {floor / 1e6:.0f} | | | | |")
    print()
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other work on this shared machine slows every row)")


if __name__ == "__main__":
    main()
