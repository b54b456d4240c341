"""Alerts (something went wrong, or looks like an attack) and hand-offs (the next person in a journey has
something to do), each addressed to the people who must act, and their deliveries over each channel.

An alert's ``message`` and ``details`` are stored as the privacy model transformed them when it was raised
(audit/privacy.py): the same text goes to the bell, the e-mail and the SIEM feed, and no clear-text
username, query, case reference or client address rests in this table where the policy forbids it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Category(models.TextChoices):
    ALERT = "alert", "Alert"
    HANDOFF = "handoff", "Hand-off"


class Severity(models.TextChoices):
    # RFC 5424 severities, by name: the syslog channel maps them to numbers.
    CRITICAL = "critical", "Critical"
    ERROR = "error", "Error"
    WARNING = "warning", "Warning"
    NOTICE = "notice", "Notice"
    INFO = "info", "Information"


class Alert(models.Model):
    kind = models.CharField(max_length=60, db_index=True, help_text="The rule or hand-off that raised it.")
    category = models.CharField(max_length=10, choices=Category.choices, default=Category.ALERT)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    organization = models.ForeignKey(
        "cases.Organization", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    case = models.ForeignKey("cases.Case", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    title = models.CharField(max_length=200, help_text="Fixed text per kind: never a confidential value.")
    message = models.TextField(blank=True, help_text="As the privacy model transformed it.")
    details = models.JSONField(default=dict, blank=True, help_text="As the privacy model transformed them.")
    audit_sequence = models.BigIntegerField(null=True, blank=True, help_text="The audit event that raised it.")
    # While an alert with the same key is open, a repeat counts on it rather than raising another.
    dedupe_key = models.CharField(max_length=200, blank=True, db_index=True)
    occurrences = models.PositiveIntegerField(default=1)
    raised_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_seen_at = models.DateTimeField(default=timezone.now)
    recipients = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="alerts", blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledgement_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        indexes = [models.Index(fields=["dedupe_key", "acknowledged_at"])]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.acknowledged_at is None


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    SYSLOG = "syslog", "Syslog (RFC 5424 over TCP)"
    WEBHOOK = "webhook", "Signed webhook"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"


class Delivery(models.Model):
    """One alert over one channel. Pending until the channel took it; a failure leaves it pending with the
    attempt counted (the task retries, and the periodic sweep re-queues what the retries gave up on)."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=200, blank=True, help_text="The failure's kind: never a secret.")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["alert", "channel"], name="alerts_one_delivery_per_channel")]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.channel} of alert {self.alert_id}: {self.status}"
