"""Issue #20 item 1: evidence by its label wherever traces show it: the facets, the trace page and API,
the CSV export, completion of ``evidence:`` and the case's audit rows."""

from __future__ import annotations

import csv
import io

from search.models import Trace
from tests.evidence.conftest import register  # noqa: F401 (a fixture)
from tests.search.test_search_backends import traces  # noqa: F401 (a fixture)


def test_trace_api_page_and_csv_name_the_evidence(demo, api, client, traces):  # noqa: F811
    traces.label = "Laptop of J. Doe"
    traces.save(update_fields=["label"])
    trace = Trace.objects.get(name="Passwords.txt")
    api.as_user(demo.detective)
    body = api.get(f"/api/cases/{demo.case.pk}/traces/{trace.uid}").json()
    assert body["evidence_label"] == "Laptop of J. Doe" and body["evidence"] == str(traces.pk)
    rows = list(
        csv.reader(
            io.StringIO(api.get(f"/api/cases/{demo.case.pk}/traces/export.csv", {"q": "hunter2"}).content.decode())
        )
    )
    assert rows[0][-1] == "evidence" and rows[1][-1] == "Laptop of J. Doe"

    client.force_login(demo.detective)
    page = client.get(f"/cases/{demo.case.pk}/traces/{trace.uid}/").content.decode()
    assert "Laptop of J. Doe" in page
    results = client.get(f"/cases/{demo.case.pk}/traces/", {"q": "hunter2"}).content.decode()
    facets = results[results.index('class="facets"') : results.index("</aside>")]
    assert "Laptop of J. Doe" in facets and str(traces.pk) not in facets.replace(f"evidence%3A{traces.pk}", "")


def test_completion_offers_evidence_by_label(demo, api, traces):  # noqa: F811
    traces.label = "Laptop of J. Doe"
    traces.save(update_fields=["label"])
    api.as_user(demo.detective)
    found = api.get(f"/api/cases/{demo.case.pk}/traces/complete", {"prefix": "evidence:lap"}).json()["completions"]
    assert {"value": f"evidence:{traces.pk}", "kind": "evidence", "label": "Laptop of J. Doe"} in found
    inside = api.get(f"/api/cases/{demo.case.pk}/traces/complete", {"prefix": "evidence:doe"}).json()["completions"]
    assert [entry["label"] for entry in inside] == ["Laptop of J. Doe"]
    assert api.get(f"/api/cases/{demo.case.pk}/traces/complete", {"prefix": "evidence:zzz"}).json()["completions"] == []


def test_audit_rows_name_evidence_by_label(demo, client, register):  # noqa: F811
    body = register(label="Phone, black")
    client.force_login(demo.custodian)
    page = client.get(f"/cases/{demo.case.pk}/audit/").content.decode()
    assert f"Phone, black ({body['id']})" in page
