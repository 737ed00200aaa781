from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from auditing.chain import GENESIS_HASH, ViolationKind

__all__ = ["GENESIS_HASH", "AuditEntry", "Checkpoint", "VerificationFinding", "VerificationRun"]

# The key id of the entries written before keys had ids: they were all under AUDIT_CHAIN_KEY.
FIRST_KEY_ID = "1"


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
    # Which of settings.AUDIT_CHAIN_KEYS made current_hash: keys rotate, entries keep theirs.
    key_id = models.CharField(max_length=32, default=FIRST_KEY_ID, editable=False)

    class Meta:
        ordering = ["sequence"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["subject_type", "subject_id"])]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} by {self.actor_name}"


class Checkpoint(models.Model):
    """A signed head of the chain, as a verification found it intact (auditing/chain.py).

    The trusted copies are outside the database (settings.AUDIT_CHECKPOINT_SINKS); this
    append-only copy is for the admin and for a deployment whose files were lost. Each is
    checked by its signature, never trusted because of where it was read.
    """

    sequence = models.PositiveBigIntegerField(editable=False)
    head_hash = models.CharField(max_length=64, editable=False)
    entry_count = models.PositiveBigIntegerField(editable=False)
    signed_at = models.DateTimeField(editable=False)
    public_key = models.CharField(max_length=64, editable=False)
    signature = models.CharField(max_length=128, editable=False)

    class Meta:
        ordering = ["-sequence"]
        constraints = [
            models.UniqueConstraint(fields=["sequence", "signed_at"], name="checkpoint_unique")
        ]

    def __str__(self) -> str:
        return f"Checkpoint at #{self.sequence} ({self.head_hash[:12]})"


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
    issue_count = models.PositiveIntegerField(default=0)
    # The sequence ranges checked entry by entry, e.g. [[1, 120], [4000, 4211]].
    ranges = models.JSONField(default=list, blank=True)
    last_good_checkpoint = models.ForeignKey(
        "Checkpoint",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The newest checkpoint that still matched the chain: checks started there.",
    )
    checkpoint = models.ForeignKey(
        "Checkpoint",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The checkpoint this run signed, when it found the chain intact.",
    )
    error = models.TextField(
        blank=True, help_text="Why the run could not complete; empty when it did."
    )
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        if self.error:
            return f"Verification #{self.pk} (could not complete)"
        verdict = {True: "intact", False: "TAMPERING", None: "unfinished"}[self.intact]
        return f"Verification #{self.pk} ({verdict})"


class VerificationFinding(models.Model):
    """One violation a run found, in the order it was found."""

    KIND_LABELS = {
        ViolationKind.GAP: _("gap in the sequence (entries are missing)"),
        ViolationKind.CONTENT_MISMATCH: _("content mismatch (the entry was changed)"),
        ViolationKind.BROKEN_LINK: _(
            "broken link (an entry before it was removed, inserted or replaced)"
        ),
        ViolationKind.UNDECODABLE: _("unreadable entry"),
        ViolationKind.UNKNOWN_KEY: _("unknown key id"),
        ViolationKind.TIMESTAMP_REGRESSION: _("timestamp earlier than the entry before it"),
        ViolationKind.TIMESTAMP_IN_FUTURE: _("timestamp in the future"),
        ViolationKind.TRUNCATED: _("truncated (the newest entries were removed)"),
        ViolationKind.CHECKPOINT_MISMATCH: _("checkpoint no longer matches the chain"),
        ViolationKind.CHECKPOINT_INVALID: _("invalid checkpoint"),
        ViolationKind.ENFORCEMENT_OFF: _("append-only enforcement off"),
        ViolationKind.ROW_DIFFERS: _("row differs from its audited state"),
        ViolationKind.ROW_NOT_AUDITED: _("row with no audit entry"),
        ViolationKind.AUDITED_ROW_MISSING: _("audited row missing"),
    }

    run = models.ForeignKey(VerificationRun, on_delete=models.CASCADE, related_name="findings")
    position = models.PositiveIntegerField()
    kind = models.CharField(
        max_length=32, choices=[(kind.value, label) for kind, label in KIND_LABELS.items()]
    )
    sequence = models.PositiveBigIntegerField(null=True, blank=True)
    timestamp = models.DateTimeField(null=True, blank=True)
    expected = models.TextField(blank=True)
    stored = models.TextField(blank=True)
    detail = models.TextField()
    reference = models.CharField(
        max_length=300, blank=True, help_text="The checkpoint a checkpoint finding is about."
    )
    # What a row finding is about (auditing/rows.py); empty for the chain's findings.
    table = models.CharField(max_length=64, blank=True)
    row = models.CharField(max_length=64, blank=True)
    field = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="finding_position_unique")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at #{self.sequence}"
