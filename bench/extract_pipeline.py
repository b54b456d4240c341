"""The whole extraction as a user runs it, timed: import (seal) the benchmark images of ``bench/extract.py``
through the evidence service, then run the extraction service (walk + content tools + traces committed in
batches to the database), next to the Sleuth Kit reference pipeline and plaso on the same image in the same
run, with the floor under any of them.

    .venv/bin/python bench/extract_pipeline.py [--quick | --smoke] [--only ext4|ntfs] [--shards N]
        [--profile] [--also-one-share] [--no-plaso]

Rows, per image, each as files/s and its ratio to the Sleuth Kit reference of the same run:

- the reference: ``fls -r -m /`` + ``tsk_recover -e`` + ``sha256sum`` of every recovered file;
- the floor: every recovered file's bytes read once (from the page cache) into MD5, SHA-1 and SHA-256
  (hashlib), on as many processes as the run has shares — what no walk that hashes can beat;
- Custodia's walk alone (``walk_image`` over the sealed container: every file hashed, typed, measured;
  no content tools, nothing committed), its shares in parallel processes;
- Custodia's whole run (``extraction_execute`` of every share in parallel processes, as Celery's prefork
  workers run them: walk, content tools, traces committed and searchable), with the time from the run's
  start to its first committed trace;
- plaso (``log2timeline --workers N`` then ``psort``), when ``make bench-plaso-venv`` has made
  ``bench/.plaso-venv`` (never a project dependency): the peer a user would pick.

CPU seconds are user + system time of every process of a row (children included), which a busy shared
machine disturbs less than the clock. ``--profile`` also runs one whole run in this process under cProfile
and prints its most expensive functions. It uses the test settings with a fresh data folder and a fresh
SQLite database (``DATABASE_URL`` set: that PostgreSQL instead). Not a timed test: ``--smoke`` runs a few
hundred files in seconds, for ``make bench-smoke``.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import multiprocessing
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

PLASO_VENV = PROJECT_ROOT / "bench" / ".plaso-venv"
SIZES = {"smoke": (300, 16), "quick": (3_000, 64), "full": (30_000, 500)}


def setup_django(data_dir: Path) -> None:
    import logging

    logging.disable(logging.WARNING)  # the tools log every malformed generated file; the table is the output
    os.environ["DJANGO_SETTINGS_MODULE"] = "custodia.settings.test"
    os.environ["CUSTODIA_DATA_DIR"] = str(data_dir)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    os.environ.setdefault("DEMO_PASSWORD", "bench-password-" + os.urandom(6).hex())
    with open(os.devnull, "w") as sink:
        call_command("seed_demo", stdout=sink)


@dataclass
class Row:
    pipeline: str
    files: int
    file_bytes: int
    seconds: float
    cpu_seconds: float | None = None
    first_trace: float | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.files / self.seconds if self.seconds else float("nan")


def processes_text(count: int) -> str:
    return f"{count} process{'es' if count > 1 else ''}"


def children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def in_processes(*, target: Callable[[int], None], count: int) -> None:
    """``target(index)`` for index 0…count-1, each in a forked process, all at once (as prefork workers)."""
    from django.db import connections

    connections.close_all()  # a forked child must not share the parent's database connection
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=target, args=(index,)) for index in range(count)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    failed = [process.exitcode for process in processes if process.exitcode]
    if failed:
        raise SystemExit(f"a worker process failed with exit code {failed[0]}")


# --- the floor ------------------------------------------------------------------------------------------


def hash_files(paths: list[Path]) -> None:
    for path in paths:
        md5, sha1, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha1(usedforsecurity=False), hashlib.sha256()
        with open(path, "rb", buffering=0) as handle:
            while block := handle.read(1 << 20):
                md5.update(block)
                sha1.update(block)
                sha256.update(block)


def run_floor(*, files: list[Path], processes: int) -> Row:
    """Every file's bytes once into MD5, SHA-1 and SHA-256, files dealt out over ``processes`` processes."""
    hash_files(files[:50])  # the page cache warm for the first files too (tsk_recover just wrote them all)
    cpu_before, started = children_cpu(), time.perf_counter()
    in_processes(target=lambda index: hash_files(files[index::processes]), count=processes)
    return Row(
        pipeline=f"floor: every file read once into MD5 + SHA-1 + SHA-256 (hashlib, {processes_text(processes)})",
        files=len(files),
        file_bytes=sum(path.stat().st_size for path in files),
        seconds=time.perf_counter() - started,
        cpu_seconds=children_cpu() - cpu_before,
    )


