"""What every API view uses: the request body validated (unknown fields refused), and the evidence item a
URL names loaded for the caller. Errors are answered by ``api_exception_handler`` (custodia/errors.py)."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.throttling import ScopedRateThrottle

from audit import context
from audit.middleware import client_address
from cases import permissions as perms
from evidence import selectors as evidence_selectors
from evidence.models import Evidence


def validated(serializer_class: type[serializers.Serializer], data, **kwargs) -> dict:
    """The request body validated by ``serializer_class``; a ValidationError (400) otherwise."""
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so that a typo is an error rather than silently ignored."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class ClientAddressScopedThrottle(ScopedRateThrottle):
    """DRF's scoped throttle, counted per client address as the audit trail sees it: DRF's own reads the
    client's X-Forwarded-For whole, so a fresh header per try was a fresh count (issue #17, finding 4)."""

    def get_ident(self, request) -> str:
        return client_address(request)


def evidence_for_request(request, evidence_id, permission: str = perms.VIEW_EVIDENCE) -> Evidence:
    """The evidence item for this caller if they hold ``permission`` on it (NotFound or Forbidden otherwise);
    the request's audit row names its case even when refused."""
    context.note_target(case_id=evidence_selectors.evidence_case_id(evidence_id=evidence_id))
    return evidence_selectors.evidence_get(user=request.user, evidence_id=evidence_id, permission=permission)
