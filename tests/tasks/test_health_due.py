"""The latest due time of a schedule, walked back from now over celery's own parse of the
crontab, and checked against celery's forward math (what beat itself computes)."""

import datetime as dt
from zoneinfo import ZoneInfo

from celery import schedules
from django_celery_beat.clockedschedule import clocked
from django_celery_beat.tzcrontab import TzAwareCrontab
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.health.due import latest_due

TZ = ZoneInfo("Indian/Antananarivo")


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=TZ)


def cron(**fields: str) -> TzAwareCrontab:
    return TzAwareCrontab(tz=TZ, **fields)


def celery_next_after(schedule: schedules.crontab, moment: dt.datetime) -> dt.datetime:
    """When beat would run ``schedule`` next after a run at ``moment``."""
    last, delta, _now = schedule.remaining_delta(moment)
    return last + delta


def test_the_hourly_job_was_last_due_at_the_top_of_this_hour():
    assert latest_due(cron(minute="0"), now=local(2026, 12, 2, 4, 10)) == local(2026, 12, 2, 4, 0)


def test_a_due_time_is_due_at_that_very_minute():
    assert latest_due(cron(minute="0", hour="2"), now=local(2026, 12, 2, 2, 0)) == local(
        2026, 12, 2, 2, 0
    )


def test_the_daily_job_before_its_hour_was_last_due_yesterday():
    assert latest_due(cron(minute="0", hour="8"), now=local(2026, 12, 2, 7, 59)) == local(
        2026, 12, 1, 8, 0
    )


def test_the_monthly_report_three_days_after_the_first_was_due_on_the_first():
    monthly = cron(minute="0", hour="9", day_of_month="1")
    assert latest_due(monthly, now=local(2026, 12, 4, 10, 0)) == local(2026, 12, 1, 9, 0)
    # Across a year end, and before 09:00 on the 1st: last month's.
    assert latest_due(monthly, now=local(2027, 1, 1, 8, 59)) == local(2026, 12, 1, 9, 0)


def test_local_time_not_utc_decides_the_day():
    # 01:30 on the 2nd in Antananarivo is 22:30 on the 1st in UTC.
    now = dt.datetime(2026, 12, 1, 22, 30, tzinfo=dt.UTC)
    assert latest_due(cron(minute="0", hour="1"), now=now) == local(2026, 12, 2, 1, 0)


def test_an_interval_expects_a_run_within_each_period():
    every = schedules.schedule(dt.timedelta(minutes=10))
    now = local(2026, 12, 2, 4, 10)
    assert latest_due(every, now=now) == now - dt.timedelta(minutes=10)


def test_a_rare_date_is_found_years_back():
    # 29 February on a Monday: 2016, then 2044.
    leap_monday = cron(minute="0", hour="0", day_of_month="29", month_of_year="2", day_of_week="1")
    assert latest_due(leap_monday, now=local(2043, 12, 31)) == local(2016, 2, 29, 0, 0)


def test_a_clocked_schedule_has_no_due_time_here():
    one_time = clocked(clocked_time=local(2026, 12, 1, 9, 0))
    assert latest_due(one_time, now=local(2026, 12, 2)) is None


def _subset(values: range, max_size: int) -> st.SearchStrategy[str]:
    return st.sets(st.sampled_from(list(values)), min_size=1, max_size=max_size).map(
        lambda chosen: ",".join(str(value) for value in sorted(chosen))
    )


@settings(max_examples=300, deadline=None)
@given(
    minute=_subset(range(60), 3),
    hour=st.one_of(st.just("*"), _subset(range(24), 3)),
    day_of_month=st.one_of(st.just("*"), _subset(range(1, 29), 3)),
    month_of_year=st.one_of(st.just("*"), _subset(range(1, 13), 3)),
    day_of_week=st.one_of(st.just("*"), _subset(range(7), 3)),
    # Hypothesis takes naive bounds and adds the zone itself.
    now=st.datetimes(
        min_value=dt.datetime(2020, 1, 1),  # noqa: DTZ001
        max_value=dt.datetime(2035, 12, 31),  # noqa: DTZ001
        timezones=st.just(TZ),
    ),
)
def test_the_latest_due_time_is_the_run_before_celerys_next_one(
    minute, hour, day_of_month, month_of_year, day_of_week, now
):
    schedule = cron(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
    )
    due = latest_due(schedule, now=now)

    assert due is not None and due <= now
    # Celery runs it at that time (its next run after the minute before is this one) ...
    assert celery_next_after(schedule, due - dt.timedelta(minutes=1)) == due
    # ... and not again until after now: no due time was skipped.
    assert celery_next_after(schedule, due) > now
