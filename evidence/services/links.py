"""Download links: time-limited, read-only access to the original bytes of one sealed evidence item.

- ``link_issue``: a custodian of the case issues a link for a recipient (a user of the organisation, or an
  external party by name and e-mail) with a reason, an expiry (default 8 h, at most the policy maximum)
  and optionally the client networks allowed. The token is shown once; only its SHA-256 is kept.
- Four eyes: a link for an external recipient, or longer than ``CUSTODIA_LINK_APPROVAL_OVER_SECONDS``,
  waits for a second custodian (``link_approve``; not the requester, not the recipient) who must decide
  within ``CUSTODIA_LINK_APPROVAL_VALID_SECONDS``. The link's lifetime then counts from the approval.
- ``link_revoke`` takes effect at once: every download request looks the link up again.
- ``link_resolve`` is the gate of ``GET /l/<token>``: an unknown, tampered, expired, revoked or pending
  link, a client outside the link's networks, or any method but GET/HEAD is refused (``LinkRefused``,
  403) *after* an audit row saying why is written; a link to evidence whose verification found a mismatch
  is refused with 409 before any byte. Every use is audited with client address and range.

Audit rows of a link target its evidence (custody is the audit trail of the evidence) and carry the link
id in ``details["link"]`` — once the token has proved knowledge of the link (its secret matches). A token
that does not (unknown, or a real prefix with a wrong secret) is a guess: counted per client address and
recorded against target type ``link`` only (evidence/services/link_guesses.py).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit import context
from audit.models import Outcome
from audit.privacy import Tagged
from audit.services import audit_record
from cases import permissions as perms
from cases.models import User
from cases.selectors import user_in_organization
from custodia.errors import Conflict, Forbidden, NotFound, ServiceError
from evidence.models import DownloadLink, Evidence, IntegrityStatus, LinkKind, LinkState
from evidence.selectors import evidence_get, link_by_lookup, link_get, native_blob_of
from evidence.services.link_guesses import link_guess_refused

READ_METHODS = frozenset({"GET", "HEAD"})
MAX_NETWORKS = 32
_LOOKUP = re.compile(r"^[0-9a-f]{16}$")
_TOKEN = re.compile(r"^([0-9a-f]{16})\.([A-Za-z0-9_-]{20,100})$")


@dataclass(frozen=True)
class IssuedLink:
    """A link and, once only, the credential that opens it: ``token`` for a signed link (its URL is
    ``/l/<token>``), ``url`` for an Azure SAS (empty while the SAS waits for approval)."""

    link: DownloadLink
    token: str = ""
    url: str = ""


class LinkRefused(ServiceError):
    code = "link_refused"
    status_code = 403

    def __init__(self, detail: str, *, reason: str, link: DownloadLink | None = None, status_code: int = 403):
        super().__init__(detail, extra={"reason": reason})
        self.reason = reason
        self.link = link
        self.status_code = status_code


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token() -> tuple[str, str]:
    lookup = secrets.token_hex(8)
    return lookup, f"{lookup}.{secrets.token_urlsafe(32)}"


def _audit_link(
    *, action: str, link: DownloadLink, actor: User | None = None, outcome: str = Outcome.OK, details: dict
) -> None:
    audit_record(
        action=action,
        actor=actor,
        outcome=outcome,
        target_type="evidence",
        target_id=link.evidence_id,
        case_id=link.evidence.case_id,
        organization_id=link.evidence.case.organization_id,
        details={"link": link.pk, "kind": link.kind, **details},
    )


# --- issuing, approving, revoking ------------------------------------------------------------------


def _recipient(*, actor: User, recipient: str | dict) -> tuple[User | None, str, str]:
    if isinstance(recipient, str):
        username = recipient.strip()
        if not username:
            raise ServiceError("recipient: name a user of your organisation, or give {name, email}.")
        if actor.organization_id is None:
            raise ServiceError(f"recipient: no active user {username!r} in your organisation.")
        try:
            return user_in_organization(organization_id=actor.organization_id, username=username), "", ""
        except NotFound:
            raise ServiceError(f"recipient: no active user {username!r} in your organisation.") from None
    if isinstance(recipient, dict):
        name = str(recipient.get("name") or "").strip()
        email = str(recipient.get("email") or "").strip()
        if not name or not email:
            raise ServiceError("recipient: an external recipient needs both a name and an e-mail address.")
        try:
            validate_email(email)
        except ValidationError:
            raise ServiceError(f"recipient: {email!r} is not an e-mail address.") from None
        return None, name[:200], email[:254]
    raise ServiceError("recipient: a username, or {name, email} for an external party.")


def _lifetime(expires_in: int | None) -> int:
    maximum = settings.CUSTODIA_LINK_MAX_SECONDS
    if expires_in is None:
        return min(settings.CUSTODIA_LINK_DEFAULT_SECONDS, maximum)
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in < 60:
        raise ServiceError("expires_in: at least 60 seconds.")
    if expires_in > maximum:
        raise ServiceError(f"expires_in: at most {maximum} seconds ({maximum / 3600:g} hours) by policy.")
    return expires_in


def normalise_networks(networks: list[str] | None) -> list[str]:
    clean: list[str] = []
    for value in networks or []:
        try:
            clean.append(str(ipaddress.ip_network(str(value).strip(), strict=False)))
        except ValueError:
            raise ServiceError(f"networks: {value!r} is not an address or a CIDR network.") from None
    if len(clean) > MAX_NETWORKS:
        raise ServiceError(f"networks: at most {MAX_NETWORKS} networks.")
    return sorted(set(clean))


def needs_approval(*, external: bool, lifetime_seconds: int) -> bool:
    return external or lifetime_seconds > settings.CUSTODIA_LINK_APPROVAL_OVER_SECONDS


@transaction.atomic
def link_issue(
    *,
    evidence: Evidence,
    actor: User,
    recipient: str | dict,
    reason: str,
    expires_in: int | None = None,
    networks: list[str] | None = None,
    kind: str = LinkKind.SIGNED,
    now: datetime | None = None,
) -> IssuedLink:
    evidence = evidence_get(user=actor, evidence_id=evidence.pk, permission=perms.ISSUE_LINKS)
    now = now or timezone.now()
    if not evidence.is_sealed:
        raise Conflict("Only sealed evidence can be given out through a link.", code="not_sealed")
    if kind not in LinkKind.values:
        raise ServiceError(f"kind must be one of {', '.join(LinkKind.values)}.")
    native_blob = native_blob_of(evidence=evidence)
    if kind == LinkKind.AZURE_SAS and native_blob is None:
        raise ServiceError(
            "This evidence has no native blob in Azure storage (only captured VM disks do): "
            "issue a signed link (kind 'signed') instead.",
            code="no_native_blob",
        )
    if not (reason or "").strip():
        raise ServiceError("reason: say why the recipient needs a copy (it goes into the custody trail).")
    user, name, email = _recipient(actor=actor, recipient=recipient)
    lifetime = _lifetime(expires_in)
    networks = normalise_networks(networks)
    approval = needs_approval(external=user is None, lifetime_seconds=lifetime)
    lookup, token = _new_token()
    link = DownloadLink.objects.create(
        evidence=evidence,
        kind=kind,
        issued_by=actor,
        recipient=user,
        recipient_name=name,
        recipient_email=email,
        reason=reason.strip(),
        created_at=now,
        lifetime_seconds=lifetime,
        expires_at=now + timedelta(seconds=lifetime),
        lookup=lookup,
        token_hash=hash_token(token),
        networks=networks,
        state=LinkState.PENDING if approval else LinkState.ACTIVE,
        approval_required=approval,
        approval_expires_at=now + timedelta(seconds=settings.CUSTODIA_LINK_APPROVAL_VALID_SECONDS)
        if approval
        else None,
        blob_url="",
    )
    url = ""
    if kind == LinkKind.AZURE_SAS:
        token = ""
        if not approval and native_blob is not None:  # (None was refused above)
            url = _make_sas(link=link, native_blob=native_blob, now=now)
    _audit_link(
        action="link.issue",
        link=link,
        actor=actor,
        details={
            "recipient": Tagged("user", user.username)
            if user
            else {"name": Tagged("link_recipient", name), "email": Tagged("link_recipient", email)},
            "reason": link.reason,
            "lifetime_seconds": lifetime,
            "expires_at": link.expires_at,
            "networks": networks,
            "approval_required": approval,
            "approval_expires_at": link.approval_expires_at,
            "sha256": evidence.sha256,
        },
    )
    return IssuedLink(link=link, token=token, url=url)


def _make_sas(*, link: DownloadLink, native_blob: dict, now: datetime) -> str:
    from evidence.services.links_sas import sas_url_for

    url = sas_url_for(native_blob=native_blob, expires_at=link.expires_at, now=now)
    base, _, query = url.partition("?")
    # Keep the blob and a hash of the signature (to recognise a leaked URL), never the SAS itself.
    link.blob_url = base[:1000]
    link.token_hash = hash_token(query)
    link.save(update_fields=["blob_url", "token_hash"])
    return url


@transaction.atomic
def link_approve(*, link: DownloadLink, actor: User, now: datetime | None = None) -> IssuedLink:
    """A second custodian approves a pending link; its lifetime starts now. An Azure SAS is made now and
    its URL handed, once, to the approver."""
    link = link_get(user=actor, link_id=link.pk, permission=perms.ISSUE_LINKS)
    link = DownloadLink.objects.select_for_update().select_related("evidence__case").get(pk=link.pk)
    now = now or timezone.now()
    if link.issued_by_id == actor.pk:
        raise Forbidden("Four eyes: the custodian who asked for a link cannot approve it.", code="own_request")
    if link.recipient_id == actor.pk:
        raise Forbidden("Four eyes: the recipient of a link cannot approve it.", code="own_request")
    current = link.state_at(now)
    if link.state != LinkState.PENDING:
        raise Conflict(f"This link is {current}, not waiting for approval.", code="not_pending")
    if current == LinkState.EXPIRED:
        raise Conflict("The approval window of this request has passed: issue a new link.", code="approval_expired")
    link.state = LinkState.ACTIVE
    link.approved_by = actor
    link.approved_at = now
    link.expires_at = now + timedelta(seconds=link.lifetime_seconds)
    link.save(update_fields=["state", "approved_by", "approved_at", "expires_at"])
    url = ""
    if link.kind == LinkKind.AZURE_SAS:
        native_blob = native_blob_of(evidence=link.evidence)
        if native_blob is None:
            raise ServiceError("This evidence no longer has a native blob.", code="no_native_blob")
        url = _make_sas(link=link, native_blob=native_blob, now=now)
    _audit_link(
        action="link.approve",
        link=link,
        actor=actor,
        details={"requested_by": Tagged("user", link.issued_by.username), "expires_at": link.expires_at},
    )
    return IssuedLink(link=link, url=url)


@transaction.atomic
def link_revoke(*, link: DownloadLink, actor: User, now: datetime | None = None) -> DownloadLink:
    """Revoke (or, while pending, refuse) a link. A signed link stops working at once; for an Azure SAS
    see evidence/services/links_sas.py (revoke the user delegation keys)."""
    link = link_get(user=actor, link_id=link.pk, permission=perms.ISSUE_LINKS)
    link = DownloadLink.objects.select_for_update().select_related("evidence__case").get(pk=link.pk)
    now = now or timezone.now()
    if link.state == LinkState.REVOKED:
        raise Conflict("This link is already revoked.", code="already_revoked")
    before = link.state_at(now)
    link.state = LinkState.REVOKED
    link.revoked_by = actor
    link.revoked_at = now
    link.save(update_fields=["state", "revoked_by", "revoked_at"])
    _audit_link(action="link.revoke", link=link, actor=actor, details={"state_before": before})
    return link


# --- using a link ---------------------------------------------------------------------------------------


def _refuse(*, reason: str, detail: str, method: str, link: DownloadLink, status_code: int = 403) -> LinkRefused:
    """A refusal of a token that proved knowledge of ``link``: it goes into the evidence's custody trail."""
    _audit_link(action="link.refused", link=link, outcome=Outcome.DENIED, details={"reason": reason, "method": method})
    return LinkRefused(detail, reason=reason, link=link, status_code=status_code)


