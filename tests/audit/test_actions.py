"""The registry of audit actions: every name written is declared once, with what it means."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from audit.actions import ACTIONS, UndeclaredAuditAction, filter_choices, is_declared
from audit.services import audit_record

ROOT = Path(__file__).resolve().parents[2]
APPS = ("audit", "cases", "evidence", "search", "custodia")


def written_action_literals() -> list[tuple[str, str]]:
    """Every string literal the code passes as ``action=`` (also through helpers such as
    ``record_failed`` and ``_audit_link``), with where it is written."""
    found = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if not isinstance(node, ast.Call):
                    continue
                for keyword in node.keywords:
                    if keyword.arg != "action":
                        continue
                    values = [keyword.value]
                    if isinstance(keyword.value, ast.IfExp):  # "user.activate" if active else "user.deactivate"
                        values = [keyword.value.body, keyword.value.orelse]
                    for value in values:
                        if isinstance(value, ast.Constant) and isinstance(value.value, str):
                            found.append((value.value, f"{path.relative_to(ROOT)}:{node.lineno}"))
    return found


def test_every_action_the_code_writes_is_declared():
    literals = written_action_literals()
    assert len(literals) >= 38  # the scan finds the code's actions, not nothing
    undeclared = [f"{name} ({where})" for name, where in literals if not is_declared(name)]
    assert not undeclared, f"declare these in audit/actions.py: {undeclared}"


def test_no_action_is_declared_twice():
    from audit.actions import DECLARED as declared

    names = [action.name for action in declared]
    assert len(names) == len(set(names)), sorted(name for name in names if names.count(name) > 1)


def test_every_declared_action_says_what_it_means():
    for action in ACTIONS.values():
        assert action.description.strip().endswith("."), action.name
        assert "\n" not in action.description, action.name


def test_requests_are_declared_by_their_route():
    assert is_declared("trace-detail.access")
    assert is_declared("request.access")
    assert not is_declared("trace-detail.acces")
    assert not is_declared("Case.Access; drop")


@pytest.mark.django_db
def test_writing_an_undeclared_action_is_refused_and_writes_nothing():
    from audit.models import AuditEvent

    before = AuditEvent.objects.count()
    with pytest.raises(UndeclaredAuditAction):
        audit_record(action="evidence.destroyed")
    assert AuditEvent.objects.count() == before


def test_the_audit_filter_lists_the_declared_actions():
    from cases.forms import AuditFilterForm

    html = str(AuditFilterForm()["action"])
    assert 'list="audit-actions"' in html
    for name in filter_choices():
        assert f'<option value="{name}">' in html
    assert "&lt;route&gt;" not in html
