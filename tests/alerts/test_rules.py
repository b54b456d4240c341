"""Every alert rule fires on its event and on nothing else (issue #19 item 6), and each hand-off reaches the
next person (item 7): table-driven, each row writing its events through the real audit writer."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from unittest import mock

import pytest
from django.db import DatabaseError

from alerts import rules, tasks
from alerts.models import Alert, Category
from alerts.services import notify_handoff
from audit import context
from audit.actions import ACTIONS
from audit.models import AuditEvent
from audit.privacy import DEFAULT_POLICY, derived_keys_from_settings, re_identify
from audit.services import audit_record
from cases.models import CaseMembership, Role, User
from custodia.errors import AuditUnavailable

EVIDENCE = str(uuid.UUID(int=7))


def as_client(address: str):
    """An audit context as the middleware makes one for a request from ``address``."""
    return context.AuditContext(client_address=address)


def write(action: str, *, client: str = "192.0.2.10", **fields) -> AuditEvent:
    token = context.activate(as_client(client))
    try:
        return audit_record(action=action, **fields)
    finally:
        context.deactivate(token)


@dataclass(frozen=True)
class Row:
    name: str
    expected: frozenset[str]  # the alert kinds the events raise, and nothing else
    writes: Callable  # (demo, settings) -> None
    recipients: frozenset[str] = frozenset()  # usernames it reaches (empty: not checked)

    def __str__(self) -> str:
        return self.name


def integrity(demo, settings):
    write(
        "evidence.verify",
        outcome="failed",
        target_type="evidence",
        target_id=EVIDENCE,
        case_id=demo.case.pk,
        details={"ok": False, "mismatches": [3, 9]},
    )


def trail(problem: str):
    def writes(demo, settings):
        write("audit.verify", outcome="failed", target_type="audit_chain", details={"ok": False, "problem": problem})

    return writes


def reveal(demo, settings):
    write(
        "evidence.secret.reveal",
        actor=demo.investigator,
        target_type="evidence",
        target_id=EVIDENCE,
        case_id=demo.case.pk,
        details={"secret_id": 1, "kind": "bitlocker_recovery", "name": "C:"},
    )


def refusals(count: int):
    def writes(demo, settings):
        for _ in range(count):
            write("case-detail.access", actor=demo.outsider, outcome="denied", case_id=demo.case.pk)

    return writes


def lockout(demo, settings):
    write("auth.lockout", outcome="denied", details={"username": "detective", "client": "198.51.100.7"})


def link_uses(addresses: list[str]):
    def writes(demo, settings):
        for address in addresses:
            write(
                "link.use",
                client=address,
                target_type="evidence",
                target_id=EVIDENCE,
                case_id=demo.case.pk,
                organization_id=demo.case.organization_id,
                details={"link": 41, "kind": "token", "what": "image", "status": 200},
            )

    return writes


def heavy_use(demo, settings):
    settings.CUSTODIA_ALERTS_LINK_USES = 4
    link_uses(["192.0.2.20"] * 4)(demo, settings)


def guesses(refusals: int, throttled: int = 0):
    def writes(demo, settings):
        write(
            "link.refused.burst",
            outcome="denied",
            target_type="link",
            details={
                "client_address": "203.0.113.5",
                "refusals": refusals,
                "throttled": throttled,
                "window_seconds": 60,
            },
        )

    return writes


def link_issue(approval: bool):
    def writes(demo, settings):
        second = User.objects.create(username="second-custodian", organization=demo.case.organization)
        CaseMembership.objects.create(case=demo.case, user=second, role=Role.CUSTODIAN)
        write(
            "link.issue",
            actor=demo.custodian,
            target_type="evidence",
            target_id=EVIDENCE,
            case_id=demo.case.pk,
            organization_id=demo.case.organization_id,
            details={"link": 5, "kind": "token", "approval_required": approval},
        )

    return writes


def extraction(outcome: str, **details):
    def writes(demo, settings):
        write(
            "evidence.extract.start",
            actor=demo.detective,
            target_type="evidence",
            target_id=EVIDENCE,
            case_id=demo.case.pk,
            details={"run": 3, "shards": 1},
        )
        write(
            "evidence.extract",
            outcome=outcome,
            target_type="evidence",
            target_id=EVIDENCE,
            case_id=demo.case.pk,
            details={"run": 3, "traces": 12, **details},
        )

    return writes


def reidentification(*, of_case: bool):
    def writes(demo, settings):
        row = write(
            "evidence.verify", case_id=demo.case.pk if of_case else None, organization_id=demo.case.organization_id
        )
        requester = demo.custodian if of_case else demo.users["orgadmin"]
        write(
            "privacy.reidentify.request",
            actor=requester,
            target_type="reidentification",
            target_id=1,
            case_id=demo.case.pk if of_case else None,
            organization_id=demo.case.organization_id,
            details={"event": row.sequence, "field": "actor", "reason": "who verified it?"},
        )

    return writes


ROWS = [
    Row("integrity mismatch", frozenset({"evidence.integrity_mismatch"}), integrity, frozenset({"custodian"})),
    Row("broken chain", frozenset({"audit.chain_broken"}), trail("hash mismatch: row 5 was changed")),
    Row(
        "missing checkpoint",
        frozenset({"audit.checkpoint_missing"}),
        trail("unsigned custody-critical event: no checkpoint covers this evidence.seal"),
    ),
    Row(
        "missing triggers",
        frozenset({"audit.triggers_missing"}),
        trail("append-only triggers missing: audit_event_no_update (the audit table accepts UPDATE or DELETE)"),
    ),
    Row("revealed secret", frozenset({"evidence.secret_revealed"}), reveal, frozenset({"custodian"})),
    Row("repeated refusals", frozenset({"case.access_refused"}), refusals(5), frozenset({"custodian"})),
    Row("login lockout", frozenset({"auth.lockout"}), lockout, frozenset({"orgadmin"})),
    Row(
        "link from many addresses",
        frozenset({"link.many_addresses"}),
        link_uses(["192.0.2.1", "192.0.2.2", "192.0.2.3"]),
        frozenset({"custodian"}),
    ),
    Row("link used far more than usual", frozenset({"link.heavy_use"}), heavy_use, frozenset({"custodian"})),
    Row("guessing links", frozenset({"link.guessing"}), guesses(25), frozenset({"orgadmin"})),
    Row("guessing links, throttled", frozenset({"link.guessing"}), guesses(3, throttled=4)),
    Row(
        "hand-off: link waits for approval",
        frozenset({"handoff.link_approval"}),
        link_issue(True),
        frozenset({"second-custodian"}),
    ),
    Row(
        "hand-off: extraction finished",
        frozenset({"handoff.extraction_finished"}),
        extraction("ok"),
        frozenset({"detective", "investigator"}),
    ),
    Row(
        "hand-off: extraction failed",
        frozenset({"handoff.extraction_failed"}),
        extraction("failed"),
        frozenset({"detective", "investigator"}),
    ),
    Row(
        "hand-off: a locked volume waits for its secret",
        frozenset({"handoff.extraction_finished", "handoff.volume_locked"}),
        extraction("ok", locked_volumes=2),
    ),
    Row(
        "hand-off: a re-identification waits for approval",
        frozenset({"handoff.reidentification_approval"}),
        reidentification(of_case=True),
        frozenset({"prosecutor"}),
    ),
    # Near misses: nothing fires.
    Row("verified evidence", frozenset(), lambda demo, s: write("evidence.verify", case_id=demo.case.pk)),
    Row("a sound chain", frozenset(), lambda demo, s: write("audit.verify", details={"ok": True, "problem": ""})),
    Row("four refusals", frozenset(), refusals(4)),
    Row("a link from two addresses", frozenset(), link_uses(["192.0.2.1", "192.0.2.2"])),
    Row("a few guesses", frozenset(), guesses(3)),
    Row("a link without approval", frozenset(), link_issue(False)),
]


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_each_rule_fires_on_its_event_and_on_nothing_else(demo, settings, row):
    row.writes(demo, settings)
    raised = set(Alert.objects.values_list("kind", flat=True))
    assert raised == set(row.expected)
    if row.recipients:
        for alert in Alert.objects.all():
            assert {user.username for user in alert.recipients.all()} == set(row.recipients), alert.kind


def test_every_declared_action_without_its_trigger_raises_nothing(demo):
    """Every action of audit/actions.py, written plainly (outcome ok, no details): only the events that are
    themselves the trigger (a reveal, a lockout, a finished extraction) raise anything."""
    triggers_on_their_own = {
        "evidence.secret.reveal": "evidence.secret_revealed",
        "auth.lockout": "auth.lockout",
        "evidence.extract": "handoff.extraction_finished",
        "evidence.extract.abandoned": "handoff.extraction_failed",
    }
    for name in sorted(ACTIONS):
        if name.startswith("<"):
            continue
        Alert.objects.all().delete()
        write(name, target_type="evidence", target_id=EVIDENCE, case_id=demo.case.pk)
        raised = set(Alert.objects.values_list("kind", flat=True))
        expected = {triggers_on_their_own[name]} if name in triggers_on_their_own else set()
        assert raised == expected, name


def test_a_repeat_counts_on_the_open_alert_and_a_new_one_after_acknowledgement(demo, settings):
    refusals(7)(demo, settings)
    alert = Alert.objects.get()
    assert alert.occurrences == 3  # the 5th, 6th and 7th refusal
    Alert.objects.filter(pk=alert.pk).update(acknowledged_at=alert.raised_at)
    refusals(1)(demo, settings)
    assert Alert.objects.filter(kind="case.access_refused").count() == 2


def test_a_failed_audit_write_raises_an_alert_from_a_worker(demo):
    queued = []
    with (
        mock.patch("audit.services.AuditEvent.objects.create", side_effect=DatabaseError("disk full")),
        mock.patch.object(tasks.raise_audit_write_failure, "delay", side_effect=lambda **kw: queued.append(kw)),
        pytest.raises(AuditUnavailable),
    ):
        audit_record(action="case.update", actor=demo.custodian, case_id=demo.case.pk)
    assert queued == [
        {
            "action": "case.update",
            "organization_id": demo.custodian.organization_id,
            "case_id": demo.case.pk,
            "error": "DatabaseError",
        }
    ]
    # The worker raises it once the database takes writes again.
    tasks.raise_audit_write_failure.apply(kwargs=queued[0]).get()
    alert = Alert.objects.get()
    assert alert.kind == "audit.write_failed"
    assert {user.username for user in alert.recipients.all()} == {"orgadmin"}
    assert tasks.raise_audit_write_failure.autoretry_for == (DatabaseError,)


def test_missing_triggers_found_by_the_periodic_check(demo):
    with mock.patch("alerts.tasks.append_only_trigger_problem", return_value="append-only triggers missing: x"):
        tasks.check_audit_triggers.apply().get()
    assert Alert.objects.get().kind == "audit.triggers_missing"
    assert tasks.check_audit_triggers.apply().get() is None  # the triggers are in place in the test database


def test_a_rule_that_fails_never_breaks_the_audit_write(demo):
    failing = mock.Mock(side_effect=RuntimeError("bug"))
    with mock.patch.dict(rules.RULES, {"evidence.verify": (failing,)}):
        integrity(demo, None)
    failing.assert_called_once()
    assert AuditEvent.objects.filter(action="evidence.verify").exists()
    assert not Alert.objects.exists()


def test_notify_handoff_for_a_re_identification_waiting_for_approval(demo):
    """The service privacy-wire's re-identification calls: the approver is told, over the same channel."""
    alert = notify_handoff(
        kind="handoff.reidentification",
        title="A re-identification waits for your approval",
        message="[user>auditor-1] asks to re-identify a value of the audit trail.",
        recipients=[demo.prosecutor],
        organization=demo.case.organization,
    )
    assert alert is not None and alert.category == Category.HANDOFF
    assert list(alert.recipients.all()) == [demo.prosecutor]
    assert notify_handoff(kind="handoff.x", title="t", message="m", recipients=[]) is None


def test_the_actor_and_address_are_transformed_once_under_the_production_policy(demo, settings):
    """The trail stores the actor and the client address replaced; the rules tag the clear ones the writer sent
    with ``event_recorded``, so an alert's pseudonyms re-identify to the username and the address (not to the
    trail's pseudonyms of them)."""
    settings.CUSTODIA_PRIVACY_POLICY = dict(DEFAULT_POLICY)
    for _ in range(settings.CUSTODIA_ALERTS_DENIALS):
        event = write("case-detail.access", actor=demo.outsider, outcome="denied", case_id=demo.case.pk)
    assert event.actor != demo.outsider.username  # the trail holds a pseudonym
    alert = Alert.objects.get(kind="case.access_refused")
    keys = derived_keys_from_settings()
    assert re_identify(alert.details["user"], transformation="ER", keys=keys) == demo.outsider.username
    assert re_identify(alert.details["client_address"], transformation="ER", keys=keys) == "192.0.2.10"
    assert demo.outsider.username not in alert.message