def _refuse_guess(*, reason: str, method: str, client_address: str) -> LinkRefused:
    """A refusal of a token that proves no knowledge of any link: counted per address, never in a custody trail."""
    link_guess_refused(client_address=client_address, reason=reason, method=method)
    return LinkRefused("This link is not valid.", reason=reason)


def _client_allowed(*, networks: list[str], client_address: str) -> bool:
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(client_address)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network) for network in networks)


def link_resolve(*, token: str, method: str, client_address: str, now: datetime | None = None) -> DownloadLink:
    """The link a download request may use, or LinkRefused (403) after an audit row that says why.

    Deliberately not one transaction: the refusal's audit row must stay when the request is refused.
    """
    now = now or timezone.now()
    match = _TOKEN.match(token or "")
    lookup = match.group(1) if match else (token or "")[:16]
    link = link_by_lookup(lookup=lookup) if _LOOKUP.match(lookup) else None
    if link is None:
        raise _refuse_guess(reason="unknown", method=method, client_address=client_address)
    if not match or link.kind != LinkKind.SIGNED or not hmac.compare_digest(hash_token(token), link.token_hash):
        # The public prefix of a real link with a wrong secret proves nothing: a guess like any other.
        raise _refuse_guess(reason="tampered", method=method, client_address=client_address)
    if method not in READ_METHODS:
        raise _refuse(
            reason="write_refused", detail="A download link is read-only: only GET and HEAD.", method=method, link=link
        )
    state = link.state_at(now)
    if state == LinkState.REVOKED:
        raise _refuse(reason="revoked", detail="This link has been revoked.", method=method, link=link)
    if state == LinkState.EXPIRED:
        reason = "approval_expired" if link.state == LinkState.PENDING else "expired"
        raise _refuse(reason=reason, detail="This link has expired.", method=method, link=link)
    if state == LinkState.PENDING:
        raise _refuse(
            reason="pending_approval",
            detail="This link waits for approval by a second custodian.",
            method=method,
            link=link,
        )
    if not _client_allowed(networks=link.networks, client_address=client_address):
        raise _refuse(reason="network", detail="This link may not be used from your network.", method=method, link=link)
    if not link.evidence.is_sealed:
        raise _refuse(reason="not_sealed", detail="The evidence is not available.", method=method, link=link)
    if link.evidence.integrity == IntegrityStatus.MISMATCH:
        # Refused before any byte: its bytes no longer match the hashes a download is checked against.
        raise _refuse(
            reason="integrity_mismatch",
            detail="The last verification of this evidence found its stored bytes do not match its hashes: "
            "nothing is sent until a custodian has dealt with it.",
            method=method,
            link=link,
            status_code=409,
        )
    return link


