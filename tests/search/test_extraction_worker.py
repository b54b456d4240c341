"""Extraction in real Celery workers over a real Redis: a worker killed with SIGKILL mid-run has its task
redelivered to the next worker, which finishes the run without duplicating a trace."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from evidence.models import Evidence
from evidence.services.intake import evidence_import
from search.models import ExtractionRun, RunState, Trace
from search.tasks import run_extraction
from tests.servers import ServerUnavailable, redis_server
from tests.test_worker import celery_worker, wait_for

pytestmark = pytest.mark.slow


def ext4_image(folder, *, files: int) -> str:
    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 is not installed (apt: e2fsprogs)")
    tree = folder / "tree"
    for number in range(files):
        subfolder = tree / f"d{number % 40:02d}"
        subfolder.mkdir(parents=True, exist_ok=True)
        (subfolder / f"file{number:05d}.txt").write_text(f"document {number}\n" * (1 + number % 50))
    image = folder / "disk.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), "64M"], check=True)
    return str(image)


@pytest.fixture
def redis_url():
    try:
        with redis_server() as redis:
            yield redis.url
    except ServerUnavailable as exc:
        pytest.skip(str(exc))


def test_killed_worker_is_redelivered_and_leaves_no_duplicates(committing_db, demo, settings, tmp_path, redis_url):
    from custodia.celery import app

    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    image = ext4_image(tmp_path, files=4000)
    evidence = evidence_import(actor=demo.custodian, case=demo.case, paths=[image], label="Workstation disk")
    run = ExtractionRun.objects.create(evidence=evidence, priority=5)
    os.environ["CUSTODIA_TASK_VISIBILITY_SECONDS"] = "3"
    try:
        with celery_worker(redis_url) as first:
            with app.connection_for_write(redis_url) as broker:
                run_extraction.apply_async(args=[run.pk], connection=broker)
            started = wait_for(lambda: Trace.objects.filter(run_id=run.pk).exists(), timeout=120)
            assert started, "the first worker published nothing"
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        partial = Trace.objects.filter(run_id=run.pk).count()
        assert ExtractionRun.objects.get(pk=run.pk).state == RunState.RUNNING
        time.sleep(4)  # past the visibility timeout: the unacknowledged task is due again
        with celery_worker(redis_url):
            done = wait_for(lambda: ExtractionRun.objects.get(pk=run.pk).state == RunState.DONE, timeout=180)
    finally:
        os.environ.pop("CUSTODIA_TASK_VISIBILITY_SECONDS", None)
    assert done, "the redelivered run did not finish"
    traces = dict(Trace.objects.filter(evidence=evidence).values_list("uid", "parent_uid"))
    assert len(traces) >= partial
    # The redelivered run left a whole tree: every trace's parent is there (nothing lost between the two).
    assert all(parent in traces for parent in traces.values() if parent)
    files = Trace.objects.filter(evidence=evidence, name__startswith="file", name__endswith=".txt").count()
    assert files == 4000
    assert Evidence.objects.get(pk=evidence.pk).state == "extracted"


def test_a_run_started_by_an_investigator_is_done_by_a_real_worker(committing_db, demo, settings, tmp_path):
    """extraction_start enqueues on commit, through the configured broker (the embedded file-system one)."""
    from search.services import extraction_start

    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    image = ext4_image(tmp_path, files=50)
    evidence = evidence_import(actor=demo.custodian, case=demo.case, paths=[image], label="USB stick")
    with celery_worker("filesystem://"):
        run = extraction_start(actor=demo.investigator, evidence=evidence)
        done = wait_for(lambda: ExtractionRun.objects.get(pk=run.pk).state == RunState.DONE, timeout=120)
    assert done, "the worker did not finish the run"
    assert Trace.objects.filter(evidence=evidence, name__startswith="file").count() == 50
