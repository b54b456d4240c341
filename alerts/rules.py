"""The rules over the audit trail: each looks at one recorded event and may ask for an alert or a hand-off.

A rule is a function of the stored event and the details its writer gave (``clear`` reads a value whether it
came tagged or not), returning an ``AlertSpec`` or None. ``RULES`` maps an action to the rules that look at
it, so an event costs a dictionary look-up unless a rule is interested; the request rows (``<route>.access``)
are looked at only when refused. Confidential values go into the message tagged (``tag_value``), so that the
privacy model decides what of them is stored and sent (alerts/services.py).

The audit write failure has no event: ``audit_write_failed_spec`` is raised from the trail's
``write_failed`` signal by a task (alerts/receivers.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings

from alerts import selectors
from alerts.models import Category, Severity
from alerts.services import AlertSpec
from audit.actions import ACCESS_SUFFIX
from audit.models import AuditEvent, Outcome
from audit.privacy import Tagged, tag_value
from cases.models import Role, User


@dataclass(frozen=True)
class Who:
    """Who caused the event, in clear: the trail stores the actor and the client address already replaced (a
    pseudonym under the production policy), and a rule tags them again for its alert, so it must tag the clear
    values (given by the audit writer with the ``event_recorded`` signal) to have them transformed once."""

    actor: str
    client_address: str

    @classmethod
    def of(cls, event: AuditEvent, *, actor_name: str | None = None, client_address: str | None = None) -> Who:
        """The clear values when the sender gave them, else the row's (as stored: replaced)."""
        return cls(
            actor=actor_name if actor_name is not None else event.actor,
            client_address=client_address if client_address is not None else event.client_address,
        )


Rule = Callable[[AuditEvent, Mapping[str, Any], Who], "AlertSpec | None"]


def clear(value: object) -> str:
    """A detail's value as its writer gave it: the value of a ``Tagged``, else its text."""
    if isinstance(value, Tagged):
        return str(value.value)
    return "" if value is None else str(value)


def _since(seconds: int, event: AuditEvent) -> Any:
    return event.occurred_at - timedelta(seconds=seconds)


# --- custody and the trail --------------------------------------------------------------------------------


def integrity_mismatch(event: AuditEvent, details: Mapping[str, Any], who: Who) -> AlertSpec | None:
    if event.action != "evidence.verify" or event.outcome != Outcome.FAILED:
        return None
    mismatches = details.get("mismatches") or []
    return AlertSpec(
        kind="evidence.integrity_mismatch",
        title="Sealed evidence failed verification",
        message=(
            f"Evidence {tag_value('evidence', event.target_id)} no longer matches its seal: "
            f"{len(mismatches) if isinstance(mismatches, list) else mismatches} chunk(s) differ."
        ),
        severity=Severity.CRITICAL,
        case_id=event.case_id,
        organization_id=event.organization_id,
        details={"evidence": Tagged("evidence", event.target_id), "mismatches": mismatches},
        dedupe_key=f"evidence.integrity_mismatch:{event.target_id}",
        audit_sequence=event.sequence,
    )


def _trail_problem_kind(problem: str) -> str:
    if "append-only triggers" in problem:
        return "audit.triggers_missing"
    if "checkpoint" in problem:
        return "audit.checkpoint_missing"
    return "audit.chain_broken"


TRAIL_TITLES = {
    "audit.triggers_missing": "The audit trail's append-only triggers are missing or disabled",
    "audit.checkpoint_missing": "An audit checkpoint is missing or cannot be read",
    "audit.chain_broken": "The audit trail's hash chain is broken",
}


def trail_verification_failed(event: AuditEvent, details: Mapping[str, Any], who: Who) -> AlertSpec | None:
    if event.action != "audit.verify" or event.outcome != Outcome.FAILED:
        return None
    problem = clear(details.get("problem"))
    kind = _trail_problem_kind(problem)
    return trail_alert(kind=kind, problem=problem, sequence=details.get("first_bad_sequence"), event=event)


def trail_alert(*, kind: str, problem: str, sequence: object = None, event: AuditEvent | None = None) -> AlertSpec:
    where = f" at sequence {sequence}" if sequence is not None else ""
    return AlertSpec(
        kind=kind,
        title=TRAIL_TITLES[kind],
        message=f"The audit trail's verification failed{where}: {problem}",
        severity=Severity.CRITICAL if kind != "audit.checkpoint_missing" else Severity.ERROR,
        details={"problem": problem, "first_bad_sequence": sequence},
        dedupe_key=kind,
        audit_sequence=event.sequence if event is not None else None,
    )


