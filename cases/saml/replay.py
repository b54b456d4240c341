"""The replay cache: an assertion is accepted once. python3-saml checks an assertion's signature and
times but remembers nothing, so a captured response could be posted again until it expires.

Each accepted assertion ID is a row with a unique index, kept until the assertion expires (plus the clock
drift python3-saml allows): a second post of the same response is refused by the database, whichever
process or server receives it."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from onelogin.saml2.constants import OneLogin_Saml2_Constants as Saml

from cases.models import IdentityProvider, SamlAssertionSeen
from custodia.errors import ServiceError

CLOCK_DRIFT = timedelta(seconds=Saml.ALLOWED_CLOCK_DRIFT)
# An assertion that names no expiry (python3-saml requires one on the subject confirmation) is kept a day.
DEFAULT_KEEP = timedelta(days=1)


class AssertionReplayed(ServiceError):
    code = "saml_replay"
    status_code = 400


def remember_assertion(*, idp: IdentityProvider, assertion_id: str, expires_at: datetime | None) -> None:
    """Record ``assertion_id`` as used; raises ``AssertionReplayed`` if it was used before."""
    now = timezone.now()
    if not assertion_id:
        raise ServiceError("The assertion has no ID.", code="saml_refused")
    SamlAssertionSeen.objects.filter(expires_at__lt=now).delete()
    keep_until = (expires_at or now + DEFAULT_KEEP) + CLOCK_DRIFT
    try:
        with transaction.atomic():
            SamlAssertionSeen.objects.create(
                assertion_id=assertion_id[:255], identity_provider=idp, expires_at=keep_until
            )
    except IntegrityError:
        raise AssertionReplayed("This sign-in response was already used; sign in again.") from None
