"""Issue #20 item 12: a case at a glance (counts by what the role shows) and "needs your attention" per
role, over the API and as the case page's partial."""

from __future__ import annotations

from evidence.models import Evidence, EvidenceState
from search.models import ExtractionRun, Trace, TraceTag


def overview(api, demo, username):
    api.as_user(demo.users[username])
    response = api.get(f"/api/cases/{demo.case.pk}/overview")
    assert response.status_code == 200, response.content
    return response.json()


def make_case_state(demo):
    def item(label, state):
        return Evidence.objects.create(
            case=demo.case, label=label, kind="disk_image", registered_by=demo.custodian, wrapped_key=b"-", state=state
        )

    item("Phone, half uploaded", EvidenceState.RECEIVING)
    item("USB stick, sealed", EvidenceState.SEALED)
    laptop = item("Laptop, extracted", EvidenceState.EXTRACTED)
    run = ExtractionRun.objects.create(evidence=laptop, state="done")
    root = f"{laptop.pk}:0"
    traces = [
        Trace(uid=root, parent_uid="", name="laptop.E01", path="/laptop.E01", types=["image"], ordinal=0),
        Trace(
            uid=f"{root}-1",
            parent_uid=root,
            name="C:",
            path="/laptop.E01/C:",
            types=["encryptedVolume"],
            properties={"encryptedVolume.type": "bitlocker", "encryptedVolume.unlocked": False},
            ordinal=1,
        ),
    ]
    for trace in traces:
        trace.evidence, trace.case, trace.run = laptop, demo.case, run
    Trace.objects.bulk_create(traces)
    TraceTag.objects.create(
        trace=Trace.objects.get(uid=root), case=demo.case, name="relevant", created_by=demo.detective
    )


def test_counts_and_attention_follow_the_role(demo, api):
    make_case_state(demo)
    custodian = overview(api, demo, "custodian")
    assert custodian["counts"] == {"evidence": 3, "locked_volumes": 1, "pending_approvals": 0}
    texts = [item["text"] for item in custodian["attention"]]
    assert "Finish the upload of Phone, half uploaded" in texts
    assert any("C: of Laptop, extracted is locked: escrow its secret" in text for text in texts)
    assert not any(text.startswith("Extract the traces") for text in texts)

    investigator = overview(api, demo, "investigator")
    assert investigator["counts"]["traces"] == 2 and investigator["counts"]["tagged"] == 1
    texts = [item["text"] for item in investigator["attention"]]
    assert "Extract the traces of USB stick, sealed" in texts
    assert not any(text.startswith("Finish the upload") for text in texts)

    detective = overview(api, demo, "detective")
    assert set(detective["counts"]) == {"evidence", "locked_volumes", "traces", "tagged"}
    assert all(item["kind"] not in ("upload", "extract") for item in detective["attention"])

    # The org admin manages members but sees no evidence or traces: no counts of them.
    assert overview(api, demo, "orgadmin") == {"counts": {}, "attention": []}
    api.as_user(demo.users["outsider"])
    assert api.get(f"/api/cases/{demo.case.pk}/overview").status_code == 404


def test_the_case_page_partial_shows_the_same(demo, client):
    make_case_state(demo)
    client.force_login(demo.custodian)
    html = client.get(f"/cases/{demo.case.pk}/overview/").content.decode()
    assert "Needs your attention" in html and "Finish the upload of Phone, half uploaded" in html
    assert 'data-count="evidence">3<' in html