def audit_write_failed_spec(*, action: str, organization_id: int | None, case_id: int | None, error: str) -> AlertSpec:
    return AlertSpec(
        kind="audit.write_failed",
        title="The audit trail could not be written",
        message=f"An audit row ({action}) could not be written ({error}): the request was refused.",
        severity=Severity.CRITICAL,
        organization_id=organization_id,
        details={"action": action, "error": error, "case_id": case_id},
        dedupe_key=f"audit.write_failed:{organization_id}",
    )


# --- people -----------------------------------------------------------------------------------------------


def secret_revealed(event: AuditEvent, details: Mapping[str, Any], who: Who) -> AlertSpec | None:
    if event.action != "evidence.secret.reveal" or event.outcome != Outcome.OK:
        return None
    return AlertSpec(
        kind="evidence.secret_revealed",
        title="An escrowed secret was revealed",
        message=(
            f"{tag_value('user', who.actor)} was shown the secret {clear(details.get('kind'))} "
            f"of evidence {tag_value('evidence', event.target_id)}."
        ),
        severity=Severity.NOTICE,
        case_id=event.case_id,
        organization_id=event.organization_id,
        details={"user": Tagged("user", who.actor), "evidence": Tagged("evidence", event.target_id)},
        audit_sequence=event.sequence,
    )


def repeated_refusals(event: AuditEvent, details: Mapping[str, Any], who: Who) -> AlertSpec | None:
    if not event.action.endswith(ACCESS_SUFFIX) or event.outcome != Outcome.DENIED or event.case_id is None:
        return None
    refusals = AuditEvent.objects.filter(
        case_id=event.case_id,
        outcome=Outcome.DENIED,
        action__endswith=ACCESS_SUFFIX,
        occurred_at__gte=_since(settings.CUSTODIA_ALERTS_DENIAL_WINDOW_SECONDS, event),
    ).count()
    if refusals < settings.CUSTODIA_ALERTS_DENIALS:
        return None
    return AlertSpec(
        kind="case.access_refused",
        title="Repeated refused access to a case",
        message=(
            f"{refusals} requests to this case were refused within "
            f"{settings.CUSTODIA_ALERTS_DENIAL_WINDOW_SECONDS} s; the latest by {tag_value('user', who.actor)} "
            f"from {tag_value('client_address', who.client_address)}."
        ),
        case_id=event.case_id,
        organization_id=event.organization_id,
        details={
            "refusals": refusals,
            "user": Tagged("user", who.actor),
            "client_address": Tagged("client_address", who.client_address),
        },
        dedupe_key=f"case.access_refused:{event.case_id}",
        audit_sequence=event.sequence,
    )


def login_lockout(event: AuditEvent, details: Mapping[str, Any], who: Who) -> AlertSpec | None:
    if event.action != "auth.lockout":
        return None
    username = clear(details.get("username"))
    address = clear(details.get("client"))
    account = User.objects.filter(username=username).only("organization_id").first() if username else None
    organization_id = account.organization_id if account is not None else event.organization_id
    return AlertSpec(
        kind="auth.lockout",
        title="A login was locked out after too many wrong passwords",
        message=(
            f"Logins as {tag_value('user', username)} from {tag_value('client_address', address)} are locked out "
            "for a while after too many wrong passwords."
        ),
        organization_id=organization_id,
        details={"user": Tagged("user", username), "client_address": Tagged("client_address", address)},
        dedupe_key=f"auth.lockout:{organization_id}:{username}:{address}",
        audit_sequence=event.sequence,
    )


# --- download links ---------------------------------------------------------------------------------------


def _link_uses(event: AuditEvent, link: object) -> Any:
    return AuditEvent.objects.filter(action="link.use", details__link=link, outcome=Outcome.OK)


def link_many_addresses(event: AuditEvent, details: Mapping[str, Any], who: Who) -> AlertSpec | None:
    if event.action != "link.use" or event.outcome != Outcome.OK or details.get("link") is None:
        return None
    link = details["link"]
    addresses = _link_uses(event, link).exclude(client_address="").values("client_address").distinct().count()
    if addresses < settings.CUSTODIA_ALERTS_LINK_ADDRESSES:
        return None
    return AlertSpec(
        kind="link.many_addresses",
        title="A download link is used from many addresses",
        message=(
            f"Link {link} of evidence {tag_value('evidence', event.target_id)} was used from {addresses} "
            f"client addresses; the latest {tag_value('client_address', who.client_address)}."
        ),
        case_id=event.case_id,
        organization_id=event.organization_id,
        details={
            "link": link,
            "addresses": addresses,
            "client_address": Tagged("client_address", who.client_address),
        },
        dedupe_key=f"link.many_addresses:{link}",
        audit_sequence=event.sequence,
    )


