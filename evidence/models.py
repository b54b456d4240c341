"""Evidence items, the chunks received for them, and references to escrowed secrets.

What the database never holds: evidence bytes (they live sealed in the evidence store), the data key in
clear (only the key store's wrapped form), and escrowed secret values (only a key store reference).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class EvidenceKind(models.TextChoices):
    DISK_IMAGE = "disk_image", "Disk image"
    MEMORY_IMAGE = "memory_image", "Memory image"
    FILE = "file", "File"
    ARCHIVE = "archive", "Archive"
    VM_DISK = "vm_disk", "VM disk"


class EvidenceSource(models.TextChoices):
    UPLOAD = "upload", "Upload"
    SERVER_IMPORT = "server_import", "Server-side import"
    AZURE_VM_DISK = "azure_vm_disk", "Azure VM disk"
    LOCAL_DEVICE = "local_device", "Local device"


class EvidenceState(models.TextChoices):
    REGISTERED = "registered", "Registered"
    RECEIVING = "receiving", "Receiving"
    SEALED = "sealed", "Sealed"
    EXTRACTING = "extracting", "Extracting"
    EXTRACTED = "extracted", "Extracted"
    FAILED = "failed", "Failed"


class IntegrityStatus(models.TextChoices):
    UNVERIFIED = "unverified", "Not yet verified"
    INTACT = "intact", "Intact"
    MISMATCH = "mismatch", "Mismatch"


# The registration facts beyond the label, by field name, with the title pages and forms show.
RECORDED_FIELDS: dict[str, str] = {
    "exhibit_number": "Exhibit number",
    "bag_number": "Bag number",
    "seal_number": "Seal number",
    "make": "Make",
    "model": "Model",
    "serial_number": "Serial number",
    "acquisition_tool": "Acquisition tool",
    "acquisition_tool_version": "Acquisition tool version",
    "examiner": "Examiner",
}
CUSTODY_STATE_LABELS: dict[str, str] = {
    "registered": "Registered",
    "receiving": "Receiving",
    "sealed": "Sealed",
    "verified": "Sealed, verified",
    "mismatch": "Integrity mismatch",
    "failed": "Failed",
}
ANALYSIS_STATE_LABELS: dict[str, str] = {
    "not_started": "Not extracted",
    "extracting": "Extracting",
    "extracted": "Extracted",
}


class Evidence(models.Model):
    # The UUID is the only name the stores ever see: storage keys derive from it alone.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="evidence")
    label = models.CharField(max_length=200, help_text="A de-identified label, e.g. 'Laptop 1, internal SSD'.")
    kind = models.CharField(max_length=20, choices=EvidenceKind.choices)
    description = models.TextField(blank=True)
    seized_from = models.CharField(max_length=200, blank=True)
    seized_by = models.CharField(max_length=200, blank=True)
    seized_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=20, choices=EvidenceSource.choices, default=EvidenceSource.UPLOAD)
    original_name = models.CharField(max_length=500, blank=True, help_text="File name(s) as acquired.")
    # What labs record at registration (exhibit register, evidence bag, the device, how it was acquired):
    # free text, as the lab's own forms have it. The names are listed once in RECORDED_FIELDS below.
    exhibit_number = models.CharField(max_length=100, blank=True)
    bag_number = models.CharField(max_length=100, blank=True)
    seal_number = models.CharField(max_length=100, blank=True)
    make = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200, blank=True)
    serial_number = models.CharField(max_length=200, blank=True)
    acquisition_tool = models.CharField(max_length=200, blank=True)
    acquisition_tool_version = models.CharField(max_length=100, blank=True)
    examiner = models.CharField(max_length=200, blank=True)
    # The IANA zone the seized device kept its clock in, when the custodian knows it: extraction converts the
    # local times of unknown zone (FAT, zip DOS times, EXIF without offset) with it. Empty: unknown.
    source_time_zone = models.CharField(max_length=64, blank=True)

    declared_size = models.BigIntegerField(null=True, blank=True)
    declared_md5 = models.CharField(max_length=32, blank=True)
    declared_sha1 = models.CharField(max_length=40, blank=True)
    declared_sha256 = models.CharField(max_length=64, blank=True)

    state = models.CharField(max_length=20, choices=EvidenceState.choices, default=EvidenceState.REGISTERED)
    failure_reason = models.TextField(blank=True)
    format = models.CharField(max_length=20, blank=True)
    format_details = models.JSONField(default=dict, blank=True)
    # A differencing disk (a qcow2 with a backing file, a differencing VHD, a VMDK with a parent) reads its
    # unwritten sectors from its parent: another sealed item of the same case, linked by a custodian.
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="children")

    chunk_size = models.PositiveIntegerField(default=0)
    size = models.BigIntegerField(null=True, blank=True, help_text="Total size in bytes, once known.")
    received_bytes = models.BigIntegerField(default=0)
    # One-pass hashing across requests: the bytes [0, hashed_through) are hashed; the state resumes it.
    hashed_through = models.BigIntegerField(default=0)
    hasher_state = models.BinaryField(null=True, blank=True, editable=False)
    md5 = models.CharField(max_length=32, blank=True)
    sha1 = models.CharField(max_length=40, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    manifest_sha256 = models.CharField(max_length=64, blank=True)
    # Server-side import and local acquisition run in a worker: what it reads (resolved paths below the
    # import roots, or one allowed device) and how often a worker has started on it (a restart resumes).
    intake_paths = models.JSONField(default=list, blank=True, editable=False)
    intake_runs = models.PositiveIntegerField(default=0, editable=False)
    # Local acquisition: every byte range that could not be read after the retries and was zero-filled,
    # as {"start", "end" (exclusive), "bytes", "error", "attempts"}. Empty when every sector was read.
    acquisition_log = models.JSONField(default=list, blank=True, editable=False)

    # The data key wrapped by the key store; the clear key is never stored anywhere.
    wrapped_key = models.BinaryField(editable=False)
    key_id = models.CharField(max_length=300)
    key_algorithm = models.CharField(max_length=40)

    integrity = models.CharField(max_length=20, choices=IntegrityStatus.choices, default=IntegrityStatus.UNVERIFIED)
    integrity_problem = models.TextField(blank=True)
    last_verified_at = models.DateTimeField(null=True, blank=True)

    registered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    sealed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        verbose_name_plural = "evidence"
        indexes = [models.Index(fields=["case", "state"])]

    def __str__(self) -> str:
        return f"{self.label} ({self.id})"

    @property
    def storage_prefix(self) -> str:
        return f"evidence/{self.id}/"

    @property
    def is_sealed(self) -> bool:
        return self.state in (EvidenceState.SEALED, EvidenceState.EXTRACTING, EvidenceState.EXTRACTED)

    @property
    def display_name(self) -> str:
        """How people name the item on pages, in exports and in the audit review: its label."""
        return self.label

    @property
    def custody_state(self) -> str:
        """Custody apart from analysis: registered, receiving, sealed, sealed and verified, mismatch, failed."""
        if self.state == EvidenceState.FAILED:
            return "failed"
        if not self.is_sealed:
            return self.state
        if self.integrity == IntegrityStatus.MISMATCH:
            return "mismatch"
        return "verified" if self.integrity == IntegrityStatus.INTACT else "sealed"

    @property
    def custody_state_display(self) -> str:
        return CUSTODY_STATE_LABELS[self.custody_state]

    @property
    def analysis_state(self) -> str:
        """Analysis apart from custody: not started (sealed, or not yet sealed), extracting, extracted."""
        if self.state in (EvidenceState.EXTRACTING, EvidenceState.EXTRACTED):
            return self.state
        return "not_started"

    @property
    def analysis_state_display(self) -> str:
        return ANALYSIS_STATE_LABELS[self.analysis_state]

    @property
    def declared_hashes(self) -> list[dict]:
        """Each declared hash beside the computed one: ``matches`` is True or False once the bytes are
        hashed, None before."""
        rows = []
        for algorithm, title in (("md5", "MD5"), ("sha1", "SHA-1"), ("sha256", "SHA-256")):
            declared = getattr(self, f"declared_{algorithm}")
            if not declared:
                continue
            computed = getattr(self, algorithm)
            rows.append(
                {
                    "algorithm": algorithm,
                    "title": title,
                    "declared": declared,
                    "computed": computed,
                    "matches": (computed.lower() == declared.lower()) if computed else None,
                }
            )
        return rows

    @property
    def recorded_facts(self) -> list[tuple[str, str]]:
        """The registration facts given, as (title, value) pairs in the register's order."""
        return [(title, getattr(self, name)) for name, title in RECORDED_FIELDS.items() if getattr(self, name)]

    @property
    def progress(self) -> float | None:
        if self.is_sealed:
            return 1.0
        total = self.size or self.declared_size
        return (self.received_bytes / total) if total else None


