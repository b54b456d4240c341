"""Browser hardening of every response (issue #17, finding 7): the Content-Security-Policy header, and the
``visible`` template filter that spells out control and bidirectional formatting characters in names
from evidence (``audit.text.visible_text``; a built-in of the templates, see TEMPLATES in settings)."""

from __future__ import annotations

import functools

from django import template
from django.conf import settings

from audit.text import visible_text

register = template.Library()


@register.filter(name="visible")
def visible(value: object) -> object:
    """``{{ trace.name|visible }}``: the name with its hidden characters shown (then escaped as usual).
    Anything but text (a number, a date) is left for the template to format as it would."""
    return visible_text(value) if isinstance(value, str) else value


class ContentSecurityPolicyMiddleware:
    """Sets ``CUSTODIA_CONTENT_SECURITY_POLICY`` on every response that has none of its own: scripts and
    styles from our own files only, no inline script or style, no framing, forms post only to us."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.CUSTODIA_CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response


def with_inline_styles(view):
    """The policy with inline styles allowed, for one view: the API's Swagger UI (drf-spectacular) injects
    a <style> element. Its scripts still come from our own files only."""

    @functools.wraps(view)  # keeps what the view declares (custodia.access: required_permission, view_class)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        policy = settings.CUSTODIA_CONTENT_SECURITY_POLICY
        if policy:
            response["Content-Security-Policy"] = policy.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
        return response

    return wrapped


__all__ = ["ContentSecurityPolicyMiddleware", "register", "visible", "with_inline_styles"]
