"""The events timeline at scale, timed (issue #20 item 5): index N synthetic traces in one case through the
extraction publisher, fill the events index, then time event searches next to trace searches of the same
queries in the same run, on SQLite and on PostgreSQL.

    .venv/bin/python bench/events.py [--traces N | --smoke] [--events-fill bulk|triggers] [--only sqlite|postgres]
                                     [--seed S] [--repeats R] [--keep-db DIR]

``--keep-db DIR`` indexes into DIR (``DIR/sqlite``, ``DIR/postgres``: a PostgreSQL data folder this script
starts and stops) and keeps it; a later run with the same DIR, ``--traces`` and ``--seed`` skips the indexing,
applies any new migration, and times the queries again (a million traces index once, are timed many times).

How the events index is filled (``--events-fill``): ``bulk`` (the default) drops the events triggers while
the publisher writes the traces (batches of 2,000 in one transaction each: ``executemany`` on SQLite,
``COPY`` into a staging table on PostgreSQL, as bench/search.py), then reinstalls them with the statements
of the migration, whose last one fills ``search_trace_event`` from every trace in one ``INSERT … SELECT``.
``triggers`` keeps the triggers on, as an extraction in production does: each trace's events are written
by the trigger in the transaction that writes the trace (at 1,000,000 traces this took over an hour).
Both give the same rows in the same table with the same index, which is what the queries read; only the
indexing time differs, and it is reported for each.

``--smoke`` (2,000 traces, one timed run of each query) takes seconds a database: it shows the benchmark still
runs end to end (tests/test_bench_events.py); its figures mean nothing. The default is 1,000,000 traces.

The traces are bench/search.py's (TraceGenerator: a Windows tree, e-mails, pictures, documents with the
walker's four file times, ``email.sentOn``, ``picture.takenOn`` …). Each query is run through
``search.events.events_search`` (a first page of 100 events, and a page deep in the timeline by its keyset
cursor) and through ``search.selectors.traces_search`` (a first page of 50 traces with the default facets,
as the search page asks): warmed up once, then timed ``--repeats`` times; p50 and p95 per query. Figures are
only comparable within one run: the machine is shared. Not a timed test: it reports, never asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import subprocess  # nosec B404  # runs this script itself as a worker, with fixed arguments
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from bench.search import (  # noqa: E402  (after the path is set)
    BATCH,
    DEMO_CASE,
    SMOKE_TRACES,
    TraceGenerator,
    code_version,
    log,
    measure,
    percentile,
)

# (label, query, events filter): the events search and the trace search of the same query.
QUERIES = [
    ("every trace", "", {}),
    ("e-mail", "type:email", {}),
    ("a word", "invoice", {}),
    ("a year", "", {"start": "2019-01-01", "end": "2019-12-31"}),
    ("sent e-mail in a year", "type:email", {"start": "2019-01-01", "end": "2019-12-31", "kinds": ["sent"]}),
    ("pictures taken", "type:picture", {"kinds": ["taken"]}),
    ("a rare word", "ransomware", {}),
    ("an uncommon word", "bitcoin", {}),
    ("deleted", "deleted:true", {}),
    ("a word in e-mails, not deleted", "invoice AND type:email -deleted:true", {}),
    # Words in a quarter and in three fifths of the traces: common, but none among the first 14,000 events.
    ("a common word", "the", {}),
    ("a word of the user folders", "users", {}),
    # In a third of the traces, the system files that come first in time among them.
    ("a word of the system files", "windows", {}),
]

# The default plan first (the table's), then the designs it was chosen among (docs/benchmarks.md).
DEFAULT_PLANS = ["auto", "drive-or-windows", "drive-or-materialise", "drive-or-index-semi-join"]


def run_database(
    *,
    database: str,
    traces: int,
    seed: int,
    repeats: int,
    events_fill: str,
    plans: list[str],
    keep_db: Path | None = None,
) -> dict:
    """The whole measurement on the database Django is configured for (one process per database)."""
    from bench.extract_pipeline import setup_django

    if keep_db is not None:
        workdir = keep_db / database
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix=f"custodia-bench-events-{database}-"))
    code = code_version()
    setup_django(workdir / "data")
    from django.db import connection

    from cases.models import Case, User
    from search.backends.sql.events import PLANS

    if unknown := set(plans) - set(PLANS):
        raise SystemExit(f"--plans: unknown {', '.join(sorted(unknown))}; known: {', '.join(PLANS)}")
    marker = workdir / "indexed.json"
    indexed = json.loads(marker.read_text()) if keep_db is not None and marker.exists() else None
    if indexed is not None and (indexed["traces"], indexed["seed"]) != (traces, seed):
        raise SystemExit(f"{workdir} holds {indexed['traces']:,} traces of seed {indexed['seed']}: another --keep-db")
    if indexed is None:
        indexed = index_traces(database=database, traces=traces, seed=seed, events_fill=events_fill)
        if keep_db is not None:
            marker.write_text(json.dumps(indexed))
    else:
        log(f"{database}: reusing the {traces:,} traces indexed in {workdir}")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    case = Case.objects.get(reference=DEMO_CASE)
    detective = User.objects.get(username="detective")
    summary = {**indexed, "database": database, "code": code, "repeats": repeats}
    summary["queries"] = time_queries(
        database=database, case_id=case.pk, detective=detective, repeats=repeats, plans=plans
    )
    summary["plans"] = plans
    connection.close()
    if keep_db is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return summary


def index_traces(*, database: str, traces: int, seed: int, events_fill: str) -> dict:
    """Index ``traces`` synthetic traces into the demo case; what it took."""
    from django.db import connection, transaction

    from cases.models import Case, User
    from evidence.services.registration import evidence_register
    from search.models import ExtractionRun, Trace
    from search.publisher import Publisher
    from search.services import trace_statistics_refresh

    case = Case.objects.get(reference=DEMO_CASE)
    custodian = User.objects.get(username="custodian")
    evidence = evidence_register(
        actor=custodian, case=case, label="Laptop (synthetic, bench)", kind="disk_image", original_name="laptop.E01"
    )
    run = ExtractionRun.objects.create(evidence=evidence, state="running", started_at=datetime.now(UTC))
    run = ExtractionRun.objects.select_related("evidence").get(pk=run.pk)
    from search.backends.sql import events as event_index

    install, uninstall = {
        "sqlite": (event_index.SQLITE_EVENTS_INSTALL, event_index.SQLITE_EVENTS_UNINSTALL),
        "postgresql": (event_index.POSTGRES_EVENTS_INSTALL, event_index.POSTGRES_EVENTS_UNINSTALL),
    }[connection.vendor]
    if events_fill == "bulk":
        # Set aside while the traces are written; reinstalled (and filled in one statement) after.
        with connection.cursor() as cursor:
            for statement in uninstall:
                cursor.execute(statement)
    log(f"{database}: indexing {traces:,} traces (events index: {events_fill})")
    publisher = Publisher(run, shard=0)
    rows_iterator = TraceGenerator(seed=seed, evidence_id=str(evidence.pk)).traces(traces)
    indexing_seconds = 0.0
    done = 0
    while rows := list(itertools.islice(rows_iterator, BATCH)):
        started = time.perf_counter()
        for row in rows:
            publisher.add(row)
        indexing_seconds += time.perf_counter() - started
        done += len(rows)
        if done % (BATCH * 50) == 0:
            log(f"{database}: {done:,} traces, {done / indexing_seconds:,.0f}/s")
    started = time.perf_counter()
    publisher.flush()
    indexing_seconds += time.perf_counter() - started
    events_fill_seconds = 0.0
    if events_fill == "bulk":
        log(f"{database}: traces written in {indexing_seconds:.0f} s; filling the events index")
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            for statement in install:
                cursor.execute(statement)
        events_fill_seconds = time.perf_counter() - started
    ExtractionRun.objects.filter(pk=run.pk).update(state="done", finished_at=datetime.now(UTC))
    trace_statistics_refresh()
    from search.services import property_names_rebuild

    property_names_rebuild(case_id=case.pk)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM search_trace_event WHERE case_id = %s", [case.pk])
        event_count = cursor.fetchone()[0]
    stored = Trace.objects.filter(run=run).count()
    log(f"{database}: {stored:,} traces, {event_count:,} events; timing queries")
    return {
        "traces": stored,
        "seed": seed,
        "events": event_count,
        "indexing_seconds": indexing_seconds,
        "events_fill": events_fill,
        "events_fill_seconds": events_fill_seconds,
    }


def time_queries(*, database: str, case_id: int, detective, repeats: int, plans: list[str]) -> list[dict]:
    """Each query of ``QUERIES`` through the events search (by each of ``plans``, the first the default) and
    through the trace search, in this run."""
    from search.events import events_search
    from search.selectors import traces_search

    results = []
    for label, query, event_filter in QUERIES:
        entry: dict = {"label": label, "query": query, "filter": event_filter, "error": None, "plans": {}}
        try:
            for plan in plans:
                entry["plans"][plan] = time_events_or_error(
                    search=lambda plan=plan, query=query, event_filter=event_filter, **more: events_search(
                        user=detective, case_id=case_id, query=query, limit=100, plan=plan, **event_filter, **more
                    ),
                    repeats=repeats,
                )
            found: dict = {}
            entry["traces"] = measure(
                lambda q=query, out=found: out.update(
                    page=traces_search(user=detective, case_id=case_id, query=q, facets=None, limit=50)
                ),
                repeats=repeats,
            )
            entry["traces_total"] = found["page"]["total"]
            entry["word_index_ms"] = word_index_floor(case_id=case_id, query=query, repeats=repeats)
            shown = {plan: timing["shown"] for plan, timing in entry["plans"].items() if not timing.get("error")}
            if len(set(shown.values())) > 1:
                raise AssertionError(f"the plans found different events: {shown}")  # never expected: said loudly
        except Exception as exc:  # reported in the table, never hidden
            entry["error"] = f"{exc.__class__.__name__}: {exc}"[:300]
        results.append(entry)
        log(f"{database}: {label}: done" + (f"; {entry['error']}" if entry["error"] else ""))
    return results


def word_index_floor(*, case_id: int, query: str, repeats: int) -> float | None:
    """The floor of any plan that needs a word's hits by its word index (p50 ms): PostgreSQL's bitmap index scan
    of the word alone (from EXPLAIN ANALYZE), SQLite's read of the word's rowids from FTS5; None without words."""
    from django.db import connection, transaction

    from search.events import events_filter

    where = events_filter(case_id=case_id, query=query, start=None, end=None, kinds=None)
    if not where.has_words or where.traces_sql is None:
        return None
    samples = []
    for _ in range(repeats + 1):
        if connection.vendor == "postgresql":
            sql, params = where.traces_sql
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL work_mem = '64MB'")
                cursor.execute("SET LOCAL enable_indexscan = off")
                cursor.execute("SET LOCAL enable_seqscan = off")  # a word in most traces: still its bitmap
                cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
                plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            samples.append(sum(_word_index_scans(plan[0]["Plan"])))
        elif where.hits_superset_sql is not None:
            sql, params = where.hits_superset_sql
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT count(*) FROM ({sql})", params)  # noqa: S608 (the app's SQL)
            samples.append((time.perf_counter() - started) * 1000)
        else:
            return None
    return percentile(samples[1:], 0.5)


def _word_index_scans(node: dict) -> Iterator[float]:
    if node.get("Node Type") == "Bitmap Index Scan" and "search_vector" in node.get("Index Name", ""):
        yield node["Actual Total Time"]
    for child in node.get("Plans", []):
        yield from _word_index_scans(child)


def time_events_or_error(*, search, repeats: int) -> dict:
    """time_events, or the error that stopped the plan (a plan past the search time budget, as a user would see)."""
    from search.backends.budget import SearchTimeBudgetExceeded

    try:
        return time_events(search=search, repeats=repeats)
    except SearchTimeBudgetExceeded:
        return {"first": [], "deep": [], "shown": None, "count": 0, "error": "over the time budget"}


def time_events(*, search, repeats: int) -> dict:
    """The first page of events and the page five pages on (by its keyset cursor), timed; and what they showed."""
    first: dict = {}
    samples = measure(lambda: first.update(page=search()), repeats=repeats)
    shown = [(event["time"], event["trace"]["uid"], event["property"]) for event in first["page"]["events"]]
    cursor = first["page"]["cursor"]
    for _ in range(4):
        if not cursor:
            break
        cursor = search(cursor=cursor)["cursor"]
    deep: dict = {}
    deep_samples = measure(lambda: deep.update(page=search(cursor=cursor)), repeats=repeats) if cursor else []
    if deep:
        shown += [(event["time"], event["trace"]["uid"], event["property"]) for event in deep["page"]["events"]]
    return {"first": samples, "deep": deep_samples, "shown": hash(tuple(shown)), "count": len(shown)}


def _p(samples: list[float]) -> str:
    if not samples:
        return "-"
    return f"{percentile(samples, 0.5) * 1000:.0f} / {percentile(samples, 0.95) * 1000:.0f}"


def print_report(results: dict[str, dict]) -> None:
    for database, summary in results.items():
        name = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[database]
        rate = summary["traces"] / max(summary["indexing_seconds"], 1e-9)
        if summary["events_fill"] == "bulk":
            how = f"events index filled after, in one INSERT … SELECT: {summary['events_fill_seconds']:.1f} s"
        else:
            how = "events index included, by trigger"
        print(
            f"{name}: {summary['traces']:,} traces, {summary['events']:,} events; traces indexed in "
            f"{summary['indexing_seconds']:.1f} s ({rate:,.0f} traces/s; {how}); code {summary['code']}"
        )
        print()
        plans = summary["plans"]
        print(
            f"| query ({name}) | events filter | events p50 / p95 ms | events, 5th page p50 / p95 ms "
            f"| trace search p50 / p95 ms | events / trace search (p50) | trace hits | word index alone, ms |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for entry in summary["queries"]:
            label = f"`{entry['query'] or '(empty)'}` ({entry['label']})"
            shown_filter = ", ".join(f"{key} {value}" for key, value in entry["filter"].items()) or "-"
            if entry["error"]:
                print(f"| {label} | {shown_filter} | error: {entry['error']} | | | | | |")
                continue
            default = entry["plans"][plans[0]]
            if default.get("error"):
                print(f"| {label} | {shown_filter} | {default['error']} | | {_p(entry['traces'])} | | | |")
                continue
            ratio = percentile(default["first"], 0.5) / max(percentile(entry["traces"], 0.5), 1e-9)
            floor = entry.get("word_index_ms")
            print(
                f"| {label} | {shown_filter} | {_p(default['first'])} | {_p(default['deep'])} "
                f"| {_p(entry['traces'])} | {ratio:.2f} × | {entry['traces_total']:,} "  # noqa: RUF001
                f"| {'-' if floor is None else f'{floor:.0f}'} |"
            )
        print()
        if len(plans) > 1:
            print(f"Plans side by side ({name}; first page / 5th page, p50 ms; the trace search's p50 last):")
            print()
            print(f"| query ({name}) | " + " | ".join(plans) + " | trace search |")
            print("|---|" + "---|" * (len(plans) + 1))
            for entry in summary["queries"]:
                if entry["error"]:
                    continue
                cells = [
                    entry["plans"][plan].get("error")
                    or f"{_p50(entry['plans'][plan]['first'])} / {_p50(entry['plans'][plan]['deep'])}"
                    for plan in plans
                ]
                label = f"`{entry['query'] or '(empty)'}` ({entry['label']})"
                print(f"| {label} | " + " | ".join(cells) + f" | {_p50(entry['traces'])} |")
            print()


def _p50(samples: list[float]) -> str:
    return f"{percentile(samples, 0.5) * 1000:.0f}" if samples else "-"


@contextlib.contextmanager
def kept_postgres_server(folder: Path) -> Iterator[str]:
    """A PostgreSQL server on a data folder kept in ``folder`` (created the first time); its URL."""
    from tests.servers import POSTGRES_BIN_DIRS, free_port

    bindir = POSTGRES_BIN_DIRS[0]
    # initdb refuses to run as root: as root, the server runs as the postgres system user, as in tests/servers.py.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o777)  # noqa: S103  # nosec B103  # a benchmark's throwaway server, run as another user
    datadir = folder / "data"
    if not datadir.exists():
        subprocess.run(  # nosec B603  # PostgreSQL's own tools, fixed arguments
            [*prefix, str(bindir / "initdb"), "-D", str(datadir), "-U", "custodia", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c full_page_writes=off"
    control = [*prefix, str(bindir / "pg_ctl"), "-D", str(datadir)]
    subprocess.run(  # nosec B603  # PostgreSQL's own tools, fixed arguments
        [*control, "-o", options, "-l", str(folder / "log"), "-w", "start"], check=True, capture_output=True
    )
    try:
        yield f"postgres://custodia@127.0.0.1:{port}/postgres"
    finally:
        # A clean stop (a checkpoint), so the next run finds the data as it was left.
        subprocess.run([*control, "-m", "fast", "-w", "stop"], capture_output=True)  # nosec B603  # as above


def run_worker(*, database: str, arguments, env: dict) -> dict:
    output = Path(tempfile.mkstemp(prefix=f"custodia-bench-events-{database}-", suffix=".json")[1])
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", database, "--output", str(output)]
    command += ["--traces", str(arguments.traces), "--seed", str(arguments.seed), "--repeats", str(arguments.repeats)]
    command += ["--events-fill", arguments.events_fill, "--plans", arguments.plans]
    if arguments.keep_db:
        command += ["--keep-db", str(Path(arguments.keep_db).resolve())]
    try:
        subprocess.run(command, env=env, check=True, cwd=PROJECT_ROOT)  # nosec B603  # this script, fixed arguments
        return json.loads(output.read_text())
    finally:
        output.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=None, help="traces to index (default 1,000,000)")
    parser.add_argument("--smoke", action="store_true", help="2,000 traces, one timed run: it still runs (seconds)")
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    parser.add_argument(
        "--events-fill",
        choices=["bulk", "triggers"],
        default="bulk",
        help="bulk: events index filled in one INSERT … SELECT after the traces; triggers: as they are written",
    )
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each query after one warm-up")
    parser.add_argument(
        "--plans",
        default=",".join(DEFAULT_PLANS),
        help="the events plans to time, comma-separated (search.backends.sql.events.PLANS); the first is the table's",
    )
    parser.add_argument(
        "--keep-db",
        metavar="DIR",
        default=None,
        help="index into DIR once and keep it; later runs with the same DIR, --traces and --seed only time queries",
    )
    parser.add_argument("--worker", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.traces = arguments.traces or SMOKE_TRACES
        arguments.repeats = 1
    if arguments.traces is None:
        arguments.traces = 1_000_000
    if arguments.worker:
        result = run_database(
            database=arguments.worker,
            traces=arguments.traces,
            seed=arguments.seed,
            repeats=arguments.repeats,
            events_fill=arguments.events_fill,
            plans=arguments.plans.split(","),
            keep_db=Path(arguments.keep_db) if arguments.keep_db else None,
        )
        Path(arguments.output).write_text(json.dumps(result))
        return

    from bench.machine import machine_description

    print(f"machine: {machine_description()}")
    print(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; command: .venv/bin/python bench/{Path(__file__).name} "
        + " ".join(sys.argv[1:])
    )
    print(
        f"{arguments.traces:,} synthetic traces in one case (seed {arguments.seed}); load average "
        + " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        flush=True,
    )
    results: dict[str, dict] = {}
    if arguments.only in (None, "sqlite"):
        env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
        results["sqlite"] = run_worker(database="sqlite", arguments=arguments, env=env)
    if arguments.only in (None, "postgres"):
        if os.environ.get("DATABASE_URL"):
            results["postgres"] = run_worker(database="postgres", arguments=arguments, env=dict(os.environ))
        elif arguments.keep_db:
            with kept_postgres_server(Path(arguments.keep_db).resolve() / "postgres-server") as url:
                env = {**os.environ, "DATABASE_URL": url}
                results["postgres"] = run_worker(database="postgres", arguments=arguments, env=env)
        else:
            from tests.servers import postgres_server

            with postgres_server() as server:
                env = {**os.environ, "DATABASE_URL": server.url}
                results["postgres"] = run_worker(database="postgres", arguments=arguments, env=env)
    print()
    print_report(results)


if __name__ == "__main__":
    main()
