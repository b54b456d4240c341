from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from cases.models import ApiToken, Case, CaseMembership, CasePriority, CaseStatus, Role, TokenScope, User
from cases.selectors import case_permissions
from custodia.api import StrictSerializer

# An upper bound for a token's lifetime that any setting stays under (ten years): the service then checks
# the configured maximum; without it a huge number overflows the date arithmetic (a 500).
MAX_TOKEN_SECONDS = 10 * 365 * 24 * 3600


class CaseSerializer(serializers.ModelSerializer):
    organization = serializers.CharField(source="organization.name", read_only=True)
    my_role = serializers.SerializerMethodField()
    my_permissions = serializers.SerializerMethodField()

    class Meta:
        model = Case
        fields = [
            "id",
            "reference",
            "title",
            "description",
            "status",
            "priority",
            "retention_until",
            "legal_hold",
            "organization",
            "created_at",
            "updated_at",
            "my_role",
            "my_permissions",
        ]
        read_only_fields = fields

    def _user(self):
        return self.context["request"].user

    def get_my_role(self, case) -> str | None:
        membership = next((m for m in case.memberships.all() if m.user_id == self._user().pk), None)
        return membership.role if membership else None

    def get_my_permissions(self, case) -> list[str]:
        return sorted(case_permissions(user=self._user(), case=case))


class CaseCreateSerializer(StrictSerializer):
    reference = serializers.CharField(max_length=60)
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=20000)
    priority = serializers.ChoiceField(choices=CasePriority.choices, default=CasePriority.NORMAL)
    retention_until = serializers.DateField(required=False, allow_null=True, default=None)
    legal_hold = serializers.BooleanField(required=False, default=False)


class CaseUpdateSerializer(StrictSerializer):
    title = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    status = serializers.ChoiceField(choices=CaseStatus.choices, required=False)
    priority = serializers.ChoiceField(choices=CasePriority.choices, required=False)
    retention_until = serializers.DateField(required=False, allow_null=True)
    legal_hold = serializers.BooleanField(required=False)
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=500,
        help_text="Why the retention date is shortened or the legal hold lifted (required then; audited).",
    )


class MembershipSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)
    display_name = serializers.CharField(source="user.__str__", read_only=True)
    added_by = serializers.CharField(source="added_by.username", read_only=True, default=None)

    class Meta:
        model = CaseMembership
        fields = ["id", "user", "display_name", "role", "added_by", "created_at"]
        read_only_fields = fields


class MembershipCreateSerializer(StrictSerializer):
    user = serializers.CharField(max_length=150, help_text="Username of a user of your organisation.")
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipRoleSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipDeleteSerializer(StrictSerializer):
    user = serializers.CharField(max_length=150)


class TokenLifetimeField(serializers.IntegerField):
    """A token's lifetime in seconds, between a minute and the policy's maximum (``CUSTODIA_API_TOKEN_MAX_TTL``,
    read per request): 1e15 is a 400 naming the bounds, never an overflow."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("default", None)
        kwargs.setdefault("min_value", 60)
        kwargs.setdefault("help_text", "Seconds until the token expires; at most the configured maximum.")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        maximum = int(settings.CUSTODIA_API_TOKEN_MAX_TTL.total_seconds())
        if value > maximum:
            raise serializers.ValidationError(f"Ensure this value is less than or equal to {maximum}.")
        return value


class LoginSerializer(StrictSerializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False)
    name = serializers.CharField(max_length=100, required=False, default="api")
    scope = serializers.ChoiceField(choices=TokenScope.choices, default=TokenScope.WRITE)
    expires_in = TokenLifetimeField()


class TokenCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=TokenScope.choices, default=TokenScope.READ)
    expires_in = TokenLifetimeField()


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "scope", "created_at", "expires_at", "last_used_at", "revoked_at"]
        read_only_fields = fields


class IssuedTokenSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once; only its hash is kept.")
    expires = serializers.DateTimeField(source="expires_at", read_only=True)

    class Meta(TokenSerializer.Meta):
        fields = ["token", "expires", *TokenSerializer.Meta.fields]
        read_only_fields = fields


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "display_name", "email", "is_active", "is_org_admin", "last_login"]
        read_only_fields = fields


class UserCreateSerializer(StrictSerializer):
    username = serializers.RegexField(r"^[\w.@+-]{2,150}$", max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    display_name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    is_org_admin = serializers.BooleanField(required=False, default=False)
    can_open_cases = serializers.BooleanField(required=False, default=False)


class UserUpdateSerializer(StrictSerializer):
    is_active = serializers.BooleanField()


class AuditEventSerializer(serializers.Serializer):
    sequence = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    actor = serializers.CharField()
    action = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    case_id = serializers.IntegerField(allow_null=True)
    outcome = serializers.CharField()
    request_id = serializers.CharField()
    client_address = serializers.CharField()
    details = serializers.JSONField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()


class FoldedAuditLineSerializer(serializers.Serializer):
    """One line of a review page (``audit.selectors.FoldedLine``): an event, or ``count`` alike reads folded
    into it, from ``first_at`` to ``last_at`` (sequences ``first_sequence`` to ``last_sequence``)."""

    event = AuditEventSerializer()
    count = serializers.IntegerField()
    first_at = serializers.DateTimeField()
    last_at = serializers.DateTimeField()
    first_sequence = serializers.IntegerField()
    last_sequence = serializers.IntegerField()

    def to_representation(self, instance):
        # Flat: the event's fields with the fold's beside them, so a line reads like an event.
        data = super().to_representation(instance)
        return {**data.pop("event"), **data}


class ChainReportSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    events = serializers.IntegerField()
    first_bad_sequence = serializers.IntegerField(allow_null=True)
    problem = serializers.CharField(allow_blank=True)
    checkpoint = serializers.IntegerField(allow_null=True, help_text="The newest signed checkpoint verified against")
    checkpoint_sequence = serializers.IntegerField(allow_null=True)
    not_checkpointed = serializers.IntegerField(allow_null=True, help_text="Rows after it: not yet verifiable")


class AuditPublicKeySerializer(serializers.Serializer):
    algorithm = serializers.ChoiceField(choices=["ed25519", "ecdsa-p256-sha256"])
    public_key = serializers.CharField(help_text="Base64: Ed25519 raw 32 bytes, or P-256 DER SubjectPublicKeyInfo")
    fingerprint = serializers.CharField(help_text="SHA-256 hex of the public key bytes")
