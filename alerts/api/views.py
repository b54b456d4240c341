"""Thin API views of the alerts addressed to the caller."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts import selectors, services
from alerts.api import serializers as s
from custodia.access import LOGGED_IN
from custodia.api import validated

# The list is the bell's: capped, newest first (older open alerts are still counted).
LIST_LIMIT = 100


class AlertListView(APIView):
    required_permission = LOGGED_IN  # the caller's own alerts only

    @extend_schema(responses=s.AlertListSerializer)
    def get(self, request):
        open_alerts = selectors.alerts_open_for(user=request.user)
        return Response(
            {"count": open_alerts.count(), "results": s.AlertSerializer(open_alerts[:LIST_LIMIT], many=True).data}
        )


class AlertAcknowledgeView(APIView):
    required_permission = LOGGED_IN  # an alert addressed to the caller; any other is 404

    @extend_schema(request=s.AcknowledgeSerializer, responses=s.AlertSerializer)
    def post(self, request, alert_id: int):
        data = validated(s.AcknowledgeSerializer, request.data)
        alert = services.alert_acknowledge(actor=request.user, alert_id=alert_id, note=data["note"])
        return Response(s.AlertSerializer(alert).data)
