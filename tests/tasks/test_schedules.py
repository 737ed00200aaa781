"""The schedule registry, its sync into django-celery-beat, and what beat does with the rows."""

import datetime as dt
import inspect
import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django_celery_beat.models import (
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
)
from django_celery_beat.schedulers import DatabaseScheduler

import project.celery
import tasks.schedules
from tasks.schedules import ScheduleSpec, schedules_sync

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Indian/Antananarivo")
HOUR = 60 * 60
DAY = 24 * HOUR


@dataclass(frozen=True)
class Expected:
    task: str
    minute: str
    hour: str
    day_of_month: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    # Shortest gap between two runs: a message must expire before the next one is sent.
    period_seconds: int = DAY
    day_of_week: str = "*"


# The guide's recommended crontab lines, read in TIME_ZONE.
EXPECTED = {
    "close_expired_sessions": Expected(
        "tasks.close_expired_sessions", "0", "*", "*", {"trigger": "beat"}, period_seconds=HOUR
    ),
    "verify_audit_trail": Expected(
        "tasks.verify_audit_trail",
        "0",
        "2",
        "*",
        {"alert_on_tampering": True, "trigger": "beat"},
    ),
    "reconciliation_reminder": Expected(
        "tasks.reconciliation_reminder", "0", "8", "*", {"email_admins": True, "trigger": "beat"}
    ),
    "generate_commission_report": Expected(
        "tasks.generate_commission_report",
        "0",
        "9",
        "1",
        {"trigger": "beat"},
        period_seconds=28 * DAY,
    ),
}
# The outbox's sweeper: every minute, not an operation.
SWEEP = "email_sweep"
# The audit trail's own two, beyond the guide's daily check: the whole chain on Sundays,
# and a checkpoint of the newest entries every hour (issue 13).
WEEKLY_FULL = "verify_audit_trail_full"
CHECKPOINT = "audit_checkpoint"
EXPECTED_ROWS = {
    **EXPECTED,
    SWEEP: Expected("mailing.email_sweep", "*", "*", "*", {"trigger": "beat"}, period_seconds=60),
    WEEKLY_FULL: Expected(
        "tasks.verify_audit_trail",
        "0",
        "3",
        "*",
        {"full": True, "alert_on_tampering": True, "trigger": "beat"},
        period_seconds=7 * DAY,
        day_of_week="0",
    ),
    CHECKPOINT: Expected(
        "tasks.audit_checkpoint",
        "30",
        "*",
        "*",
        {"alert_on_tampering": True, "trigger": "beat"},
        period_seconds=HOUR,
    ),
}


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=TZ)


