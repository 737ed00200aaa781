"""``check --deploy`` warns while beat's heartbeat or the watchdog has never been recorded:
on a deployed stack both should have run within a minute of starting."""

from django.core.checks import Warning, register
from django.db import DatabaseError

from tasks.health.selectors import WATCHDOG, heartbeat_at
from tasks.scheduler import BEAT


@register(deploy=True)
def job_health_heartbeats_check(app_configs=None, **kwargs) -> list[Warning]:
    try:
        beat_at, watchdog_at = heartbeat_at(BEAT), heartbeat_at(WATCHDOG)
    except DatabaseError as error:
        return [
            Warning(
                f"Could not read the job-health heartbeats: {type(error).__name__}.",
                hint="Run migrate; check DATABASE_URL.",
                id="tasks.W003",
            )
        ]
    warnings = []
    if beat_at is None:
        warnings.append(
            Warning(
                "Celery beat has never recorded a heartbeat: no scheduled job has been sent.",
                hint=(
                    "Start beat with the project's scheduler (CELERY_BEAT_SCHEDULER, "
                    "tasks.scheduler:HeartbeatDatabaseScheduler). Under cron instead of "
                    "beat, ignore this warning."
                ),
                id="tasks.W001",
            )
        )
    if watchdog_at is None:
        warnings.append(
            Warning(
                "The watchdog has never run: overdue jobs would go unnoticed.",
                hint=(
                    "Start a Celery worker (it runs the watchdog every minute), or add "
                    "'python manage.py watchdog' to cron."
                ),
                id="tasks.W002",
            )
        )
    return warnings
