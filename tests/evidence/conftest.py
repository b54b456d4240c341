from __future__ import annotations

import hashlib
import os

import pytest

from evidence.models import Evidence

CHUNK = 1 << 20


@pytest.fixture
def register(api, demo):
    """Register evidence in the demo case as the custodian; returns the API body."""

    def register(**fields):
        api.as_user(demo.custodian)
        body = {"label": "Laptop 1, internal SSD", "kind": "disk_image", **fields}
        response = api.post(f"/api/cases/{demo.case.pk}/evidence/", body, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    return register


def put_range(api, evidence_id: str, data: bytes, start: int, end_exclusive: int, total: int):
    return api.generic(
        "PUT",
        f"/api/evidence/{evidence_id}/content",
        data[start:end_exclusive],
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes {start}-{end_exclusive - 1}/{total}",
    )


def upload_all(api, evidence_id: str, data: bytes, *, piece: int = 2 * CHUNK, order=None):
    starts = list(range(0, len(data), piece))
    for start in order(starts) if order else starts:
        response = put_range(api, evidence_id, data, start, min(start + piece, len(data)), len(data))
        assert response.status_code == 200, response.content
    return response


def hashes_of(data: bytes) -> dict[str, str]:
    return {name: hashlib.new(name, data).hexdigest() for name in ("md5", "sha1", "sha256")}


@pytest.fixture
def sample() -> bytes:
    # Part random (incompressible), part zeros (compressible), not a multiple of the chunk size.
    return os.urandom(CHUNK + 12345) + bytes(CHUNK) + os.urandom(777)


def evidence_row(evidence_id: str) -> Evidence:
    return Evidence.objects.get(pk=evidence_id)
