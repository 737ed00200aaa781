from django.db import models
from django.db.models import Q

from project.singleton import SingletonModel

MONEY = {"max_digits": 16, "decimal_places": 2}


class CommissionReport(models.Model):
    """A generated monthly commission report, as it was emailed."""

    year = models.PositiveSmallIntegerField()
    month = models.PositiveSmallIntegerField()
    trigger = models.CharField(max_length=16, help_text="beat, manual or manual-enqueue")
    generated_at = models.DateTimeField()
    currency = models.CharField(max_length=3)
    transactions = models.PositiveIntegerField(help_text="Completed payments.")
    voided_transactions = models.PositiveIntegerField(default=0)
    tax_collected = models.DecimalField(**MONEY, help_text="Completed payments only.")
    commissions_total = models.DecimalField(**MONEY, help_text="Earned: pending + paid.")
    pending_count = models.PositiveIntegerField()
    pending_amount = models.DecimalField(**MONEY)
    paid_count = models.PositiveIntegerField()
    paid_amount = models.DecimalField(**MONEY)
    cancelled_count = models.PositiveIntegerField()
    cancelled_amount = models.DecimalField(**MONEY)
    recipients = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-year", "-month", "-generated_at"]
        constraints = [
            # A retried or duplicated scheduled run finds this row and sends nothing again.
            models.UniqueConstraint(
                fields=["year", "month"],
                condition=Q(trigger="beat"),
                name="reporting_one_scheduled_report_per_month",
            ),
            models.CheckConstraint(
                condition=Q(month__gte=1, month__lte=12), name="reporting_month_in_range"
            ),
        ]

    def __str__(self) -> str:
        return f"Commission report {self.year}-{self.month:02d}"


class CommissionReportLine(models.Model):
    report = models.ForeignKey(CommissionReport, on_delete=models.CASCADE, related_name="lines")
    agent = models.ForeignKey("payments.Agent", on_delete=models.PROTECT, related_name="+")
    agent_code = models.CharField(max_length=20)
    agent_name = models.CharField(max_length=150)
    transactions = models.PositiveIntegerField()
    tax_collected = models.DecimalField(**MONEY)
    commission_earned = models.DecimalField(**MONEY)
    pending_amount = models.DecimalField(**MONEY)
    paid_amount = models.DecimalField(**MONEY)
    cancelled_amount = models.DecimalField(**MONEY)

    class Meta:
        ordering = ["agent_code"]
        constraints = [
            models.UniqueConstraint(fields=["report", "agent"], name="reporting_one_line_per_agent")
        ]

    def __str__(self) -> str:
        return f"{self.report} / {self.agent_code}"


class EmailStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class EmailMessage(models.Model):
    """Every outgoing message, with what it was about and how delivery went."""

    purpose = models.CharField(max_length=40, db_index=True)
    about = models.CharField(
        max_length=200, blank=True, help_text="What it reports on: a period, a session, a run."
    )
    subject_type = models.CharField(max_length=64, blank=True)
    subject_id = models.CharField(max_length=64, blank=True)
    recipients = models.JSONField()
    subject = models.CharField(max_length=255)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    attachments = models.JSONField(
        default=list, blank=True, help_text="[{filename, mimetype, content}] of text files."
    )
    status = models.CharField(
        max_length=16, choices=EmailStatus.choices, default=EmailStatus.QUEUED, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["subject_type", "subject_id"])]

    def __str__(self) -> str:
        return f"{self.subject} -> {', '.join(self.recipients)} ({self.status})"


class EmailAttempt(models.Model):
    email = models.ForeignKey(EmailMessage, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField()
    succeeded = models.BooleanField()
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["attempted_at"]

    def __str__(self) -> str:
        return f"{self.email_id} at {self.attempted_at}: {'ok' if self.succeeded else 'failed'}"


class SmtpConfiguration(SingletonModel):
    """Singleton (pk=1): the mail server administrators set in the admin. When disabled or
    without a host, the environment's email settings (EMAIL_URL) apply."""

    enabled = models.BooleanField(default=False)
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(default=587)
    username = models.CharField(max_length=255, blank=True)
    password = models.CharField(max_length=255, blank=True)
    use_tls = models.BooleanField("use STARTTLS", default=True)
    use_ssl = models.BooleanField("use SSL/TLS", default=False)
    timeout = models.PositiveIntegerField(default=30, help_text="Seconds.")
    from_email = models.CharField(
        "from address",
        max_length=255,
        blank=True,
        help_text='For example "Cash office <cash-office@example.com>".',
    )
    reply_to = models.EmailField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "SMTP configuration"
        verbose_name_plural = "SMTP configuration"
        constraints = [
            models.CheckConstraint(
                condition=~Q(use_tls=True, use_ssl=True), name="reporting_smtp_tls_xor_ssl"
            )
        ]

    def __str__(self) -> str:
        return f"SMTP {self.host}:{self.port}" if self.host else "SMTP (environment settings)"

    @property
    def in_use(self) -> bool:
        return self.enabled and bool(self.host)
