"""Guesses at download links: throttled per client address, and folded in the audit trail.

A *guess* is a request whose token proves no knowledge of a link: a token that names no link, or a real
link's public lookup prefix with a secret that does not match its hash. A guess never lands in an evidence
item's custody trail (it proves nothing about the item); it is recorded against target type ``link`` only.

Per client address, guesses are counted in windows of ``CUSTODIA_LINK_GUESS_WINDOW_SECONDS`` that start at
the first guess (``LinkGuessWindow``): the first guess of a window writes its own ``link.refused`` row; the
rest only count, and one ``link.refused.burst`` row with the count is written when the window closes (at the
address's next guess after it, at any later guess's sweep, or by the periodic task). Past
``CUSTODIA_LINK_GUESS_LIMIT`` guesses in a window, every request of that address to a link is answered 429
with ``Retry-After`` until the window ends, before any link is looked up; those are counted too.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit import context
from audit.models import Outcome
from audit.privacy import Tagged
from audit.services import audit_record
from evidence.models import LinkGuessWindow

# How many finished windows (of any address) one guess closes on its way: the periodic task does the rest.
CLOSE_ON_THE_WAY = 20


def _window() -> timedelta:
    return timedelta(seconds=settings.CUSTODIA_LINK_GUESS_WINDOW_SECONDS)


def _open_window(*, client_address: str, now: datetime) -> LinkGuessWindow | None:
    return (
        LinkGuessWindow.objects.select_for_update()
        .filter(client_address=client_address, closed=False, started_at__gt=now - _window())
        .order_by("-started_at")
        .first()
    )


@transaction.atomic
def link_guess_throttled(*, client_address: str, now: datetime | None = None) -> int | None:
    """The seconds ``client_address`` must wait (for ``Retry-After``) when it has guessed past the limit in
    its current window, the request then counted and its own access row folded; None when it may go on."""
    now = now or timezone.now()
    window = _open_window(client_address=client_address, now=now)
    if window is None or window.refusals < settings.CUSTODIA_LINK_GUESS_LIMIT:
        return None
    LinkGuessWindow.objects.filter(pk=window.pk).update(throttled=F("throttled") + 1, last_at=now)
    context.fold_access_row()
    return max(1, math.ceil((window.started_at + _window() - now).total_seconds()))


@transaction.atomic
def link_guess_refused(*, client_address: str, reason: str, method: str, now: datetime | None = None) -> None:
    """Record one refused guess: its own audit row when it opens a window, else a count in the window."""
    now = now or timezone.now()
    link_guess_windows_close(now=now, client_address=client_address)
    link_guess_windows_close(now=now, limit=CLOSE_ON_THE_WAY)
    window = _open_window(client_address=client_address, now=now)
    if window is not None:
        reasons = dict(window.reasons)
        reasons[reason] = reasons.get(reason, 0) + 1
        LinkGuessWindow.objects.filter(pk=window.pk).update(refusals=F("refusals") + 1, last_at=now, reasons=reasons)
        context.fold_access_row()
        return
    LinkGuessWindow.objects.create(
        client_address=client_address, started_at=now, last_at=now, refusals=1, reasons={reason: 1}
    )
    audit_record(
        action="link.refused",
        outcome=Outcome.DENIED,
        target_type="link",
        details={
            "reason": reason,
            "method": method,
            # Further guesses from this address in the window are counted in one link.refused.burst row.
            "fold_window_seconds": settings.CUSTODIA_LINK_GUESS_WINDOW_SECONDS,
        },
    )


@transaction.atomic
def link_guess_windows_close(
    *, now: datetime | None = None, client_address: str | None = None, limit: int | None = None
) -> int:
    """Close the finished windows (of one address, or of all), writing one ``link.refused.burst`` row for
    each that counted more than its first guess; return how many were closed."""
    now = now or timezone.now()
    finished = LinkGuessWindow.objects.select_for_update().filter(closed=False, started_at__lte=now - _window())
    if client_address is not None:
        finished = finished.filter(client_address=client_address)
    finished = finished.order_by("started_at")
    windows = list(finished[:limit] if limit else finished)
    for window in windows:
        if window.refusals > 1 or window.throttled:
            audit_record(
                action="link.refused.burst",
                outcome=Outcome.DENIED,
                target_type="link",
                details={
                    "client_address": Tagged("client_address", window.client_address),
                    "refusals": window.refusals,
                    "folded": window.refusals - 1,
                    "throttled": window.throttled,
                    "reasons": window.reasons,
                    "first_at": window.started_at,
                    "last_at": window.last_at,
                    "window_seconds": settings.CUSTODIA_LINK_GUESS_WINDOW_SECONDS,
                },
            )
    LinkGuessWindow.objects.filter(pk__in=[window.pk for window in windows]).update(closed=True)
    return len(windows)
