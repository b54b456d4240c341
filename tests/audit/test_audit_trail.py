"""The audit trail: one row per change in the same transaction, append-only in the database, verifiable,
linear under concurrent writers, and no change without its audit row."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, close_old_connections, connection, transaction

from audit.actions import declare
from audit.chain import GENESIS_HASH, row_hash
from audit.models import AuditEvent
from audit.services import audit_record
from audit.verify import verify_chain, verify_rows
from cases.models import Case


def last_sequence() -> int:
    return AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


def test_each_service_write_leaves_exactly_one_row(demo, api):
    api.as_user(demo.custodian)
    before = last_sequence()
    response = api.post("/api/cases/", {"reference": "2026-0042", "title": "Burglary"}, format="json")
    assert response.status_code == 201, response.content
    creates = AuditEvent.objects.filter(sequence__gt=before, action="case.create")
    assert creates.count() == 1
    assert creates.get().case_id == response.json()["id"]
    before = last_sequence()
    api.patch(f"/api/cases/{response.json()['id']}/", {"priority": "urgent"}, format="json")
    updates = AuditEvent.objects.filter(sequence__gt=before, action="case.update")
    assert updates.count() == 1
    assert updates.get().details == {"before": {"priority": "normal"}, "after": {"priority": "urgent"}}


@pytest.mark.parametrize("statement", ["UPDATE audit_auditevent SET actor = 'mallory'", "DELETE FROM audit_auditevent"])
def test_database_refuses_update_and_delete(demo, statement):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    assert verify_chain().ok


def test_orm_update_and_delete_are_refused_too(demo):
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(sequence=1).update(action="nothing.happened")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(sequence=1).delete()


def _disable_append_only_triggers(cursor) -> None:
    if connection.vendor == "postgresql":
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_update_delete")
    else:
        cursor.execute("DROP TRIGGER audit_event_no_update")
        cursor.execute("DROP TRIGGER audit_event_no_delete")


def run_audit_verify() -> tuple[int, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("audit_verify", stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code), out.getvalue() + err.getvalue()
    return 0, out.getvalue() + err.getvalue()


def test_audit_verify_reports_ok(demo):
    code, output = run_audit_verify()
    assert code == 0
    # #15: the line now goes on to name the checkpoint it was verified against (none yet here).
    assert output.strip().startswith(f"OK {AuditEvent.objects.count()} events, ")


def test_edit_behind_the_triggers_back_is_found_at_its_sequence(demo):
    target = AuditEvent.objects.order_by("sequence")[3].sequence
    with connection.cursor() as cursor:
        _disable_append_only_triggers(cursor)
        cursor.execute("UPDATE audit_auditevent SET actor = 'mallory' WHERE sequence = %s", [target])
    code, output = run_audit_verify()
    assert code == 1
    assert output.strip() == f"BROKEN at sequence {target}: edited row: its content does not match its hash"


def test_deleted_row_is_a_gap(demo):
    target = AuditEvent.objects.order_by("sequence")[2].sequence
    with connection.cursor() as cursor:
        _disable_append_only_triggers(cursor)
        cursor.execute("DELETE FROM audit_auditevent WHERE sequence = %s", [target])
    code, output = run_audit_verify()
    assert code == 1
    assert output.startswith(f"BROKEN at sequence {target}: gap")


def _rows(count: int) -> list[dict]:
    rows, previous = [], GENESIS_HASH
    for sequence in range(1, count + 1):
        row = {
            "sequence": sequence,
            "occurred_at": "2026-11-23T10:00:00+00:00",
            "actor_id": 1,
            "actor": "custodian",
            "organization_id": 1,
            "action": "case.update",
            "target_type": "case",
            "target_id": "1",
            "case_id": 1,
            "outcome": "ok",
            "request_id": f"r{sequence}",
            "client_address": "127.0.0.1",
            "details": {"n": sequence},
        }
        row["prev_hash"], row["hash"] = previous, row_hash(row, previous)
        previous = row["hash"]
        rows.append(row)
    return rows


def test_verify_rows_names_reordering_and_broken_links():
    rows = _rows(6)
    assert verify_rows(rows).ok
    swapped = [*rows[:2], {**rows[3], "sequence": 3}, {**rows[2], "sequence": 4}, *rows[4:]]
    report = verify_rows(swapped)
    assert (report.ok, report.first_bad_sequence) == (False, 3)
    assert report.problem.startswith("reordering")
    out_of_order = [rows[0], rows[2], rows[1]]
    assert verify_rows(out_of_order).problem.startswith("gap")
    relinked = [*rows[:4], {**rows[4], "prev_hash": "0" * 64}]
    relinked[4]["hash"] = row_hash(relinked[4], relinked[4]["prev_hash"])
    report = verify_rows(relinked)
    assert (report.first_bad_sequence, report.problem.split(":")[0]) == (5, "broken link")


@pytest.fixture
def fail_audit_writes(db):
    """Call it to make every INSERT into the audit table fail, as a full disk or a lost database would."""
    return _install_failing_insert_trigger


def _install_failing_insert_trigger() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION audit_event_fail() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'simulated audit failure'; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER audit_event_fail BEFORE INSERT ON audit_auditevent "
                "FOR EACH ROW EXECUTE FUNCTION audit_event_fail()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER audit_event_fail BEFORE INSERT ON audit_auditevent "
                "BEGIN SELECT RAISE(ABORT, 'simulated audit failure'); END"
            )


@pytest.mark.parametrize("client_kind", ["api", "browser"])
def test_a_change_whose_audit_row_fails_is_refused_and_rolled_back(demo, api, client, fail_audit_writes, client_kind):
    api.as_user(demo.custodian)
    client.force_login(demo.custodian)
    fail_audit_writes()
    if client_kind == "api":
        response = api.patch(f"/api/cases/{demo.case.pk}/", {"title": "Unaudited"}, format="json")
        assert response.json()["error"] == "audit_unavailable"
    else:
        response = client.post(
            f"/cases/{demo.case.pk}/edit/", {"title": "Unaudited", "status": "open", "priority": "high"}
        )
    assert response.status_code == 503
    assert Case.objects.get(pk=demo.case.pk).title != "Unaudited"


def test_a_read_whose_audit_row_fails_is_refused(demo, api, fail_audit_writes):
    api.as_user(demo.detective)
    fail_audit_writes()
    response = api.get(f"/api/cases/{demo.case.pk}/")
    assert response.status_code == 503
    assert "audit" in response.json()["detail"]


def test_chain_stays_linear_under_concurrent_writers(committing_db):
    writers, per_writer = 4, 15
    declare("test.concurrent", "One of many rows written at once by the concurrency test.")
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(number: int) -> None:
        try:
            start.wait()
            for index in range(per_writer):
                with transaction.atomic():
                    audit_record(action="test.concurrent", details={"writer": number, "index": index})
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    sequences = list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, writers * per_writer + 1))
    assert verify_chain().ok