def sniff_heads(heads: list[bytes]) -> None:
    import magic

    cookie = magic.Magic(mime=True)
    for head in heads:
        cookie.from_buffer(head)


def run_libmagic_floor(*, files: list[Path], processes: int) -> Row:
    """libmagic's MIME type of every distinct first 8 KiB (as the walker asks it, once per distinct head),
    heads read beforehand, dealt out over ``processes`` processes: the least that typing every file with
    libmagic costs, whatever else a walk does."""
    from search.extraction.walker import WalkOptions

    head_size = WalkOptions().mime_sniff_bytes
    heads: dict[bytes, None] = {}
    for path in files:
        with open(path, "rb") as handle:
            heads[handle.read(head_size)] = None
    distinct = [head for head in heads if head]
    cpu_before, started = children_cpu(), time.perf_counter()
    in_processes(target=lambda index: sniff_heads(distinct[index::processes]), count=processes)
    return Row(
        pipeline=(
            f"floor: libmagic alone, MIME type of {len(distinct):,} distinct 8 KiB heads ({processes_text(processes)})"
        ),
        files=len(files),
        file_bytes=sum(path.stat().st_size for path in files),
        seconds=time.perf_counter() - started,
        cpu_seconds=children_cpu() - cpu_before,
    )


# --- plaso ----------------------------------------------------------------------------------------------


