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
    sequence = models.PositiveBigIntegerField(
        primary_key=True, editable=False, verbose_name=_("sequence")
    )
    timestamp = models.DateTimeField(db_index=True, editable=False, verbose_name=_("timestamp"))
    action = models.CharField(max_length=64, db_index=True, verbose_name=_("action"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text=_("Empty when the system acted."),
        verbose_name=_("actor"),
    )
    actor_name = models.CharField(
        max_length=150, help_text=_('Username, or "system".'), verbose_name=_("actor name")
    )
    subject_type = models.CharField(max_length=64, blank=True, verbose_name=_("subject type"))
    subject_id = models.CharField(max_length=64, blank=True, verbose_name=_("subject id"))
    data = models.JSONField(default=dict, blank=True, verbose_name=_("data"))
    previous_hash = models.CharField(max_length=64, verbose_name=_("previous hash"))
    current_hash = models.CharField(max_length=64, unique=True, verbose_name=_("hash"))
    # Which of settings.AUDIT_CHAIN_KEYS made current_hash: keys rotate, entries keep theirs.
    key_id = models.CharField(
        max_length=32, default=FIRST_KEY_ID, editable=False, verbose_name=_("key id")
    )

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")
        ordering = ["sequence"]
        indexes = [models.Index(fields=["subject_type", "subject_id"])]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} by {self.actor_name}"


class Checkpoint(models.Model):
    """A signed head of the chain, as a verification found it intact (auditing/chain.py).

    The trusted copies are outside the database (settings.AUDIT_CHECKPOINT_SINKS); this
    append-only copy is for the admin and for a deployment whose files were lost. Each is
    checked by its signature, never trusted because of where it was read.
    """

    sequence = models.PositiveBigIntegerField(editable=False, verbose_name=_("sequence"))
    head_hash = models.CharField(max_length=64, editable=False, verbose_name=_("head hash"))
    entry_count = models.PositiveBigIntegerField(editable=False, verbose_name=_("entry count"))
    signed_at = models.DateTimeField(editable=False, verbose_name=_("signed at"))
    public_key = models.CharField(max_length=64, editable=False, verbose_name=_("public key"))
    signature = models.CharField(max_length=128, editable=False, verbose_name=_("signature"))

    class Meta:
        verbose_name = _("signed checkpoint")
        verbose_name_plural = _("signed checkpoints")
        ordering = ["-sequence"]
        constraints = [
            models.UniqueConstraint(fields=["sequence", "signed_at"], name="checkpoint_unique")
        ]

    def __str__(self) -> str:
        return f"Checkpoint at #{self.sequence} ({self.head_hash[:12]})"


class VerificationRun(models.Model):
    """One run of verify_audit_trail, kept so administrators can see every result."""

    started_at = models.DateTimeField(verbose_name=_("started at"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))
    trigger = models.CharField(
        max_length=16, help_text=_("beat, manual or manual-enqueue"), verbose_name=_("trigger")
    )
    full = models.BooleanField(default=False, verbose_name=_("full chain"))
    range_start = models.DateField(null=True, blank=True, verbose_name=_("range start"))
    range_end = models.DateField(
        null=True, blank=True, help_text=_("Inclusive."), verbose_name=_("range end")
    )
    entries_checked = models.PositiveBigIntegerField(default=0, verbose_name=_("entries checked"))
    first_sequence = models.PositiveBigIntegerField(
        null=True, blank=True, verbose_name=_("first sequence")
    )
    last_sequence = models.PositiveBigIntegerField(
        null=True, blank=True, verbose_name=_("last sequence")
    )
    head_sequence = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text=_("The newest entry in the whole chain when the run started."),
        verbose_name=_("head sequence"),
    )
    head_hash = models.CharField(max_length=64, blank=True, verbose_name=_("head hash"))
    intact = models.BooleanField(null=True, verbose_name=_("chain intact"))
    issue_count = models.PositiveIntegerField(default=0, verbose_name=_("issues"))
    # The sequence ranges checked entry by entry, e.g. [[1, 120], [4000, 4211]].
    ranges = models.JSONField(default=list, blank=True, verbose_name=_("ranges checked"))
    last_good_checkpoint = models.ForeignKey(
        "Checkpoint",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text=_("The newest checkpoint that still matched the chain: checks started there."),
        verbose_name=_("last good checkpoint"),
    )
    checkpoint = models.ForeignKey(
        "Checkpoint",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text=_("The checkpoint this run signed, when it found the chain intact."),
        verbose_name=_("signed checkpoint"),
    )
    error = models.TextField(
        blank=True,
        help_text=_("Why the run could not complete; empty when it did."),
        verbose_name=_("error"),
    )
    duration_ms = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=_("duration (ms)")
    )

    class Meta:
        verbose_name = _("verification run")
        verbose_name_plural = _("verification runs")
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

    run = models.ForeignKey(
        VerificationRun,
        on_delete=models.CASCADE,
        related_name="findings",
        verbose_name=_("verification run"),
    )
    position = models.PositiveIntegerField(verbose_name=_("position"))
    kind = models.CharField(
        max_length=32,
        choices=[(kind.value, label) for kind, label in KIND_LABELS.items()],
        verbose_name=_("kind"),
    )
    sequence = models.PositiveBigIntegerField(null=True, blank=True, verbose_name=_("sequence"))
    timestamp = models.DateTimeField(null=True, blank=True, verbose_name=_("timestamp"))
    expected = models.TextField(blank=True, verbose_name=_("expected"))
    stored = models.TextField(blank=True, verbose_name=_("stored"))
    detail = models.TextField(verbose_name=_("detail"))
    reference = models.CharField(
        max_length=300,
        blank=True,
        help_text=_("The checkpoint a checkpoint finding is about."),
        verbose_name=_("reference"),
    )
    # What a row finding is about (auditing/rows.py); empty for the chain's findings.
    table = models.CharField(max_length=64, blank=True, verbose_name=_("table"))
    row = models.CharField(max_length=64, blank=True, verbose_name=_("row"))
    field = models.CharField(max_length=64, blank=True, verbose_name=_("field"))

    class Meta:
        verbose_name = _("verification finding")
        verbose_name_plural = _("verification findings")
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="finding_position_unique")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at #{self.sequence}"