def sync(*args: str) -> str:
    out = StringIO()
    call_command("sync_schedules", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def sync_at(when: dt.datetime, *args: str) -> str:
    with time_machine.travel(when, tick=False):
        return sync(*args)


def rows_snapshot() -> list[dict[str, Any]]:
    return list(PeriodicTask.objects.order_by("name").values())


def crontabs_snapshot() -> list[dict[str, Any]]:
    return list(CrontabSchedule.objects.order_by("pk").values())


def assert_default_row(name: str) -> None:
    expected = EXPECTED_ROWS[name]
    row = PeriodicTask.objects.select_related("crontab").get(name=name)
    crontab = row.crontab
    assert row.task == expected.task
    assert (
        crontab.minute,
        crontab.hour,
        crontab.day_of_month,
        crontab.month_of_year,
        crontab.day_of_week,
    ) == (expected.minute, expected.hour, expected.day_of_month, "*", expected.day_of_week)
    assert str(crontab.timezone) == settings.TIME_ZONE
    assert (row.interval, row.solar, row.clocked) == (None, None, None)
    assert json.loads(row.kwargs) == expected.kwargs
    assert json.loads(row.args) == []
    assert row.enabled is True
    assert row.one_off is False
    assert row.expires is None
    assert row.start_time is None
    assert row.queue is None
    assert row.priority is None
    assert 0 < row.expire_seconds < expected.period_seconds


def test_the_time_zone_schedules_are_read_in_is_antananarivo():
    assert settings.TIME_ZONE == "Indian/Antananarivo"


def test_sync_creates_the_four_schedules_with_the_guides_crontabs_in_local_time():
    sync_at(local(2026, 11, 27, 12, 0))

    assert set(PeriodicTask.objects.values_list("name", flat=True)) == set(EXPECTED_ROWS)
    for name in EXPECTED_ROWS:
        assert_default_row(name)


def test_sync_adds_the_email_sweeper_every_minute_expiring_before_the_next():
    sync_at(local(2026, 11, 27, 12, 0))

    assert_default_row(SWEEP)
    assert PeriodicTask.objects.get(name=SWEEP).expire_seconds < 60


def test_every_schedule_expires_its_message_before_the_next_run_is_sent():
    sync_at(local(2026, 11, 27, 12, 0))

    for row in PeriodicTask.objects.all():
        assert 0 < row.expire_seconds < EXPECTED_ROWS[row.name].period_seconds, row.name


def test_every_schedule_names_a_registered_task_that_accepts_its_arguments():
    project.celery.app.loader.import_default_modules()

    for spec in tasks.schedules.SCHEDULES:
        task = project.celery.app.tasks[spec.task]
        # Raises TypeError if beat would send an argument the task does not take.
        inspect.signature(task.run).bind(**spec.kwargs)


def test_a_second_sync_changes_no_row_crontab_or_change_marker():
    sync_at(local(2026, 11, 27, 12, 0))
    rows, crontabs = rows_snapshot(), crontabs_snapshot()
    marker = PeriodicTasks.last_change()

    output = sync_at(local(2026, 11, 28, 12, 0))

    assert rows_snapshot() == rows
    assert crontabs_snapshot() == crontabs
    assert PeriodicTasks.last_change() == marker
    assert "Schedules: 0 created, 0 reset, 7 kept." in output


def test_the_first_sync_tells_a_running_beat_to_reload():
    assert PeriodicTasks.last_change() != local(2026, 11, 27, 12, 0)

    sync_at(local(2026, 11, 27, 12, 0))

    assert PeriodicTasks.last_change() == local(2026, 11, 27, 12, 0)


def admin_edits() -> None:
    """What an administrator does in the admin: each save goes through the model."""
    verify = PeriodicTask.objects.get(name="verify_audit_trail")
    verify.crontab = CrontabSchedule.objects.create(
        minute="30", hour="3", timezone=settings.TIME_ZONE
    )
    verify.save()
    reminder = PeriodicTask.objects.get(name="reconciliation_reminder")
    reminder.enabled = False
    reminder.save()
    closing = PeriodicTask.objects.get(name="close_expired_sessions")
    closing.kwargs = json.dumps({"force": True, "trigger": "beat"})
    closing.queue = "slow"
    closing.priority = 5
    closing.save()
    report = PeriodicTask.objects.get(name="generate_commission_report")
    # The admin lets one swap the relative expiry for an absolute one, and delay the start.
    report.expire_seconds = None
    report.expires = local(2027, 1, 1, 0, 0)
    report.start_time = local(2026, 12, 15, 0, 0)
    report.save()


def test_a_sync_keeps_what_an_administrator_edited():
    sync_at(local(2026, 11, 27, 12, 0))
    with time_machine.travel(local(2026, 11, 27, 13, 0), tick=False):
        admin_edits()
    rows = rows_snapshot()
    marker = PeriodicTasks.last_change()

    output = sync_at(local(2026, 11, 28, 12, 0))

    assert rows_snapshot() == rows
    verify = PeriodicTask.objects.get(name="verify_audit_trail")
    assert (verify.crontab.minute, verify.crontab.hour) == ("30", "3")
    assert PeriodicTask.objects.get(name="reconciliation_reminder").enabled is False
    assert json.loads(PeriodicTask.objects.get(name="close_expired_sessions").kwargs) == {
        "force": True,
        "trigger": "beat",
    }
    assert PeriodicTasks.last_change() == marker
    assert "Schedules: 0 created, 0 reset, 7 kept." in output


def test_a_row_from_before_beat_passed_its_trigger_gets_it_and_keeps_every_edit():
    sync_at(local(2026, 11, 27, 12, 0))
    closing = PeriodicTask.objects.get(name="close_expired_sessions")
    closing.kwargs = json.dumps({"force": True})  # edited before triggers were passed
    closing.priority = 5
    closing.save()
    marker = PeriodicTasks.last_change()

    output = sync_at(local(2026, 11, 28, 12, 0))

    closing.refresh_from_db()
    assert json.loads(closing.kwargs) == {"force": True, "trigger": "beat"}
    assert closing.priority == 5
    assert "close_expired_sessions       kept, now passes trigger=beat" in output
    assert "Schedules: 0 created, 0 reset, 7 kept." in output
    assert PeriodicTasks.last_change() != marker  # a running beat reloads the new kwargs


def test_reset_restores_the_defaults_and_tells_a_running_beat():
    sync_at(local(2026, 11, 27, 12, 0))
    with time_machine.travel(local(2026, 11, 27, 13, 0), tick=False):
        admin_edits()
    crontab_count = CrontabSchedule.objects.count()

    output = sync_at(local(2026, 11, 28, 12, 0), "--reset")

    for name in EXPECTED_ROWS:
        assert_default_row(name)
    assert PeriodicTasks.last_change() == local(2026, 11, 28, 12, 0)
    # The admin's 03:30 crontab stays (it is theirs); the default one is reused, not copied.
    assert CrontabSchedule.objects.count() == crontab_count
    assert "Schedules: 0 created, 7 reset, 0 kept." in output


def test_repeated_syncs_and_resets_never_add_a_crontab():
    sync_at(local(2026, 11, 27, 12, 0))
    crontabs = crontabs_snapshot()

    sync_at(local(2026, 11, 27, 13, 0))
    sync_at(local(2026, 11, 27, 14, 0), "--reset")
    sync_at(local(2026, 11, 27, 15, 0), "--reset")

    assert crontabs_snapshot() == crontabs
    assert len(crontabs) == len(
        {(e.minute, e.hour, e.day_of_month) for e in EXPECTED_ROWS.values()}
    )


def test_schedules_sharing_a_crontab_share_one_row(monkeypatch):
    twin = ScheduleSpec(
        name="another_nightly_job",
        task="tasks.verify_audit_trail",
        description="Shares 02:00 with verify_audit_trail.",
        minute="0",
        hour="2",
    )
    monkeypatch.setattr(tasks.schedules, "SCHEDULES", (*tasks.schedules.SCHEDULES, twin))

    with time_machine.travel(local(2026, 11, 27, 12, 0), tick=False):
        schedules_sync()
        schedules_sync(reset=True)

    nightly = CrontabSchedule.objects.filter(minute="0", hour="2", day_of_month="*")
    assert nightly.count() == 1
    assert set(
        PeriodicTask.objects.filter(
            name__in=["verify_audit_trail", "another_nightly_job"]
        ).values_list("crontab_id", flat=True)
    ) == {nightly.get().pk}


def test_sync_reuses_an_existing_crontab_even_if_an_admin_duplicated_it():
    first = CrontabSchedule.objects.create(minute="0", hour="8", timezone=settings.TIME_ZONE)
    CrontabSchedule.objects.create(minute="0", hour="8", timezone=settings.TIME_ZONE)

    sync_at(local(2026, 11, 27, 12, 0))

    assert PeriodicTask.objects.get(name="reconciliation_reminder").crontab_id == first.pk
    assert CrontabSchedule.objects.filter(minute="0", hour="8").count() == 2


def test_sync_and_reset_never_touch_rows_they_do_not_own():
    every_ten = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.MINUTES)
    nightly = CrontabSchedule.objects.create(minute="0", hour="2", timezone=settings.TIME_ZONE)
    PeriodicTask.objects.create(
        name="someone_elses_job", task="other.task", interval=every_ten, enabled=False
    )
    PeriodicTask.objects.create(
        name="another_nightly", task="other.nightly", crontab=nightly, kwargs='{"x": 1}'
    )
    foreign = list(
        PeriodicTask.objects.filter(name__in=["someone_elses_job", "another_nightly"])
        .order_by("name")
        .values()
    )

    sync_at(local(2026, 11, 27, 12, 0))
    sync_at(local(2026, 11, 27, 13, 0), "--reset")

    assert (
        list(
            PeriodicTask.objects.filter(name__in=["someone_elses_job", "another_nightly"])
            .order_by("name")
            .values()
        )
        == foreign
    )
    assert PeriodicTask.objects.count() == len(EXPECTED_ROWS) + 2