@transaction.atomic
def link_use_record(
    *, link: DownloadLink, what: str, method: str, byte_range: str, status: int, now: datetime | None = None
) -> None:
    """Audit one use (before any byte is sent) and count it: a download of content counts as a use."""
    now = now or timezone.now()
    counts = what == "content" and method == "GET" and status in (200, 206)
    updates: dict[str, object] = {"last_used_at": now}
    if counts:
        updates["uses"] = F("uses") + 1
    DownloadLink.objects.filter(pk=link.pk).update(**updates)
    _audit_link(
        action="link.use",
        link=link,
        outcome=Outcome.OK if status < 400 else Outcome.FAILED,
        details={"what": what, "method": method, "range": byte_range, "status": status},
    )


def link_use_finish(
    *, link: DownloadLink, audit_context: context.AuditContext | None, byte_range: str, sent: int, expected: int
) -> None:
    """After the last byte (or a dropped connection): how much of the range went out."""
    token = context.activate(audit_context) if audit_context is not None else None
    try:
        with transaction.atomic():
            _audit_link(
                action="link.use.end",
                link=link,
                outcome=Outcome.OK if sent == expected else Outcome.FAILED,
                details={"range": byte_range, "bytes_sent": sent, "complete": sent == expected},
            )
    finally:
        if token is not None:
            context.deactivate(token)
