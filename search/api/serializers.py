from __future__ import annotations

from rest_framework import serializers

from custodia.api import StrictSerializer
from search.models import ExtractionRun, SavedSearch, Trace, TraceNote


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
    evidence_label = serializers.CharField(source="evidence.label", read_only=True)
    tags = serializers.SerializerMethodField()

    class Meta:
        model = Trace
        fields = [
            "uid",
            "parent_uid",
            "evidence",
            "evidence_label",
            "name",
            "path",
            "types",
            "properties",
            "streams",
            "tools",
            "errors",
            "deleted",
            "extracted_at",
            "tags",
        ]
        read_only_fields = fields

    def get_tags(self, trace: Trace) -> list[str]:
        return sorted(tag.name for tag in trace.tags.all())


class SearchRequestSerializer(StrictSerializer):
    query = serializers.CharField(allow_blank=True, default="", max_length=4096, trim_whitespace=False)
    facets = serializers.ListField(child=serializers.CharField(max_length=40), required=False, allow_null=True)
    sort = serializers.CharField(allow_blank=True, default="", max_length=40)
    limit = serializers.IntegerField(default=50)
    cursor = serializers.CharField(allow_blank=True, allow_null=True, default=None, max_length=100)
    properties = serializers.ListField(child=serializers.CharField(max_length=200), required=False, allow_null=True)
    # With "date" among the facets: the histogram of this date property, by this interval (or "auto").
    date_property = serializers.CharField(default="file.modifiedOn", max_length=200)
    date_interval = serializers.CharField(default="auto", max_length=10)
    # Count every hit, and facet over all of them, past CUSTODIA_SEARCH_COUNT_LIMIT (slower on many hits).
    exact = serializers.BooleanField(default=False)
    # Issue #20 item 7: one hit per content hash; facets on any property (terms, or ranges for numbers and dates).
    dedupe = serializers.BooleanField(default=False)
    facet_properties = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=5)


class TraceValuesRequestSerializer(StrictSerializer):
    """The unique values of one property over the hits of a query (hansken.py's unique_values)."""

    query = serializers.CharField(allow_blank=True, default="", max_length=4096, trim_whitespace=False)
    property = serializers.CharField(max_length=200)
    limit = serializers.IntegerField(default=100)


class EventsSearchRequestSerializer(StrictSerializer):
    """The events timeline of the hits of a query (search/events.py)."""

    query = serializers.CharField(allow_blank=True, default="", max_length=4096, trim_whitespace=False)
    start = serializers.CharField(allow_blank=True, allow_null=True, default=None, max_length=40)
    end = serializers.CharField(allow_blank=True, allow_null=True, default=None, max_length=40)
    kinds = serializers.ListField(child=serializers.CharField(max_length=60), required=False, allow_null=True)
    order = serializers.ChoiceField(choices=["asc", "desc"], default="asc")
    limit = serializers.IntegerField(default=100)
    cursor = serializers.CharField(allow_blank=True, allow_null=True, default=None, max_length=800)


class TraceNoteSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True)

    class Meta:
        model = TraceNote
        fields = ["id", "author", "text", "created_at"]
        read_only_fields = ["id", "author", "created_at"]


class NoteRequestSerializer(StrictSerializer):
    text = serializers.CharField(max_length=10_000)


class BulkTagRequestSerializer(StrictSerializer):
    query = serializers.CharField(allow_blank=True, required=False, max_length=4096, trim_whitespace=False)
    uids = serializers.ListField(child=serializers.CharField(max_length=400), required=False, max_length=10_000)
    tag = serializers.CharField(max_length=64)


class SavedSearchSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = SavedSearch
        fields = ["id", "name", "query", "created_by", "created_at"]
        read_only_fields = ["id", "created_by", "created_at"]
        # Saving under an existing name replaces it, so the model's (case, name) uniqueness is not checked here.
        validators = []
