"""Evidence over the API: register, resumable upload in any order, seal with one-pass hashes, refusals."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from audit.verify import verify_chain
from evidence.container.reader import open_container
from evidence.services.registration import data_key_for
from evidence.storage.base import get_store
from tests.evidence.conftest import CHUNK, evidence_row, hashes_of, put_range, upload_all


def test_register_gives_a_random_uuid_and_no_names_in_storage(register, demo):
    body = register(seized_from="J. Doe, 12 High St", declared_md5="")
    assert body["state"] == "registered"
    evidence = evidence_row(body["id"])
    assert evidence.storage_prefix == f"evidence/{body['id']}/"
    assert "Doe" not in evidence.storage_prefix and demo.case.reference not in evidence.storage_prefix
    assert bytes(evidence.wrapped_key) and evidence.key_id
    assert AuditEvent.objects.filter(action="evidence.register", target_id=body["id"]).count() == 1


def test_upload_in_order_then_seal_gives_the_right_hashes(api, register, sample):
    body = register()
    upload_all(api, body["id"], sample)
    status = api.get(f"/api/evidence/{body['id']}/content/status").json()
    assert status["received_bytes"] == len(sample) and status["missing"] == []
    sealed = api.post(f"/api/evidence/{body['id']}/seal")
    assert sealed.status_code == 200, sealed.content
    result = sealed.json()
    assert result["state"] == "sealed"
    assert {k: result[k] for k in ("md5", "sha1", "sha256")} == hashes_of(sample)
    evidence = evidence_row(body["id"])
    with open_container(evidence_id=evidence.pk, data_key=data_key_for(evidence), store=get_store()) as reader:
        assert reader.read() == sample


def test_out_of_order_and_resumed_upload(api, register, sample):
    body = register()
    total = len(sample)
    # The last piece first, then the middle, then a "dropped connection" that stops after 40 %.
    assert put_range(api, body["id"], sample, 2 * CHUNK, total, total).status_code == 200
    assert put_range(api, body["id"], sample, CHUNK, 2 * CHUNK, total).status_code == 200
    status = api.get(f"/api/evidence/{body['id']}/content/status").json()
    assert status["missing"] == [[0, CHUNK]]
    assert status["hashed_through"] == 0  # nothing can be hashed before the first chunk
    assert put_range(api, body["id"], sample, 0, CHUNK, total).status_code == 200
    status = api.get(f"/api/evidence/{body['id']}/content/status").json()
    assert status["hashed_through"] == total
    result = api.post(f"/api/evidence/{body['id']}/seal").json()
    assert result["sha256"] == hashes_of(sample)["sha256"]


def test_truncated_upload_keeps_whole_chunks_and_resumes(api, register, sample):
    body = register()
    total = len(sample)
    cut = int(total * 0.4)
    response = api.generic(
        "PUT",
        f"/api/evidence/{body['id']}/content",
        sample[:cut],
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes 0-{total - 1}/{total}",
    )
    assert response.status_code == 400  # the body is shorter than its range
    status = api.get(f"/api/evidence/{body['id']}/content/status").json()
    assert status["received_bytes"] == 0  # a lying Content-Length is refused before anything is kept
    upload_all(api, body["id"], sample[: 2 * CHUNK] + sample[2 * CHUNK :])
    assert api.post(f"/api/evidence/{body['id']}/seal").json()["sha256"] == hashes_of(sample)["sha256"]


def test_overlapping_range_with_other_bytes_is_refused(api, register, sample):
    body = register()
    total = len(sample)
    assert put_range(api, body["id"], sample, 0, CHUNK, total).status_code == 200
    assert put_range(api, body["id"], sample, 0, CHUNK, total).status_code == 200  # identical: accepted
    forged = bytearray(sample)
    forged[100] ^= 0xFF
    response = put_range(api, body["id"], bytes(forged), 0, CHUNK, total)
    assert response.status_code == 409
    assert response.json()["error"] == "overlap_mismatch"
    assert "Chunk 0" in response.json()["detail"]


@pytest.mark.parametrize(
    ("header", "reason"),
    [("", "Content-Range"), ("bytes 5-9/100", "chunk boundary"), ("bytes 0-99/50", "within")],
)
def test_bad_ranges_are_explained(api, register, header, reason):
    body = register()
    response = api.generic("PUT", f"/api/evidence/{body['id']}/content", b"x" * 100, HTTP_CONTENT_RANGE=header)
    assert response.status_code == 400
    assert reason in response.json()["detail"]


def test_declared_hash_mismatch_fails_and_is_audited_with_both_values(api, register, sample):
    wrong = "0" * 64
    body = register(declared_sha256=wrong)
    upload_all(api, body["id"], sample)
    response = api.post(f"/api/evidence/{body['id']}/seal")
    assert response.status_code == 409
    assert response.json()["error"] == "hash_mismatch"
    assert evidence_row(body["id"]).state == "failed"
    event = AuditEvent.objects.filter(action="evidence.seal", outcome="failed", target_id=body["id"]).get()
    assert event.details["declared"]["sha256"] == wrong
    assert event.details["computed"]["sha256"] == hashes_of(sample)["sha256"]


def test_no_bytes_after_sealing(api, register, sample):
    body = register()
    upload_all(api, body["id"], sample)
    api.post(f"/api/evidence/{body['id']}/seal")
    response = put_range(api, body["id"], sample, 0, CHUNK, len(sample))
    assert response.status_code == 409
    assert api.post(f"/api/evidence/{body['id']}/seal").status_code == 409


def test_seal_of_incomplete_upload_names_the_missing_bytes(api, register, sample):
    body = register()
    put_range(api, body["id"], sample, 0, CHUNK, len(sample))
    response = api.post(f"/api/evidence/{body['id']}/seal")
    assert response.status_code == 400
    assert f"bytes {CHUNK}-" in response.json()["detail"]


def test_empty_evidence_can_be_sealed(api, register):
    body = register(kind="file")
    response = api.generic("PUT", f"/api/evidence/{body['id']}/content", b"", HTTP_CONTENT_RANGE="bytes */0")
    assert response.status_code == 200, response.content
    sealed = api.post(f"/api/evidence/{body['id']}/seal").json()
    assert sealed["sha256"] == hashes_of(b"")["sha256"]


def test_verify_finds_a_flipped_byte_and_names_the_chunk(api, register, sample, settings):
    import os
    from pathlib import Path

    body = register()
    upload_all(api, body["id"], sample)
    api.post(f"/api/evidence/{body['id']}/seal")
    assert api.post(f"/api/evidence/{body['id']}/verify").json()["ok"] is True
    root = Path(settings.CUSTODIA_EVIDENCE_STORE_OPTIONS["root"])
    chunk_file = next(p for p in root.rglob("*") if p.is_file() and body["id"] in str(p) and p.name == "00000001")
    os.chmod(chunk_file, 0o644)  # what an attacker with disk access would do
    data = bytearray(chunk_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk_file.write_bytes(bytes(data))
    report = api.post(f"/api/evidence/{body['id']}/verify").json()
    assert report["ok"] is False
    assert [m["chunk"] for m in report["mismatches"] if m["chunk"] is not None] == [1]
    evidence = evidence_row(body["id"])
    assert evidence.integrity == "mismatch" and "Chunk 1" in evidence.integrity_problem
    event = AuditEvent.objects.filter(action="evidence.verify", outcome="failed", target_id=body["id"]).get()
    assert event.details["mismatches"][0]["chunk"] == 1
    assert verify_chain().ok


def test_secrets_are_escrowed_listed_by_name_and_revealed_with_an_audit_row(api, register, demo):
    body = register()
    created = api.post(
        f"/api/evidence/{body['id']}/secrets/",
        {"kind": "bitlocker_recovery_password", "name": "C: volume", "value": "235818-357951", "tags": {"volume": "C"}},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert "value" not in created.json()
    listed = api.get(f"/api/evidence/{body['id']}/secrets/").json()
    assert [s["name"] for s in listed] == ["C: volume"] and "value" not in listed[0]
    api.as_user(demo.detective)
    assert api.post(f"/api/evidence/{body['id']}/secrets/{created.json()['id']}/reveal").status_code == 403
    api.as_user(demo.investigator)
    revealed = api.post(f"/api/evidence/{body['id']}/secrets/{created.json()['id']}/reveal")
    assert revealed.json()["value"] == "235818-357951"
    assert AuditEvent.objects.filter(action="evidence.secret.reveal", actor="investigator").exists()
    assert not AuditEvent.objects.filter(details__icontains="235818").exists()


def test_custody_timeline_is_the_audit_trail_of_the_item(api, register, sample):
    body = register()
    upload_all(api, body["id"], sample)
    api.post(f"/api/evidence/{body['id']}/seal")
    actions = [event["action"] for event in api.get(f"/api/evidence/{body['id']}/custody").json()]
    assert actions[0] == "evidence.register"
    assert "evidence.upload.start" in actions and "evidence.seal" in actions


def test_format_of_an_upload_is_detected_at_sealing(api, register):
    qcow_header = b"QFI\xfb" + (3).to_bytes(4, "big") + bytes(CHUNK - 8)
    body = register(kind="vm_disk")
    upload_all(api, body["id"], qcow_header)
    assert api.post(f"/api/evidence/{body['id']}/seal").json()["format"] == "qcow2"


def test_a_connection_dropped_mid_range_keeps_the_whole_chunks(demo, register, sample):
    import io

    from evidence.services.upload import ContentRange, evidence_receive

    body = register()
    evidence = evidence_row(body["id"])
    cut = int(len(sample) * 0.4)  # the stream ends early: the client said more was coming
    evidence_receive(
        actor=demo.custodian,
        evidence=evidence,
        content_range=ContentRange(0, len(sample) - 1, len(sample)),
        stream=io.BytesIO(sample[:cut]),
    )
    evidence.refresh_from_db()
    assert evidence.received_bytes == (cut // CHUNK) * CHUNK
    assert AuditEvent.objects.filter(action="evidence.upload.truncated", target_id=body["id"]).exists()


def test_an_upload_whose_last_chunk_is_shorter_than_the_tail_seals(api, register):
    import os

    data = os.urandom(2 * CHUNK + 99)
    body = register()
    upload_all(api, body["id"], data)
    sealed = api.post(f"/api/evidence/{body['id']}/seal")
    assert sealed.status_code == 200, sealed.content
    assert sealed.json()["sha256"] == hashes_of(data)["sha256"]


def test_a_full_disk_refuses_the_range_and_records_nothing(api, register, sample, monkeypatch):
    from evidence.models import EvidenceChunk
    from evidence.storage.base import StoreError

    body = register()
    store = get_store()

    def disk_full(key, data, *, length=None):
        raise StoreError("No space left on device")

    monkeypatch.setattr(store, "put", disk_full)
    response = put_range(api, body["id"], sample, 0, CHUNK, len(sample))
    assert response.status_code == 503
    assert "No space left" in response.json()["detail"]
    assert not EvidenceChunk.objects.filter(evidence_id=body["id"]).exists()
    assert evidence_row(body["id"]).received_bytes == 0
    failed = AuditEvent.objects.filter(target_id=body["id"], outcome="failed").last()
    assert failed is not None and failed.details["status"] == 503


def test_the_periodic_check_verifies_every_sealed_item(api, register, sample, monkeypatch):
    from evidence import tasks

    sealed = register()
    upload_all(api, sealed["id"], sample)
    api.post(f"/api/evidence/{sealed['id']}/seal")
    register()  # not sealed: nothing to verify
    queued = []
    monkeypatch.setattr(tasks.verify_evidence, "delay", lambda evidence_id: queued.append(evidence_id))
    assert tasks.verify_all_evidence() == 1
    assert queued == [sealed["id"]]
    report = tasks.verify_evidence(queued[0])
    assert report["ok"] is True
    event = AuditEvent.objects.filter(action="evidence.verify", target_id=sealed["id"]).last()
    assert (event.actor, event.details["scheduled"]) == ("system", True)


def test_evidence_larger_than_the_inline_limit_is_verified_by_a_worker_for_the_user(
    api, demo, register, sample, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from evidence import tasks

    sealed = register()
    upload_all(api, sealed["id"], sample)
    api.post(f"/api/evidence/{sealed['id']}/seal")
    settings.CUSTODIA_VERIFY_INLINE_BYTES = len(sample) - 1
    queued = []
    monkeypatch.setattr(tasks.verify_evidence, "delay", lambda *args, **kwargs: queued.append((args, kwargs)))
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/evidence/{sealed['id']}/verify")
    assert response.status_code == 202 and response.json() == {"queued": True, "evidence": sealed["id"]}
    assert AuditEvent.objects.filter(action="evidence.verify.queue", target_id=sealed["id"]).count() == 1
    assert queued == [((sealed["id"],), {"actor_id": demo.custodian.pk})]
    assert tasks.verify_evidence(*queued[0][0], **queued[0][1])["ok"] is True
    event = AuditEvent.objects.filter(action="evidence.verify", target_id=sealed["id"]).last()
    assert (event.actor, event.details["scheduled"]) == ("custodian", False)


def test_sealing_an_upload_reads_no_chunk_but_those_that_name_its_format(api, register, monkeypatch):
    import json
    import os

    from evidence.container.format import manifest_key

    data = os.urandom(6 * CHUNK + 5)
    body = register(seized_from="J. Doe, 12 High St", seized_by="DC Smith")
    upload_all(api, body["id"], data)
    store = get_store()
    reads = []
    original_read = store.read

    def counting_read(key, *args, **kwargs):
        reads.append(key)
        return original_read(key, *args, **kwargs)

    monkeypatch.setattr(store, "read", counting_read)
    assert api.post(f"/api/evidence/{body['id']}/seal").json()["sha256"] == hashes_of(data)["sha256"]
    chunk_reads = [key for key in reads if "/chunk/" in key]
    assert len(chunk_reads) <= 3, chunk_reads  # the head and the tail, for the format; never all seven
    manifest = json.loads(original_read(manifest_key(evidence_row(body["id"]).pk)))
    assert "Doe" not in json.dumps(manifest) and "Smith" not in json.dumps(manifest)


def test_a_startup_key_file_is_escrowed_as_base64_and_revealed_as_it_was(api, register, demo):
    import base64
    import os

    body = register()
    bek = os.urandom(124) + b"\xff\x00"  # a BEK file is binary
    url = f"/api/evidence/{body['id']}/secrets/"
    bad = api.post(url, {"kind": "bitlocker_startup_key", "name": "C:", "value_base64": "not base64!"}, format="json")
    assert bad.status_code == 400 and "value_base64" in bad.json()["detail"]
    created = api.post(
        url,
        {"kind": "bitlocker_startup_key", "name": "C:", "value_base64": base64.b64encode(bek).decode()},
        format="json",
    )
    assert created.status_code == 201, created.content
    api.as_user(demo.investigator)
    revealed = api.post(f"{url}{created.json()['id']}/reveal").json()
    assert base64.b64decode(revealed["value_base64"]) == bek


def test_the_evidence_page_verifies_small_evidence_at_once_and_queues_large(
    api, client, demo, register, sample, settings, monkeypatch
):
    from evidence import tasks

    sealed = register()
    upload_all(api, sealed["id"], sample)
    api.post(f"/api/evidence/{sealed['id']}/seal")
    monkeypatch.setattr(tasks.verify_evidence, "delay", lambda *args, **kwargs: None)
    client.force_login(demo.custodian)
    page = client.post(f"/evidence/{sealed['id']}/verify/", follow=True)
    assert "Intact:" in page.content.decode()
    settings.CUSTODIA_VERIFY_INLINE_BYTES = 0
    page = client.post(f"/evidence/{sealed['id']}/verify/", follow=True)
    assert "Verification queued" in page.content.decode()
