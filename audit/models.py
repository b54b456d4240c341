"""The append-only, hash-chained audit trail.

``audit`` imports no other app of ours: it records its targets by type and id, and the case and
organisation by id, so that it sits at the bottom of the stack and every app can write to it.
"""

from django.db import models


class Outcome(models.TextChoices):
    OK = "ok", "ok"
    DENIED = "denied", "denied"
    FAILED = "failed", "failed"


class AuditEvent(models.Model):
    """One thing that happened. Rows are never updated or deleted: database triggers refuse it, and
    ``hash`` (SHA-256 over the canonical row and ``prev_hash``) exposes whatever a superuser does anyway."""

    sequence = models.BigIntegerField(primary_key=True)
    occurred_at = models.DateTimeField(db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    # The username at the time (or 'system'), as the privacy policy stores it: a keyed pseudonym per
    # organisation unless the policy keeps it public (audit.replacement); wide enough for its ciphertext.
    actor = models.CharField(max_length=255, blank=True, help_text="Username at the time, or 'system'.")
    organization_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    action = models.CharField(max_length=80, db_index=True)
    target_type = models.CharField(max_length=40, blank=True)
    target_id = models.CharField(max_length=200, blank=True)
    case_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OK)
    request_id = models.CharField(max_length=64, blank=True)
    client_address = models.CharField(max_length=200, blank=True)  # as the privacy policy stores it
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # The case's own chain (set at insert time for an event with a case, empty otherwise): the same
    # canonical row hashed after the case's previous event, so that a case's events can be proved
    # complete without showing any other case's (docs/audit.md, "Chains").
    case_sequence = models.BigIntegerField(null=True, blank=True)
    case_prev_hash = models.CharField(max_length=64, null=True, blank=True)
    case_hash = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        ordering = ["sequence"]
        indexes = [models.Index(fields=["case_id", "sequence"]), models.Index(fields=["target_type", "target_id"])]
        constraints = [
            # Partial, so that adding it is a CREATE UNIQUE INDEX and not a rebuild of the append-only table.
            models.UniqueConstraint(
                fields=["case_id", "case_sequence"],
                condition=models.Q(case_id__isnull=False),
                name="audit_case_sequence_unique",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.outcome}"


class AuditCheckpoint(models.Model):
    """A signed checkpoint of the chain head, as written to the checkpoint archive (the write-once
    evidence store). This table is an index for fast look-ups; the archive is the authority, and the
    verifier reads the archive, never this table."""

    number = models.BigIntegerField(primary_key=True)
    sequence = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    signed_at = models.DateTimeField()
    statement_digest = models.CharField(max_length=64, help_text="SHA-256 of the signed global statement.")
    algorithm = models.CharField(max_length=40)
    key_fingerprint = models.CharField(max_length=64)

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"checkpoint {self.number} at sequence {self.sequence}"


class AuditCaseCheckpoint(models.Model):
    """One case statement of a checkpoint: the head of a case's chain that the checkpoint signed."""

    checkpoint = models.ForeignKey(AuditCheckpoint, on_delete=models.CASCADE, related_name="case_heads")
    case_id = models.BigIntegerField()
    case_sequence = models.BigIntegerField()
    case_hash = models.CharField(max_length=64)
    statement_digest = models.CharField(max_length=64)

    class Meta:
        ordering = ["checkpoint_id"]
        constraints = [models.UniqueConstraint(fields=["checkpoint", "case_id"], name="audit_case_checkpoint_unique")]
        indexes = [models.Index(fields=["case_id", "checkpoint"])]

    def __str__(self) -> str:
        return f"checkpoint {self.checkpoint_id}: case {self.case_id} at {self.case_sequence}"


class PrivacyLookupEntry(models.Model):
    """The external look-up table of the message scope (MR, docs/privacy.md): one value of one audit row or
    log line, encrypted under the system-wide key and bound to its message id and number. The key is never
    here, so this table alone reveals nothing; an entry is written in the same transaction as its row."""

    message_id = models.CharField(max_length=32)
    number = models.PositiveIntegerField()
    ciphertext = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message_id", "number"], name="audit_privacy_lookup_unique")]

    def __str__(self) -> str:
        return f"look-up entry {self.message_id}/{self.number}"


class ReIdentificationStatus(models.TextChoices):
    PENDING = "pending", "waiting for a second person"
    APPROVED = "approved", "approved"
    REFUSED = "refused", "refused"


class ReIdentificationRequest(models.Model):
    """Someone asks for the clear value behind one replaced field of one audit row (who ran this query?);
    a second person of the same organisation approves it before the value is shown (issue #19 item 4).
    The clear value is never stored: it is computed, with the key, each time the requester reads it."""

    organization_id = models.BigIntegerField(db_index=True)
    event_sequence = models.BigIntegerField()
    field = models.CharField(max_length=200)
    reason = models.TextField()
    requested_by_id = models.BigIntegerField()
    requested_at = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=ReIdentificationStatus.choices, default=ReIdentificationStatus.PENDING
    )
    decided_by_id = models.BigIntegerField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"re-identification {self.pk} of #{self.event_sequence} {self.field} ({self.status})"
