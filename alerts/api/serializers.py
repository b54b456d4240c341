from rest_framework import serializers

from alerts.models import Alert
from custodia.api import StrictSerializer


class AlertSerializer(serializers.ModelSerializer):
    case = serializers.IntegerField(source="case_id", allow_null=True, read_only=True)
    organization = serializers.IntegerField(source="organization_id", allow_null=True, read_only=True)
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", allow_null=True, read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "kind",
            "category",
            "severity",
            "title",
            "message",
            "details",
            "case",
            "organization",
            "occurrences",
            "raised_at",
            "last_seen_at",
            "acknowledged_at",
            "acknowledged_by",
            "acknowledgement_note",
        ]
        read_only_fields = fields


class AlertListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    results = AlertSerializer(many=True)


class AcknowledgeSerializer(StrictSerializer):
    note = serializers.CharField(max_length=2000, help_text="What was done about it.")
