"""Scale-out, shown: one extraction run over a real Redis, done by one Celery worker process in one share,
then by two worker processes in two shares at once, gives the same traces with the same uids.

The suite's database is the one the workers write: SQLite in the first pass of ``tests/run_all.py``, the real
PostgreSQL it starts in the second. Each worker is its own ``celery worker`` process (as on two machines),
its log kept to show which shares it took."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from evidence.services.intake import evidence_import
from search.models import ExtractionRun, RunState, Trace
from search.tasks import run_extraction
from tests.servers import PROJECT_ROOT, ServerUnavailable, redis_server, stop_process
from tests.test_worker import wait_for, worker_environment

pytestmark = pytest.mark.slow

COMPARED_FIELDS = ("parent_uid", "name", "path", "types", "properties", "streams", "tools", "errors", "deleted", "text")


def disk_image(folder: Path) -> Path:
    """An ext4 image with eight top-level folders (dealt out between shares), text files and an archive
    whose members the content tools turn into traces of their own."""
    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 is not installed (apt: e2fsprogs)")
    tree = folder / "tree"
    for number in range(400):
        subfolder = tree / f"top{number % 8}" / f"sub{number % 5}"
        subfolder.mkdir(parents=True, exist_ok=True)
        (subfolder / f"note{number:04d}.txt").write_text(f"statement {number} of the witness\n" * (1 + number % 30))
    (tree / "top0" / "copy-of-note0000.txt").write_bytes((tree / "top0" / "sub0" / "note0000.txt").read_bytes())
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as members:
        members.writestr("minutes.txt", "the meeting of the ninth\n" * 20)
        members.writestr("ledger.csv", "date,amount\n2026-01-09,1200\n")
    (tree / "top3" / "papers.zip").write_bytes(archive.getvalue())
    image = folder / "disk.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), "32M"], check=True)
    return image


@contextlib.contextmanager
def named_worker(broker_url: str, *, name: str, log: Path) -> Iterator[subprocess.Popen]:
    """A worker process named ``name`` logging at INFO to ``log`` (which tasks it received)."""
    command = [sys.executable, "-m", "celery", "-A", "custodia", "worker", "--pool=solo", "--loglevel=INFO"]
    command += ["-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=worker_environment(broker_url), stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        stop_process(process, timeout=20)


def extract(*, evidence, broker_url: str, shards: int, logs: list[Path]) -> dict[str, dict]:
    """One run of ``shards`` shares, each enqueued on Redis, done by as many workers as ``logs`` names."""
    from custodia.celery import app

    run = ExtractionRun.objects.create(evidence=evidence, shards=shards)
    with contextlib.ExitStack() as workers:
        for index, log in enumerate(logs):
            workers.enter_context(named_worker(broker_url, name=f"worker{index + 1}", log=log))
        # Both listening before the shares go out: with one message prefetched each, each takes one share.
        ready = wait_for(lambda: all(b" ready." in log.read_bytes() for log in logs), timeout=120)
        assert ready, "a worker did not start"
        with app.connection_for_write(broker_url) as broker:
            for shard in range(shards):
                run_extraction.apply_async(args=[run.pk, shard], connection=broker)
        done = wait_for(lambda: ExtractionRun.objects.get(pk=run.pk).state == RunState.DONE, timeout=240)
    run.refresh_from_db()
    assert done, f"the run did not finish: {run.state} {run.failure}"
    assert sorted(run.shards_finished) == list(range(shards))
    return {
        row["uid"]: {name: row[name] for name in COMPARED_FIELDS}
        for row in Trace.objects.filter(evidence=evidence).values("uid", *COMPARED_FIELDS)
    }


def test_two_workers_in_two_shares_give_the_traces_one_worker_gives(committing_db, demo, settings, tmp_path):
    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    evidence = evidence_import(
        actor=demo.custodian, case=demo.case, paths=[str(disk_image(tmp_path))], label="Workstation disk"
    )
    try:
        with redis_server() as redis:
            one = extract(evidence=evidence, broker_url=redis.url, shards=1, logs=[tmp_path / "one.log"])
            two_logs = [tmp_path / "two-a.log", tmp_path / "two-b.log"]
            two = extract(evidence=evidence, broker_url=redis.url, shards=2, logs=two_logs)
    except ServerUnavailable as exc:
        pytest.skip(str(exc))

    assert len(one) > 400 + 2 + 8  # the files, the archive's members, the folders, the layers above
    assert set(two) == set(one)  # the same uids …
    assert two == one  # … and every trace the same, field by field
    assert any("minutes.txt" in trace["path"] for trace in one.values())  # the tools' traces are there too
    # Each of the two workers took one share: the run was really dealt out.
    for log in two_logs:
        assert log.read_text(errors="replace").count("search.tasks.run_extraction") >= 1, log.read_text()[-2000:]
