"""Shared fixtures: the demo organisation with one user per role, API clients, and real servers."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from cases.models import Case, User

DEMO_PASSWORD = "demo-password-for-tests"
ROLE_NAMES = ("custodian", "investigator", "detective", "prosecutor")


@dataclass
class Demo:
    case: Case
    other_case: Case
    users: dict[str, User]

    def __getattr__(self, name: str) -> User:
        try:
            return self.users[name]
        except KeyError:
            raise AttributeError(name) from None


@pytest.fixture
def demo(db, monkeypatch) -> Demo:
    """Demo Police (custodian, investigator, detective, prosecutor, orgadmin) and Other Agency (outsider)."""
    monkeypatch.setenv("DEMO_PASSWORD", DEMO_PASSWORD)
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    users = {user.username: user for user in User.objects.all()}
    return Demo(
        case=Case.objects.get(reference="DEMO-2026-001"),
        other_case=Case.objects.get(reference="OA-2026-017"),
        users=users,
    )


@pytest.fixture
def api():
    """An API client; ``api.as_user(user)`` logs in through a real bearer token."""

    class Client(APIClient):
        def as_user(self, user: User | None) -> Client:
            from cases.services import token_issue

            if user is None:
                self.credentials()
                return self
            _, raw = token_issue(user=user, name="tests", scope="write")
            self.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
            return self

    return Client()


def _append_only_triggers(direction: str) -> None:
    from importlib import import_module

    from django.db import connection

    migration = import_module("audit.migrations.0002_append_only_triggers")
    vendor = "POSTGRES" if connection.vendor == "postgresql" else "SQLITE"
    statements = getattr(migration, f"{vendor}_DOWN")
    if direction == "up":
        statements = [*statements, *getattr(migration, f"{vendor}_UP")]
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def _flush_despite_append_only_triggers() -> None:
    """pytest-django empties a committing test database with ``flush``, which the append-only triggers
    rightly refuse. For that clean-up only, and only in the test run, lift them and put them back."""
    from django.test import testcases

    original = testcases.TransactionTestCase._fixture_teardown
    if getattr(original, "lifts_audit_triggers", False):
        return

    def _fixture_teardown(self):
        from django.core.management.base import CommandError

        _append_only_triggers("down")
        try:
            # A live-server thread may still be answering a request the closed browser made (an HTMX
            # poll): PostgreSQL then picks the flush's TRUNCATE as a deadlock victim. That request
            # ends within moments, so the flush is tried again rather than failing the test.
            for attempt in range(5):
                try:
                    original(self)
                    break
                except CommandError as error:
                    if attempt == 4 or "deadlock" not in str(error.__cause__):
                        raise
                    time.sleep(0.5)
        finally:
            _append_only_triggers("up")

    _fixture_teardown.lifts_audit_triggers = True
    testcases.TransactionTestCase._fixture_teardown = _fixture_teardown


def pytest_configure(config):
    _flush_despite_append_only_triggers()


@pytest.fixture(autouse=True)
def audit_checkpoint_archive(settings, monkeypatch) -> str:
    """Each test its own checkpoint archive: the evidence store outlives a test's database, and its
    checkpoints are write-once, so one test's checkpoints must not meet another test's trail. The
    environment carries it to the worker processes a test starts."""
    prefix = f"audit/checkpoints-{uuid.uuid4().hex[:12]}/"
    settings.CUSTODIA_AUDIT_ARCHIVE_OPTIONS = {**settings.CUSTODIA_AUDIT_ARCHIVE_OPTIONS, "prefix": prefix}
    monkeypatch.setenv("CUSTODIA_AUDIT_CHECKPOINT_PREFIX", prefix)
    return prefix


@pytest.fixture
def committing_db(transactional_db):
    """A database whose transactions really commit (for threads, worker processes and the live server)."""
    return None
