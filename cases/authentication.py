from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from audit import context
from cases.models import ApiToken
from cases.services import hash_token

LAST_USED_PRECISION = 60  # seconds: a token's last-used time is written at most once a minute


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <token>`` with an API token. Expired or revoked tokens are refused."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use 'Bearer <token>'.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        token = ApiToken.objects.select_related("user", "user__organization").filter(key_hash=hash_token(raw)).first()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This token has been revoked.")
        now = timezone.now()
        if token.expires_at <= now:
            raise exceptions.AuthenticationFailed("This token has expired; request a new one.")
        # Every use is tied to the user: the request's audit rows have the token's user as actor, and the
        # access rows name the token too. No row of its own per use: the request's rows are the record, and
        # a script may send thousands of requests.
        context.add_details(api_token=token.pk)
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > LAST_USED_PRECISION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword


class SessionAuthentication(authentication.SessionAuthentication):
    """The browser's session, with CSRF enforced on unsafe methods (DRF's behaviour)."""


class TokenScopePermission(permissions.BasePermission):
    """A read-scoped token may only read."""

    message = "This API token is read-only."

    def has_permission(self, request, view):
        token = request.auth
        if isinstance(token, ApiToken) and token.scope == "read":
            return request.method in permissions.SAFE_METHODS
        return True