class EvidenceChunk(models.Model):
    """One sealed chunk received (the rows become the container's index when the evidence is sealed)."""

    evidence = models.ForeignKey(Evidence, on_delete=models.PROTECT, related_name="chunks")
    index = models.PositiveIntegerField()
    plain_length = models.PositiveIntegerField()
    stored_length = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    received_at = models.DateTimeField(default=timezone.now)
    # Which stored copy holds it: 0 normally, k > 0 when an orphan (a failed request's bytes) took the
    # usual key and the retry brought other bytes (evidence.container.format.chunk_key).
    attempt = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["evidence", "index"]
        constraints = [models.UniqueConstraint(fields=["evidence", "index"], name="evidence_chunk_once")]

    def __str__(self) -> str:
        return f"chunk {self.index} of {self.evidence_id}"


class SecretKind(models.TextChoices):
    BITLOCKER_PASSWORD = "bitlocker_password", "BitLocker password"
    BITLOCKER_RECOVERY = "bitlocker_recovery_password", "BitLocker recovery password"
    BITLOCKER_STARTUP_KEY = "bitlocker_startup_key", "BitLocker startup key (BEK file)"
    LUKS_PASSPHRASE = "luks_passphrase", "LUKS passphrase"
    DOCUMENT_PASSWORD = "document_password", "Document password"