def test_settings_leave_beat_schedules_to_the_database():
    assert settings.CELERY_BEAT_SCHEDULE == {}
    # django-celery-beat's DatabaseScheduler, with a heartbeat (tasks/scheduler.py).
    assert settings.CELERY_BEAT_SCHEDULER == "tasks.scheduler:HeartbeatDatabaseScheduler"
    assert project.celery.app.conf.beat_schedule == {}


def test_command_output_names_each_schedule_and_what_happened():
    created = sync_at(local(2026, 11, 27, 12, 0))
    kept = sync_at(local(2026, 11, 27, 13, 0))
    reset = sync_at(local(2026, 11, 27, 14, 0), "--reset")

    for name, expected in EXPECTED_ROWS.items():
        cron = f"{expected.minute} {expected.hour} {expected.day_of_month} * *"
        for output, verb in ((created, "created"), (kept, "kept as is"), (reset, "reset")):
            line = next(line for line in output.splitlines() if name in line)
            assert verb in line
            assert f"(default cron: {cron})" in line
    assert created.splitlines()[-1] == "Schedules: 7 created, 0 reset, 0 kept."
    assert kept.splitlines()[-1] == "Schedules: 0 created, 0 reset, 7 kept."
    assert reset.splitlines()[-1] == "Schedules: 0 created, 7 reset, 0 kept."


