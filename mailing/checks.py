"""System checks: the grace period must outlast any delivery, and (``check --deploy``)
something must be sweeping the outbox."""

from django.conf import settings
from django.core import checks
from django.db import DatabaseError
from django.utils import timezone

SWEEPER_HINT = (
    "Run celery beat and a worker (the email_sweep schedule comes from "
    "`manage.py sync_schedules`), or add the cron line "
    "`* * * * * cd /path/to/project && .venv/bin/python manage.py deliver_pending_email`."
)


@checks.register("mailing")
def sending_grace_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    from mailing.tasks import email_deliver, email_sweep

    longest = max(email_deliver.time_limit, email_sweep.time_limit)
    if settings.EMAIL_SENDING_GRACE_SECONDS > longest:
        return []
    return [
        checks.Error(
            f"EMAIL_SENDING_GRACE_SECONDS ({settings.EMAIL_SENDING_GRACE_SECONDS}) must be "
            f"longer than the longest delivery task ({longest} s): a message still being "
            "sent would be sent again.",
            hint="Leave it at its default, 900 (15 minutes).",
            id="mailing.E001",
        )
    ]


@checks.register("mailing", deploy=True)
def sweeper_running_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    from mailing.selectors import SWEEPER_LATE_AFTER, outbox_status

    try:
        status = outbox_status()
    except DatabaseError as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return [
            checks.Warning(
                f"Could not read the outbox to see whether its sweeper runs: {reason}",
                hint="Run this check against the migrated production database.",
                id="mailing.W002",
            )
        ]
    if not status.sweeper_late(now=timezone.now()):
        return []
    backlog = f"{status.undelivered} message(s) not delivered"
    if status.oldest_undelivered_at:
        oldest = timezone.localtime(status.oldest_undelivered_at)
        backlog += f", the oldest queued {oldest:%Y-%m-%d %H:%M}"
    if status.last_sweep_at is None:
        when = "has never run"
    else:
        when = f"has not run since {timezone.localtime(status.last_sweep_at):%Y-%m-%d %H:%M}"
    minutes = int(SWEEPER_LATE_AFTER.total_seconds() // 60)
    return [
        checks.Warning(
            f"The email sweeper {when} (it runs every minute; late after {minutes} "
            f"minutes): queued mail no worker took and failed mail are not being delivered "
            f"({backlog}).",
            hint=SWEEPER_HINT,
            id="mailing.W001",
        )
    ]


@checks.register("mailing", deploy=True)
def smtp_password_readable_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """A lost or mistyped SMTP_PASSWORD_KEYS shows at deploy time, not at the first mail."""
    from mailing.models import SmtpConfiguration
    from mailing.passwords import SmtpPasswordUndecryptable, smtp_password_decrypt

    try:
        stored = SmtpConfiguration.objects.filter(pk=1).values_list("password", flat=True).first()
    except DatabaseError:
        return []  # mailing.W002 already says the database could not be read
    try:
        smtp_password_decrypt(stored or "")
    except SmtpPasswordUndecryptable as error:
        return [
            checks.Error(
                str(error),
                hint="SMTP_PASSWORD_KEYS must still hold the key that encrypted it; README.md, "
                '"Keys and their backup".',
                id="mailing.E002",
            )
        ]
    return []
