"""Job health: what each scheduled operation last did, beat's and the watchdog's
heartbeats, and the incidents the watchdog alerted administrators about.

Operational records, not business ones: they are written outside the audit trail, and a
failure to write them never fails the work they describe.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class JobHealth(models.Model):
    """One row per scheduled operation (named like the operation and its beat schedule).

    The runner writes the run fields around every run that writes (a dry run is a preview
    and counts for nothing); beat writes the dispatch failure; the watchdog writes the
    catch-up fields.
    """

    name = models.CharField(max_length=200, unique=True, verbose_name=_("name"))
    watched_since = models.DateTimeField(
        default=timezone.now,
        help_text=_(
            "Due times before this were never promised: a new install or a new "
            "schedule is not overdue for runs from before it existed."
        ),
        verbose_name=_("watched since"),
    )
    last_started_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last started at"))
    last_trigger = models.CharField(max_length=20, blank=True, verbose_name=_("last trigger"))
    last_finished_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("last finished at")
    )
    last_requested_by = models.CharField(
        max_length=150,
        blank=True,
        help_text=_("The user who ran it from the admin, if one did."),
        verbose_name=_("last requested by"),
    )
    last_status = models.CharField(
        max_length=20,
        blank=True,
        help_text=_("ok, failed or tampering; error for a crash."),
        verbose_name=_("last status"),
    )
    last_message = models.TextField(blank=True, verbose_name=_("last message"))
    last_duration = models.DurationField(null=True, blank=True, verbose_name=_("last duration"))
    last_success_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("When the last successful run started."),
        verbose_name=_("last success at"),
    )
    dispatch_failed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("When beat last failed to send this schedule's task (broker down)."),
        verbose_name=_("dispatch failed at"),
    )
    dispatch_error = models.TextField(blank=True, verbose_name=_("dispatch error"))
    catch_up_for = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("The missed due time the last catch-up run was for."),
        verbose_name=_("catch up for"),
    )
    catch_up_enqueued_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("catch up enqueued at")
    )
    catch_up_task_id = models.CharField(
        max_length=255, blank=True, verbose_name=_("catch-up task id")
    )

    class Meta:
        verbose_name = _("job health")
        verbose_name_plural = _("job health")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Heartbeat(models.Model):
    """The last sign of life of a process that has no result of its own: beat's scheduler
    loop, the watchdog."""

    name = models.CharField(max_length=40, unique=True, verbose_name=_("name"))
    beat_at = models.DateTimeField(verbose_name=_("last beat at"))
    host = models.CharField(
        max_length=255, blank=True, help_text=_("host name and process id"), verbose_name=_("host")
    )

    class Meta:
        verbose_name = _("heartbeat")
        verbose_name_plural = _("heartbeats")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%Y-%m-%d %H:%M:%S}"


class IncidentKind(models.TextChoices):
    JOB_OVERDUE = "job_overdue", _("Job overdue")
    BEAT_SILENT = "beat_silent", _("Beat silent")
    OUTBOX_BACKLOG = "outbox_backlog", _("Undelivered mail")


class Incident(models.Model):
    """One problem, from the watchdog's first sight of it to its recovery: one alert when
    it opens, one recovery notice when it clears, whatever the number of watchdog runs in
    between. The database allows a single open incident per kind and subject."""

    kind = models.CharField(max_length=20, choices=IncidentKind.choices, verbose_name=_("kind"))
    subject = models.CharField(
        max_length=200,
        help_text=_("What it is about: an operation's name, beat, the outbox."),
        verbose_name=_("about"),
    )
    opened_at = models.DateTimeField(verbose_name=_("opened at"))
    resolved_at = models.DateTimeField(null=True, blank=True, verbose_name=_("resolved at"))
    detail = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("What was seen when it opened."),
        verbose_name=_("detail"),
    )
    alert_email = models.ForeignKey(
        "mailing.EmailMessage",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("alert email"),
    )
    recovery_email = models.ForeignKey(
        "mailing.EmailMessage",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("recovery email"),
    )

    class Meta:
        verbose_name = _("incident")
        verbose_name_plural = _("incidents")
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject"],
                condition=Q(resolved_at__isnull=True),
                name="tasks_incident_one_open_per_subject",
            )
        ]

    def __str__(self) -> str:
        state = "open" if self.resolved_at is None else "resolved"
        return f"{self.get_kind_display()}: {self.subject} ({state})"
