"""Orphan bytes (#17 finding 8): a chunk stored by an upload request that then failed stays in the
write-once store unrecorded. A retry of the same bytes reuses it; a retry with other bytes is stored as
the next attempt of that chunk, and the orphan is named in the audit trail (and by the integrity check)."""

from __future__ import annotations

import hashlib
import os

import pytest

from audit.models import AuditEvent
from evidence.container.format import chunk_key
from evidence.container.reader import open_container
from evidence.models import EvidenceChunk
from evidence.services import upload
from evidence.services.integrity import evidence_verify
from evidence.services.registration import data_key_for
from evidence.storage.base import get_store
from tests.evidence.conftest import CHUNK, evidence_row, hashes_of, put_range, upload_all


class RequestFailed(RuntimeError):
    pass


def fail_after_storing(monkeypatch):
    """The next range request stores its chunks, then fails before its database rows commit."""
    original = upload._advance_hashes

    def failing(**kwargs):
        monkeypatch.setattr(upload, "_advance_hashes", original)
        raise RequestFailed("the request died after storing its chunks")

    monkeypatch.setattr(upload, "_advance_hashes", failing)


@pytest.fixture
def failing_api(api):
    api.raise_request_exception = False
    return api


def test_a_retry_with_the_same_bytes_reuses_the_orphan(failing_api, register, sample, monkeypatch):
    api = failing_api
    evidence_id = register()["id"]
    fail_after_storing(monkeypatch)
    assert put_range(api, evidence_id, sample, 0, CHUNK, len(sample)).status_code == 500
    assert not EvidenceChunk.objects.filter(evidence_id=evidence_id).exists()
    assert get_store().exists(chunk_key(evidence_row(evidence_id).pk, 0))  # the orphan
    upload_all(api, evidence_id, sample)
    sealed = api.post(f"/api/evidence/{evidence_id}/seal").json()
    assert {name: sealed[name] for name in ("md5", "sha1", "sha256")} == hashes_of(sample)
    assert set(EvidenceChunk.objects.filter(evidence_id=evidence_id).values_list("attempt", flat=True)) == {0}
    assert not AuditEvent.objects.filter(action="evidence.chunk.orphan").exists()


def test_a_retry_with_other_bytes_supersedes_the_orphan_and_records_it(failing_api, register, sample, monkeypatch):
    api = failing_api
    evidence_id = register()["id"]
    wrong = os.urandom(CHUNK)
    fail_after_storing(monkeypatch)
    assert put_range(api, evidence_id, wrong + sample[CHUNK:], 0, CHUNK, len(sample)).status_code == 500
    upload_all(api, evidence_id, sample)
    evidence = evidence_row(evidence_id)
    assert EvidenceChunk.objects.get(evidence=evidence, index=0).attempt == 1
    orphan = AuditEvent.objects.get(action="evidence.chunk.orphan", target_id=evidence_id)
    assert orphan.details["chunk"] == 0 and orphan.details["key"] == chunk_key(evidence.pk, 0)
    assert orphan.details["plaintext_sha256"] == hashlib.sha256(wrong).hexdigest()
    assert orphan.details["superseded_by"] == chunk_key(evidence.pk, 0, 1)

    sealed = api.post(f"/api/evidence/{evidence_id}/seal").json()
    assert sealed["state"] == "sealed" and sealed["sha256"] == hashlib.sha256(sample).hexdigest()
    evidence.refresh_from_db()
    with open_container(evidence_id=evidence.pk, data_key=data_key_for(evidence), store=get_store()) as reader:
        assert reader.read() == sample
    # Both copies stay in the write-once store; the index uses the second.
    assert get_store().exists(chunk_key(evidence.pk, 0)) and get_store().exists(chunk_key(evidence.pk, 0, 1))

    report = evidence_verify(actor=None, evidence=evidence)
    assert report["ok"] is True
    found = AuditEvent.objects.filter(action="evidence.chunk.orphan", details__found="integrity check").get()
    assert found.details["keys"] == [chunk_key(evidence.pk, 0)]


def test_the_same_chunk_sent_again_with_other_bytes_once_recorded_is_still_refused(api, register, sample):
    evidence_id = register()["id"]
    assert put_range(api, evidence_id, sample, 0, CHUNK, len(sample)).status_code == 200
    other = os.urandom(CHUNK) + sample[CHUNK:]
    response = put_range(api, evidence_id, other, 0, CHUNK, len(sample))
    assert response.status_code == 409 and response.json()["error"] == "overlap_mismatch"
