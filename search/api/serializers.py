from __future__ import annotations

from rest_framework import serializers

from search.models import ExtractionRun, Trace


class ExtractionRunSerializer(serializers.ModelSerializer):
    evidence = serializers.UUIDField(source="evidence_id", read_only=True)
    started_by = serializers.CharField(source="started_by.username", read_only=True, default=None)
    rate_bytes_per_second = serializers.FloatField(read_only=True)
    seconds_left = serializers.FloatField(read_only=True)

    class Meta:
        model = ExtractionRun
        fields = [
            "id",
            "evidence",
            "state",
            "priority",
            "priority_reason",
            "started_by",
            "tools",
            "traces",
            "files",
            "bytes_processed",
            "errors",
            "failure",
            "created_at",
            "started_at",
            "first_trace_at",
            "finished_at",
            "rate_bytes_per_second",
            "seconds_left",
        ]
        read_only_fields = fields


class TraceSerializer(serializers.ModelSerializer):
    evidence = serializers.UUIDField(source="evidence_id", read_only=True)

    class Meta:
        model = Trace
        fields = [
            "uid",
            "parent_uid",
            "evidence",
            "name",
            "path",
            "types",
            "properties",
            "streams",
            "tools",
            "errors",
            "deleted",
            "extracted_at",
        ]
        read_only_fields = fields
