"""Hash sets, timed (issue #20 item 6): importing a 1,000,000-hash set, and what looking up every batch of
traces in it adds to an extraction; on SQLite and on PostgreSQL, side by side in one run.

    .venv/bin/python bench/hashsets.py [--quick | --smoke] [--only sqlite|postgres] [--hashes N] [--repeats R]

Per database (each in its own process, with the test settings, a fresh data folder and database,
``migrate`` and ``seed_demo``):

1. The ext4 image of ``bench/extract.py`` (3,000 files in 64 MiB; ``--smoke`` 300 files in 16 MiB), imported
   and sealed in DEMO-2026-001, and extracted once (not timed) to learn its files' digests.
2. Import, through ``hashsets.services.hashset_import`` (what ``manage.py hashset_import``, the API and the
   page call): N hex SHA-256 a line (default 1,000,000; ``--quick`` 100,000; ``--smoke`` 20,000), random
   from the seed but for half the image's files, which the set holds (a known-good set as NSRL is: many
   of a Windows image's files are in it); then the same number of digests as a legacy NSRL ``NSRLFile.txt``
   (N/2 rows, each a SHA-1 and an MD5). Rate in digests per second.
3. Extraction, ``search.services.extraction_execute`` in this process (one share), R times each (default 3;
   ``--smoke`` 1), alternately without any hash set (the sets are set aside: ``importing``, which no look-up
   reads) and with the N-hash set ready; the median of each, the difference in per cent, and the time spent
   in ``HashSetMarker.mark_batch`` (the look-up and the marks, once per batch of traces) in the runs with it.

Without ``DATABASE_URL`` the PostgreSQL part runs on a throw-away server on loopback (``tests/servers.py``);
with it, on that database (which should be empty). Figures are only comparable within one run: the machine
is shared. Not a timed test: it reports the goals, never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

GOAL_IMPORT_SECONDS = 60.0
GOAL_ADDED_PERCENT = 5.0
SIZES = {
    "default": {"hashes": 1_000_000, "repeats": 3, "image": "quick"},
    "quick": {"hashes": 100_000, "repeats": 3, "image": "smoke"},
    "smoke": {"hashes": 20_000, "repeats": 1, "image": "smoke"},
}
IMAGES = {"smoke": (300, 16), "quick": (3_000, 64)}


def log(message: str) -> None:
    print(f"  [{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def write_sha256_list(*, path: Path, count: int, known: list[str], seed: int) -> None:
    randomiser = random.Random(seed)  # nosec B311  # reproducible test data, not secrets
    with path.open("w") as out:
        out.writelines(f"{digest}\n" for digest in known[:count])
        for _ in range(max(0, count - len(known))):
            out.write(f"{randomiser.getrandbits(256):064x}\n")


def write_nsrl_csv(*, path: Path, digests: int, seed: int) -> None:
    randomiser = random.Random(seed + 1)  # nosec B311  # reproducible test data, not secrets
    with path.open("w") as out:
        out.write('"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"\r\n')
        for number in range(digests // 2):
            sha1, md5 = f"{randomiser.getrandbits(160):040X}", f"{randomiser.getrandbits(128):032X}"
            out.write(f'"{sha1}","{md5}","00000000","file{number}.dll",{number},1234,"WIN",""\r\n')


def run_database(*, hashes: int, repeats: int, image_size: str, seed: int) -> dict:
    import logging

    workdir = Path(tempfile.mkdtemp(prefix="custodia-bench-hashsets-"))
    logging.disable(logging.WARNING)
    os.environ["DJANGO_SETTINGS_MODULE"] = "custodia.settings.test"
    os.environ["CUSTODIA_DATA_DIR"] = str(workdir / "data")
    os.environ.setdefault("DEMO_PASSWORD", "bench-password-" + os.urandom(6).hex())
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        with open(os.devnull, "w") as sink:
            call_command("seed_demo", stdout=sink)
        return measure(workdir=workdir, hashes=hashes, repeats=repeats, image_size=image_size, seed=seed) | {
            "vendor": connection.vendor
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def measure(*, workdir: Path, hashes: int, repeats: int, image_size: str, seed: int) -> dict:
    from bench.extract import CorpusParameters, cached_images
    from bench.extract_pipeline import import_image
    from cases.models import Case
    from hashsets.models import HashSet, HashSetState
    from hashsets.services import hashset_import
    from search import hashset_marks
    from search.models import ExtractionRun, Trace, TraceHashMatch
    from search.services import extraction_execute

    files, size_mib = IMAGES[image_size]
    image = next(
        image
        for image in cached_images(parameters=CorpusParameters(file_count=files, image_size_mib=size_mib, seed=4))
        if image.name == "ext4"
    )
    evidence = import_image(image_path=image.path)
    case = Case.objects.get(reference="DEMO-2026-001")

    def extract() -> tuple[float, int]:
        run = ExtractionRun.objects.create(evidence=evidence, shards=1)
        started = time.perf_counter()
        extraction_execute(run_id=run.pk, shard=0)
        seconds = time.perf_counter() - started
        run.refresh_from_db()
        if run.state != "done":
            raise SystemExit(f"the extraction run ended {run.state}: {run.failure}")
        return seconds, run.traces

    log("a first extraction, to learn the image's digests")
    _, traces = extract()
    file_digests = sorted(set(Trace.objects.filter(case=case).exclude(sha256="").values_list("sha256", flat=True)))
    known = file_digests[::2]

    result: dict = {"traces": traces, "files": len(file_digests), "hashes": hashes}
    list_path, csv_path = workdir / "sha256.txt", workdir / "NSRLFile.txt"
    write_sha256_list(path=list_path, count=hashes, known=known, seed=seed)
    write_nsrl_csv(path=csv_path, digests=hashes, seed=seed)
    for key, path, name in (("import_list", list_path, "bench-list"), ("import_nsrl", csv_path, "bench-nsrl")):
        log(f"importing {path.name} ({path.stat().st_size / 1e6:.0f} MB)")
        started = time.perf_counter()
        with path.open("rb") as stream:
            imported = hashset_import(
                actor=None, organization=case.organization, name=name, kind="known-good", stream=stream, path=str(path)
            )
        result[key] = {"seconds": time.perf_counter() - started, "entries": imported.entries}
    # The extraction compares the plain list's set alone with none: the NSRL one is set aside throughout.
    HashSet.objects.filter(name="bench-nsrl").update(state=HashSetState.IMPORTING)

    spent = [0.0]
    original = hashset_marks.HashSetMarker.mark_batch

    def timed_mark_batch(self, **kwargs):
        started = time.perf_counter()
        try:
            return original(self, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    hashset_marks.HashSetMarker.mark_batch = timed_mark_batch  # type: ignore[method-assign]
    without, with_set, in_marks = [], [], []
    for repeat in range(repeats):
        for ready in (False, True) if repeat % 2 == 0 else (True, False):
            state = HashSetState.READY if ready else HashSetState.IMPORTING
            HashSet.objects.filter(name="bench-list").update(state=state)
            spent[0] = 0.0
            log(f"extraction {'with' if ready else 'without'} the {hashes:,}-hash set ({repeat + 1}/{repeats})")
            seconds, _ = extract()
            (with_set if ready else without).append(seconds)
            if ready:
                in_marks.append(spent[0])
    result["extract_without"] = statistics.median(without)
    result["extract_with"] = statistics.median(with_set)
    result["mark_batch"] = statistics.median(in_marks)
    result["marked"] = TraceHashMatch.objects.count()
    return result


def print_report(results: dict[str, dict], *, hashes: int, repeats: int) -> None:
    columns = [name for name in ("sqlite", "postgres") if name in results]
    titles = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    first = next(iter(results.values()))
    print(
        f"image: ext4 of bench/extract.py, {first['files']:,} distinct file digests, {first['traces']:,} traces; "
        f"extraction: one share in one process, median of {repeats}"
    )
    print()
    print(f"| measure | {' | '.join(titles[name] for name in columns)} | goal |")
    print(f"|---|{'---:|' * len(columns)}---|")

    def row(label: str, goal: str, render) -> None:
        print(f"| {label} | {' | '.join(render(results[name]) for name in columns)} | {goal} |")

    def imported(key: str):
        return lambda r: f"{r[key]['seconds']:.1f} s ({r[key]['entries'] / r[key]['seconds']:,.0f} digests/s)"

    row(f"import of {hashes:,} SHA-256 (plain list)", f"< {GOAL_IMPORT_SECONDS:.0f} s", imported("import_list"))
    row(
        f"import of {hashes:,} digests as NSRLFile.txt ({hashes // 2:,} rows, SHA-1 + MD5)",
        f"< {GOAL_IMPORT_SECONDS:.0f} s",
        imported("import_nsrl"),
    )
    row("extraction, no hash set", "", lambda r: f"{r['extract_without']:.2f} s")
    row(f"extraction, with the {hashes:,}-hash set", "", lambda r: f"{r['extract_with']:.2f} s")
    row(
        "added by the look-up",
        f"< {GOAL_ADDED_PERCENT:.0f} %",
        lambda r: f"{100 * (r['extract_with'] - r['extract_without']) / r['extract_without']:+.1f} %",
    )
    row(
        "… time in `HashSetMarker.mark_batch` (look-up + marks, per batch)",
        "",
        lambda r: f"{r['mark_batch']:.3f} s ({100 * r['mark_batch'] / r['extract_with']:.1f} %)",
    )
    row("traces marked", "", lambda r: f"{r['marked']:,}")


def run_worker(*, database: str, arguments, env: dict) -> dict:
    output = Path(tempfile.mkstemp(prefix=f"custodia-bench-hashsets-{database}-", suffix=".json")[1])
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        *("--worker", database, "--output", str(output)),
        *("--hashes", str(arguments.hashes), "--repeats", str(arguments.repeats)),
        *("--image", arguments.image, "--seed", str(arguments.seed)),
    ]
    env = {key: value for key, value in env.items() if key != "CUSTODIA_DATA_DIR"}
    try:
        subprocess.run(command, env=env, check=True, cwd=PROJECT_ROOT)  # nosec B603  # our own script
        return json.loads(output.read_text())
    finally:
        output.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="100,000 hashes, the 300-file image")
    size.add_argument("--smoke", action="store_true", help="tiny (seconds): 20,000 hashes; for the test")
    parser.add_argument("--hashes", type=int, default=None, help="digests in each set (default 1,000,000)")
    parser.add_argument("--repeats", type=int, default=None, help="extractions timed with and without the set")
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--image", choices=sorted(IMAGES), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    mode = SIZES["smoke" if arguments.smoke else "quick" if arguments.quick else "default"]
    for name in ("hashes", "repeats", "image"):
        if getattr(arguments, name) is None:
            setattr(arguments, name, mode[name])

    if arguments.worker:
        result = run_database(
            hashes=arguments.hashes, repeats=arguments.repeats, image_size=arguments.image, seed=arguments.seed
        )
        Path(arguments.output).write_text(json.dumps(result))
        return

    from bench.machine import machine_description

    print(f"machine: {machine_description()}")
    print(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; command: .venv/bin/python bench/{Path(__file__).name} "
        + " ".join(sys.argv[1:])
    )
    results: dict[str, dict] = {}
    if arguments.only in (None, "sqlite"):
        env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
        results["sqlite"] = run_worker(database="sqlite", arguments=arguments, env=env)
    if arguments.only in (None, "postgres"):
        if os.environ.get("DATABASE_URL"):
            results["postgres"] = run_worker(database="postgres", arguments=arguments, env=dict(os.environ))
        else:
            from tests.servers import postgres_server

            with postgres_server() as server:
                env = {**os.environ, "DATABASE_URL": server.url}
                results["postgres"] = run_worker(database="postgres", arguments=arguments, env=env)
    print()
    print_report(results, hashes=arguments.hashes, repeats=arguments.repeats)


if __name__ == "__main__":
    main()
