"""Serializers of the hash set API."""

from __future__ import annotations

from rest_framework import serializers

from custodia.api import StrictSerializer
from hashsets.models import HASH_SET_NAME_MAX_LENGTH, HashAlgorithm, HashKind, HashSet


class HashSetSerializer(serializers.ModelSerializer):
    algorithms = serializers.SerializerMethodField()

    class Meta:
        model = HashSet
        fields = [
            "id",
            "name",
            "kind",
            "state",
            "source_format",
            "source_name",
            "entries",
            "algorithms",
            "created_at",
            "imported_at",
        ]
        read_only_fields = fields

    def get_algorithms(self, hash_set: HashSet) -> list[str]:
        return [HashAlgorithm(algorithm).label for algorithm in hash_set.algorithms]


class HashSetImportSerializer(StrictSerializer):
    """The query string of ``POST /api/hashsets/``; the body is the file."""

    name = serializers.CharField(max_length=HASH_SET_NAME_MAX_LENGTH)
    kind = serializers.ChoiceField(choices=HashKind.values)
    source_name = serializers.CharField(max_length=300, required=False, default="")
