"""The AuthnRequest this browser sent, so that the IdP's answer must be the answer to it (``InResponseTo``).

It is kept in the session and, for the way back, in a signed cookie of its own: the IdP posts its answer
from another site, and the session cookie (SameSite=Lax) is not sent with a cross-site POST. The cookie is
SameSite=None (and so Secure) over HTTPS, signed with the secret key, limited to the SAML URLs, expires with
the request (``CUSTODIA_SAML_REQUEST_SECONDS``) and is taken once: an answer can be used by the browser
that asked, and only once.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse

SESSION_KEY = "saml_pending"
COOKIE_NAME = "custodia_saml_request"
COOKIE_PATH = "/auth/saml/"
SALT = "custodia.saml.pending-request"


@dataclass(frozen=True)
class PendingRequest:
    request_id: str
    organization: str  # the organisation's slug
    next_path: str
    issued_at: float


def remember(*, request: HttpRequest, response: HttpResponse, pending: PendingRequest) -> None:
    request.session[SESSION_KEY] = asdict(pending)
    secure = request.is_secure()
    response.set_cookie(
        COOKIE_NAME,
        signing.dumps(asdict(pending), salt=SALT),
        max_age=settings.CUSTODIA_SAML_REQUEST_SECONDS,
        path=COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="None" if secure else "Lax",
    )


def take(*, request: HttpRequest) -> PendingRequest | None:
    """The request this browser is waiting on, forgotten as it is read; None if none, or it expired."""
    data = request.session.pop(SESSION_KEY, None)
    if data is None and COOKIE_NAME in request.COOKIES:
        try:
            data = signing.loads(
                request.COOKIES[COOKIE_NAME], salt=SALT, max_age=settings.CUSTODIA_SAML_REQUEST_SECONDS
            )
        except signing.BadSignature:
            data = None
    if not isinstance(data, dict):
        return None
    try:
        pending = PendingRequest(**data)
    except TypeError:
        return None
    if time.time() - pending.issued_at > settings.CUSTODIA_SAML_REQUEST_SECONDS:
        return None
    return pending


def forget(response: HttpResponse) -> None:
    response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH)