def link_heavy_use(event: AuditEvent, details: Mapping[str, Any], who: Who) -> AlertSpec | None:
    if event.action != "link.use" or event.outcome != Outcome.OK or details.get("link") is None:
        return None
    link = details["link"]
    window = settings.CUSTODIA_ALERTS_LINK_USE_WINDOW_SECONDS
    uses = _link_uses(event, link).filter(occurred_at__gte=_since(window, event)).count()
    if uses < settings.CUSTODIA_ALERTS_LINK_USES:
        return None
    return AlertSpec(
        kind="link.heavy_use",
        title="A download link is used far more often than usual",
        message=(
            f"Link {link} of evidence {tag_value('evidence', event.target_id)} was used {uses} times in {window} s."
        ),
        case_id=event.case_id,
        organization_id=event.organization_id,
        details={"link": link, "uses": uses, "window_seconds": window},
        dedupe_key=f"link.heavy_use:{link}",
        audit_sequence=event.sequence,
    )


def link_guessing(event: AuditEvent, details: Mapping[str, Any], who: Who) -> AlertSpec | None:
    if event.action != "link.refused.burst":
        return None
    refusals = int(details.get("refusals") or 0)
    throttled = int(details.get("throttled") or 0)
    if refusals < settings.CUSTODIA_ALERTS_GUESSES and not throttled:
        return None
    address = clear(details.get("client_address"))
    return AlertSpec(
        kind="link.guessing",
        title="Someone is guessing download links",
        message=(
            f"{tag_value('client_address', address)} guessed at download links {refusals} times in "
            f"{details.get('window_seconds')} s ({throttled} further requests throttled)."
        ),
        details={"client_address": Tagged("client_address", address), "refusals": refusals, "throttled": throttled},
        dedupe_key=f"link.guessing:{address}",
        audit_sequence=event.sequence,
    )


# --- hand-offs (item 7): the next person in a journey -----------------------------------------------------


def link_awaits_approval(event: AuditEvent, details: Mapping[str, Any], who: Who) -> AlertSpec | None:
    if event.action != "link.issue" or event.outcome != Outcome.OK or not details.get("approval_required"):
        return None
    if event.case_id is None:
        return None
    others = tuple(user for user in selectors.case_custodians(case_id=event.case_id) if user.pk != event.actor_id)
    return AlertSpec(
        kind="handoff.link_approval",
        title="A download link waits for your approval",
        message=(
            f"{tag_value('user', who.actor)} issued link {clear(details.get('link'))} of evidence "
            f"{tag_value('evidence', event.target_id)}; it needs a second custodian's approval."
        ),
        severity=Severity.INFO,
        category=Category.HANDOFF,
        case_id=event.case_id,
        organization_id=event.organization_id,
        details={"link": details.get("link"), "evidence": Tagged("evidence", event.target_id)},
        # With no second custodian, the organisation's administrators, who can make someone one.
        recipients=others or tuple(selectors.organisation_administrators(organization_id=event.organization_id)),
        audit_sequence=event.sequence,
    )


def _run_starter(event: AuditEvent, run: object) -> list[User]:
    started = (
        AuditEvent.objects.filter(action="evidence.extract.start", target_id=event.target_id, details__run=run)
        .exclude(actor_id=None)
        .values_list("actor_id", flat=True)
        .first()
    )
    return list(User.objects.filter(pk=started, is_active=True)) if started else []


def extraction_finished(event: AuditEvent, details: Mapping[str, Any], who: Who) -> AlertSpec | None:
    if event.action not in ("evidence.extract", "evidence.extract.abandoned") or event.case_id is None:
        return None
    failed = event.outcome != Outcome.OK or event.action == "evidence.extract.abandoned"
    run = details.get("run")
    people = {user.pk: user for user in _run_starter(event, run)}
    people.update(
        (user.pk, user) for user in selectors.case_members_with_roles(case_id=event.case_id, roles=(Role.INVESTIGATOR,))
    )
    outcome = "failed" if failed else f"finished with {details.get('traces', 0)} traces"
    return AlertSpec(
        kind="handoff.extraction_failed" if failed else "handoff.extraction_finished",
        title="An extraction failed" if failed else "An extraction finished",
        message=f"Extraction run {run} of evidence {tag_value('evidence', event.target_id)} {outcome}.",
        severity=Severity.WARNING if failed else Severity.INFO,
        category=Category.HANDOFF,
        case_id=event.case_id,
        organization_id=event.organization_id,
        details={"run": run, "evidence": Tagged("evidence", event.target_id), "failed": failed},
        recipients=tuple(people.values()),
        audit_sequence=event.sequence,
    )


