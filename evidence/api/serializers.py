from __future__ import annotations

import base64
import binascii

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from custodia.api import StrictSerializer
from evidence.models import RECORDED_FIELDS, Evidence, EvidenceKind, KeyEscrow, SecretKind
from evidence.selectors import evidence_chain_summary
from evidence.services.upload import MAX_EVIDENCE_BYTES


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time that carries its zone (``2026-03-07T14:30:00+01:00`` or ``…Z``): a time without one
    (``2026-03-07T14:30:00``) is refused with a 400 naming the field, rather than read in some zone the
    client never chose (issue #20 item 13: "seized at" is entered with a zone)."""

    default_error_messages = {
        "naive": "An ISO 8601 time with its offset or Z is required, e.g. 2026-03-07T14:30:00+01:00.",
    }

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:  # well formed but no time (month 13): the parent says so
                parsed = None
            if parsed is not None and timezone.is_naive(parsed):
                self.fail("naive")
        return super().to_internal_value(value)


class DeclaredHashSerializer(serializers.Serializer):
    algorithm = serializers.CharField()
    declared = serializers.CharField()
    computed = serializers.CharField()
    matches = serializers.BooleanField(allow_null=True, help_text="Null until the bytes are hashed.")


class EvidenceSerializer(serializers.ModelSerializer):
    case = serializers.IntegerField(source="case_id", read_only=True)
    registered_by = serializers.CharField(source="registered_by.username", read_only=True)
    progress = serializers.FloatField(read_only=True)
    parent = serializers.UUIDField(source="parent_id", read_only=True, allow_null=True)
    parent_chain = serializers.SerializerMethodField()
    custody_state = serializers.CharField(read_only=True, help_text="registered, receiving, sealed, verified, …")
    analysis_state = serializers.CharField(read_only=True, help_text="not_started, extracting or extracted")
    declared_hashes = DeclaredHashSerializer(many=True, read_only=True)

    class Meta:
        model = Evidence
        fields = [
            "id",
            "parent",
            "parent_chain",
            "case",
            "label",
            "kind",
            "description",
            "seized_from",
            "seized_by",
            "seized_at",
            "source",
            "original_name",
            *RECORDED_FIELDS,
            "source_time_zone",
            "state",
            "custody_state",
            "analysis_state",
            "failure_reason",
            "format",
            "format_details",
            "size",
            "declared_size",
            "received_bytes",
            "progress",
            "acquisition_log",
            "chunk_size",
            "md5",
            "sha1",
            "sha256",
            "declared_md5",
            "declared_sha1",
            "declared_sha256",
            "declared_hashes",
            "manifest_sha256",
            "integrity",
            "integrity_problem",
            "last_verified_at",
            "registered_by",
            "created_at",
            "sealed_at",
        ]
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "object",
            "description": "A differencing disk's parents: linked sealed items (nearest first), or files "
            "imported with it; the name it looks its parent up by; intake's warnings.",
        }
    )
    def get_parent_chain(self, evidence: Evidence) -> dict:
        summary = evidence_chain_summary(evidence=evidence)
        return {
            "needs_parent": summary["needs_parent"],
            "reference": summary["reference"],
            "parents": [
                {
                    "id": str(link["evidence"].pk),
                    "label": link["evidence"].label,
                    "format": link["evidence"].format,
                    "sha256": link["evidence"].sha256,
                    "read_as": link["read_as"],
                }
                for link in summary["parents"]
            ],
            "files": summary["files"],
            "warnings": summary["warnings"],
        }


class EvidenceParentLinkSerializer(StrictSerializer):
    parent = serializers.UUIDField(help_text="The sealed disk image of the same case this item differs from.")


class RecordedFactsSerializer(StrictSerializer):
    """The registration facts (exhibit, bag and seal numbers, device, acquisition tool, examiner)."""

    exhibit_number = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    bag_number = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    seal_number = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    make = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    model = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    serial_number = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    acquisition_tool = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    acquisition_tool_version = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    examiner = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class EvidenceRegisterSerializer(RecordedFactsSerializer):
    label = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=EvidenceKind.choices)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    seized_from = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    seized_by = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    seized_at = AwareDateTimeField(required=False, allow_null=True, default=None)
    declared_size = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0, max_value=MAX_EVIDENCE_BYTES
    )
    declared_md5 = serializers.CharField(required=False, allow_blank=True, default="")
    declared_sha1 = serializers.CharField(required=False, allow_blank=True, default="")
    declared_sha256 = serializers.CharField(required=False, allow_blank=True, default="")
    original_name = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class EvidenceImportSerializer(RecordedFactsSerializer):
    case = serializers.IntegerField()
    paths = serializers.ListField(child=serializers.CharField(max_length=4096), min_length=1, max_length=1000)
    label = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(choices=EvidenceKind.choices, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    seized_from = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    seized_by = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    seized_at = AwareDateTimeField(required=False, allow_null=True, default=None)
    declared_md5 = serializers.CharField(required=False, allow_blank=True, default="")
    declared_sha1 = serializers.CharField(required=False, allow_blank=True, default="")
    declared_sha256 = serializers.CharField(required=False, allow_blank=True, default="")


class EvidenceAcquireSerializer(RecordedFactsSerializer):
    case = serializers.IntegerField()
    device = serializers.CharField(max_length=4096)
    label = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(choices=EvidenceKind.choices, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    seized_from = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    seized_by = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    seized_at = AwareDateTimeField(required=False, allow_null=True, default=None)
    declared_md5 = serializers.CharField(required=False, allow_blank=True, default="")
    declared_sha1 = serializers.CharField(required=False, allow_blank=True, default="")
    declared_sha256 = serializers.CharField(required=False, allow_blank=True, default="")


class UploadStatusSerializer(serializers.Serializer):
    state = serializers.CharField()
    size = serializers.IntegerField(allow_null=True)
    chunk_size = serializers.IntegerField()
    received_bytes = serializers.IntegerField()
    hashed_through = serializers.IntegerField()
    received = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))
    missing = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))


class VerificationSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    chunks_checked = serializers.IntegerField()
    mismatches = serializers.ListField(child=serializers.DictField())
    sha256 = serializers.CharField()


class SecretSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = KeyEscrow
        fields = ["id", "kind", "name", "tags", "created_by", "created_at"]
        read_only_fields = fields


class SecretCreateSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=SecretKind.choices)
    name = serializers.CharField(max_length=200)
    value = serializers.CharField(required=False, allow_blank=False, max_length=4096)
    value_base64 = serializers.CharField(required=False, allow_blank=False, max_length=100_000)
    tags = serializers.DictField(child=serializers.CharField(max_length=256), required=False, default=dict)

    def validate(self, attrs):
        if bool(attrs.get("value")) == bool(attrs.get("value_base64")):
            raise serializers.ValidationError("Give exactly one of value (text) or value_base64 (a BEK file).")
        if attrs.get("value_base64"):
            try:
                attrs["secret"] = base64.b64decode(attrs.pop("value_base64"), validate=True)
            except (binascii.Error, ValueError):
                raise serializers.ValidationError({"value_base64": "not valid base64."}) from None
        else:
            attrs["secret"] = attrs.pop("value").encode("utf-8")
        return attrs
