from __future__ import annotations

import base64
import binascii

from rest_framework import serializers

from custodia.api import StrictSerializer
from evidence.models import Evidence, EvidenceKind, KeyEscrow, SecretKind
from evidence.services.upload import MAX_EVIDENCE_BYTES


class EvidenceSerializer(serializers.ModelSerializer):
    case = serializers.IntegerField(source="case_id", read_only=True)
    registered_by = serializers.CharField(source="registered_by.username", read_only=True)
    progress = serializers.FloatField(read_only=True)

    class Meta:
        model = Evidence
        fields = [
            "id",
            "case",
            "label",
            "kind",
            "description",
            "seized_from",
            "seized_by",
            "seized_at",
            "source",
            "original_name",
            "source_time_zone",
            "state",
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
            "manifest_sha256",
            "integrity",
            "integrity_problem",
            "last_verified_at",
            "registered_by",
            "created_at",
            "sealed_at",
        ]
        read_only_fields = fields


class EvidenceRegisterSerializer(StrictSerializer):
    label = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=EvidenceKind.choices)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    seized_from = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    seized_by = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    seized_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    declared_size = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0, max_value=MAX_EVIDENCE_BYTES
    )
    declared_md5 = serializers.CharField(required=False, allow_blank=True, default="")
    declared_sha1 = serializers.CharField(required=False, allow_blank=True, default="")
    declared_sha256 = serializers.CharField(required=False, allow_blank=True, default="")
    original_name = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class EvidenceImportSerializer(StrictSerializer):
    case = serializers.IntegerField()
    paths = serializers.ListField(child=serializers.CharField(max_length=4096), min_length=1, max_length=1000)
    label = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(choices=EvidenceKind.choices, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    seized_from = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    seized_by = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    seized_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    declared_md5 = serializers.CharField(required=False, allow_blank=True, default="")
    declared_sha1 = serializers.CharField(required=False, allow_blank=True, default="")
    declared_sha256 = serializers.CharField(required=False, allow_blank=True, default="")


class EvidenceAcquireSerializer(StrictSerializer):
    case = serializers.IntegerField()
    device = serializers.CharField(max_length=4096)
    label = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(choices=EvidenceKind.choices, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    seized_from = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    seized_by = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    seized_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
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
