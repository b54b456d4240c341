"""Differencing disks: link a child image to its parent, another sealed evidence item of the same case.

A qcow2 with a backing file, a differencing VHD or a VMDK with a parent holds only the sectors written
since its parent was frozen; the rest are the parent's. Sealed separately (two uploads, or a parent seized
first), the two items are joined here by a custodian: the link is a custody fact (audited, shown on the
evidence page and in the API), and extraction reads the child through it (``evidence.reading``). Files
imported together as one item carry their chain in ``format_details["parent_chain"]`` instead.
"""

from __future__ import annotations

import uuid
from typing import NoReturn

from django.db import transaction

from audit.services import audit_record
from cases import permissions as perms
from cases.models import User
from custodia.errors import Conflict, ServiceError
from evidence.intake.formats import DetectedFormat, ImageFormat, has_parent, parent_reference
from evidence.models import Evidence
from evidence.selectors import MAX_PARENT_CHAIN, evidence_get, evidence_parent_chain


def _refuse(*, actor: User, evidence: Evidence, reason: str, code: str, conflict: bool = True) -> NoReturn:
    with transaction.atomic():
        audit_record(
            action="evidence.parent.link",
            actor=actor,
            outcome="denied",
            target_type="evidence",
            target_id=evidence.pk,
            case_id=evidence.case_id,
            details={"reason": reason},
        )
    raise (Conflict(reason, code=code) if conflict else ServiceError(reason, code=code))


def evidence_parent_link(*, actor: User, evidence: Evidence, parent_id: uuid.UUID | str) -> Evidence:
    """Link ``evidence`` (a differencing disk) to its parent ``parent_id``, sealed in the same case.

    Refused (audited): a parent in no case of the actor's or in another case (400), an item that is not a
    differencing disk, a parent that is not a sealed disk image, a link that would loop, a chain longer than
    ``MAX_PARENT_CHAIN``, an item already linked to another parent, a VHD parent whose identifier is not
    the one the child records (409). Linking the same parent again changes nothing."""
    evidence = evidence_get(user=actor, evidence_id=evidence.pk, permission=perms.REGISTER_EVIDENCE)
    try:
        parent_uuid = parent_id if isinstance(parent_id, uuid.UUID) else uuid.UUID(str(parent_id))
    except ValueError:
        parent_uuid = None
    parent = Evidence.objects.filter(pk=parent_uuid, case_id=evidence.case_id).first() if parent_uuid else None
    if parent is None:
        _refuse(
            actor=actor,
            evidence=evidence,
            reason="The parent is no evidence of this case.",
            code="no_such_parent",
            conflict=False,
        )
    child_format = (
        DetectedFormat(ImageFormat(evidence.format), evidence.format_details or {}) if evidence.format else None
    )
    if child_format is None or not has_parent(child_format):
        _refuse(
            actor=actor,
            evidence=evidence,
            reason="This item is no differencing disk: it has no parent.",
            code="no_parent_needed",
        )
    if not parent.is_sealed or parent.format not in ("raw", "ewf", "vhd", "vhdx", "vmdk", "qcow2"):
        _refuse(
            actor=actor, evidence=evidence, reason="The parent must be a sealed disk image.", code="parent_not_image"
        )
    if evidence.parent_id == parent.pk:
        return evidence
    if evidence.parent_id is not None:
        _refuse(
            actor=actor,
            evidence=evidence,
            reason="This item is already linked to another parent.",
            code="parent_already_linked",
        )
    ancestors = [link["evidence"].pk for link in evidence_parent_chain(evidence=parent)]
    if parent.pk == evidence.pk or evidence.pk in ancestors:
        _refuse(actor=actor, evidence=evidence, reason="The link would make the chain loop.", code="parent_loop")
    if len(ancestors) + 1 >= MAX_PARENT_CHAIN:
        _refuse(
            actor=actor,
            evidence=evidence,
            reason=f"A chain holds at most {MAX_PARENT_CHAIN} parents.",
            code="parent_chain_too_long",
        )
    expected_id = (evidence.format_details or {}).get("parent_unique_id")
    parent_id_found = (parent.format_details or {}).get("unique_id")
    if expected_id and parent_id_found and expected_id != parent_id_found:
        _refuse(
            actor=actor,
            evidence=evidence,
            reason=f"The child's parent is disk {expected_id}; this parent is disk {parent_id_found}.",
            code="parent_mismatch",
        )
    with transaction.atomic():
        Evidence.objects.filter(pk=evidence.pk).update(parent=parent)
        evidence.parent = parent
        audit_record(
            action="evidence.parent.link",
            actor=actor,
            target_type="evidence",
            target_id=evidence.pk,
            case_id=evidence.case_id,
            details={
                "parent": str(parent.pk),
                "parent_sha256": parent.sha256,
                "read_as": parent_reference(child_format) if child_format else None,
            },
        )
    return evidence
