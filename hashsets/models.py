"""Hash sets (issue #20 item 6): known-good (NSRL) and known-bad digests an organisation imports.

A set's entries are one row a digest, keyed by (algorithm, digest bytes) with an index on that pair, so
that extraction looks up a whole batch of traces' digests in one query. Digests are stored as raw bytes
(16, 20 or 32), half the size of their hex and compared without case.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class HashKind(models.TextChoices):
    KNOWN_GOOD = "known-good", "Known good"
    KNOWN_BAD = "known-bad", "Known bad"


class HashSetState(models.TextChoices):
    IMPORTING = "importing", "Importing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class HashAlgorithm(models.IntegerChoices):
    MD5 = 1, "md5"
    SHA1 = 2, "sha1"
    SHA256 = 3, "sha256"


# The digest's length in bytes says its algorithm (a plain list of hex digests needs no header).
ALGORITHM_BY_DIGEST_BYTES = {16: HashAlgorithm.MD5, 20: HashAlgorithm.SHA1, 32: HashAlgorithm.SHA256}
HASH_SET_NAME_MAX_LENGTH = 100


class HashSet(models.Model):
    organization = models.ForeignKey("cases.Organization", on_delete=models.PROTECT, related_name="hash_sets")
    name = models.CharField(max_length=HASH_SET_NAME_MAX_LENGTH)
    kind = models.CharField(max_length=20, choices=HashKind.choices)
    state = models.CharField(max_length=20, choices=HashSetState.choices, default=HashSetState.IMPORTING)
    source_format = models.CharField(max_length=40, blank=True, help_text="nsrl-csv, nsrl-rdsv3 or list")
    source_name = models.CharField(max_length=300, blank=True, help_text="The imported file's name")
    entries = models.PositiveBigIntegerField(default=0)
    # The algorithms its digests are of (HashAlgorithm values): a look-up asks only about those.
    algorithms = models.JSONField(default=list, blank=True)
    failure = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)
    imported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="hashsets_hashset_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class HashEntry(models.Model):
    """One digest of one set. No uniqueness is enforced (a set may list a digest twice: NSRL lists a file
    once per product); look-ups ask which sets hold a digest, which duplicates do not change."""

    hash_set = models.ForeignKey(HashSet, on_delete=models.CASCADE, related_name="+", db_index=False)
    algorithm = models.PositiveSmallIntegerField(choices=HashAlgorithm.choices)
    digest = models.BinaryField(max_length=32)

    class Meta:
        indexes = [
            # The look-up: a batch's digests of one algorithm, answered with their sets from the index alone.
            models.Index(fields=["algorithm", "digest", "hash_set"], name="hashsets_entry_lookup"),
            # Deleting a set (or a failed import) drops its entries by this.
            models.Index(fields=["hash_set"], name="hashsets_entry_set"),
        ]

    def __str__(self) -> str:
        return f"{HashAlgorithm(self.algorithm).label} {bytes(self.digest).hex()}"
