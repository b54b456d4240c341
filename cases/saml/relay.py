"""Where a sign-in may send the browser afterwards: a path on our own site, nothing else.

RelayState comes back from the IdP in a form anyone can post, and ``next`` is a query parameter anyone can
link to: both are open redirects unless checked. Django's ``url_has_allowed_host_and_scheme`` refuses
other hosts and schemes (``https://evil.test``, ``//evil.test``, ``javascript:``); we also refuse a
backslash anywhere (browsers read ``/\\evil.test`` as ``//evil.test``), control characters, and anything
that is not a path (an absolute URL, even to our own host, is not needed and not accepted).
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme

from custodia.errors import ServiceError

MAX_LENGTH = 1000


class UnsafeRedirect(ServiceError):
    code = "unsafe_redirect"
    status_code = 400


def safe_path(value: str, *, request: HttpRequest) -> str:
    """``value`` if it is a path on this site; raises ``UnsafeRedirect`` otherwise. Empty stays empty."""
    if not value:
        return ""
    unsafe = (
        len(value) > MAX_LENGTH
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(char) < 0x20 or ord(char) == 0x7F for char in value)
        or not url_has_allowed_host_and_scheme(value, allowed_hosts={request.get_host()}, require_https=False)
    )
    if unsafe:
        raise UnsafeRedirect("After signing in, Custodia goes only to a page of its own; this address is not one.")
    return value
