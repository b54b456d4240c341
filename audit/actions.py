"""Every action the audit trail can record, declared once with what it means.

``audit_record`` refuses an action that is not declared here, so a new kind of event is a line in this
file (and in the review a prosecutor reads) before it is a row in the trail. The audit page's action
filter offers these names. ``tests/audit/test_actions.py`` also reads every ``action="…"`` written in
the code, so an undeclared name fails a test even on a path no test exercises.

Requests are recorded under the name of the route they hit (``<url name>.access``, e.g.
``trace-detail.access``): one declared family rather than a name per route, because the routes are the
URL configuration's to name (``request.access`` when a route has no name).

A custody-critical action (``custody_critical=True``) is followed, as soon as its transaction commits, by
a signed checkpoint of the chain head (``audit.checkpoints``): these are the events a court asks about,
and a database administrator must not be able to add, change or remove one without the signed
checkpoints showing it. ``case.update`` is custody-critical when it changes a case's retention or legal
hold (``is_custody_critical``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class AuditAction:
    name: str
    description: str
    custody_critical: bool = False


ACCESS_SUFFIX = ".access"
# The name the audit middleware gives a request: a route name (letters, digits, '-', '_', ':') + ".access".
_ACCESS_NAME = re.compile(r"^[a-z0-9][a-z0-9_:-]*\.access$")

DECLARED = (
    # Accounts and tokens
    AuditAction("auth.login", "A user logged in, or failed to (outcome denied)."),
    AuditAction("auth.logout", "A user logged out."),
    AuditAction("auth.token.login", "An API token was asked for with a username and password."),
    AuditAction("auth.token.issue", "A user created a scoped API token."),
    AuditAction("auth.token.revoke", "A user revoked one of their API tokens."),
    AuditAction("user.create", "An organisation administrator created a user."),
    AuditAction("user.activate", "An organisation administrator re-activated a user."),
    AuditAction("user.deactivate", "An organisation administrator deactivated a user."),
    # SAML single sign-on (issue #17, branch saml)
    AuditAction("auth.saml.login", "A user signed in through their organisation's IdP, or was refused (with why)."),
    AuditAction("auth.saml.logout", "A SAML session ended: signed out here, or by the IdP's single logout."),
    AuditAction(
        "auth.saml.user.create", "An unknown user was created at first SAML sign-in, with only what the mapping grants."
    ),
    AuditAction("auth.saml.mapping", "A SAML sign-in changed what the attribute mapping grants a user."),
    AuditAction("auth.saml.configure", "An organisation's identity provider or attribute mapping was set or changed."),
    # Cases
    AuditAction("case.create", "A case was opened."),
    AuditAction("case.update", "A case's title, description, status or priority changed."),
    AuditAction(
        "case.hold",
        "A case's legal hold was set or lifted, on the case and every sealed object of it (lifting: with a reason).",
        custody_critical=True,
    ),
    AuditAction(
        "case.retention",
        "A case's retention date changed, on the case and every sealed object of it (shortening: with a reason).",
        custody_critical=True,
    ),
    AuditAction("case.member.add", "A user was given a role in a case."),
    AuditAction("case.member.role", "A case member's role changed."),
    AuditAction("case.member.remove", "A user was removed from a case."),
    # Evidence custody
    AuditAction("evidence.register", "Evidence was registered in a case, with its seizure facts."),
    AuditAction("evidence.upload.start", "The first bytes of an evidence upload arrived."),
    AuditAction("evidence.upload.truncated", "An upload was restarted from the beginning, its bytes discarded."),
    AuditAction("evidence.import.start", "A server-side import of evidence files began."),
    AuditAction("evidence.import", "A server-side import finished, or failed."),
    AuditAction(
        "evidence.seal",
        "Evidence was sealed into the write-once store with its hashes, or refused.",
        custody_critical=True,
    ),
    AuditAction("evidence.verify.queue", "A re-read of sealed evidence was queued for a worker."),
    AuditAction(
        "evidence.verify",
        "Sealed evidence was re-read and re-hashed; a mismatch names the chunk.",
        custody_critical=True,
    ),
    AuditAction(
        "evidence.secret.escrow",
        "A secret (BitLocker, LUKS, document password) was escrowed.",
        custody_critical=True,
    ),
    AuditAction("evidence.secret.reveal", "An escrowed secret's value was shown to a user.", custody_critical=True),
    # Capture of Azure VM disks (issue #16, capture)
    AuditAction(
        "capture.start", "A capture of an Azure VM's disks was queued for a capture worker.", custody_critical=True
    ),
    AuditAction("capture.sign_in", "A capture worker signed in to Azure (managed identity or service principal)."),
    AuditAction("capture.inspect", "The VM to capture was read: its OS and data disks and their encryption."),
    AuditAction("capture.snapshot", "A snapshot of one of the VM's disks was created.", custody_critical=True),
    AuditAction("capture.access.grant", "Short-lived read access to a snapshot was granted (the SAS is never kept)."),
    AuditAction(
        "capture.stream",
        "A snapshot was read through the sealing pipeline into an evidence item, with its hashes.",
        custody_critical=True,
    ),
    AuditAction("capture.native_copy", "The snapshot's VHD was copied server-side into the immutable container."),
    AuditAction(
        "capture.escrow",
        "A disk's encryption key (BEK, and the KEK that wraps it) was escrowed in the SOC key vault.",
        custody_critical=True,
    ),
    AuditAction("capture.hash_secret", "A disk's SHA-256 was stored as a secret in the SOC key vault."),
    AuditAction("capture.complete", "A captured disk's evidence was marked complete (sealed)."),
    AuditAction("capture.access.revoke", "Read access to a snapshot was revoked.", custody_critical=True),
    AuditAction("capture.snapshot.delete", "A snapshot was deleted after the capture.", custody_critical=True),
    AuditAction(
        "capture.finish", "A capture run finished, or failed (with the step that failed).", custody_critical=True
    ),
    # Extraction
    AuditAction("evidence.extract.start", "An extraction run was queued.", custody_critical=True),
    AuditAction("evidence.extract", "An extraction run finished, or failed.", custody_critical=True),
    # Sealing and intake in a worker, local acquisition, orphan chunks (branch seal: #16 items 3 and 6, #17 finding 8)
    AuditAction("evidence.import.resume", "A worker took up an import or acquisition again after an interrupted run."),
    AuditAction("evidence.acquire.start", "A read-only acquisition of a local device or image file was queued."),
    AuditAction("evidence.acquire", "A local acquisition failed (a sealed one is recorded as evidence.seal)."),
    AuditAction(
        "evidence.acquire.read_error",
        "A byte range of an acquired device could not be read after the retries and was zero-filled.",
        custody_critical=True,
    ),
    AuditAction(
        "evidence.chunk.orphan",
        "A chunk copy in the write-once store that no record uses (a failed request's bytes) was found.",
    ),
    # Download links
    AuditAction("link.issue", "A time-limited, read-only download link was issued.", custody_critical=True),
    AuditAction("link.approve", "A download link waiting for a second person was approved.", custody_critical=True),
    AuditAction("link.revoke", "A download link was revoked.", custody_critical=True),
    AuditAction("link.refused", "A link was refused: expired, revoked, wrong network or unknown token."),
    AuditAction(
        "link.refused.burst",
        "Further refused guesses at links from one client address within a window, folded into one row with a count.",
    ),
    AuditAction("link.use", "A download link was used (what, range, status).", custody_critical=True),
    AuditAction("link.use.end", "A download through a link ended: how many bytes of the range went out."),
    # Traces
    AuditAction("trace.tag.add", "A tag was put on a trace."),
    AuditAction("trace.tag.remove", "A tag was taken off a trace."),
    AuditAction("trace.tag.bulk_add", "A tag was put on every hit of a search."),
    AuditAction("trace.note.add", "A note was written on a trace."),
    AuditAction("trace.export.csv", "The hits of a search were exported as CSV."),
    AuditAction("search.saved.save", "A search was saved for the case team."),
    AuditAction("search.saved.delete", "A saved search was deleted."),
    # Search: gallery, events, facets (issue #20, ui-search)
    AuditAction("event.export.csv", "The events timeline of a search was exported as CSV."),
    # The trail itself
    AuditAction("audit.verify", "The whole chain was re-hashed (the scheduled check); the result."),
    AuditAction(
        "audit.export",
        "A case's audit trail was exported with its checkpoints for offline verification.",
        custody_critical=True,
    ),
    AuditAction(
        "custody.report",
        "A custody report (PDF or JSON) of an evidence item or a case was produced: which, and its SHA-256.",
        custody_critical=True,
    ),
    # Hardening (issue #17, branch harden)
    AuditAction(
        "evidence.extract.abandoned",
        "An extraction run whose worker or database went away (its lease ran out) was failed; it can be started again.",
    ),
    AuditAction(
        "auth.lockout",
        "Too many wrong passwords: an account or a client address was locked out of logging in for a while.",
    ),
    # Differencing disks (issue #18, branch img-chain)
    AuditAction(
        "evidence.parent.link",
        "A differencing disk was linked to its parent, another sealed evidence item of the case (or refused).",
        custody_critical=True,
    ),
    # Alerts (issue #19 items 6 and 7, branch alerts)
    AuditAction("alert.ack", "An alert or hand-off was acknowledged, with a note saying what was done."),
    # Organisation administration (issue #20, branch ui-evidence)
    AuditAction(
        "user.password_reset_link",
        "An organisation administrator made a one-time link for a user to set a new password (the link is not kept).",
    ),
    AuditAction("user.password_reset", "A user set a new password through a one-time link."),
    # Privacy: the replacement model and re-identification (issue #19, branch privacy-wire)
    AuditAction(
        "privacy.policy_changed",
        "The privacy policy (tag to transformation) in force is not the one last recorded: its digest and mapping.",
        custody_critical=True,
    ),
    AuditAction(
        "privacy.reidentify.request", "Someone asked for the clear value behind a replaced field of an audit row."
    ),
    AuditAction(
        "privacy.reidentify.approve",
        "A second person approved a re-identification request, or refused it (outcome denied).",
        custody_critical=True,
    ),
    AuditAction(
        "privacy.reidentify.reveal",
        "The clear value of an approved re-identification was shown to its requester, or refused.",
        custody_critical=True,
    ),
    # Time zones (issue #18 item 6, branch fs-meta)
    AuditAction(
        "evidence.source_time_zone",
        "The source time zone of an evidence item was set or cleared: the zone its local times are converted with.",
        custody_critical=True,
    ),
    # Hash sets (issue #20 item 6, branch hashsets)
    AuditAction("hashset.import", "An organisation's hash set (known-good or known-bad) was imported, or failed to."),
    AuditAction("hashset.delete", "An organisation's hash set, its digests and its marks on traces were deleted."),
    # Time zones (issue #20 item 13, branch hashsets)
    AuditAction("user.time_zone", "A user chose the time zone their pages show times in."),
    # Requests (see the module's docstring)
    AuditAction("request.access", "A request under a case to a route that has no name."),
    AuditAction("<route>.access", "A request under a case (reads and denials included), named by its route."),
)

ACTIONS: dict[str, AuditAction] = {action.name: action for action in DECLARED}


def is_declared(name: str) -> bool:
    """True for a declared action, and for a request named by its route (``<url name>.access``)."""
    return name in ACTIONS or bool(_ACCESS_NAME.match(name))


# The case fields whose change makes a ``case.update`` custody-critical.
CUSTODY_CRITICAL_CASE_FIELDS = frozenset({"retention_until", "legal_hold"})


def is_custody_critical(name: str, details: dict | None = None) -> bool:
    """True for an event that must be followed by a signed checkpoint at once (see the module's docstring)."""
    action = ACTIONS.get(name)
    if action is not None and action.custody_critical:
        return True
    if name == "case.update" and details:
        changed = set((details.get("after") or {}).keys()) | set((details.get("before") or {}).keys())
        return bool(changed & CUSTODY_CRITICAL_CASE_FIELDS)
    return False


def custody_critical_actions() -> list[str]:
    """The names declared custody-critical (``case.update`` is one only for retention and hold changes)."""
    return sorted(name for name, action in ACTIONS.items() if action.custody_critical)


def declare(name: str, description: str) -> AuditAction:
    """Declare one more action at run time: for a plugin's own events, and for tests that write
    events of their own. Declaring a name twice with another meaning is an error."""
    existing = ACTIONS.get(name)
    if existing is not None and existing.description != description:
        raise ValueError(f"The audit action {name!r} is already declared as {existing.description!r}.")
    action = existing or AuditAction(name, description)
    ACTIONS[name] = action
    return action


def filter_choices() -> list[str]:
    """The names a user may filter the audit page by (the route family is a pattern, not a name)."""
    return sorted(name for name in ACTIONS if not name.startswith("<"))


class UndeclaredAuditAction(ValueError):
    """A programming error: an action written to the trail that ``audit.actions`` does not declare."""


# What the review pages (the evidence's custody timeline, the case's audit page) show by default: the
# events that make or change the chain of custody. Every other event, reads included, is still in the trail
# and shown under "all events"; a refusal or failure of any action is always shown (see audit.selectors).
CUSTODY_RELEVANT: frozenset[str] = frozenset(
    {
        "case.create",
        "case.hold",
        "case.retention",
        "case.member.add",
        "case.member.role",
        "case.member.remove",
        "evidence.register",
        "evidence.upload.start",
        "evidence.upload.truncated",
        "evidence.import.start",
        "evidence.import",
        "evidence.import.resume",
        "evidence.acquire.start",
        "evidence.acquire",
        "evidence.acquire.read_error",
        "evidence.chunk.orphan",
        "evidence.seal",
        "evidence.verify.queue",
        "evidence.verify",
        "evidence.secret.escrow",
        "evidence.secret.reveal",
        "evidence.extract.start",
        "evidence.extract",
        "evidence.parent.link",
        # capture (issue #16)
        "capture.start",
        "capture.snapshot",
        "capture.stream",
        "capture.native_copy",
        "capture.escrow",
        "capture.hash_secret",
        "capture.complete",
        "capture.access.revoke",
        "capture.snapshot.delete",
        "capture.finish",
        "link.issue",
        "link.approve",
        "link.revoke",
        "link.refused",
        "link.refused.burst",
        "link.use",
        "link.use.end",
        "trace.export.csv",
        "event.export.csv",  # issue #20, ui-search: the events timeline as CSV
        # The zone an item's local times are converted with (issue #18 item 6, branch fs-meta).
        "evidence.source_time_zone",
        # Reads of the evidence's bytes through the trace data service (a stream, hex, a thumbnail).
        "api-trace-data.access",
        "trace-thumbnail.access",
    }
)
