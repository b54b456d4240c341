"""Benchmark of capture (#16): an Azure VM disk snapshot streamed into a sealed evidence item, next to a
plain download of the same blob with the Azure SDK, in the same run. One command, prints a table (not a
timed test: it reports the goals, never asserts):

    .venv/bin/python bench/capture.py [--smoke] [--size-mib 1024] [--repeat 3]

1. A real Azurite (tests/servers.py) holds a "snapshot": a blob of ``--size-mib`` MiB (1 GiB by default; a
   few MiB with ``--smoke``) of random bytes, read through a read-only SAS URL, as Azure hands out a
   snapshot's ``accessSAS``.
2. **download**: ``BlobClient.from_blob_url(sas).download_blob(max_concurrency=4).readinto(sink)``, the
   Azure SDK's own parallel download into a sink that keeps nothing (the fastest the bytes can arrive).
3. **reader**: the capture's snapshot reader alone (below), read to the end and discarded: the part of the
   capture that is the download, so that what the sealing adds shows.
4. **capture**: what the capture's stream step runs (``evidence/capture/services.py``): the
   ``AzureCaptureClient``'s snapshot reader (4 ranged GETs in flight, prefetching) into
   ``evidence.container.writer.seal_stream`` (MD5, SHA-1 and SHA-256 of the stream in one pass, per-chunk
   SHA-256, zstd, AES-256-GCM), stored in a ``LocalWormStore`` in a temporary folder (O_DIRECT writes, the
   chunks synced by one barrier before the index, as in production). The computed SHA-256 must equal the
   blob's. Beside it, the same capture into a store with the earlier ``buffered`` writes (page cache left
   dirty until the barrier), and into a store that keeps nothing (the capture without the disk).
5. Each side runs in a child process of its own, in ``--repeat`` interleaved rounds (medians printed; the
   machine is shared); peak memory is the child's peak RSS (``ru_maxrss``), interpreter and imports included.
6. **floor**: ``seal_stream`` alone on as many random bytes from memory into a store that keeps nothing, in
   the same rounds: what sealing costs in CPU, the most a capture can reach on this machine's cores.
7. **floor of the cores**: the snapshot reader (with Azurite serving it) and ``seal_stream`` from memory run
   *at the same time* in two processes, with nothing coupling them: the wall time until both are done is
   the least any pipeline of the two can take on these cores while Azurite shares them (in Azure the
   server's CPU is not ours). CPU seconds (user + system of the child) are printed per side.

Goals: capture at least 0.8x the plain download's throughput; peak memory under 300 MiB.
Then bench/acquire.py's table: local acquisition of an image file of the same size beside ``dd | sha256sum``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

MIB = 1 << 20
GOAL_RATIO = 0.8
GOAL_PEAK_MIB = 300
CONCURRENCY = 4
PIECE_BYTES = 4 * MIB
# The children of one round, run back to back in this order.
MODES = ("download", "reader", "capture", "capture-buffered", "capture-discard", "seal")


def print_local_acquisition(*, size_mib: int, repeat: int, smoke: bool) -> None:
    """The issue's second table, local acquisition beside ``dd | sha256sum``, from bench/acquire.py (its own
    children and peak memory), run here so that one command prints both."""
    command = [sys.executable, str(PROJECT_ROOT / "bench" / "acquire.py")]
    command += ["--smoke"] if smoke else ["--size-mib", str(size_mib), "--repeat", str(repeat)]
    print()
    sys.stdout.flush()
    subprocess.run(command, check=True)


class DiscardingSink:
    """A seekable writable that keeps nothing (the SDK's parallel readinto writes pieces at their offsets)."""

    def __init__(self) -> None:
        self.position = 0
        self.written = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = offset if whence == 0 else self.position + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def write(self, data) -> int:
        self.position += len(data)
        self.written += len(data)
        return len(data)


def wait_for_start() -> None:
    """Children run together start their clocks at one agreed moment (after their set-up)."""
    start_at = float(os.environ.get("CUSTODIA_BENCH_START_AT") or 0)
    if start_at:
        time.sleep(max(0.0, start_at - time.time()))


def child_download(sas_url: str) -> dict:
    from azure.storage.blob import BlobClient

    sink = DiscardingSink()
    started = time.perf_counter()
    blob = BlobClient.from_blob_url(sas_url, max_single_get_size=PIECE_BYTES, max_chunk_get_size=PIECE_BYTES)
    size = blob.download_blob(max_concurrency=CONCURRENCY).readinto(sink)
    return {"seconds": time.perf_counter() - started, "bytes": size}


def child_reader(sas_url: str) -> dict:
    """The capture's snapshot reader alone, read to the end and discarded: what the sealing adds is the rest."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "custodia.settings.test")
    import django

    django.setup()
    from evidence.capture.azure_client import AzureCaptureClient

    client = AzureCaptureClient(
        organisation="bench", credential=object(), download_chunk_bytes=PIECE_BYTES, download_concurrency=CONCURRENCY
    )
    wait_for_start()
    started = time.perf_counter()
    source = client.open_snapshot(sas_url=sas_url)
    size = 0
    try:
        while block := source.read(MIB):
            size += len(block)
    finally:
        source.close()
    return {"seconds": time.perf_counter() - started, "bytes": size}


def child_capture(sas_url: str, workdir: str, *, write_mode: str | None = "direct") -> dict:
    """The capture's stream step into a LocalWormStore with ``write_mode``, or (None) into a store that keeps
    nothing."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "custodia.settings.test")
    import django

    django.setup()
    from evidence.capture.azure_client import AzureCaptureClient
    from evidence.container.writer import seal_stream
    from evidence.storage.local import LocalWormStore

    if write_mode is None:
        sys.path.insert(0, str(PROJECT_ROOT / "bench"))
        from seal import DiscardStore  # bench/seal.py: the discarding store of the sealing benchmark

        store = DiscardStore()
    else:
        store = LocalWormStore(root=Path(workdir) / "store", write_mode=write_mode)
    client = AzureCaptureClient(
        organisation="bench", credential=object(), download_chunk_bytes=PIECE_BYTES, download_concurrency=CONCURRENCY
    )
    started = time.perf_counter()
    size = client.snapshot_size(sas_url=sas_url)
    source = client.open_snapshot(sas_url=sas_url)
    try:
        result = seal_stream(
            evidence_id=uuid.uuid4(),
            data_key=os.urandom(32),
            store=store,
            source=source,
            facts={"bench": "capture"},
            declared={"size": size},
        )
    finally:
        source.close()
    return {"seconds": time.perf_counter() - started, "bytes": result.hashes.size, "sha256": result.hashes.sha256}


class RandomSource:
    """``size`` incompressible bytes from memory (a 64 MiB random block served over and over: each 1 MiB chunk is
    compressed and encrypted on its own, so repetition across chunks saves the sealer nothing)."""

    def __init__(self, size: int) -> None:
        self.block = os.urandom(min(64 * MIB, max(size, 1)))
        self.remaining = size
        self.position = 0

    def read(self, count: int = -1) -> bytes:
        count = self.remaining if count < 0 else min(count, self.remaining)
        start = self.position % len(self.block)
        piece = self.block[start : start + count]
        self.position += len(piece)
        self.remaining -= len(piece)
        return piece


def child_seal_alone(size: int) -> dict:
    """The floor: ``seal_stream`` (three hashes, zstd, AES-GCM) from memory into a store that keeps nothing —
    no network, no disk, no Azurite sharing the cores: the most the capture can reach on this machine."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "custodia.settings.test")
    sys.path.insert(0, str(PROJECT_ROOT / "bench"))
    from seal import DiscardStore  # bench/seal.py: the discarding store of the sealing benchmark

    from evidence.container.writer import seal_stream

    source = RandomSource(size)  # made before the clock starts: the random bytes are not the sealer's cost
    wait_for_start()
    started = time.perf_counter()
    result = seal_stream(
        evidence_id=uuid.uuid4(),
        data_key=os.urandom(32),
        store=DiscardStore(),
        source=source,  # type: ignore[arg-type]
        facts={"bench": "capture floor"},
        declared={"size": size},
    )
    return {"seconds": time.perf_counter() - started, "bytes": result.hashes.size}


def run_child(mode: str, sas_url: str, workdir: Path, size: int = 0, *, start_at: float = 0.0) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{mode}-", dir=workdir))
    try:
        completed = subprocess.run(
            # The SAS goes through the environment, not the command line, where any local user could read it.
            [sys.executable, __file__, "--child", mode, "--workdir", str(folder), "--size-mib", str(size // MIB)],
            capture_output=True,
            text=True,
            check=False,
            cwd=PROJECT_ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "custodia.settings.test",
                "CUSTODIA_DATA_DIR": str(folder),
                "CUSTODIA_BENCH_SAS_URL": sas_url,
                "CUSTODIA_BENCH_START_AT": str(start_at) if start_at else "",
            },
        )
        if completed.returncode != 0:
            raise SystemExit(f"the {mode} child failed:\n{completed.stderr[-3000:]}")
        return json.loads(completed.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def reader_and_seal_together(sas_url: str, workdir: Path, size: int) -> dict:
    """The floor of the cores: the reader and the sealer at the same time in two processes, uncoupled."""
    # Both children set up (Django, the sealer's random bytes), then start their clocks at one moment.
    start_at = time.time() + (3.0 + size / (400 * MIB))
    with ThreadPoolExecutor(max_workers=2) as pool:
        reader = pool.submit(run_child, "reader", sas_url, workdir, size, start_at=start_at)
        sealer = pool.submit(run_child, "seal", sas_url, workdir, size, start_at=start_at)
        results = [reader.result(), sealer.result()]
    return {
        "seconds": max(r["ended_at"] for r in results) - start_at,
        "bytes": size,
        "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
        "cpu_seconds": sum(r["cpu_seconds"] for r in results),
    }


def make_snapshot(azurite, size: int) -> tuple[str, str]:
    """A random blob of ``size`` bytes in Azurite, its read-only SAS URL and its SHA-256."""
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

    from tests.servers import AZURITE_ACCOUNT, AZURITE_KEY

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client("snapshots")
    container.create_container()
    digest = hashlib.sha256()

    def pieces():
        remaining = size
        while remaining:
            piece = os.urandom(min(remaining, 8 * MIB))
            digest.update(piece)
            remaining -= len(piece)
            yield piece

    blob = container.get_blob_client("custodia-bench-os.vhd")
    blob.upload_blob(pieces(), length=size, max_concurrency=2)
    sas = generate_blob_sas(
        account_name=AZURITE_ACCOUNT,
        container_name="snapshots",
        blob_name="custodia-bench-os.vhd",
        account_key=AZURITE_KEY,
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(UTC) + timedelta(hours=4),
    )
    return f"{blob.url}?{sas}", digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few MiB, one round: runs in seconds")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.child:
        options.sas = os.environ["CUSTODIA_BENCH_SAS_URL"]
        if options.child == "download":
            result = child_download(options.sas)
        elif options.child == "reader":
            result = child_reader(options.sas)
        elif options.child == "seal":
            result = child_seal_alone(options.size_mib * MIB)
        elif options.child == "capture-buffered":
            result = child_capture(options.sas, options.workdir, write_mode="buffered")
        elif options.child == "capture-discard":
            result = child_capture(options.sas, options.workdir, write_mode=None)
        else:
            result = child_capture(options.sas, options.workdir)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result["peak_rss_mib"] = usage.ru_maxrss / 1024
        result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
        result["ended_at"] = time.time()
        print(json.dumps(result))
        return

    size_mib = 8 if options.smoke else options.size_mib
    repeat = 1 if options.smoke else max(1, options.repeat)
    size = size_mib * MIB
    from tests.servers import azurite_server

    workdir = Path(tempfile.mkdtemp(prefix="custodia-bench-capture-"))
    try:
        with azurite_server() as azurite:
            print(f"Uploading a {size_mib} MiB snapshot blob to Azurite …", file=sys.stderr)
            sas_url, sha256 = make_snapshot(azurite, size)
            runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
            for number in range(repeat):
                print(f"  round {number + 1} of {repeat}…", file=sys.stderr, flush=True)
                # Interleaved, so that every side sees the same machine load.
                for mode in MODES:
                    runs[mode].append(run_child(mode, sas_url, workdir, size))
                runs.setdefault("together", []).append(reader_and_seal_together(sas_url, workdir, size))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    for run in runs["capture"] + runs["capture-buffered"] + runs["capture-discard"]:
        if run["sha256"] != sha256 or run["bytes"] != size:
            raise SystemExit("NOT OK: the sealed SHA-256 or size differs from the blob's")
    seconds = {mode: statistics.median(r["seconds"] for r in results) for mode, results in runs.items()}
    peak = {mode: max(r["peak_rss_mib"] for r in results) for mode, results in runs.items()}
    speed = {mode: size / MIB / seconds[mode] for mode in runs}

    def ratio_to_download(mode: str) -> float:
        # Each round's capture against the same round's download, then the median.
        return statistics.median(d["seconds"] / c["seconds"] for d, c in zip(runs["download"], runs[mode], strict=True))

    ratio = ratio_to_download("capture")

    print(
        f"\nCapture of a {size_mib} MiB snapshot blob from Azurite (medians of {repeat} interleaved rounds; "
        f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the end)\n"
    )
    print("| measure | MiB/s | seconds | peak RSS (MiB) | ratio to download | goal |")
    print("|---|---:|---:|---:|---:|---|")
    print(
        f"| plain `download_blob(max_concurrency={CONCURRENCY}).readinto` (Azure SDK) | {speed['download']:.0f} | "
        f"{seconds['download']:.2f} | {peak['download']:.0f} | 1.00 | — |"
    )
    print(
        f"| … the capture's snapshot reader alone (4 ranged GETs in flight), discarding | {speed['reader']:.0f} | "
        f"{seconds['reader']:.2f} | {peak['reader']:.0f} | {ratio_to_download('reader'):.2f} | — |"
    )
    print(
        f"| capture: SAS stream → `seal_stream` (3 hashes, zstd, AES-GCM, WORM store synced before the index) | "
        f"{speed['capture']:.0f} | {seconds['capture']:.2f} | {peak['capture']:.0f} | {ratio:.2f} | "
        f"≥ {GOAL_RATIO}x, < {GOAL_PEAK_MIB} MiB |"
    )
    print(
        "| … the same capture, store writes `buffered` (page cache dirty until the barrier: the earlier design) | "
        f"{speed['capture-buffered']:.0f} | {seconds['capture-buffered']:.2f} | "
        f"{peak['capture-buffered']:.0f} | {ratio_to_download('capture-buffered'):.2f} | — |"
    )
    print(
        "| floor: the same capture into a store that keeps nothing (network + sealing, no disk) | "
        f"{speed['capture-discard']:.0f} | {seconds['capture-discard']:.2f} | "
        f"{peak['capture-discard']:.0f} | {ratio_to_download('capture-discard'):.2f} | — |"
    )
    print(
        f"| floor: `seal_stream` alone, from memory into a store that keeps nothing (no network, no disk) | "
        f"{speed['seal']:.0f} | {seconds['seal']:.2f} | {peak['seal']:.0f} | "
        f"{ratio_to_download('seal'):.2f} | — |"
    )
    print(
        "| floor of the cores: the reader (Azurite serving) and `seal_stream` from memory at the same time, "
        f"two processes, uncoupled | {speed['together']:.0f} | {seconds['together']:.2f} | "
        f"{peak['together']:.0f} | {ratio_to_download('together'):.2f} | — |"
    )
    cpu = {mode: statistics.median(r["cpu_seconds"] for r in results) for mode, results in runs.items()}
    print()
    print(
        "CPU seconds of our process(es) per side (user + system; Azurite's own not included): "
        + ", ".join(f"{mode} {cpu[mode]:.1f}" for mode in (*MODES, "together"))
    )
    print()
    print("SHA-256 of the sealed stream equals the blob's: OK")
    print("Goals (issue #16):")
    verdict = "met" if ratio >= GOAL_RATIO else "NOT met"
    print(f"- capture throughput ≥ {GOAL_RATIO}x the plain download: {verdict} ({ratio:.2f}x)")
    print(
        f"- capture peak memory < {GOAL_PEAK_MIB} MiB: "
        f"{'met' if peak['capture'] < GOAL_PEAK_MIB else 'NOT met'} ({peak['capture']:.0f} MiB)"
    )
    print_local_acquisition(size_mib=size_mib, repeat=repeat, smoke=options.smoke)


if __name__ == "__main__":
    main()
