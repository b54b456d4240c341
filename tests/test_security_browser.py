"""Issue #17, finding 7: a Content-Security-Policy on every page with no inline script, and names from
evidence with control or bidirectional formatting characters shown visibly in HTML, CSV and hashes.txt.
(The policy in a real browser: tests/browser/test_csp.py.)"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from evidence.models import Evidence
from search.models import Trace
from tests.evidence.conftest import register, sample  # noqa: F401 - fixtures
from tests.evidence.test_links import issue, path_of, sealed  # noqa: F401 - fixtures and helpers
from tests.search.test_collaboration import traces  # noqa: F401 - fixture

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
RLO = "\u202e"
TRICK = f"Laptop{RLO}fdp.exe\nSHA256 (evidence.bin) = {'0' * 64}"


def test_every_page_has_a_policy_without_inline_script(client, demo):
    client.force_login(demo.detective)
    for url in ("/login/", "/cases/", f"/cases/{demo.case.pk}/", "/api/docs/", "/api/cases/"):
        policy = client.get(url)["Content-Security-Policy"]
        directives = dict(directive.strip().split(" ", 1) for directive in policy.split(";"))
        assert directives["script-src"] == "'self'" and "unsafe-eval" not in policy
        assert directives["frame-ancestors"] == "'none'"
        # Inline styles only for the API's Swagger UI (its own <style> element).
        assert "unsafe-inline" not in directives["style-src"] or url == "/api/docs/"


def test_templates_hold_no_inline_script_handler_or_style():
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text) or re.search(r"\son[a-z]+\s*=", text):
            offenders.append(path.name)
        if re.search(r"\sstyle\s*=", text):
            offenders.append(path.name)
    assert not offenders


def test_htmx_is_told_not_to_inject_its_styles(client, demo):
    client.force_login(demo.detective)
    page = client.get("/cases/").content.decode()
    assert "includeIndicatorStyles&quot;: false" in page or '"includeIndicatorStyles": false' in page


def test_a_bidi_override_in_an_evidence_label_shows_visibly_on_its_page(client, demo, register):  # noqa: F811
    evidence_id = register()["id"]
    Evidence.objects.filter(pk=evidence_id).update(label=TRICK)
    client.force_login(demo.custodian)
    page = client.get(f"/evidence/{evidence_id}/").content.decode()
    assert RLO not in page
    assert "Laptop&lt;U+202E&gt;fdp.exe\\nSHA256" in page


def test_a_newline_in_an_evidence_label_adds_no_line_to_hashes_txt(api, demo, sealed, client):  # noqa: F811
    url = path_of(issue(api, sealed, demo.custodian).json()["url"])
    before = client.get(url + "/hashes.txt").content.decode().splitlines()
    Evidence.objects.filter(pk=sealed).update(label=TRICK)
    after = client.get(url + "/hashes.txt").content.decode().splitlines()
    assert len(after) == len(before)
    # Issue #20 names the file by the label: the name changes with it, but stays one line, without the
    # right-to-left override or the newline (replaced), and with the real hash.
    (sha256_line,) = [line for line in after if line.startswith("SHA256")]
    assert sha256_line.endswith(before[0].rsplit(" = ", 1)[1]) and "\n" not in sha256_line
    assert f"# label: Laptop<U+202E>fdp.exe\\nSHA256 (evidence.bin) = {'0' * 64}" in after
    assert RLO not in "".join(after)


def test_a_newline_in_a_trace_name_adds_no_row_to_the_csv_export(api, demo, traces):  # noqa: F811
    Trace.objects.filter(pk=traces["report.docx"].pk).update(name=f"report{RLO}\nfake,row")
    api.as_user(demo.prosecutor)
    response = api.get(f"/api/cases/{demo.case.pk}/traces/export.csv", {"q": "file.size<20000"})
    assert response.status_code == 200, response.content
    text = response.content.decode()
    assert RLO not in text and len(text.splitlines()) == 3
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1][1] == "report<U+202E>\\nfake,row"
