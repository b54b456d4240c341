"""Local acquisition: read-only, confined, read errors retried then zero-filled and recorded, queued like
an import. Read errors are injected through the pluggable low-level read (no device-mapper here)."""

from __future__ import annotations

import errno
import hashlib
import io
import os
from pathlib import Path

import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from evidence.container.reader import load_manifest, open_container
from evidence.intake.device import DescriptorSource, RecoveringReader
from evidence.models import Evidence
from evidence.services import acquisition
from evidence.services.acquisition import evidence_acquire
from evidence.services.intake import intake_run
from evidence.services.registration import data_key_for
from evidence.storage.base import get_store

MIB = 1 << 20


class FaultySource:
    """A positional source over ``data`` whose reads fail with EIO whenever they touch a bad range;
    ``flaky`` ranges fail only on their first ``flaky_failures`` reads."""

    def __init__(self, data: bytes, *, bad=(), flaky=(), flaky_failures: int = 1) -> None:
        self.data = data
        self.bad = list(bad)
        self.flaky = list(flaky)
        self.flaky_left = {r: flaky_failures for r in self.flaky}
        self.reads = 0

    def pread(self, length: int, offset: int) -> bytes:
        self.reads += 1
        end = offset + length
        for start, stop in self.bad:
            if offset < stop and start < end:
                raise OSError(errno.EIO, "Input/output error")
        for span in self.flaky:
            if offset < span[1] and span[0] < end and self.flaky_left[span] > 0:
                self.flaky_left[span] -= 1
                raise OSError(errno.EIO, "Input/output error")
        return self.data[offset:end]


def zero_filled(data: bytes, ranges) -> bytes:
    result = bytearray(data)
    for start, stop in ranges:
        result[start:stop] = bytes(stop - start)
    return bytes(result)


def hashes(data: bytes) -> dict[str, str]:
    return {name: hashlib.new(name, data).hexdigest() for name in ("md5", "sha1", "sha256")}


def test_unreadable_sectors_are_zero_filled_and_recorded_nothing_skipped():
    data = os.urandom(3 * MIB + 1000)
    bad = [(MIB + 512 * 3, MIB + 512 * 5), (2 * MIB + 100, 2 * MIB + 700)]  # the second is not sector-aligned
    reader = RecoveringReader(source=FaultySource(data, bad=bad), size=len(data), retries=2)
    got = io.BufferedReader(reader).read()
    # Whole sectors are the unit: the unaligned range costs the two sectors it touches.
    expected_ranges = [(MIB + 1536, MIB + 2560), (2 * MIB, 2 * MIB + 1024)]
    assert got == zero_filled(data, expected_ranges)
    assert [(e["start"], e["end"]) for e in reader.errors] == expected_ranges
    assert {e["error"] for e in reader.errors} == {"EIO"} and {e["attempts"] for e in reader.errors} == {3}


def test_a_read_that_succeeds_on_retry_records_nothing():
    data = os.urandom(2 * MIB)
    source = FaultySource(data, flaky=[(MIB, MIB + 512)], flaky_failures=2)
    reader = RecoveringReader(source=source, size=len(data), retries=2)
    assert io.BufferedReader(reader).read() == data
    assert reader.errors == []


def test_a_source_ending_early_is_zero_filled_to_its_size():
    data = os.urandom(4096)
    reader = RecoveringReader(source=FaultySource(data), size=8192, retries=0)
    assert io.BufferedReader(reader).read() == data + bytes(4096)
    assert [(e["start"], e["end"]) for e in reader.errors] == [(4096, 8192)]


def test_whole_block_reads_and_odd_reads_give_the_same_zero_filled_bytes():
    data = os.urandom(3 * MIB + 1000)
    bad = [(MIB + 512 * 3, MIB + 512 * 5)]
    expected = zero_filled(data, [(MIB + 1536, MIB + 2560)])
    by_block = RecoveringReader(source=FaultySource(data, bad=bad), size=len(data), retries=0)
    blocks = []
    while block := by_block.read(MIB):  # the sealing's reads: whole blocks from block boundaries
        blocks.append(block)
    assert [len(block) for block in blocks] == [MIB, MIB, MIB, 1000] and b"".join(blocks) == expected
    assert by_block.read(MIB) == b""
    odd = RecoveringReader(source=FaultySource(data, bad=bad), size=len(data), retries=0)
    pieces = [odd.read(7), odd.read(MIB), odd.read(2 * MIB), odd.read()]
    assert b"".join(pieces) == expected and [len(piece) for piece in pieces[:2]] == [7, MIB - 7]
    assert (
        by_block.errors
        == odd.errors
        == [{"start": MIB + 1536, "end": MIB + 2560, "bytes": 1024, "error": "EIO", "attempts": 1}]
    )


