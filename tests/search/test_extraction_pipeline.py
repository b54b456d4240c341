"""Extraction as a user runs it: sealed evidence in, traces in the database, checked against ground truth."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from search.models import ExtractionRun, Trace
from search.services import extraction_execute, extraction_start
from tests.corpus import require_corpus, testdata_dir

# truth/ext2.E01.filehashes.tsv: inode 14, /passwords.txt, 116 bytes.
PASSWORDS_SHA256 = "02a2a6af2f1ecf4720d7d49d640f0d0a269a7ec733e41973bdd34f09dad0e252"


def imported(demo, api, settings, *names):
    settings.CUSTODIA_IMPORT_ROOTS = [testdata_dir() / "files"]
    paths = [str(require_corpus(name)) for name in names]
    api.as_user(demo.custodian)
    response = api.post("/api/evidence/import", {"case": demo.case.pk, "paths": paths}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def run_now(demo, evidence_id):
    from evidence.models import Evidence

    run = extraction_start(actor=demo.investigator, evidence=Evidence.objects.get(pk=evidence_id))
    return extraction_execute(run_id=run.pk)


@pytest.mark.corpus
@pytest.mark.parametrize(
    "names",
    [["files/dfvfs/ext2.E01"], ["files/dfvfs/ext2.split.E01", "files/dfvfs/ext2.split.E02"], ["files/dfvfs/ext2.vhd"]],
    ids=["E01", "split E01", "VHD"],
)
def test_passwords_txt_comes_out_of_ext2(demo, api, settings, names):
    body = imported(demo, api, settings, *names)
    run = run_now(demo, body["id"])
    assert run.state == "done", run.failure
    trace = Trace.objects.get(evidence_id=body["id"], name="passwords.txt")
    assert trace.path.endswith("/passwords.txt")
    stream = next(s for s in trace.streams if s["name"] == "raw")
    assert (stream["sha256"], stream["size"]) == (PASSWORDS_SHA256, 116)
    assert trace.uid.startswith(f"{body['id']}:0-")
    assert run.tools["pytsk3"] and run.traces == Trace.objects.filter(evidence_id=body["id"]).count()
    assert AuditEvent.objects.filter(action="evidence.extract", outcome="ok", target_id=body["id"]).exists()


@pytest.mark.corpus
def test_a_second_run_gives_the_same_traces_and_no_duplicates(demo, api, settings):
    body = imported(demo, api, settings, "files/dfvfs/ext2.qcow2")
    run_now(demo, body["id"])
    first = list(Trace.objects.filter(evidence_id=body["id"]).order_by("uid").values_list("uid", "sha256", "path"))
    run_now(demo, body["id"])
    second = list(Trace.objects.filter(evidence_id=body["id"]).order_by("uid").values_list("uid", "sha256", "path"))
    assert first == second and len(first) == len(set(first))


@pytest.mark.corpus
def test_a_redelivered_run_upserts_instead_of_duplicating(demo, api, settings):
    from search.models import RunState

    body = imported(demo, api, settings, "files/dfvfs/ext2.vmdk")
    run = run_now(demo, body["id"])
    count = Trace.objects.filter(evidence_id=body["id"]).count()
    ExtractionRun.objects.filter(pk=run.pk).update(state=RunState.RUNNING)  # as if the worker died at the end
    extraction_execute(run_id=run.pk)
    assert Trace.objects.filter(evidence_id=body["id"]).count() == count


def test_only_investigators_extract_and_only_sealed_evidence(demo, api, register_evidence):
    evidence_id = register_evidence()
    api.as_user(demo.detective)
    assert api.post(f"/api/evidence/{evidence_id}/extract").status_code == 403
    api.as_user(demo.investigator)
    response = api.post(f"/api/evidence/{evidence_id}/extract")
    assert response.status_code == 409
    assert "sealed" in response.json()["detail"]


@pytest.fixture
def register_evidence(demo):
    from evidence.services.registration import evidence_register

    def register():
        return str(evidence_register(actor=demo.custodian, case=demo.case, label="Disk", kind="disk_image").pk)

    return register


@pytest.mark.corpus
def test_api_starts_a_run_and_lists_it_with_progress(demo, api, settings, django_capture_on_commit_callbacks):
    from unittest import mock

    body = imported(demo, api, settings, "files/dfvfs/ext2.E01")
    api.as_user(demo.investigator)
    with (
        mock.patch("search.tasks.run_extraction.apply_async") as enqueue,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = api.post(f"/api/evidence/{body['id']}/extract")
    assert response.status_code == 202, response.content
    run_id = response.json()["id"]
    enqueue.assert_called_once()
    assert enqueue.call_args.kwargs["args"] == [run_id, 0]
    extraction_execute(run_id=run_id)
    runs = api.get(f"/api/evidence/{body['id']}/extractions/").json()
    assert runs[0]["state"] == "done" and runs[0]["traces"] > 0
    trace = Trace.objects.get(evidence_id=body["id"], name="passwords.txt")
    got = api.get(f"/api/cases/{demo.case.pk}/traces/{trace.uid}").json()
    assert got["name"] == "passwords.txt" and "file" in got["types"]
    children = api.get(f"/api/cases/{demo.case.pk}/traces/{trace.parent_uid}/children").json()["results"]
    assert trace.uid in [child["uid"] for child in children]


@pytest.mark.corpus
def test_bitlocker_volume_unlocks_after_its_secret_is_escrowed(demo, api, settings, tmp_path, client):
    import lzma

    from evidence.models import Evidence
    from evidence.services.escrow import secret_escrow

    image = tmp_path / "bitlocker.img"
    image.write_bytes(lzma.decompress(require_corpus("files/cryptsetup/bitlk-aes-xts-128.img.xz").read_bytes()))
    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    api.as_user(demo.custodian)
    body = api.post("/api/evidence/import", {"case": demo.case.pk, "paths": [str(image)]}, format="json").json()
    run_now(demo, body["id"])
    volume = Trace.objects.get(evidence_id=body["id"], properties__has_key="encryptedVolume.unlocked")
    assert volume.properties["encryptedVolume.unlocked"] is False
    client.force_login(demo.investigator)
    assert b"stayed locked" in client.get(f"/evidence/{body['id']}/extractions/").content

    evidence = Evidence.objects.get(pk=body["id"])
    secret_escrow(actor=demo.custodian, evidence=evidence, kind="bitlocker_password", name="volume", value=b"anaconda")
    run_now(demo, body["id"])
    volume = Trace.objects.get(evidence_id=body["id"], properties__has_key="encryptedVolume.unlocked")
    assert volume.properties["encryptedVolume.unlocked"] is True
    decrypted = next(s for s in volume.streams if s["name"] != "raw" and s.get("sha256"))
    assert decrypted["sha256"] == "674e3a976927fd62f3fc26df2c695cac75b8d364e3b45393717efa971f16db0f"
    assert b"stayed locked" not in client.get(f"/evidence/{body['id']}/extractions/").content


@pytest.mark.corpus
def test_one_worker_and_two_workers_give_identical_trace_sets(demo, api, settings, django_capture_on_commit_callbacks):
    from unittest import mock

    from evidence.models import Evidence

    body = imported(demo, api, settings, "files/dfvfs/ext2.vhd")
    evidence = Evidence.objects.get(pk=body["id"])

    def trace_set():
        return set(
            Trace.objects.filter(evidence=evidence).values_list("uid", "parent_uid", "path", "sha256", "deleted")
        )

    run_now(demo, body["id"])
    single = trace_set()
    settings.CUSTODIA_EXTRACTION_SHARDS = 2
    with (
        mock.patch("search.tasks.run_extraction.apply_async") as enqueue,
        django_capture_on_commit_callbacks(execute=True),
    ):
        run = extraction_start(actor=demo.investigator, evidence=evidence)
    assert [call.kwargs["args"] for call in enqueue.call_args_list] == [[run.pk, 0], [run.pk, 1]]
    assert extraction_execute(run_id=run.pk, shard=1).state == "running"  # one share done, the run goes on
    finished = extraction_execute(run_id=run.pk, shard=0)
    assert finished.state == "done" and finished.shards_finished == [0, 1]
    assert trace_set() == single
    assert extraction_execute(run_id=run.pk, shard=0).state == "done"  # a redelivered share changes nothing
    assert AuditEvent.objects.filter(action="evidence.extract", outcome="ok", details__run=run.pk).count() == 1


def test_archives_and_e_mail_inside_a_file_system_become_child_traces(demo, settings, tmp_path):
    import shutil
    import subprocess
    import zipfile
    from email.message import EmailMessage

    from evidence.services.intake import evidence_import

    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 is not installed (apt: e2fsprogs)")
    tree = tmp_path / "tree"
    (tree / "docs").mkdir(parents=True)
    with zipfile.ZipFile(tree / "docs" / "bundle.zip", "w") as bundle:
        bundle.writestr("folder/syslog", "Nov 23 kernel: booted\n" * 50)
        bundle.writestr("../escape.txt", "stays a name")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", "Quarterly figures"
    message.set_content("See attached.")
    message.add_attachment(b"col1,col2\n1,2\n", maintype="text", subtype="csv", filename="figures.csv")
    (tree / "docs" / "mail.eml").write_bytes(message.as_bytes())
    image = tmp_path / "disk.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), "8M"], check=True)
    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    evidence = evidence_import(actor=demo.custodian, case=demo.case, paths=[str(image)], label="disk")
    run_now(demo, str(evidence.pk))
    names = set(Trace.objects.filter(evidence=evidence).values_list("name", flat=True))
    mail_trace = Trace.objects.get(evidence=evidence, name="mail.eml")
    assert {"syslog", "escape.txt", "figures.csv"} <= names, (names, mail_trace.errors)
    syslog = Trace.objects.get(evidence=evidence, name="syslog")
    assert syslog.path.endswith("/docs/bundle.zip/folder/syslog")
    mail = Trace.objects.get(evidence=evidence, name="mail.eml")
    assert mail.properties["email.subject"] == "Quarterly figures"
    # The closed run left the query planner statistics of the trace table (search needs them at scale).
    assert trace_table_analyzed()


def trace_table_analyzed() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")
            if cursor.fetchone() is None:
                return False
            cursor.execute("SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'search_trace'")
        else:
            # Column statistics come only from ANALYZE (creating an index already sets the row estimate).
            cursor.execute("SELECT COUNT(*) FROM pg_stats WHERE tablename = 'search_trace'")
        return cursor.fetchone()[0] > 0
