"""Server-side import: confined to the import roots, one read, the corpus's own hashes, random access."""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path

import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from evidence.container.reader import open_container
from evidence.models import Evidence
from evidence.services.registration import data_key_for
from evidence.storage.base import get_store
from tests.corpus import manifest, require_corpus, testdata_dir

CORPUS_IMAGES = [
    (["files/dfvfs/ext2.E01"], "ewf"),
    (["files/dfvfs/ext2.split.E01", "files/dfvfs/ext2.split.E02"], "ewf"),
    (["files/dfvfs/ext2.vhd"], "vhd"),
    (["files/dfvfs/ext2.vmdk"], "vmdk"),
    (["files/dfvfs/ext2.qcow2"], "qcow2"),
    (["files/pytsk/tsk_volume_system.raw"], "raw"),
    (["files/velociraptor/test.vhdx.zip"], "archive"),
]


@pytest.fixture
def import_root(tmp_path, settings) -> Path:
    root = tmp_path / "share"
    root.mkdir()
    settings.CUSTODIA_IMPORT_ROOTS = [root]
    return root


def import_body(demo, paths, **extra):
    return {"case": demo.case.pk, "paths": [str(p) for p in paths], **extra}


def test_import_of_a_file_below_the_root(demo, api, import_root):
    content = os.urandom(3 * (1 << 20) + 5)
    (import_root / "memory.raw").write_bytes(content)
    api.as_user(demo.custodian)
    response = api.post("/api/evidence/import", import_body(demo, [import_root / "memory.raw"]), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "sealed" and body["source"] == "server_import"
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["md5"] == hashlib.md5(content).hexdigest()  # noqa: S324 - forensic hash, not security
    start = AuditEvent.objects.get(action="evidence.import.start", target_id=body["id"])
    assert start.details == {"format": "raw", "segments": [len(content)]}


@pytest.mark.parametrize("escape", ["../outside.raw", "sub/../../outside.raw", "/etc/passwd"])
def test_paths_leaving_the_roots_are_refused_and_audited(demo, api, import_root, escape):
    (import_root.parent / "outside.raw").write_bytes(b"secret")
    (import_root / "sub").mkdir()
    target = escape if escape.startswith("/") else str(import_root / escape)
    api.as_user(demo.custodian)
    response = api.post("/api/evidence/import", import_body(demo, [target]), format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "import_refused"
    assert not Evidence.objects.exists()
    assert AuditEvent.objects.filter(action="evidence.import", outcome="denied", case_id=demo.case.pk).exists()


def test_a_symlink_leading_out_is_refused(demo, api, import_root):
    (import_root.parent / "outside.raw").write_bytes(b"secret")
    (import_root / "link.raw").symlink_to(import_root.parent / "outside.raw")
    api.as_user(demo.custodian)
    response = api.post("/api/evidence/import", import_body(demo, [import_root / "link.raw"]), format="json")
    assert response.status_code == 400
    assert "refused" in response.json()["detail"]


def test_declared_hash_mismatch_on_import_is_refused_and_audited(demo, api, import_root):
    (import_root / "a.raw").write_bytes(b"abc" * 1000)
    api.as_user(demo.custodian)
    response = api.post(
        "/api/evidence/import", import_body(demo, [import_root / "a.raw"], declared_md5="0" * 32), format="json"
    )
    assert response.status_code == 409
    event = AuditEvent.objects.get(action="evidence.import", outcome="failed")
    assert event.details["declared"]["md5"] == "0" * 32
    assert event.details["computed"]["md5"] == hashlib.md5(b"abc" * 1000).hexdigest()  # noqa: S324


def test_only_custodians_import(demo, api, import_root):
    (import_root / "a.raw").write_bytes(b"abc")
    api.as_user(demo.investigator)
    response = api.post("/api/evidence/import", import_body(demo, [import_root / "a.raw"]), format="json")
    assert response.status_code == 403
    api.as_user(demo.outsider)
    assert (
        api.post("/api/evidence/import", import_body(demo, [import_root / "a.raw"]), format="json").status_code == 404
    )


@pytest.mark.corpus
@pytest.mark.parametrize(("files", "expected_format"), CORPUS_IMAGES, ids=lambda v: v[0] if isinstance(v, list) else v)
def test_corpus_images_import_with_their_manifest_hashes(demo, api, settings, files, expected_format):
    paths = [require_corpus(name) for name in files]
    settings.CUSTODIA_IMPORT_ROOTS = [testdata_dir() / "files"]
    api.as_user(demo.custodian)
    response = api.post("/api/evidence/import", import_body(demo, paths), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["format"] == expected_format
    whole = b"".join(path.read_bytes() for path in paths)
    for name, path in zip(files, paths, strict=True):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest()[name]["sha256"]
    if len(files) == 1:
        assert body["sha256"] == manifest()[files[0]]["sha256"]
    else:  # a split image is one evidence item: the concatenation of its segments, in order
        assert body["sha256"] == hashlib.sha256(whole).hexdigest()
    evidence = Evidence.objects.get(pk=body["id"])
    with open_container(evidence_id=evidence.pk, data_key=data_key_for(evidence), store=get_store()) as reader:
        assert hashlib.sha256(reader.read()).hexdigest() == body["sha256"]
        rng = random.Random(20261123)
        for _ in range(1000):
            offset = rng.randrange(0, len(whole))
            length = rng.randrange(1, 4097)
            reader.seek(offset)
            assert reader.read(length) == whole[offset : offset + length]


@pytest.mark.corpus
def test_import_command_seals_a_split_e01(demo, settings):
    paths = [require_corpus("files/dfvfs/ext2.split.E01"), require_corpus("files/dfvfs/ext2.split.E02")]
    settings.CUSTODIA_IMPORT_ROOTS = [testdata_dir() / "files"]
    out = io.StringIO()
    call_command("import_evidence", *map(str, paths), case="DEMO-2026-001", username="custodian", stdout=out)
    assert "sealed" in out.getvalue()
    evidence = Evidence.objects.get()
    assert evidence.original_name == "ext2.split.E01, ext2.split.E02"
    assert evidence.format == "ewf"


@pytest.mark.corpus
def test_e01_stored_md5_is_checked_against_its_media(demo, api, settings):
    path = require_corpus("files/dfvfs/ext2.E01")
    settings.CUSTODIA_IMPORT_ROOTS = [testdata_dir() / "files"]
    api.as_user(demo.custodian)
    body = api.post("/api/evidence/import", import_body(demo, [path]), format="json").json()
    check = body["format_details"]["ewf_check"]
    assert check["checked"] is True and check["matches"] is True
    assert check["stored_md5"] == check["media_md5"]


@pytest.mark.corpus
def test_demo_evidence_is_seeded_once(demo):
    require_corpus("files/dfvfs/ext2.E01")
    out = io.StringIO()
    call_command("seed_demo_evidence", stdout=out)
    call_command("seed_demo_evidence", stdout=out)
    # #20: the generated demo disk is sealed beside the corpus image, each once.
    assert Evidence.objects.filter(case=demo.case, state="sealed").count() == 2
    assert "already has 'Laptop 1, internal disk (E01)'" in out.getvalue()


def test_a_corrupt_image_is_refused_with_its_format_named(demo, api, import_root):
    (import_root / "laptop.E01").write_bytes(b"this is not an EWF file" * 100)
    api.as_user(demo.custodian)
    response = api.post("/api/evidence/import", import_body(demo, [import_root / "laptop.E01"]), format="json")
    assert response.status_code == 400
    assert "E01" in response.json()["detail"] or "EWF" in response.json()["detail"]
    assert not Evidence.objects.exists()


def test_a_split_image_with_a_missing_segment_is_refused(demo, api, import_root):
    for name in ("disk.001", "disk.003"):
        (import_root / name).write_bytes(os.urandom(1000))
    api.as_user(demo.custodian)
    body = import_body(demo, [import_root / "disk.001", import_root / "disk.003"])
    response = api.post("/api/evidence/import", body, format="json")
    assert response.status_code == 400
    assert "disk.002" in response.json()["detail"]


# --- the import in a worker (#16 item 6) ------------------------------------------------------------


@pytest.fixture
def queued_imports(settings, monkeypatch, import_root):
    """Every import queued (the production default); the task's delay recorded, not sent."""
    from evidence import tasks

    settings.CUSTODIA_IMPORT_INLINE_BYTES = 0
    settings.CUSTODIA_INTAKE_PROGRESS_SECONDS = 0
    queued: list[str] = []
    monkeypatch.setattr(tasks.seal_evidence, "delay", lambda evidence_id: queued.append(evidence_id))
    return queued


def test_import_is_queued_and_a_worker_seals_it(
    demo, api, import_root, queued_imports, django_capture_on_commit_callbacks
):
    from evidence import tasks

    content = os.urandom(3 * (1 << 20) + 5)
    (import_root / "memory.raw").write_bytes(content)
    api.as_user(demo.custodian)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/evidence/import", import_body(demo, [import_root / "memory.raw"]), format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == "receiving" and body["received_bytes"] == 0 and body["size"] == len(content)
    assert response["Location"].endswith(f"/api/evidence/{body['id']}/")
    assert queued_imports == [body["id"]]
    assert tasks.seal_evidence(body["id"]) == {"evidence": body["id"], "state": "sealed"}
    sealed = api.get(f"/api/evidence/{body['id']}/").json()
    assert sealed["state"] == "sealed" and sealed["received_bytes"] == len(content) and sealed["progress"] == 1.0
    assert sealed["sha256"] == hashlib.sha256(content).hexdigest()
    # A redelivered task finds it sealed and does nothing.
    assert tasks.seal_evidence(body["id"])["state"] == "sealed"
    assert AuditEvent.objects.filter(action="evidence.seal", target_id=body["id"]).count() == 1


def test_a_declared_mismatch_found_by_the_worker_fails_the_evidence(demo, api, import_root, queued_imports):
    from evidence import tasks

    (import_root / "a.raw").write_bytes(b"abc" * 1000)
    api.as_user(demo.custodian)
    body = api.post(
        "/api/evidence/import", import_body(demo, [import_root / "a.raw"], declared_md5="0" * 32), format="json"
    ).json()
    assert tasks.seal_evidence(body["id"]) == {"evidence": body["id"], "state": "failed", "error": "hash_mismatch"}
    evidence = Evidence.objects.get(pk=body["id"])
    assert evidence.state == "failed" and "md5" in evidence.failure_reason


class SimulatedKill(BaseException):
    """What a SIGKILL looks like to the code that was running: nothing after it runs (not an Exception)."""


class CountingStore:
    """The real store, counting successful writes per key, optionally 'killed' after some chunk writes."""

    def __init__(self, store, *, kill_after_chunks: int | None = None) -> None:
        import threading

        self.store = store
        self.kill_after_chunks = kill_after_chunks
        self.writes: dict[str, int] = {}
        self.chunk_puts = 0
        self.lock = threading.Lock()  # the sealing pool puts from several threads

    def put(self, key, data, *, length=None):
        with self.lock:
            if "/chunk/" in key:
                self.chunk_puts += 1
                if self.kill_after_chunks is not None and self.chunk_puts > self.kill_after_chunks:
                    raise SimulatedKill()
        self.store.put(key, data, length=length)
        with self.lock:
            self.writes[key] = self.writes.get(key, 0) + 1

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_a_seal_killed_mid_stream_resumes_with_the_same_item_and_hashes_writing_nothing_twice(
    demo, api, import_root, queued_imports, monkeypatch
):
    from evidence.services import intake

    content = os.urandom(9 * (1 << 20) + 123)
    (import_root / "disk.raw").write_bytes(content)
    api.as_user(demo.custodian)
    body = api.post("/api/evidence/import", import_body(demo, [import_root / "disk.raw"]), format="json").json()

    killed = CountingStore(get_store(), kill_after_chunks=4)
    monkeypatch.setattr(intake, "get_store", lambda: killed)
    with pytest.raises(SimulatedKill):
        intake.intake_run(evidence_id=body["id"])
    evidence = Evidence.objects.get(pk=body["id"])
    assert evidence.state == "receiving" and evidence.intake_runs == 1
    first_run = dict(killed.writes)
    assert len(first_run) == 4  # every put after the fourth chunk's was "killed"

    again = CountingStore(get_store())
    monkeypatch.setattr(intake, "get_store", lambda: again)
    evidence = intake.intake_run(evidence_id=body["id"])
    assert evidence.state == "sealed" and Evidence.objects.count() == 1
    assert (evidence.md5, evidence.sha256) == (
        hashlib.md5(content).hexdigest(),  # noqa: S324 - forensic hash
        hashlib.sha256(content).hexdigest(),
    )
    assert not set(first_run) & set(again.writes), "a chunk was written twice"
    assert all(count == 1 for count in again.writes.values())
    assert len(first_run) + sum(1 for key in again.writes if "/chunk/" in key) == 10
    resume = AuditEvent.objects.get(action="evidence.import.resume", target_id=body["id"])
    assert resume.details["run"] == 2
    seal = AuditEvent.objects.get(action="evidence.seal", target_id=body["id"])
    assert seal.details["chunks_reused"] == len(first_run)
    with open_container(evidence_id=evidence.pk, data_key=data_key_for(evidence), store=get_store()) as reader:
        assert hashlib.sha256(reader.read()).hexdigest() == evidence.sha256


def test_import_command_queues_then_runs_now_on_request(demo, import_root, queued_imports):
    (import_root / "one.raw").write_bytes(b"one" * 100)
    out = io.StringIO()
    call_command(
        "import_evidence", str(import_root / "one.raw"), case="DEMO-2026-001", username="custodian", stdout=out
    )
    assert out.getvalue().startswith("queued ")
    (import_root / "two.raw").write_bytes(b"two" * 100)
    out = io.StringIO()
    call_command(
        "import_evidence", str(import_root / "two.raw"), "--now", case="DEMO-2026-001", username="custodian", stdout=out
    )
    assert out.getvalue().startswith("sealed ")
    assert Evidence.objects.get(original_name="two.raw").sha256 == hashlib.sha256(b"two" * 100).hexdigest()


# --- real worker processes ------------------------------------------------------------------------------


def _intake_environment(root: Path) -> dict[str, str]:
    from tests.test_worker import worker_environment

    return {
        **worker_environment("filesystem://"),
        "CUSTODIA_IMPORT_ROOTS": str(root),
        "CUSTODIA_INTAKE_PROGRESS_SECONDS": "0",
    }


@pytest.mark.slow
def test_a_real_worker_seals_a_queued_import(committing_db, demo, api, import_root, settings):
    import subprocess
    import sys

    from tests.servers import PROJECT_ROOT, stop_process
    from tests.test_worker import wait_for

    settings.CUSTODIA_IMPORT_INLINE_BYTES = 0
    content = os.urandom(5 * (1 << 20) + 1)
    (import_root / "server.raw").write_bytes(content)
    command = [sys.executable, "-m", "celery", "-A", "custodia", "worker", "--pool=solo", "--loglevel=WARNING"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = subprocess.Popen(command, cwd=PROJECT_ROOT, env=_intake_environment(import_root))
    try:
        api.as_user(demo.custodian)
        response = api.post("/api/evidence/import", import_body(demo, [import_root / "server.raw"]), format="json")
        assert response.status_code == 202, response.content
        evidence_id = response.json()["id"]
        assert wait_for(lambda: Evidence.objects.get(pk=evidence_id).state != "receiving", timeout=120)
        assert worker.poll() is None, "the worker died"
    finally:
        stop_process(worker, timeout=20)
    evidence = Evidence.objects.get(pk=evidence_id)
    assert evidence.state == "sealed" and evidence.sha256 == hashlib.sha256(content).hexdigest()


@pytest.mark.slow
def test_a_process_killed_mid_seal_is_resumed_without_writing_a_chunk_twice(committing_db, demo, import_root):
    import signal
    import subprocess
    import sys

    from evidence.container.format import chunk_prefix
    from evidence.services import intake
    from tests.servers import PROJECT_ROOT
    from tests.test_worker import wait_for

    content = os.urandom(192 * (1 << 20) + 7)
    (import_root / "big.raw").write_bytes(content)
    evidence = intake.evidence_import(
        actor=demo.custodian, case=demo.case, paths=[str(import_root / "big.raw")], mode="queue"
    )
    script = (
        "import django; django.setup(); from evidence.services.intake import intake_run; "
        f"intake_run(evidence_id='{evidence.pk}')"
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=_intake_environment(import_root))
    try:
        started = wait_for(
            lambda: child.poll() is not None or Evidence.objects.get(pk=evidence.pk).received_bytes > 0, timeout=120
        )
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert started
    if Evidence.objects.get(pk=evidence.pk).state != "receiving":
        pytest.skip("the child sealed everything before it could be killed")
    stored_before = set(get_store().list(chunk_prefix(evidence.pk)))
    assert stored_before, "the killed run stored no chunk"

    store = CountingStore(get_store())
    intake_get_store = intake.get_store
    intake.get_store = lambda: store
    try:
        sealed = intake.intake_run(evidence_id=evidence.pk)
    finally:
        intake.get_store = intake_get_store
    assert sealed.state == "sealed" and Evidence.objects.count() == 1
    assert sealed.sha256 == hashlib.sha256(content).hexdigest()
    assert not stored_before & set(store.writes)
    assert len(set(get_store().list(chunk_prefix(evidence.pk)))) == 193
