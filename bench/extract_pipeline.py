"""The whole extraction as a user runs it, timed: import (seal) the benchmark images of ``bench/extract.py``
through the evidence service, then run the extraction service (walk + content tools + traces committed in
batches to the database), next to the Sleuth Kit reference pipeline on the same image in the same run.

    .venv/bin/python bench/extract_pipeline.py [--quick] [--only ext4|ntfs] [--shards N]

It reports files/s and MB/s of the committed run, the ratio to the reference, the time from the run's
start to its first committed (searchable) trace, and the CPU seconds the run used in all its threads (the
reference: its processes' user + system time), which a busy shared machine disturbs less than the clock.
It uses the test settings with a fresh data folder and a fresh SQLite database (``DATABASE_URL`` set: that
PostgreSQL instead). Not a timed test.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))


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


def run_pipeline(*, image_path: Path, shards: int) -> dict:
    from django.conf import settings

    from cases.models import Case, User
    from evidence.services.intake import evidence_import
    from search.models import ExtractionRun, Trace
    from search.services import extraction_execute

    settings.CUSTODIA_IMPORT_ROOTS = [image_path.parent]
    custodian = User.objects.get(username="custodian")
    case = Case.objects.get(reference="DEMO-2026-001")
    started = time.perf_counter()
    evidence = evidence_import(actor=custodian, case=case, paths=[str(image_path)], label=image_path.name)
    sealed_seconds = time.perf_counter() - started
    run = ExtractionRun.objects.create(evidence=evidence, shards=shards)
    started = time.perf_counter()
    cpu_started = time.process_time()
    for shard in range(shards):  # shares one after the other: the work of N tasks, in one process
        run = extraction_execute(run_id=run.pk, shard=shard)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    files = Trace.objects.filter(run=run, types__icontains='"file"').exclude(types__icontains='"folder"').count()
    first_trace = (run.first_trace_at - run.started_at).total_seconds() if run.first_trace_at else None
    return {
        "state": run.state,
        "sealed_seconds": sealed_seconds,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "traces": run.traces,
        "files": files,
        "bytes": run.bytes_processed,
        "first_trace": first_trace,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 files in 64 MiB images")
    parser.add_argument("--only", choices=["ext4", "ntfs"], default=None)
    parser.add_argument("--shards", type=int, default=1)
    arguments = parser.parse_args()
    from bench.extract import CorpusParameters, cached_images, run_sleuthkit_reference
    from bench.machine import machine_description

    files, size = (3_000, 64) if arguments.quick else (30_000, 500)
    images = cached_images(parameters=CorpusParameters(file_count=files, image_size_mib=size, seed=4))
    if arguments.only:
        images = [image for image in images if image.name == arguments.only]
    workdir = Path(tempfile.mkdtemp(prefix="custodia-bench-pipeline-"))
    setup_django(workdir / "data")
    print(f"machine: {machine_description()}")
    print(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; command: .venv/bin/python bench/{Path(__file__).name} "
        + " ".join(sys.argv[1:])
    )
    print()
    print(
        "| image | pipeline | files | MB | seconds | CPU seconds | files/s | MB/s | files/s ÷ reference "
        "| first committed trace |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for image in images:
        children_before = os.times()
        reference, _libmagic_alone = run_sleuthkit_reference(image=image, workdir=workdir)
        children_after = os.times()
        reference_cpu = (children_after.children_user - children_before.children_user) + (
            children_after.children_system - children_before.children_system
        )
        result = run_pipeline(image_path=image.path, shards=arguments.shards)
        ref_rate = reference.file_count / reference.seconds
        rate = result["files"] / result["seconds"]
        print(
            f"| {image.name} | Sleuth Kit: fls + tsk_recover + sha256sum | {reference.file_count:,} | "
            f"{reference.file_bytes / 1e6:,.0f} | {reference.seconds:.2f} | {reference_cpu:.2f} | {ref_rate:,.0f} | "
            f"{reference.file_bytes / 1e6 / reference.seconds:,.0f} | 1.00 | - |"
        )
        first = f"{result['first_trace']:.2f} s" if result["first_trace"] is not None else "-"
        print(
            f"| {image.name} | Custodia: extraction run, walk + tools + commit ({arguments.shards} share"
            f"{'s' if arguments.shards > 1 else ''}; {result['traces']:,} traces) | {result['files']:,} | "
            f"{result['bytes'] / 1e6:,.0f} | {result['seconds']:.2f} | {result['cpu_seconds']:.2f} | {rate:,.0f} | "
            f"{result['bytes'] / 1e6 / result['seconds']:,.0f} | {rate / ref_rate:.2f} | {first} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