def test_help_explains_reset():
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "sync_schedules", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "--reset" in result.stdout
    assert "Restore crontab" in result.stdout


# --- What beat does with the rows -------------------------------------------------------


class RecordingScheduler(DatabaseScheduler):
    """The real DatabaseScheduler, with the broker replaced by a list."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[tuple[str, dt.datetime, dict[str, Any], Any]] = []
        super().__init__(*args, **kwargs)

    @property
    def producer(self) -> None:
        return None

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        self.sent.append(
            (entry.name, dt.datetime.now(TZ), dict(entry.kwargs), entry.options.get("expires"))
        )


@pytest.fixture
def schedulers(monkeypatch):
    """Build DatabaseSchedulers on the project's app; drop their exit-time sync afterwards."""
    # Beat closes "old" connections each tick; inside the test transaction that would close
    # the test's own connection.
    monkeypatch.setattr("django_celery_beat.schedulers.close_old_connections", lambda: None)
    built = []

    def build(cls: type[DatabaseScheduler] = DatabaseScheduler, **kwargs: Any):
        scheduler = cls(app=project.celery.app, **kwargs)
        built.append(scheduler)
        return scheduler

    yield build
    for scheduler in built:
        scheduler._finalize.cancel()


def fire_times(day: dt.date) -> dict[str, list[dt.datetime]]:
    """When each job runs on ``day`` according to the guide (local time)."""
    at = {name: [] for name in EXPECTED}
    for hour in range(24):
        at["close_expired_sessions"].append(local(day.year, day.month, day.day, hour, 0))
    at["verify_audit_trail"].append(local(day.year, day.month, day.day, 2, 0))
    at["reconciliation_reminder"].append(local(day.year, day.month, day.day, 8, 0))
    if day.day == 1:
        at["generate_commission_report"].append(local(day.year, day.month, day.day, 9, 0))
    return at


def test_beat_holds_every_job_that_is_due_within_two_hours_at_every_hour_of_the_day(
    schedulers,
):
    # django-celery-beat >= 2.8 loads crontab rows with a numeric hour only within +/- 2 h of
    # now, reloading every 5 minutes: so "loaded when due soon" is what beat promises.
    sync_at(local(2026, 11, 30, 12, 0))
    day = dt.date(2026, 12, 1)  # a 1st, so the monthly job runs too
    upcoming = defaultdict(list)
    for when in (day, day + dt.timedelta(days=1)):
        for name, times in fire_times(when).items():
            upcoming[name] += times
    seen: set[str] = set()

    for hour in range(24):
        for minute in (0, 59):
            now = local(day.year, day.month, day.day, hour, minute)
            with time_machine.travel(now, tick=False):
                loaded = schedulers(lazy=True).all_as_schedule()
            due_soon = {
                name
                for name, times in upcoming.items()
                if any(now <= t <= now + dt.timedelta(hours=2) for t in times)
            }
            assert due_soon <= set(loaded), (now, due_soon - set(loaded))
            assert SWEEP in loaded  # every minute: always loaded
            assert set(loaded) <= set(EXPECTED_ROWS)
            seen |= set(loaded)

    assert seen == set(EXPECTED_ROWS)