def run_plaso(*, image_path: Path, workdir: Path, workers: int, files: int, file_bytes: int) -> Row | str:
    log2timeline, psort = PLASO_VENV / "bin" / "log2timeline", PLASO_VENV / "bin" / "psort"
    if not log2timeline.exists():
        return "n/a: no bench/.plaso-venv (make bench-plaso-venv)"
    storage, output = workdir / f"{image_path.stem}.plaso", workdir / f"{image_path.stem}.plaso.csv"
    common = ["--status_view", "none", "--unattended", "--logfile", str(workdir / "plaso.log.gz")]
    cpu_before, started = children_cpu(), time.perf_counter()
    subprocess.run(
        [
            str(log2timeline),
            *common,
            *("--workers", str(workers), "--hashers", "md5,sha1,sha256"),
            *("--storage_file", str(storage), str(image_path)),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=workdir,
    )
    extracted = time.perf_counter() - started
    subprocess.run(
        [str(psort), *common, "-o", "dynamic", "-w", str(output), str(storage)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=workdir,
    )
    seconds = time.perf_counter() - started
    with open(output, "rb") as handle:
        events = sum(1 for _ in handle) - 1
    storage.unlink(missing_ok=True)
    output.unlink(missing_ok=True)
    return Row(
        pipeline=f"plaso: log2timeline --workers {workers} (MD5, SHA-1, SHA-256) + psort ({events:,} events)",
        files=files,  # plaso reads the same files; it reports events, not files: the reference's count
        file_bytes=file_bytes,
        seconds=seconds,
        cpu_seconds=children_cpu() - cpu_before,
        note=f"log2timeline {extracted:.1f} s, psort {seconds - extracted:.1f} s",
    )


# --- Custodia -------------------------------------------------------------------------------------------


def import_image(*, image_path: Path):
    from django.conf import settings

    from cases.models import Case, User
    from evidence.services.intake import evidence_import

    settings.CUSTODIA_IMPORT_ROOTS = [image_path.parent]
    custodian = User.objects.get(username="custodian")
    case = Case.objects.get(reference="DEMO-2026-001")
    return evidence_import(actor=custodian, case=case, paths=[str(image_path)], label=image_path.name)


def walk_share(*, evidence, shard: int, shards: int) -> None:
    from evidence.reading import open_acquired
    from search.extraction.walker import WalkOptions, walk_image

    with open_acquired(evidence=evidence) as acquired:
        options = WalkOptions(file_name=acquired.first_name, shard=(shard, shards) if shards > 1 else None)
        for _trace in walk_image(file_object=acquired.reader, evidence_id=str(evidence.pk), options=options):
            pass


def run_walk(*, evidence, shards: int, files: int, file_bytes: int) -> Row:
    cpu_before, started = children_cpu(), time.perf_counter()
    in_processes(target=lambda shard: walk_share(evidence=evidence, shard=shard, shards=shards), count=shards)
    return Row(
        pipeline=f"Custodia: the walk alone (hashes, entropy, MIME type; {processes_text(shards)})",
        files=files,
        file_bytes=file_bytes,
        seconds=time.perf_counter() - started,
        cpu_seconds=children_cpu() - cpu_before,
    )


def file_counts(*, run) -> tuple[int, int]:
    """Files with content read in the run (file traces with a hashed raw stream), and their bytes."""
    from search.models import Trace

    files = file_bytes = 0
    for streams in Trace.objects.filter(run=run, types__icontains='"file"').values_list("streams", flat=True):
        raw = next((stream for stream in streams if stream.get("name") == "raw"), None)
        # A stream the walker read has a data path; one a content tool found inside a file has none.
        if raw is not None and raw.get("sha256") and raw.get("data_path"):
            files += 1
            file_bytes += raw.get("size") or 0
    return files, file_bytes


def run_pipeline(*, evidence, shards: int, profile: bool) -> Row:
    from search.models import ExtractionRun
    from search.services import extraction_execute

    run = ExtractionRun.objects.create(evidence=evidence, shards=shards)
    cpu_before, own_before, started = children_cpu(), own_cpu(), time.perf_counter()
    if profile:  # one process, shares one after the other: cProfile sees every call of the run's thread
        profiler = cProfile.Profile()
        profiler.enable()
        for shard in range(shards):
            extraction_execute(run_id=run.pk, shard=shard)
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        print(text.getvalue(), file=sys.stderr)
    else:
        in_processes(target=lambda shard: extraction_execute(run_id=run.pk, shard=shard), count=shards)
    seconds = time.perf_counter() - started
    cpu_seconds = children_cpu() - cpu_before + own_cpu() - own_before
    run.refresh_from_db()
    if run.state != "done":
        raise SystemExit(f"the extraction run ended {run.state}: {run.failure}")
    files, file_bytes = file_counts(run=run)
    first_trace = (run.first_trace_at - run.started_at).total_seconds() if run.first_trace_at else None
    return Row(
        pipeline=(
            f"Custodia: extraction run, walk + tools + commit ({shards} share{'s' if shards > 1 else ''} in "
            f"{'one profiled process' if profile else processes_text(shards)}; {run.traces:,} traces)"
        ),
        files=files,
        file_bytes=file_bytes,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        first_trace=first_trace,
    )


# --- the table ------------------------------------------------------------------------------------------


def print_row(*, image: str, row: Row | str, reference: Row, label: str = "") -> None:
    if isinstance(row, str):
        print(f"| {image} | {label} | | | | | | | {row} | |", flush=True)
        return
    cpu = "-" if row.cpu_seconds is None else f"{row.cpu_seconds:.2f}"
    first = "-" if row.first_trace is None else f"{row.first_trace:.2f} s"
    note = f" ({row.note})" if row.note else ""
    print(
        f"| {image} | {row.pipeline}{note} | {row.files:,} | {row.file_bytes / 1e6:,.0f} | {row.seconds:.2f} | {cpu} "
        f"| {row.rate:,.0f} | {row.file_bytes / 1e6 / row.seconds:,.0f} | {row.rate / reference.rate:.2f} | {first} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="3,000 files in 64 MiB images")
    size.add_argument("--smoke", action="store_true", help="300 files in 16 MiB images, no plaso (seconds)")
    parser.add_argument("--only", choices=["ext4", "ntfs"], default=None)
    parser.add_argument("--shards", type=int, default=os.cpu_count() or 1, help="shares (processes); default: cores")
    parser.add_argument("--profile", action="store_true", help="also one run under cProfile (to stderr)")
    parser.add_argument("--also-one-share", action="store_true", help="also the whole run in one share, one process")
    parser.add_argument("--no-plaso", action="store_true", help="skip plaso even when bench/.plaso-venv exists")
    arguments = parser.parse_args()
    from bench.extract import CorpusParameters, cached_images, run_sleuthkit_reference
    from bench.machine import machine_description

    files, size_mib = SIZES["smoke" if arguments.smoke else "quick" if arguments.quick else "full"]
    images = cached_images(parameters=CorpusParameters(file_count=files, image_size_mib=size_mib, seed=4))
    if arguments.only:
        images = [image for image in images if image.name == arguments.only]
    workdir = Path(tempfile.mkdtemp(prefix="custodia-bench-pipeline-"))
    setup_django(workdir / "data")
    from django.db import connection

    print(f"machine: {machine_description()}")
    print(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; database: {connection.vendor}; command: .venv/bin/python "
        f"bench/{Path(__file__).name} " + " ".join(sys.argv[1:])
    )
    print()
    print(
        "| image | pipeline | files | MB | seconds | CPU seconds | files/s | MB/s | files/s ÷ reference "
        "| first committed trace |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    try:
        for image in images:
            cpu_before = children_cpu()
            reference_measurement, _libmagic_alone = run_sleuthkit_reference(
                image=image, workdir=workdir, keep_recovered=True
            )
            reference = Row(
                pipeline="Sleuth Kit: fls + tsk_recover + sha256sum",
                files=reference_measurement.file_count,
                file_bytes=reference_measurement.file_bytes,
                seconds=reference_measurement.seconds,
                cpu_seconds=children_cpu() - cpu_before,
            )
            print_row(image=image.name, row=reference, reference=reference)
            recovered = workdir / f"{image.name}-recovered"
            recovered_files = sorted(path for path in recovered.rglob("*") if path.is_file())
            print_row(
                image=image.name, row=run_floor(files=recovered_files, processes=arguments.shards), reference=reference
            )
            print_row(
                image=image.name,
                row=run_libmagic_floor(files=recovered_files, processes=arguments.shards),
                reference=reference,
            )
            shutil.rmtree(recovered, ignore_errors=True)
            evidence = import_image(image_path=image.path)
            run_row = run_pipeline(evidence=evidence, shards=arguments.shards, profile=False)
            walk = run_walk(
                evidence=evidence, shards=arguments.shards, files=run_row.files, file_bytes=run_row.file_bytes
            )
            print_row(image=image.name, row=walk, reference=reference)
            print_row(image=image.name, row=run_row, reference=reference)
            if arguments.also_one_share and arguments.shards > 1:
                one_share = run_pipeline(evidence=evidence, shards=1, profile=False)
                print_row(image=image.name, row=one_share, reference=reference)
            if arguments.profile:
                profiled = run_pipeline(evidence=evidence, shards=1, profile=True)
                print_row(image=image.name, row=profiled, reference=reference)
            if not (arguments.smoke or arguments.no_plaso):
                plaso = run_plaso(
                    image_path=image.path,
                    workdir=workdir,
                    workers=arguments.shards,
                    files=reference.files,
                    file_bytes=reference.file_bytes,
                )
                print_row(image=image.name, row=plaso, reference=reference, label="plaso: log2timeline + psort")
                if not isinstance(plaso, str):
                    print(f"|  | Custodia's whole run ÷ plaso: {run_row.rate / plaso.rate:.2f} x | | | | | | | | |")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other work on this shared machine slows every row)")


if __name__ == "__main__":
    main()