def volume_locked(event: AuditEvent, details: Mapping[str, Any], who: Who) -> AlertSpec | None:
    locked = details.get("locked_volumes") or 0
    if event.action != "evidence.extract" or event.outcome != Outcome.OK or not locked or event.case_id is None:
        return None
    return AlertSpec(
        kind="handoff.volume_locked",
        title="An encrypted volume waits for its secret",
        message=(
            f"{locked} encrypted volume(s) of evidence {tag_value('evidence', event.target_id)} stayed locked: "
            "escrow the secret and extract again."
        ),
        severity=Severity.INFO,
        category=Category.HANDOFF,
        case_id=event.case_id,
        organization_id=event.organization_id,
        details={"evidence": Tagged("evidence", event.target_id), "locked_volumes": locked},
        recipients=tuple(selectors.case_custodians(case_id=event.case_id)),
        audit_sequence=event.sequence,
    )


def reidentification_awaits_approval(event: AuditEvent, details: Mapping[str, Any], who: Who) -> AlertSpec | None:
    """A re-identification asked for (issue #19 item 4) waits for a second person who may read the row:
    the case's custodians and prosecutors, or for a row of no case the organisation's administrators."""
    if event.action != "privacy.reidentify.request" or event.outcome != Outcome.OK:
        return None
    row = details.get("event")
    if row is None:
        return None
    case_id = AuditEvent.objects.filter(sequence=row).values_list("case_id", flat=True).first()
    if case_id is not None:
        people = selectors.case_members_with_roles(case_id=case_id, roles=(Role.CUSTODIAN, Role.PROSECUTOR))
    else:
        people = selectors.organisation_administrators(organization_id=event.organization_id)
    return AlertSpec(
        kind="handoff.reidentification_approval",
        title="A re-identification waits for your approval",
        message=(
            f"{tag_value('user', who.actor)} asked for the clear value of {clear(details.get('field'))} "
            f"of audit row {row}; it needs a second person's approval."
        ),
        severity=Severity.INFO,
        category=Category.HANDOFF,
        case_id=case_id,
        organization_id=event.organization_id,
        details={"request": event.target_id, "event": row, "field": clear(details.get("field"))},
        recipients=tuple(user for user in people if user.pk != event.actor_id),
        audit_sequence=event.sequence,
    )


# Action → the rules that look at it; a refused request (any "<route>.access") goes to ACCESS_RULES.
RULES: dict[str, tuple[Rule, ...]] = {
    "evidence.verify": (integrity_mismatch,),
    "audit.verify": (trail_verification_failed,),
    "evidence.secret.reveal": (secret_revealed,),
    "auth.lockout": (login_lockout,),
    "link.use": (link_many_addresses, link_heavy_use),
    "link.refused.burst": (link_guessing,),
    "link.issue": (link_awaits_approval,),
    "evidence.extract": (extraction_finished, volume_locked),
    "evidence.extract.abandoned": (extraction_finished,),
    "privacy.reidentify.request": (reidentification_awaits_approval,),
}
ACCESS_RULES: tuple[Rule, ...] = (repeated_refusals,)


def rules_for(event: AuditEvent) -> tuple[Rule, ...]:
    if event.action.endswith(ACCESS_SUFFIX):
        return ACCESS_RULES if event.outcome == Outcome.DENIED else ()
    return RULES.get(event.action, ())


def evaluate(
    event: AuditEvent,
    details: Mapping[str, Any] | None,
    *,
    actor_name: str | None = None,
    client_address: str | None = None,
) -> list[AlertSpec]:
    """What the rules ask to raise for ``event`` (``details``: as its writer gave them, else as stored;
    ``actor_name`` and ``client_address``: in clear, as the writer had them, else the row's replaced ones)."""
    given = details if details is not None else event.details
    who = Who.of(event, actor_name=actor_name, client_address=client_address)
    return [spec for rule in rules_for(event) if (spec := rule(event, given, who)) is not None]
