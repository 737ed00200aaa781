"""When a schedule should last have run: the latest due time not after now.

Celery's crontab only looks forward (the next run after the last one). The watchdog needs
the other direction: after an outage, which run was missed? This walks back from now over
the crontab as celery parsed it (the same sets of minutes, hours, days and months beat
uses, in the crontab's own time zone), so the two can never read a crontab differently; a
test checks each answer against celery's forward math. croniter's ``get_prev`` would do the
same from a cron string, but it would be a second parser of the same rows.
"""

import datetime as dt
from zoneinfo import ZoneInfo

from celery import schedules
from django.utils import timezone

# The longest gap between two dates a crontab can name: "29 February on a Monday" comes
# back every 28 years (and the year 2100 skips a leap day).
_LOOKBACK_DAYS = 366 * 29


def latest_due(schedule: schedules.BaseSchedule, *, now: dt.datetime) -> dt.datetime | None:
    """The latest time not after ``now`` at which ``schedule`` was due, or None when it
    cannot say (a solar or clocked schedule, or a crontab that names no real date)."""
    if isinstance(schedule, schedules.crontab):
        return _crontab_latest_due(schedule, now=now)
    if isinstance(schedule, schedules.schedule):
        # An interval has no wall-clock slots: a run is due within every period.
        return now - schedule.run_every
    return None


def _crontab_latest_due(cron: schedules.crontab, *, now: dt.datetime) -> dt.datetime | None:
    zone = _zone(cron)
    local_now = now.astimezone(zone)
    hours = sorted(cron.hour, reverse=True)
    minutes = sorted(cron.minute, reverse=True)
    day = local_now.date()
    for _ in range(_LOOKBACK_DAYS):
        if (
            day.month in cron.month_of_year
            and day.day in cron.day_of_month
            # celery counts Sunday as 0, and requires the day of the month AND of the week.
            and day.isoweekday() % 7 in cron.day_of_week
        ):
            for hour in hours:
                for minute in minutes:
                    candidate = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=zone)
                    if candidate <= local_now:
                        return candidate
        day -= dt.timedelta(days=1)
    return None


def _zone(cron: schedules.crontab) -> dt.tzinfo:
    """django-celery-beat's crontab carries its row's time zone; a plain celery crontab
    runs in the app's. Either way the project's TIME_ZONE unless an admin chose another."""
    zone = getattr(cron, "tz", None)
    if zone is None:
        return timezone.get_default_timezone()
    return zone if isinstance(zone, dt.tzinfo) else ZoneInfo(str(zone))
