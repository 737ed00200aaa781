from django.conf import settings
from django.db import models

GENESIS_HASH = "0" * 64


class AuditEntry(models.Model):
    """One link of the hash chain. Rows are append-only; see auditing/README.md."""

    # The sequence is the entry's identity and the chain's order (never timestamp or id).
    sequence = models.PositiveBigIntegerField(primary_key=True, editable=False)
    timestamp = models.DateTimeField(db_index=True, editable=False)
    action = models.CharField(max_length=64, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty when the system acted.",
    )
    actor_name = models.CharField(max_length=150, help_text='Username, or "system".')
    subject_type = models.CharField(max_length=64, blank=True)
    subject_id = models.CharField(max_length=64, blank=True)
    data = models.JSONField(default=dict, blank=True)
    previous_hash = models.CharField(max_length=64)
    current_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["sequence"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["subject_type", "subject_id"])]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} by {self.actor_name}"


class VerificationRun(models.Model):
    """One run of verify_audit_trail, kept so administrators can see every result."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=16, help_text="beat, manual or manual-enqueue")
    full = models.BooleanField(default=False)
    range_start = models.DateField(null=True, blank=True)
    range_end = models.DateField(null=True, blank=True, help_text="Inclusive.")
    entries_checked = models.PositiveBigIntegerField(default=0)
    first_sequence = models.PositiveBigIntegerField(null=True, blank=True)
    last_sequence = models.PositiveBigIntegerField(null=True, blank=True)
    head_sequence = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="The newest entry in the whole chain when the run started."
    )
    head_hash = models.CharField(max_length=64, blank=True)
    intact = models.BooleanField(null=True)
    violations = models.JSONField(default=list, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        verdict = {True: "intact", False: "TAMPERING", None: "unfinished"}[self.intact]
        return f"Verification #{self.pk} ({verdict})"
