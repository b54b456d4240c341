"""Reads of evidence, through the one access policy of cases/permissions.py (404 across organisations,
403 for a role without the permission)."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from audit.models import AuditEvent
from audit.selectors import FoldedPage, custody_relevant, folded_page
from cases import permissions as perms
from cases.models import Case, User
from cases.selectors import case_get
from custodia.errors import NotFound
from evidence.intake.formats import DISK_IMAGE_FORMATS, DetectedFormat, ImageFormat, has_parent, parent_reference
from evidence.models import DownloadLink, Evidence, EvidenceChunk, EvidenceState, KeyEscrow


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise NotFound("No such evidence.") from None


def evidence_case_id(*, evidence_id: uuid.UUID | str) -> int | None:
    """The case an evidence item belongs to, for the audit row of a request (even a refused one)."""
    try:
        return Evidence.objects.filter(pk=_as_uuid(evidence_id)).values_list("case_id", flat=True).first()
    except NotFound:
        return None


def evidence_get(*, user: User, evidence_id: uuid.UUID | str, permission: str = perms.VIEW_EVIDENCE) -> Evidence:
    evidence = Evidence.objects.filter(pk=_as_uuid(evidence_id)).select_related("case", "registered_by").first()
    if evidence is None or evidence.case.organization_id != getattr(user, "organization_id", None):
        raise NotFound("No such evidence.")
    try:
        evidence.case = case_get(user=user, case_id=evidence.case_id, permission=permission)
    except NotFound:
        raise NotFound("No such evidence.") from None
    return evidence


def evidence_for_case(*, user: User, case: Case) -> QuerySet[Evidence]:
    case_get(user=user, case_id=case.pk, permission=perms.VIEW_EVIDENCE)
    return Evidence.objects.filter(case=case).order_by("created_at")


def evidence_received_ranges(*, evidence: Evidence) -> list[tuple[int, int]]:
    """Received byte ranges as half-open [start, end) pairs, merged."""
    ranges: list[list[int]] = []
    chunk_size = evidence.chunk_size
    for index, length in EvidenceChunk.objects.filter(evidence=evidence).values_list("index", "plain_length"):
        start = index * chunk_size
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = start + length
        else:
            ranges.append([start, start + length])
    return [(start, end) for start, end in ranges]


def evidence_custody_events(*, evidence: Evidence) -> QuerySet[AuditEvent]:
    """Custody is the audit trail filtered to one evidence item (DESIGN.md §4)."""
    return AuditEvent.objects.filter(target_type="evidence", target_id=str(evidence.pk)).order_by("sequence")


def evidence_custody_page(
    *, evidence: Evidence, all_events: bool = False, cursor: int | None = None, size: int = 50
) -> FoldedPage:
    """One page of the evidence's custody timeline, oldest first: the custody-relevant events (or all, with
    ``all_events``), repeated reads folded into one line with a count (audit.selectors.folded_page)."""
    events = evidence_custody_events(evidence=evidence)
    if not all_events:
        events = custody_relevant(events)
    return folded_page(events, newest_first=False, cursor=cursor, size=size)


def escrowed_secrets(*, evidence: Evidence) -> QuerySet[KeyEscrow]:
    return KeyEscrow.objects.filter(evidence=evidence).select_related("created_by")


def escrowed_secret_get(*, user: User, evidence_id: uuid.UUID | str, secret_id: int, permission: str) -> KeyEscrow:
    evidence = evidence_get(user=user, evidence_id=evidence_id, permission=permission)
    secret = KeyEscrow.objects.filter(evidence=evidence, pk=secret_id).first()
    if secret is None:
        raise NotFound("No such escrowed secret.")
    return secret


# --- download links (issue #6) ------------------------------------------------------------------------


def links_for_evidence(*, user: User, evidence_id: uuid.UUID | str) -> QuerySet[DownloadLink]:
    evidence = evidence_get(user=user, evidence_id=evidence_id, permission=perms.ISSUE_LINKS)
    return DownloadLink.objects.filter(evidence=evidence).select_related(
        "evidence", "issued_by", "recipient", "approved_by", "revoked_by"
    )


def links_for_case(*, user: User, case: Case) -> QuerySet[DownloadLink]:
    case_get(user=user, case_id=case.pk, permission=perms.ISSUE_LINKS)
    return DownloadLink.objects.filter(evidence__case=case).select_related(
        "evidence", "issued_by", "recipient", "approved_by", "revoked_by"
    )


def link_get(*, user: User, link_id: int | str, permission: str = perms.ISSUE_LINKS) -> DownloadLink:
    """A link, if the caller may act on its evidence (404 across organisations, 403 without the role)."""
    try:
        pk = int(link_id)
    except (TypeError, ValueError):
        raise NotFound("No such link.") from None
    link = DownloadLink.objects.filter(pk=pk).select_related("evidence", "issued_by", "recipient").first()
    if link is None:
        raise NotFound("No such link.")
    try:
        link.evidence = evidence_get(user=user, evidence_id=link.evidence_id, permission=permission)
    except NotFound:
        raise NotFound("No such link.") from None
    return link


def link_case_id(*, link_id: int | str) -> int | None:
    """The case a link belongs to, for the audit row of a request (even a refused one)."""
    try:
        pk = int(link_id)
    except (TypeError, ValueError):
        return None
    return DownloadLink.objects.filter(pk=pk).values_list("evidence__case_id", flat=True).first()


def link_by_lookup(*, lookup: str) -> DownloadLink | None:
    """The link a token names by its public prefix (no access check: the token is the credential)."""
    return DownloadLink.objects.filter(lookup=lookup).select_related("evidence", "issued_by", "approved_by").first()


def native_blob_of(*, evidence: Evidence) -> dict | None:
    """The evidence's own blob in Azure storage (a captured VM disk), if it has one.

    The capture records it in ``format_details["native_blob"]`` as ``{"account_url", "container", "blob"}``.
    """
    blob = (evidence.format_details or {}).get("native_blob")
    if isinstance(blob, dict) and blob.get("container") and blob.get("blob"):
        return blob
    return None


# --- differencing disks (issue #18, branch img-chain) ------------------------------------------------

# How many parents a chain may have (a snapshot tree of a VM rarely goes beyond a handful).
MAX_PARENT_CHAIN = 16


def evidence_parent_chain(*, evidence: Evidence) -> list[dict]:
    """The parents a differencing disk reads through, nearest first: for each, the sealed item and the file
    name the child looks it up by (the name the child stores, else the parent's own). Files imported
    together as one item (``format_details["parent_chain"]``) are listed by ``evidence_chain_files``."""
    chain: list[dict] = []
    child, seen = evidence, {evidence.pk}
    while child.parent_id is not None and len(chain) < MAX_PARENT_CHAIN:
        parent = Evidence.objects.select_related("case").get(pk=child.parent_id)
        if parent.pk in seen:
            break  # refused when linked; never loop on a row changed by hand
        seen.add(parent.pk)
        found = DetectedFormat(ImageFormat(child.format), child.format_details or {}) if child.format else None
        reference = parent_reference(found) if found is not None else None
        own_name = parent.original_name.split(",")[0].strip() or f"{parent.pk}.{parent.format or 'raw'}"
        chain.append({"evidence": parent, "read_as": reference or own_name, "named_by_child": bool(reference)})
        child = parent
    return chain


def evidence_chain_files(*, evidence: Evidence) -> list[dict]:
    """The files of a differencing chain imported as one item, child first (empty for any other item)."""
    return list((evidence.format_details or {}).get("parent_chain") or [])


def evidence_parent_candidates(*, evidence: Evidence) -> QuerySet[Evidence]:
    """Sealed disk images of the same case that could be this item's parent (not itself, not its children)."""
    return (
        Evidence.objects.filter(case_id=evidence.case_id, format__in=[str(f) for f in DISK_IMAGE_FORMATS])
        .filter(state__in=[EvidenceState.SEALED, EvidenceState.EXTRACTING, EvidenceState.EXTRACTED])
        .exclude(pk=evidence.pk)
        .exclude(parent_id=evidence.pk)
        .order_by("created_at")
    )


def evidence_chain_summary(*, evidence: Evidence, with_candidates: bool = False) -> dict:
    """What the evidence page and the API say of a differencing disk: whether it needs a parent and the
    name it looks it up by, its linked parents (``evidence_parent_chain``), the files imported with it,
    intake's warnings, and (``with_candidates``) the items it could be linked to."""
    found = DetectedFormat(ImageFormat(evidence.format), evidence.format_details or {}) if evidence.format else None
    needs_parent = found is not None and has_parent(found)
    return {
        "needs_parent": needs_parent,
        "reference": parent_reference(found) if found is not None else None,
        "parents": evidence_parent_chain(evidence=evidence),
        "files": evidence_chain_files(evidence=evidence),
        "candidates": list(evidence_parent_candidates(evidence=evidence)) if needs_parent and with_candidates else [],
        "warnings": list((evidence.format_details or {}).get("warnings", [])),
    }
