"""Differencing disks read through their parents (issue #18, item 5): a qcow2 chain made by qemu-img and a
differencing VHD written by the test, checked against The Sleuth Kit on the chain as qemu-img (or the tools
that made it) give it in raw — never against Custodia's own listing."""

from __future__ import annotations

import hashlib
from pathlib import Path

from audit.models import AuditEvent
from search.extraction.walker import WalkOptions, walk_image
from tests.differencing import (
    fls,
    icat_sha256,
    needs_image_tools,
    qcow2_chain,
    vhd_parent_and_child,
)

pytestmark = needs_image_tools


def listing(traces, *, file_system_type: str) -> set[tuple[str, bool]]:
    """(path inside the file system, deleted) of every file trace, as fls prints paths."""
    roots = [trace for trace in traces if trace.types == ["fileSystem"]]
    assert len(roots) == 1, [(t.path, t.types) for t in traces]
    prefix = roots[0].path + "/"
    return {
        (trace.path[len(prefix) :], trace.deleted)
        for trace in traces
        if trace.path.startswith(prefix) and "file" in trace.types
    }


def truth(raw: Path) -> set[tuple[str, bool]]:
    return {(entry.path, entry.deleted) for entry in fls(raw)}


def walked(first: Path, *others: Path) -> list:
    files = {path.name: path.open("rb") for path in others}
    with first.open("rb") as image:
        traces = list(
            walk_image(
                file_object=image,
                evidence_id="chain",
                options=WalkOptions(file_name=first.name, related_files=files),
            )
        )
    for handle in files.values():
        handle.close()
    return traces


def test_a_qcow2_chain_reads_as_tsk_reads_qemu_imgs_raw_of_it(tmp_path):
    (top, mid, base), raw = qcow2_chain(tmp_path)
    traces = walked(top, mid, base)
    expected = truth(raw)
    assert ("child.txt", False) in expected and ("base.txt", True) in expected
    assert listing(traces, file_system_type="ext") == expected
    child_txt = next(trace for trace in traces if trace.name == "child.txt")
    inode = next(entry.inode for entry in fls(raw) if entry.path == "child.txt")
    assert child_txt.stream("raw").sha256 == icat_sha256(raw, inode)


def test_without_its_parents_a_qcow2_child_yields_no_files(tmp_path):
    (top, _mid, _base), _raw = qcow2_chain(tmp_path)
    traces = walked(top)
    assert not any(trace.name == "child.txt" for trace in traces)


def test_a_differencing_vhd_reads_through_its_parent(tmp_path):
    child, base, changed = vhd_parent_and_child(tmp_path)
    traces = walked(child, base)
    expected = truth(changed)
    assert ("SECOND.TXT", False) in expected
    assert listing(traces, file_system_type="fat") == expected
    second = next(trace for trace in traces if trace.name == "SECOND.TXT")
    inode = next(entry.inode for entry in fls(changed) if entry.path == "SECOND.TXT")
    assert second.stream("raw").sha256 == icat_sha256(changed, inode)


# --- as a custodian and an investigator do it ------------------------------------------------------------


def run_now(demo, evidence_id):
    from evidence.models import Evidence
    from search.services import extraction_execute, extraction_start

    run = extraction_start(actor=demo.investigator, evidence=Evidence.objects.get(pk=evidence_id))
    return extraction_execute(run_id=run.pk)


def trace_sha256(evidence_id, name: str) -> str:
    from search.models import Trace

    trace = Trace.objects.get(evidence_id=evidence_id, name=name)
    return next(stream["sha256"] for stream in trace.streams if stream["name"] == "raw")


def test_a_chain_imported_together_is_one_item_read_through_its_parents(demo, api, settings, tmp_path):
    (top, mid, base), raw = qcow2_chain(tmp_path)
    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    api.as_user(demo.custodian)
    # In any order: the chain is put in order by the names each child gives its parent.
    response = api.post(
        "/api/evidence/import", {"case": demo.case.pk, "paths": [str(base), str(top), str(mid)]}, format="json"
    )
    assert response.status_code == 201, response.content
    body = api.get(f"/api/evidence/{response.json()['id']}/").json()
    assert body["format"] == "qcow2"
    assert [file["name"] for file in body["parent_chain"]["files"]] == ["top.qcow2", "mid.qcow2", "base.qcow2"]
    assert [file.get("parent_reference") for file in body["parent_chain"]["files"]] == ["mid.qcow2", "base.qcow2", None]
    whole = hashlib.sha256(top.read_bytes() + mid.read_bytes() + base.read_bytes()).hexdigest()
    assert body["sha256"] == whole  # the files as received, child first
    run = run_now(demo, body["id"])
    assert run.state == "done", run.failure
    inode = next(entry.inode for entry in fls(raw) if entry.path == "child.txt")
    assert trace_sha256(body["id"], "child.txt") == icat_sha256(raw, inode)