def test_beat_entries_carry_the_task_arguments_expiry_and_local_crontab(schedulers):
    sync_at(local(2026, 11, 30, 12, 0))
    scheduler = schedulers(lazy=True)

    for row in PeriodicTask.objects.all():
        entry = scheduler.Entry(row, app=project.celery.app)
        expected = EXPECTED_ROWS[row.name]
        assert entry.task == expected.task
        assert entry.kwargs == expected.kwargs
        assert entry.options["expires"] == row.expire_seconds
        assert entry.schedule.tz == TZ


def test_each_crontab_fires_once_per_local_day_at_its_hour_across_a_month_end(schedulers):
    start, end = local(2026, 11, 28, 0, 0), local(2026, 12, 3, 0, 0)
    sync_at(start - dt.timedelta(minutes=2))
    scheduler = schedulers(lazy=True)
    entries = [scheduler.Entry(row, app=project.celery.app) for row in PeriodicTask.objects.all()]
    last_run_at = {entry.name: start - dt.timedelta(minutes=2) for entry in entries}
    fired = defaultdict(list)

    with time_machine.travel(start, tick=False) as traveller:
        while (now := dt.datetime.now(TZ)) < end:
            for entry in entries:
                # The entry's own schedule reads the clock through datetime.now(tz).
                due, _next_check = entry.schedule.is_due(last_run_at[entry.name])
                if due:
                    fired[entry.name].append(now)
                    last_run_at[entry.name] = now
            traveller.shift(dt.timedelta(minutes=1))

    days = [start.date() + dt.timedelta(days=n) for n in range(5)]
    for name in EXPECTED:
        wanted = [t for day in days for t in fire_times(day)[name]]
        assert fired[name] == wanted, name
    assert fired["generate_commission_report"] == [local(2026, 12, 1, 9, 0)]
    assert len(fired["close_expired_sessions"]) == 24 * 5
    assert len(fired[SWEEP]) == 24 * 60 * 5  # every minute, never skipped nor doubled


def test_a_running_beat_sends_each_job_once_at_its_local_time_across_the_month_end(
    schedulers,
):
    start, end = local(2026, 11, 30, 23, 30, 17), local(2026, 12, 1, 9, 30)
    sync_at(start)

    with time_machine.travel(start, tick=False) as traveller:
        beat = schedulers(RecordingScheduler)  # not lazy: starts as `celery beat` does
        while dt.datetime.now(TZ) < end:
            for _ in range(10):  # beat sends one due task per tick
                if beat.tick() > 0:
                    break
            traveller.shift(dt.timedelta(minutes=1))

    ours = [
        (name, at.replace(second=0), kwargs, expires) for name, at, kwargs, expires in beat.sent
    ]
    ours = [row for row in ours if row[0] in EXPECTED_ROWS]
    by_name = defaultdict(list)
    for name, at, kwargs, expires in ours:
        by_name[name].append(at)
        assert kwargs == EXPECTED_ROWS[name].kwargs
        assert expires == PeriodicTask.objects.get(name=name).expire_seconds
    assert by_name["close_expired_sessions"] == [local(2026, 12, 1, h, 0) for h in range(10)]
    assert by_name["verify_audit_trail"] == [local(2026, 12, 1, 2, 0)]
    assert by_name["reconciliation_reminder"] == [local(2026, 12, 1, 8, 0)]
    assert by_name["generate_commission_report"] == [local(2026, 12, 1, 9, 0)]
    # The sweeper every minute, from the first minute after beat started.
    minutes = int((end - start).total_seconds() // 60)
    assert len(by_name[SWEEP]) == len(set(by_name[SWEEP])) >= minutes - 1
