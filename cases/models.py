from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class Organization(models.Model):
    """A tenant. Every user, case and query belongs to exactly one; nothing crosses."""

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="users", null=True, blank=True
    )
    is_org_admin = models.BooleanField(
        default=False, help_text="Manages the users and case memberships of their own organisation."
    )
    display_name = models.CharField(max_length=200, blank=True)
    # The IANA zone pages show times in (cases/times.py); empty: the server's TIME_ZONE.
    time_zone = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.display_name or self.get_full_name() or self.username


class Role(models.TextChoices):
    CUSTODIAN = "custodian", "Custodian"
    INVESTIGATOR = "investigator", "Investigator"
    DETECTIVE = "detective", "Detective"
    PROSECUTOR = "prosecutor", "Prosecutor"


class CaseStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class CasePriority(models.TextChoices):
    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"
    URGENT = "urgent", "Urgent"


class Case(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="cases")
    reference = models.CharField(max_length=60)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    priority = models.CharField(max_length=10, choices=CasePriority.choices, default=CasePriority.NORMAL)
    retention_until = models.DateField(null=True, blank=True)
    legal_hold = models.BooleanField(default=False)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "reference"], name="case_reference_unique_per_org")
        ]
        # Object permissions (django-guardian), granted per role in cases/permissions.py.
        permissions = [
            ("manage_members", "Add, change and remove case members"),
            ("view_audit", "Read the case's audit trail"),
            ("register_evidence", "Register, upload and seal evidence"),
            ("view_evidence", "See evidence items and their custody"),
            ("extract_evidence", "Start extraction runs"),
            ("search_traces", "Search and read traces"),
            ("annotate_traces", "Tag and annotate traces"),
            ("issue_links", "Issue and approve download links"),
            ("reveal_secrets", "Reveal escrowed secrets"),
            ("manage_retention", "Set the retention date and legal hold"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} — {self.title}"


class CaseMembership(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    added_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["user__username"]
        constraints = [models.UniqueConstraint(fields=["case", "user"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} as {self.role} in {self.case.reference}"


class TokenScope(models.TextChoices):
    READ = "read", "Read only"
    WRITE = "write", "Read and write"


class ApiToken(models.Model):
    """A bearer token for scripts. Only the SHA-256 of the token is stored; the token is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="The first characters, to recognise a token.")
    key_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=10, choices=TokenScope.choices, default=TokenScope.WRITE)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


# --- SAML single sign-on (issue #17, cases/saml) ------------------------------------------------------


class IdentityProvider(models.Model):
    """An organisation's own SAML 2.0 identity provider (Entra ID, AD FS, Keycloak, …): where its users sign
    in, the certificate its assertions are signed with, and how an assertion's attributes map to what the
    user may do in Custodia. Custodia never sees or stores these users' passwords."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="identity_provider")
    name = models.CharField(max_length=100, help_text='Shown on the sign-in page: "Sign in with <name>".')
    enabled = models.BooleanField(default=True)
    listed_on_login_page = models.BooleanField(
        default=True, help_text="Offer the button on the shared sign-in page (otherwise only at its own URL)."
    )
    entity_id = models.CharField(max_length=500, help_text="The IdP's entity ID (its Issuer).")
    sso_url = models.URLField(max_length=500, help_text="Single sign-on URL (HTTP-Redirect binding).")
    slo_url = models.URLField(max_length=500, blank=True, help_text="Single logout URL (HTTP-Redirect binding).")
    x509_cert = models.TextField(
        help_text="The IdP's full signing certificate, PEM or base64 (a fingerprint is not accepted)."
    )
    # Attribute mapping: which attributes of the assertion say who the user is and what they are.
    username_attribute = models.CharField(
        max_length=200, blank=True, help_text="Attribute holding the username; empty: the NameID."
    )
    email_attribute = models.CharField(max_length=200, blank=True, default="email")
    display_name_attribute = models.CharField(max_length=200, blank=True, default="displayName")
    groups_attribute = models.CharField(
        max_length=200, blank=True, default="groups", help_text="Attribute listing the user's groups or roles."
    )
    member_groups = models.TextField(
        blank=True,
        help_text="Groups (one per line) whose members may sign in; empty: every user the IdP vouches for.",
    )
    org_admin_groups = models.TextField(
        blank=True, help_text="Groups (one per line) whose members administer the organisation's users."
    )
    case_opener_groups = models.TextField(blank=True, help_text="Groups (one per line) whose members may open cases.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization__name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.organization})"


class SamlIdentity(models.Model):
    """The link between a user and the NameID their organisation's IdP knows them by."""

    identity_provider = models.ForeignKey(IdentityProvider, on_delete=models.CASCADE, related_name="identities")
    name_id = models.CharField(max_length=255)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="saml_identities")
    created_at = models.DateTimeField(default=timezone.now)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["identity_provider", "name_id"], name="one_user_per_saml_name_id")
        ]

    def __str__(self) -> str:
        return f"{self.name_id} → {self.user}"


class SamlAssertionSeen(models.Model):
    """The replay cache: every assertion ID accepted, kept until the assertion expires. The unique index
    is what refuses a second post of the same response, across every process and server."""

    assertion_id = models.CharField(max_length=255, unique=True)
    identity_provider = models.ForeignKey(IdentityProvider, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField(db_index=True)
    seen_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.assertion_id
