"""The privacy model wired in (issue #19): audit rows replaced before they are hashed, secondary identities,
the durable look-up table, the policy-change row, the log filter on every handler, and the "privacy diff".

The suite's settings keep every tag public (PR) so that the other tests read the values they always read;
these tests set the production default (``audit.privacy.DEFAULT_POLICY``, NI for any unmapped tag) and the
database look-up table.
"""

from __future__ import annotations

import ast
import io
import json
import logging
import logging.config
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from audit import context
from audit.models import AuditEvent, PrivacyLookupEntry
from audit.privacy import DEFAULT_POLICY, Tagged, derived_keys_from_settings, lookup_from_settings, privacy_session
from audit.replacement import PRIVACY_DETAILS_KEY, re_identify_field, replaced_fields
from audit.services import POLICY_CHANGED_ACTION, audit_record, record_policy_change
from audit.verify import verify_chain
from cases.services import membership_add
from tests.factories import UserFactory

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CLIENT = "203.0.113.77"


@pytest.fixture
def production_policy(settings):
    settings.CUSTODIA_PRIVACY_POLICY = dict(DEFAULT_POLICY)
    settings.CUSTODIA_PRIVACY_LOOKUP = "audit.privacy_store.DatabaseLookupTable"
    return settings


def rows_after(sequence: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(sequence__gt=sequence).order_by("sequence"))


def last_sequence() -> int:
    return AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


def re_identify(event: AuditEvent, path: str) -> str:
    return re_identify_field(
        actor=event.actor,
        client_address=event.client_address,
        details=event.details,
        path=path,
        keys=derived_keys_from_settings(),
        lookup=lookup_from_settings(),
    )


def test_the_chain_covers_the_replaced_row_and_each_field_re_identifies(demo, production_policy):
    token = context.activate(context.AuditContext(client_address=CLIENT))
    try:
        with privacy_session("session-a"):
            event = audit_record(
                action="search.saved.save",
                actor=demo.detective,
                case_id=demo.case.pk,
                details={
                    "query": Tagged("query", "Jan Jansen"),
                    "reference": Tagged("case", demo.case.reference),
                    "files": [Tagged("file_name", "diary.docx"), Tagged("file_name", "diary.docx")],
                    "who": Tagged("suspect", "Jan"),  # a tag nobody mapped
                    "count": 3,
                },
            )
    finally:
        context.deactivate(token)
    stored = AuditEvent.objects.get(sequence=event.sequence)
    text = json.dumps([stored.actor, stored.client_address, stored.details])
    for clear in ("detective", CLIENT, "Jan Jansen", demo.case.reference, "diary"):
        assert clear not in text
    assert stored.details["who"] == "" and stored.details["count"] == 3
    assert stored.details["files"] == ["1", "1"]  # MR: one number per value within the row
    assert verify_chain().ok  # the hash covers the stored, replaced row
    fields = replaced_fields(stored.details)
    assert fields["actor"] == (f"actor.org{demo.detective.organization_id}", "ER")
    assert fields["details.query"] == ("query", "SR")
    assert re_identify(stored, "actor") == "detective"
    assert re_identify(stored, "client_address") == CLIENT
    assert re_identify(stored, "details.query") == "Jan Jansen"  # the session is kept, encrypted, in the row
    assert re_identify(stored, "details.reference") == demo.case.reference
    assert re_identify(stored, "details.files.0") == "diary.docx"  # through the database's look-up table
    assert PrivacyLookupEntry.objects.filter(message_id=stored.details[PRIVACY_DETAILS_KEY]["message"]).count() == 1


def test_an_actor_is_one_pseudonym_per_organisation(demo, production_policy):
    first = audit_record(action="auth.login", actor=demo.detective)
    again = audit_record(action="auth.login", actor=demo.detective)
    other = audit_record(action="auth.login", actor=demo.custodian)
    assert first.actor == again.actor != "detective"
    assert other.actor not in (first.actor, "custodian")
    # The same username in another organisation is an unrelated pseudonym.
    elsewhere = audit_record(action="auth.login", actor=demo.detective, organization_id=demo.outsider.organization_id)
    assert elsewhere.actor != first.actor
    assert audit_record(action="audit.verify").actor == "system"


def test_under_the_suites_policy_rows_are_as_before(demo):
    event = audit_record(action="auth.login", actor=demo.detective, details={"username": Tagged("user", "x")})
    assert (event.actor, event.details) == ("detective", {"username": "x"})