def test_files_that_are_no_chain_are_still_refused(demo, api, settings, tmp_path):
    (top, _mid, base), _raw = qcow2_chain(tmp_path)
    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    api.as_user(demo.custodian)
    response = api.post("/api/evidence/import", {"case": demo.case.pk, "paths": [str(top), str(base)]}, format="json")
    assert response.status_code == 400
    assert "mid.qcow2" in response.json()["detail"]


def test_a_parent_sealed_separately_is_linked_and_read_through(demo, api, settings, tmp_path, client):
    child, base, changed = vhd_parent_and_child(tmp_path)
    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    api.as_user(demo.custodian)
    parent_id = api.post("/api/evidence/import", {"case": demo.case.pk, "paths": [str(base)]}, format="json").json()[
        "id"
    ]
    child_body = api.post("/api/evidence/import", {"case": demo.case.pk, "paths": [str(child)]}, format="json").json()
    chain = child_body["parent_chain"]
    assert chain["needs_parent"] is True and chain["reference"] == "base.vhd" and chain["parents"] == []

    # A custodian only; an item that is no differencing disk, or a loop, is refused.
    api.as_user(demo.investigator)
    assert api.post(f"/api/evidence/{child_body['id']}/parent", {"parent": parent_id}, format="json").status_code == 403
    api.as_user(demo.custodian)
    refused = api.post(f"/api/evidence/{parent_id}/parent", {"parent": child_body["id"]}, format="json")
    assert refused.status_code == 409 and refused.json()["error"] == "no_parent_needed"
    assert api.post(f"/api/evidence/{child_body['id']}/parent", {"parent": "nope"}, format="json").status_code == 400

    linked = api.post(f"/api/evidence/{child_body['id']}/parent", {"parent": parent_id}, format="json")
    assert linked.status_code == 200, linked.content
    body = linked.json()
    assert body["parent"] == parent_id
    assert [(p["id"], p["read_as"]) for p in body["parent_chain"]["parents"]] == [(parent_id, "base.vhd")]
    event = AuditEvent.objects.filter(action="evidence.parent.link", outcome="ok").get()
    assert event.details["parent"] == parent_id

    run = run_now(demo, child_body["id"])
    assert run.state == "done", run.failure
    inode = next(entry.inode for entry in fls(changed) if entry.path == "SECOND.TXT")
    assert trace_sha256(child_body["id"], "SECOND.TXT") == icat_sha256(changed, inode)

    client.force_login(demo.custodian)
    page = client.get(f"/evidence/{child_body['id']}/").content.decode()
    assert "Differencing disk" in page and "base.vhd" in page


def test_a_vhd_whose_footer_fails_its_checksum_is_accepted_with_a_warning(demo, api, settings, tmp_path):
    _child, base, _changed = vhd_parent_and_child(tmp_path)
    image = bytearray(base.read_bytes())
    image[-512 + 64] ^= 0xFF  # the checksum of the footer at the end
    image[64] ^= 0xFF  # and of its copy at the start
    damaged = tmp_path / "damaged.vhd"
    damaged.write_bytes(bytes(image))
    settings.CUSTODIA_IMPORT_ROOTS = [tmp_path]
    api.as_user(demo.custodian)
    response = api.post("/api/evidence/import", {"case": demo.case.pk, "paths": [str(damaged)]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["format"] == "vhd" and body["state"] == "sealed"
    assert any("fails its checksum" in warning for warning in body["parent_chain"]["warnings"])
    run = run_now(demo, body["id"])
    assert run.state == "done", run.failure
    from search.models import Trace

    assert Trace.objects.filter(evidence_id=body["id"], name="FIRST.TXT").exists()
