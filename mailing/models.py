"""The email log, which is also the outbox (every outgoing message, its current delivery
claim and each attempt), the sweeper's last run, and the SMTP server administrators set in
the admin."""

from email.utils import parseaddr

from django.conf import settings
from django.core.mail import make_msgid
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from project.singleton import SingletonModel

# Six tries (the first and five retries 2, 4, 8, 16 and 32 minutes apart) span about an
# hour: a mail server outage rarely lasts less; after that a person has to look.
MAX_DELIVERY_ATTEMPTS = 6
# The purpose of the admin's "Send test email": answered on the page, never retried, and
# not counted as backlog.
SMTP_TEST_PURPOSE = "smtp_test"


def message_id_new() -> str:
    """An RFC 5322 Message-ID in the sender's domain, made once per message: every attempt
    sends the same one, so a receiver can drop the copy a resend after a crash produces."""
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
    return make_msgid(domain=domain)


class EmailStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    # Claimed by one delivery, which is talking to the mail server (or died doing so).
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    # With next_attempt_at: the sweeper retries it then. Without: delivery gave up.
    FAILED = "failed", _("Failed")


class EmailMessage(models.Model):
    """Every outgoing message, with what it was about and how delivery went."""

    message_id = models.CharField(
        max_length=255,
        unique=True,
        default=message_id_new,
        editable=False,
        help_text=_("Sent on every attempt, so that receivers can drop a resent copy."),
        verbose_name=_("Message-ID"),
    )
    purpose = models.CharField(max_length=40, db_index=True, verbose_name=_("purpose"))
    about = models.CharField(
        max_length=200,
        blank=True,
        help_text=_("What it reports on: a period, a session, a run."),
        verbose_name=_("about"),
    )
    subject_type = models.CharField(max_length=64, blank=True, verbose_name=_("subject type"))
    subject_id = models.CharField(max_length=64, blank=True, verbose_name=_("subject id"))
    recipients = models.JSONField(verbose_name=_("recipients"))
    subject = models.CharField(max_length=255, verbose_name=_("subject"))
    body_text = models.TextField(verbose_name=_("text body"))
    body_html = models.TextField(blank=True, verbose_name=_("HTML body"))
    attachments = models.JSONField(
        default=list,
        blank=True,
        help_text=_("[{filename, mimetype, content}] of text files."),
        verbose_name=_("attachments"),
    )
    status = models.CharField(
        max_length=16,
        choices=EmailStatus.choices,
        default=EmailStatus.QUEUED,
        db_index=True,
        verbose_name=_("status"),
    )
    attempts = models.PositiveSmallIntegerField(default=0, verbose_name=_("attempts"))
    attempt_limit = models.PositiveSmallIntegerField(
        default=MAX_DELIVERY_ATTEMPTS,
        help_text=_("Delivery gives up once attempts reach this; a manual retry raises it."),
        verbose_name=_("attempt limit"),
    )
    next_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("When the sweeper retries a failed message."),
        verbose_name=_("next attempt at"),
    )
    # The current claim: which delivery holds the message while it is "sending", since when.
    attempt_id = models.UUIDField(
        null=True, blank=True, editable=False, verbose_name=_("attempt id")
    )
    claimed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("claimed at"))
    last_error = models.TextField(blank=True, verbose_name=_("last error"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    last_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last attempt at"))
    sent_at = models.DateTimeField(null=True, blank=True, verbose_name=_("sent at"))

    class Meta:
        verbose_name = _("email message")
        verbose_name_plural = _("email messages")
        ordering = ["-created_at"]
        # The log (who, what subject, how delivery went) is for every role that looks after
        # mail; what the messages say (reports, alerts, agents' notices) for administrators.
        permissions = [("view_email_content", _("Can read email bodies and attachments"))]
        indexes = [
            models.Index(fields=["subject_type", "subject_id"]),
            # The sweeper and the backlog read only what is not sent yet: a small index.
            models.Index(
                fields=["created_at"],
                condition=~Q(status="sent"),
                name="mailing_email_unsent_idx",
            ),
        ]
        constraints = [
            # A claim exists exactly while a message is "sending".
            models.CheckConstraint(
                condition=(
                    Q(status="sending", attempt_id__isnull=False, claimed_at__isnull=False)
                    | (~Q(status="sending") & Q(attempt_id__isnull=True, claimed_at__isnull=True))
                ),
                name="mailing_email_claimed_while_sending",
            ),
            models.CheckConstraint(
                condition=Q(status="failed") | Q(next_attempt_at__isnull=True),
                name="mailing_email_next_attempt_only_when_failed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} -> {', '.join(self.recipients)} ({self.status})"

    @property
    def gave_up(self) -> bool:
        return self.status == EmailStatus.FAILED and self.next_attempt_at is None


class EmailAttempt(models.Model):
    """One delivery attempt: opened when a delivery claims the message, closed with the mail
    server's answer. One left open (succeeded unknown) is a delivery that died mid-way."""

    email = models.ForeignKey(
        EmailMessage,
        on_delete=models.CASCADE,
        related_name="attempt_log",
        verbose_name=_("email message"),
    )
    # Empty for attempts logged before deliveries claimed messages.
    attempt_id = models.UUIDField(
        null=True, blank=True, unique=True, editable=False, verbose_name=_("attempt id")
    )
    attempted_at = models.DateTimeField(verbose_name=_("started at"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))
    # None: no answer recorded (still in flight, or the delivery died before recording it).
    succeeded = models.BooleanField(null=True, verbose_name=_("succeeded"))
    error = models.TextField(blank=True, verbose_name=_("error"))

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        ordering = ["attempted_at"]

    def __str__(self) -> str:
        outcome = {True: "ok", False: "failed", None: "no outcome"}[self.succeeded]
        return f"{self.email_id} at {self.attempted_at}: {outcome}"


class OutboxSweep(SingletonModel):
    """The sweeper's last run (pk=1): the health page and ``check --deploy`` read it to say
    when nothing has been delivering the outbox."""

    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))
    trigger = models.CharField(max_length=16, blank=True, verbose_name=_("trigger"))
    sent = models.PositiveIntegerField(default=0, verbose_name=_("sent"))
    failed = models.PositiveIntegerField(default=0, verbose_name=_("failed"))
    stopped_early = models.TextField(
        blank=True,
        help_text=_("Why the run left due mail for the next one, if it did."),
        verbose_name=_("stopped early"),
    )

    class Meta:
        verbose_name = _("outbox sweep")
        verbose_name_plural = _("outbox sweep")

    def __str__(self) -> str:
        return f"Outbox sweep, last finished {self.finished_at or 'never'}"


class SmtpConfiguration(SingletonModel):
    """Singleton (pk=1): the mail server administrators set in the admin. When disabled or
    without a host, the environment's email settings (EMAIL_URL) apply."""

    enabled = models.BooleanField(default=False, verbose_name=_("enabled"))
    host = models.CharField(max_length=255, blank=True, verbose_name=_("host"))
    port = models.PositiveIntegerField(default=587, verbose_name=_("port"))
    username = models.CharField(max_length=255, blank=True, verbose_name=_("username"))
    # A Fernet token (mailing/passwords.py), never the password: the database and its
    # backups must not give the mail account away.
    password = models.TextField(
        blank=True,
        help_text=_("Encrypted with SMTP_PASSWORD_KEYS; empty when there is none."),
        verbose_name=_("password"),
    )
    use_tls = models.BooleanField(default=True, verbose_name=_("use STARTTLS"))
    use_ssl = models.BooleanField(default=False, verbose_name=_("use SSL/TLS"))
    timeout = models.PositiveIntegerField(
        default=10,
        help_text=_("Seconds; a delivery never waits longer than EMAIL_TIMEOUT (10 s)."),
        verbose_name=_("timeout"),
    )
    from_email = models.CharField(
        max_length=255,
        blank=True,
        # The admin renders help texts as HTML: the angle brackets are escaped here so that
        # the example's address shows on the editable and the read-only page alike.
        help_text=_('For example "Cash office &lt;cash-office@example.com&gt;".'),
        verbose_name=_("from address"),
    )
    reply_to = models.EmailField(blank=True, verbose_name=_("reply-to address"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("SMTP configuration")
        verbose_name_plural = _("SMTP configuration")
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