def test_a_policy_change_is_recorded_once(demo, production_policy):
    production_policy.CUSTODIA_PRIVACY_RECORD_POLICY = True
    before = last_sequence()
    audit_record(action="auth.login", actor=demo.detective)
    audit_record(action="auth.login", actor=demo.detective)
    changes = AuditEvent.objects.filter(sequence__gt=before, action=POLICY_CHANGED_ACTION)
    assert changes.count() == 1
    first = changes.get()
    assert first.details["policy"]["query"] == "SR" and first.details["default"] == "NI"
    with override_settings(CUSTODIA_PRIVACY_POLICY={**DEFAULT_POLICY, "query": "SI"}):
        assert record_policy_change()
        assert not record_policy_change()
    second = AuditEvent.objects.filter(action=POLICY_CHANGED_ACTION).order_by("-sequence").first()
    assert second.details["previous"] == first.details["digest"] != second.details["digest"]
    assert verify_chain().ok


def test_every_log_handler_carries_the_privacy_filter():
    config = django_settings.LOGGING
    assert config["filters"]["privacy"]["()"] == "audit.privacy.PrivacyLogFilter"
    for name, handler in config["handlers"].items():
        assert "privacy" in handler.get("filters", []), name


def configured_handler_output(settings) -> tuple[logging.Logger, io.StringIO]:
    """A logger whose one handler is configured as settings.LOGGING's console handler (its filters
    included), writing to a buffer."""
    buffer = io.StringIO()
    config = json.loads(json.dumps(settings.LOGGING))
    config["handlers"] = {
        "buffer": {**config["handlers"]["console"], "class": "logging.StreamHandler", "stream": buffer}
    }
    config["root"] = {"handlers": [], "level": "INFO"}
    config["loggers"] = {"privacy-diff": {"handlers": ["buffer"], "level": "INFO", "propagate": False}}
    logging.config.dictConfig(config)
    return logging.getLogger("privacy-diff"), buffer


# --- the privacy diff ----------------------------------------------------------------------------------

# Details keys that hold a username, a query, a case reference or name, a client address, a recipient, a file
# or path: every audit call site must tag them (a Tagged(...) value, or a comprehension of them).
CONFIDENTIAL_KEYS = frozenset(
    {
        "username",
        "user",
        "requested_by",
        "query",
        "reference",
        "title",
        "label",
        "recipient",
        "client",
        "client_address",
        "paths",
        "device",
        "seized_from",
        "seized_by",
        "email",
        "name_id",
    }
)


def _is_tagged(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):
        return getattr(node.func, "id", getattr(node.func, "attr", "")) == "Tagged"
    if isinstance(node, ast.ListComp):
        return _is_tagged(node.elt)
    if isinstance(node, ast.IfExp):
        return _is_tagged(node.body) and (_is_tagged(node.orelse) or isinstance(node.orelse, ast.Dict))
    return False


def _untagged(node: ast.AST, where: str) -> list[str]:
    found = []
    for child in ast.walk(node):
        if not isinstance(child, ast.Dict):
            continue
        for key, value in zip(child.keys, child.values, strict=True):
            if isinstance(key, ast.Constant) and key.value in CONFIDENTIAL_KEYS and not _is_tagged(value):
                if isinstance(value, ast.Dict):
                    continue  # a nested dict: its own keys are checked
                found.append(f"{where}:{child.lineno} {key.value!r}")
    return found


def test_every_audit_call_site_tags_its_confidential_values():
    """Over every audit action written anywhere in the code (``audit_record(...)`` and the views'
    ``add_details(...)``): no username, query, case reference, client address, recipient or path in clear."""
    problems, calls = [], 0
    for path in PROJECT_ROOT.glob("*/**/*.py"):
        relative = path.relative_to(PROJECT_ROOT)
        if relative.parts[0] in {".venv", "node_modules", "tests", "bench"} or "migrations" in relative.parts:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name not in {"audit_record", "add_details", "_audit_link"}:
                continue
            calls += 1
            for keyword in node.keywords:
                if name == "add_details" and keyword.arg in CONFIDENTIAL_KEYS and not _is_tagged(keyword.value):
                    problems.append(f"{relative}:{node.lineno} {keyword.arg!r}")
                elif keyword.arg == "details":
                    problems += _untagged(keyword.value, str(relative))
    assert calls > 50
    assert problems == []