class KeyEscrow(models.Model):
    """A reference to a secret held by the key store. The value itself is never in the database."""

    evidence = models.ForeignKey(Evidence, on_delete=models.PROTECT, related_name="escrowed_secrets")
    kind = models.CharField(max_length=40, choices=SecretKind.choices)
    name = models.CharField(max_length=200)
    reference = models.CharField(max_length=300, editable=False)
    tags = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.name}"


class LinkKind(models.TextChoices):
    SIGNED = "signed", "Signed link served by Custodia"
    AZURE_SAS = "azure_sas", "Azure user-delegation SAS"


class LinkState(models.TextChoices):
    PENDING = "pending", "Waiting for approval"
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"  # computed from the clock, never stored


class DownloadLink(models.Model):
    """A time-limited, read-only link to the original bytes of one sealed evidence item.

    The database keeps only the SHA-256 of the token (``lookup`` is its public, non-secret prefix, used to
    find the link; a token whose secret does not match proves nothing and is refused as a guess, not in the
    evidence's custody trail). Expiry is computed from the clock; ``state`` stores only what people decide:
    pending, active or revoked.
    """

    evidence = models.ForeignKey(Evidence, on_delete=models.PROTECT, related_name="download_links")
    kind = models.CharField(max_length=20, choices=LinkKind.choices, default=LinkKind.SIGNED)
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    recipient_name = models.CharField(max_length=200, blank=True)
    recipient_email = models.EmailField(blank=True)
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    lifetime_seconds = models.PositiveIntegerField()
    expires_at = models.DateTimeField()
    lookup = models.CharField(max_length=32, unique=True, editable=False)
    token_hash = models.CharField(max_length=64, editable=False)
    networks = models.JSONField(default=list, blank=True, help_text="Client networks allowed (CIDR); empty: any.")
    state = models.CharField(max_length=20, choices=LinkState.choices, default=LinkState.ACTIVE)
    approval_required = models.BooleanField(default=False)
    approval_expires_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)
    blob_url = models.URLField(max_length=1000, blank=True, help_text="Azure SAS links: the blob, without the SAS.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["evidence", "state"])]

    def __str__(self) -> str:
        return f"link {self.pk} to {self.evidence_id} for {self.recipient_display}"

    @property
    def recipient_display(self) -> str:
        if self.recipient_id:
            return str(self.recipient)
        return f"{self.recipient_name} <{self.recipient_email}>"

    @property
    def is_external(self) -> bool:
        return self.recipient_id is None

    def state_at(self, now=None) -> str:
        """pending / active / revoked, or expired when the clock has passed the link's or the approval's end."""
        now = now or timezone.now()
        if self.state == LinkState.REVOKED:
            return LinkState.REVOKED
        if now >= self.expires_at:
            return LinkState.EXPIRED
        if self.state == LinkState.PENDING and self.approval_expires_at and now >= self.approval_expires_at:
            return LinkState.EXPIRED
        return self.state

    @property
    def current_state(self) -> str:
        return self.state_at()

    @property
    def approval_lapsed(self) -> bool:
        return self.state == LinkState.PENDING and self.state_at() == LinkState.EXPIRED


class LinkGuessWindow(models.Model):
    """Refused guesses at download links from one client address, within one window.

    A guess is a token that proves no knowledge of a link: unknown, or a real link's public ``lookup``
    prefix with a wrong secret. The first refusal of a window is an audit row of its own; the rest are
    counted here and written as one ``link.refused.burst`` row when the window closes. Past
    ``CUSTODIA_LINK_GUESS_LIMIT`` refusals in a window the address is answered 429 until it ends.
    """

    client_address = models.CharField(max_length=64)
    started_at = models.DateTimeField()
    last_at = models.DateTimeField()
    refusals = models.PositiveIntegerField(default=1, help_text="Refused guesses, the first (audited) one included.")
    throttled = models.PositiveIntegerField(default=0, help_text="Requests answered 429 in this window.")
    reasons = models.JSONField(default=dict, blank=True, help_text="Refusals by reason (unknown, tampered).")
    closed = models.BooleanField(default=False, help_text="Its count is written to the audit trail.")

    class Meta:
        indexes = [
            models.Index(fields=["client_address", "started_at"]),
            models.Index(fields=["closed", "started_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.refusals} guesses from {self.client_address} since {self.started_at:%Y-%m-%d %H:%M:%S}"


# --- capture of Azure VM disks (issue #16) -----------------------------------------------------------


class CaptureState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class CaptureStepState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class CaptureRun(models.Model):
    """One capture of an Azure VM's disks into a case (the Copy-VmDigitalEvidence runbook, resumable).

    Its steps (``CaptureStep``) are each done once: a task that is retried or redelivered skips what is
    done and resumes with the first step that is not. No credential, SAS URL or key value is ever stored
    here: the sign-in comes from the worker's environment, a SAS lives in the worker's memory only.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="capture_runs")
    subscription_id = models.CharField(max_length=64)
    resource_group = models.CharField(max_length=90)
    vm_name = models.CharField(max_length=80)
    state = models.CharField(max_length=20, choices=CaptureState.choices, default=CaptureState.QUEUED)
    error = models.TextField(blank=True, help_text="What failed, without any secret or SAS URL.")
    attempts = models.PositiveIntegerField(default=0, help_text="Times a worker took the run up.")
    vm_id = models.CharField(max_length=100, blank=True, help_text="Azure's unique id of the VM (vmId).")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["case", "state"])]

    def __str__(self) -> str:
        return f"capture of {self.vm_name} ({self.id})"

    @property
    def is_finished(self) -> bool:
        return self.state in (CaptureState.SUCCEEDED, CaptureState.FAILED)


class CaptureDisk(models.Model):
    """One disk of the captured VM (the OS disk, or a data disk at its LUN), and what became of it."""

    run = models.ForeignKey(CaptureRun, on_delete=models.PROTECT, related_name="disks")
    name = models.CharField(max_length=80)
    disk_id = models.CharField(max_length=400, help_text="The managed disk's Azure resource id.")
    lun = models.IntegerField(null=True, blank=True, help_text="The data disk's LUN; empty for the OS disk.")
    is_os_disk = models.BooleanField(default=False)
    os_type = models.CharField(max_length=20, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    # Where the disk's encryption material lies in the VM's key vault (URLs name the secret, not its value).
    encryption = models.JSONField(default=dict, blank=True)
    snapshot_name = models.CharField(max_length=80, blank=True)
    snapshot_id = models.CharField(max_length=400, blank=True)
    snapshot_exists = models.BooleanField(default=False)
    access_granted = models.BooleanField(default=False)
    evidence = models.OneToOneField(
        Evidence, on_delete=models.PROTECT, null=True, blank=True, related_name="capture_disk"
    )

    class Meta:
        ordering = ["run", "is_os_disk", "lun"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="capture_disk_once")]

    def __str__(self) -> str:
        return f"{self.name} of {self.run_id}"

    @property
    def label(self) -> str:
        return "OS disk" if self.is_os_disk else f"data disk LUN {self.lun}"


class CaptureStep(models.Model):
    """One step of a capture run: its state, times, outcome (non-secret facts) and error text."""

    run = models.ForeignKey(CaptureRun, on_delete=models.CASCADE, related_name="steps")
    disk = models.ForeignKey(CaptureDisk, on_delete=models.CASCADE, null=True, blank=True, related_name="steps")
    key = models.CharField(max_length=40, help_text="What the step does: sign_in, snapshot, stream, escrow …")
    position = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=20, choices=CaptureStepState.choices, default=CaptureStepState.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    progress_bytes = models.BigIntegerField(default=0)
    total_bytes = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position", "pk"]
        constraints = [models.UniqueConstraint(fields=["run", "disk", "key"], name="capture_step_once")]

    def __str__(self) -> str:
        return f"{self.key} of {self.run_id}: {self.state}"

    @property
    def progress(self) -> float | None:
        if self.state == CaptureStepState.DONE:
            return 1.0
        return (self.progress_bytes / self.total_bytes) if self.total_bytes else None
