"""A case's retention date and legal hold, applied to every sealed object of the case in the evidence store.

Sealing protects an item as its case requires at that moment (evidence/services/sealing.py); this service
carries a later change of the case to every item already sealed, synchronously, inside the transaction that
changes the case (it runs as the receiver of ``cases.signals.case_retention_changed``). The store is not
transactional, so the order is chosen to leave nothing half-done:

- refusals first, before any object is touched: write-once storage extends a retention date but never
  shortens or clears it, so a case whose sealed objects are retained cannot shorten or clear its date;
- then each sealed item's prefix. When the store fails on one, the legal hold of the items already done is
  put back as it was and the whole change is refused (``Conflict``): the case row and its audit rows roll
  back, and ``case_update`` audits the refusal. A retention date already extended on an item cannot be put
  back (the store forbids it): that item is then protected for longer than the case says, never shorter.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from cases.models import Case
from custodia.errors import Conflict
from evidence.models import Evidence, EvidenceState
from evidence.storage.base import EvidenceStore, StoreError, get_store

logger = logging.getLogger(__name__)

# States in which an item's objects lie sealed in the store.
SEALED_STATES = (EvidenceState.SEALED, EvidenceState.EXTRACTING, EvidenceState.EXTRACTED)


def case_retention_apply(
    *, case: Case, previous_retention_until: date | None, previous_legal_hold: bool
) -> dict[str, Any]:
    """Protect every sealed item of ``case`` as the case now says; return what was applied (for the audit
    row). Raises Conflict, with nothing changed in the store's holds, when the store refuses."""
    sealed = Evidence.objects.filter(case=case, state__in=SEALED_STATES).order_by("created_at").only("id")
    prefixes = [evidence.storage_prefix for evidence in sealed]
    until, legal_hold = case.retention_until, case.legal_hold
    if prefixes and previous_retention_until is not None and (until is None or until < previous_retention_until):
        raise Conflict(
            f"The {len(prefixes)} sealed evidence item(s) of this case are retained in the write-once store until "
            f"{previous_retention_until.isoformat()}: a retention date can be extended, never shortened or removed.",
            code="retention_locked",
        )
    store = get_store()
    done: list[str] = []
    for prefix in prefixes:
        try:
            store.set_retention(prefix, until=until, legal_hold=legal_hold)
        except StoreError as error:
            _restore_holds(store=store, prefixes=done, legal_hold=previous_legal_hold)
            logger.error("retention of case %s could not reach %s: %s", case.pk, prefix, error)
            raise Conflict(
                f"The evidence store refused the change for {prefix} ({error}); nothing was changed.",
                code="store_refused",
            ) from None
        done.append(prefix)
    return {
        "sealed_items": len(done),
        "retention_until": until.isoformat() if until else None,
        "legal_hold": legal_hold,
        "store": type(store).__name__,
    }


def _restore_holds(*, store: EvidenceStore, prefixes: list[str], legal_hold: bool) -> None:
    for prefix in prefixes:
        try:
            store.set_retention(prefix, until=None, legal_hold=legal_hold)  # until=None keeps the date
        except StoreError as error:
            logger.error("the legal hold of %s could not be put back after a refused change: %s", prefix, error)