def test_privacy_diff_over_a_working_day(demo, production_policy, api, client):
    """A day's work through the API and the pages under the production policy: no row written and no log
    line carries a username, a query, a case reference or the client's address in clear."""
    logger, buffer = configured_handler_output(production_policy)
    before = last_sequence()
    clear = {"custodian", "detective", "prosecutor", "Jan Jansen", "OP-ELEPHANT-7", CLIENT, "lawyer@example.org"}

    api.as_user(demo.custodian)
    api.defaults["REMOTE_ADDR"] = CLIENT
    response = api.post("/api/cases/", {"reference": "OP-ELEPHANT-7", "title": "Operation elephant"}, format="json")
    assert response.status_code == 201, response.content
    case_id = response.json()["id"]
    case = demo.case.__class__.objects.get(pk=case_id)
    # (as investigator: the demo's usernames are its role names, and a role is not confidential)
    membership_add(actor=demo.custodian, case=case, user=demo.detective, role="investigator")
    api.as_user(demo.detective)
    api.defaults["REMOTE_ADDR"] = CLIENT
    assert api.post(f"/api/cases/{case_id}/traces/search", {"query": "Jan Jansen"}, format="json").status_code == 200
    saved = api.post(f"/api/cases/{case_id}/searches/", {"name": "Jan Jansen", "query": "Jan Jansen"}, format="json")
    assert saved.status_code in (200, 201), saved.content
    # A page request in a session, a refused login and a read of the case's audit trail.
    client.force_login(demo.detective)
    client.get(f"/cases/{case_id}/traces/", {"q": "Jan Jansen"}, REMOTE_ADDR=CLIENT)
    client.logout()
    client.post("/login/", {"username": "prosecutor", "password": "wrong"}, REMOTE_ADDR=CLIENT)
    outsider = UserFactory(organization=demo.custodian.organization, username="lawyer@example.org")
    outsider.save()
    logger.info("%s searched %s in %s", Tagged("user", "detective"), Tagged("query", "Jan Jansen"), "OP")
    logger.info("[case>OP-ELEPHANT-7] from [client_address>%s]", CLIENT)

    rows = rows_after(before)
    assert {row.action for row in rows} >= {"case.create", "case.member.add", "search.saved.save", "auth.login"}
    written = json.dumps(
        [[row.actor, row.client_address, row.details, row.target_id] for row in rows], ensure_ascii=False
    )
    leaks = sorted(value for value in clear if value in written)
    assert leaks == [], leaks
    lines = buffer.getvalue()
    assert "[user>" in lines and "[query>" in lines and "[case>" in lines
    assert sorted(value for value in clear if value in lines) == []
    assert verify_chain().ok


def test_the_log_filter_scopes_a_request_to_its_session(demo, production_policy, client):
    """The middleware sets the request's privacy session: one user's SR query is the same value within the
    session, and another after logging in again."""
    client.force_login(demo.detective)
    before = last_sequence()
    for _ in range(2):
        client.get(f"/cases/{demo.case.pk}/traces/", {"q": "elephant"})
    client.logout()
    client.force_login(demo.detective)
    client.get(f"/cases/{demo.case.pk}/traces/", {"q": "elephant"})
    searches = [row for row in rows_after(before) if row.action == "trace-search.access" and "query" in row.details]
    queries = [row.details["query"] for row in searches]
    assert len(queries) == 3
    assert queries[0] == queries[1] != queries[2]
    assert not any(re.search("elephant", query) for query in queries)
    assert {re_identify(row, "details.query") for row in searches} == {"elephant"}


def test_a_new_member_of_another_organisation_is_not_correlated(demo, production_policy):
    """The same username in two organisations: two unrelated pseudonyms (secondary identities)."""
    twin = UserFactory(organization=demo.outsider.organization, username="detective-twin")
    twin.save()
    mine = audit_record(action="auth.login", actor=demo.detective)
    theirs = audit_record(action="auth.login", actor=demo.detective, organization_id=twin.organization_id)
    assert mine.actor != theirs.actor
    assert re_identify(mine, "actor") == re_identify(theirs, "actor") == "detective"


def _report_events(node) -> list[dict]:
    if isinstance(node, dict):
        found = [node] if {"sequence", "actor", "action"} <= set(node) else []
        return found + [event for value in node.values() for event in _report_events(value)]
    if isinstance(node, list):
        return [event for value in node for event in _report_events(value)]
    return []


@pytest.mark.parametrize(("policy", "named"), [({"actor": "PR", "user": "PR"}, True), (DEFAULT_POLICY, False)])
def test_a_custody_report_names_people_only_where_the_policy_allows(demo, api, settings, policy, named):
    settings.CUSTODIA_PRIVACY_POLICY = dict(policy)
    settings.CUSTODIA_PRIVACY_LOOKUP = "audit.privacy_store.DatabaseLookupTable"
    before = last_sequence()
    newcomer = UserFactory(organization=demo.custodian.organization, username="newcomer")
    newcomer.save()
    membership_add(actor=demo.custodian, case=demo.case, user=newcomer, role="detective")
    api.as_user(demo.prosecutor)
    report = api.get(f"/api/cases/{demo.case.pk}/custody/report.json")
    assert report.status_code == 200, report.content
    events = [event for event in _report_events(report.json()) if event["sequence"] > before]
    added = [event for event in events if event["action"] == "case.member.add"]
    assert len(added) == 1
    assert (added[0]["actor"] == "custodian") is named
    assert (added[0]["details"]["user"] == "newcomer") is named