def test_the_descriptor_source_opens_read_only(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"x" * 4096)
    source = DescriptorSource(image)
    try:
        flags = int(Path(f"/proc/self/fdinfo/{source.descriptor}").read_text().split("flags:")[1].split()[0], 8)
        assert flags & os.O_ACCMODE == os.O_RDONLY
        with pytest.raises(OSError):
            os.write(source.descriptor, b"y")
        assert source.size == 4096 and source.pread(4, 10) == b"xxxx"
    finally:
        source.close()
    assert image.read_bytes() == b"x" * 4096


@pytest.fixture
def image_root(tmp_path, settings) -> Path:
    root = tmp_path / "share"
    root.mkdir()
    settings.CUSTODIA_IMPORT_ROOTS = [root]
    settings.CUSTODIA_ACQUIRE_RETRY_DELAY_MS = 0
    return root


def test_acquisition_with_injected_read_errors_seals_the_zero_filled_image(demo, image_root, monkeypatch):
    data = os.urandom(2 * MIB + 4096)
    image = image_root / "laptop.dd"
    image.write_bytes(data)
    bad = [(512, 1024), (MIB + 8 * 512, MIB + 16 * 512)]
    monkeypatch.setattr(acquisition, "source_opener", lambda path: FaultySource(path.read_bytes(), bad=bad))
    evidence = evidence_acquire(actor=demo.custodian, case=demo.case, device=str(image), queue=False)
    evidence = intake_run(evidence_id=evidence.pk)
    expected = zero_filled(data, bad)
    assert evidence.state == "sealed" and evidence.source == "local_device"
    assert {name: getattr(evidence, name) for name in ("md5", "sha1", "sha256")} == hashes(expected)
    assert [(e["start"], e["end"]) for e in evidence.acquisition_log] == bad
    rows = AuditEvent.objects.filter(action="evidence.acquire.read_error", target_id=str(evidence.pk))
    assert sorted((row.details["start"], row.details["end"]) for row in rows) == bad
    assert all(row.outcome == "failed" and row.details["error"] == "EIO" for row in rows)
    manifest, _ = load_manifest(evidence_id=evidence.pk, store=get_store())
    assert [(e["start"], e["end"]) for e in manifest.facts["read_errors"]] == bad
    with open_container(evidence_id=evidence.pk, data_key=data_key_for(evidence), store=get_store()) as reader:
        assert reader.read() == expected
    assert image.read_bytes() == data  # never written


def test_acquire_command_reads_a_plain_file_read_only(demo, image_root):
    data = os.urandom(MIB + 77)
    image = image_root / "usb.img"
    image.write_bytes(data)
    before = image.stat()
    out = io.StringIO()
    call_command("acquire_device", str(image), "--now", case="DEMO-2026-001", username="custodian", stdout=out)
    evidence = Evidence.objects.get()
    assert "sealed" in out.getvalue() and evidence.acquisition_log == []
    assert {name: getattr(evidence, name) for name in ("md5", "sha1", "sha256")} == hashes(data)
    after = image.stat()
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)


@pytest.mark.parametrize("device", ["/dev/null", "/etc/passwd", "../x.img", ""])
def test_paths_that_are_neither_allowed_devices_nor_images_below_the_roots_are_refused(demo, api, image_root, device):
    api.as_user(demo.custodian)
    response = api.post("/api/evidence/acquire", {"case": demo.case.pk, "device": device}, format="json")
    assert response.status_code == 400, response.content
    assert not Evidence.objects.exists()
    if device:
        assert AuditEvent.objects.filter(action="evidence.acquire", outcome="denied").exists()


def test_a_block_device_outside_the_allow_list_is_refused(demo, image_root, settings):
    devices = [p for p in ("/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/loop0") if os.path.exists(p)]
    if not devices:
        pytest.skip("no block device on this machine")
    settings.CUSTODIA_ACQUIRE_DEVICES = ["/dev/sd[x-z]"]
    with pytest.raises(Exception, match="CUSTODIA_ACQUIRE_DEVICES"):
        evidence_acquire(actor=demo.custodian, case=demo.case, device=devices[0])


def test_acquire_api_queues_and_answers_202(demo, api, image_root, monkeypatch, django_capture_on_commit_callbacks):
    from evidence import tasks

    (image_root / "card.img").write_bytes(os.urandom(5000))
    queued = []
    monkeypatch.setattr(tasks.seal_evidence, "delay", lambda evidence_id: queued.append(evidence_id))
    api.as_user(demo.custodian)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/evidence/acquire", {"case": demo.case.pk, "device": str(image_root / "card.img")}, format="json"
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == "receiving" and body["queued"] is True and body["follow"].endswith(f"/{body['id']}/")
    assert queued == [body["id"]]
    assert tasks.seal_evidence(body["id"])["state"] == "sealed"
    detail = api.get(f"/api/evidence/{body['id']}/").json()
    assert detail["state"] == "sealed" and detail["progress"] == 1.0 and detail["acquisition_log"] == []
    api.as_user(demo.investigator)
    refused = api.post(
        "/api/evidence/acquire", {"case": demo.case.pk, "device": str(image_root / "card.img")}, format="json"
    )
    assert refused.status_code == 403
