"""The email log (every outgoing message and each delivery attempt) and the SMTP server
administrators set in the admin."""

from django.db import models
from django.db.models import Q

from project.singleton import SingletonModel


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
                condition=~Q(use_tls=True, use_ssl=True), name="mailing_smtp_tls_xor_ssl"
            )
        ]

    def __str__(self) -> str:
        return f"SMTP {self.host}:{self.port}" if self.host else "SMTP (environment settings)"

    @property
    def in_use(self) -> bool:
        return self.enabled and bool(self.host)
