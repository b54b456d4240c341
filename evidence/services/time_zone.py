"""The source time zone of an evidence item: the IANA zone its device kept its clock in, as the custodian
knows it (from the seizure report, the registry's TimeZoneInformation, the owner's statement…).

Extraction converts the item's local times of unknown zone (FAT and zip DOS times, EXIF without an offset)
to UTC with it, and records the zone with each converted value (docs/extraction.md, "Time zones"). Setting,
changing or clearing it is audited; it applies from the next extraction run of the item.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from django.db import transaction

from audit.services import audit_record
from cases import permissions as perms
from cases.models import User
from custodia.errors import ServiceError
from evidence.models import Evidence
from evidence.selectors import evidence_get

MAX_TIME_ZONE_LENGTH = 64


@lru_cache(maxsize=1)
def time_zone_names() -> tuple[str, ...]:
    """Every IANA time zone this machine knows, sorted (the evidence page's choices)."""
    return tuple(sorted(name for name in available_timezones() if len(name) <= MAX_TIME_ZONE_LENGTH))


def normalised_time_zone(value: str) -> str:
    """``value`` as a known IANA zone name, ``""`` for none; a `ServiceError` for anything else."""
    name = (value or "").strip()
    if not name:
        return ""
    if name not in time_zone_names():
        raise ServiceError(
            "time_zone: give an IANA time zone name such as Europe/Amsterdam or UTC, or nothing for unknown."
        )
    ZoneInfo(name)  # known to the list, so it loads; a broken tzdata fails here rather than in extraction
    return name


@transaction.atomic
def evidence_source_time_zone_set(*, actor: User, evidence: Evidence, time_zone: str) -> Evidence:
    """Set (or, with ``""``, clear) the evidence item's source time zone; audited with the old and new zone."""
    evidence = evidence_get(user=actor, evidence_id=evidence.pk, permission=perms.REGISTER_EVIDENCE)
    name = normalised_time_zone(time_zone)
    previous = evidence.source_time_zone
    if name == previous:
        return evidence
    Evidence.objects.filter(pk=evidence.pk).update(source_time_zone=name)
    evidence.source_time_zone = name
    audit_record(
        action="evidence.source_time_zone",
        actor=actor,
        target_type="evidence",
        target_id=evidence.pk,
        case_id=evidence.case_id,
        details={"from": previous or None, "to": name or None},
    )
    return evidence
