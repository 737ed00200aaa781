"""Reads of job health: each schedule's state (ok, overdue, ...), beat's heartbeat, the
outbox's backlog and the dependencies, for the watchdog and /health/ready/.

Read-only: nothing here writes, so the health page can ask as often as it likes.
"""

import datetime as dt
import enum
import logging
from dataclasses import dataclass

import kombu
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from mailing.selectors import outbox_status
from tasks.health.due import latest_due
from tasks.models import Heartbeat, Incident, JobHealth
from tasks.scheduler import BEAT
from tasks.schedules import SCHEDULES, ScheduleSpec

logger = logging.getLogger(__name__)

WATCHDOG = "watchdog"
# Beat ticks every few seconds and records it every 30 s: five minutes of silence is a
# beat that stopped, not a slow one.
BEAT_SILENT_AFTER = dt.timedelta(minutes=5)
# Mail still undelivered after an hour is stuck, whatever its retries say.
OUTBOX_STUCK_AFTER = dt.timedelta(hours=1)


class JobState(enum.StrEnum):
    OK = "ok"  # succeeded since its latest due time
    PENDING = "pending"  # due, not succeeded yet, still within its grace period
    RUNNING = "running"  # a run for the latest due time is in progress
    OVERDUE = "overdue"  # not succeeded since a due time older than its grace period
    WAITING = "waiting"  # nothing due since it is watched (a new install or schedule)
    DISABLED = "disabled"  # an administrator disabled the schedule: never overdue
    MISSING = "missing"  # no schedule row: beat does not run it (run sync_schedules)
    UNWATCHED = "unwatched"  # a schedule type without due times (solar, clocked, one-off)


@dataclass(frozen=True)
class JobStatus:
    """One watched schedule and what its operation last did."""

    name: str
    state: JobState
    due_at: dt.datetime | None = None
    overdue_at: dt.datetime | None = None
    last_started_at: dt.datetime | None = None
    last_finished_at: dt.datetime | None = None
    last_status: str = ""
    last_trigger: str = ""
    last_message: str = ""
    last_duration: dt.timedelta | None = None
    last_success_at: dt.datetime | None = None
    dispatch_failed_at: dt.datetime | None = None
    catch_up_for: dt.datetime | None = None
    catch_up_enqueued_at: dt.datetime | None = None
    catch_up_task_id: str = ""
    # The watchdog should send a catch-up run now (see _catch_up_wanted).
    catch_up_wanted: bool = False

    @property
    def failing(self) -> bool:
        return self.state == JobState.OVERDUE


@dataclass(frozen=True)
class BeatStatus:
    last_beat_at: dt.datetime | None
    age: dt.timedelta | None
    silent: bool  # it ticked once and has been silent for BEAT_SILENT_AFTER

    @property
    def never_seen(self) -> bool:
        return self.last_beat_at is None


@dataclass(frozen=True)
class OutboxBacklog:
    undelivered: int
    oldest_undelivered_at: dt.datetime | None
    stuck: bool  # some undelivered mail is older than OUTBOX_STUCK_AFTER
    gave_up: int = 0  # failed for good, waiting for a person ("Retry delivery now")
    last_sweep_at: dt.datetime | None = None
    sweeper_late: bool = False


def watched_specs() -> list[ScheduleSpec]:
    return [spec for spec in SCHEDULES if spec.overdue_grace_seconds is not None]


def jobs_status(*, now: dt.datetime) -> list[JobStatus]:
    specs = watched_specs()
    names = [spec.name for spec in specs]
    rows = {
        row.name: row
        for row in PeriodicTask.objects.filter(name__in=names).select_related(
            "crontab", "interval", "solar", "clocked"
        )
    }
    health = {row.name: row for row in JobHealth.objects.filter(name__in=names)}
    return [
        job_status(spec=spec, row=rows.get(spec.name), health=health.get(spec.name), now=now)
        for spec in specs
    ]


def job_status(
    *,
    spec: ScheduleSpec,
    row: PeriodicTask | None,
    health: JobHealth | None,
    now: dt.datetime,
) -> JobStatus:
    known = _known_fields(health)
    if row is None:
        return JobStatus(name=spec.name, state=JobState.MISSING, **known)
    if not row.enabled:
        return JobStatus(name=spec.name, state=JobState.DISABLED, **known)
    if row.one_off or row.solar_id or row.clocked_id:
        return JobStatus(name=spec.name, state=JobState.UNWATCHED, **known)
    due = latest_due(row.schedule, now=now)
    # Unwatched until now: a schedule the watchdog never saw promised nothing before.
    watched_since = health.watched_since if health is not None else now
    if due is None or due < watched_since or (row.start_time and due < row.start_time):
        return JobStatus(name=spec.name, state=JobState.WAITING, **known)
    overdue_at = due + dt.timedelta(seconds=spec.overdue_grace_seconds)
    timing = {"due_at": due, "overdue_at": overdue_at}
    # No run record (known is empty) at the very second a schedule falls due: pending.
    last_success_at = known.get("last_success_at")
    if last_success_at and last_success_at >= due:
        return JobStatus(name=spec.name, state=JobState.OK, **timing, **known)
    if _running_since(health, due=due, now=now):
        return JobStatus(name=spec.name, state=JobState.RUNNING, **timing, **known)
    state = JobState.OVERDUE if now >= overdue_at else JobState.PENDING
    return JobStatus(
        name=spec.name,
        state=state,
        catch_up_wanted=_catch_up_wanted(
            state=state, row=row, health=health, due=due, now=now, spec=spec
        ),
        **timing,
        **known,
    )


def _known_fields(health: JobHealth | None) -> dict:
    if health is None:
        return {}
    return {
        "last_started_at": health.last_started_at,
        "last_finished_at": health.last_finished_at,
        "last_status": health.last_status,
        "last_trigger": health.last_trigger,
        "last_message": health.last_message,
        "last_duration": health.last_duration,
        "last_success_at": health.last_success_at,
        "dispatch_failed_at": health.dispatch_failed_at,
        "catch_up_for": health.catch_up_for,
        "catch_up_enqueued_at": health.catch_up_enqueued_at,
        "catch_up_task_id": health.catch_up_task_id,
    }


def _running_since(health: JobHealth | None, *, due: dt.datetime, now: dt.datetime) -> bool:
    """A run started for this due time, has not ended, and is younger than the hard time
    limit (past it, its process is gone: a worker killed mid-run never records its end)."""
    if health is None or health.last_started_at is None or health.last_started_at < due:
        return False
    if health.last_finished_at and health.last_finished_at >= health.last_started_at:
        return False
    limit = dt.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    return now - health.last_started_at < limit


def _catch_up_wanted(
    *,
    state: JobState,
    row: PeriodicTask,
    health: JobHealth | None,
    due: dt.datetime,
    now: dt.datetime,
    spec: ScheduleSpec,
) -> bool:
    """Whether the watchdog should send the run now: once per missed due time, however
    many due times an outage swallowed, and never while a run for it is on its way."""
    if health is None:
        return False
    dispatch_failed = health.dispatch_failed_at is not None and health.dispatch_failed_at >= due
    # Overdue, or known lost: beat could not send it (no need to wait out the grace).
    if state != JobState.OVERDUE and not dispatch_failed:
        return False
    # A run for this due time started (and failed, or crashed): retrying is its task's
    # job; the watchdog alerts instead of looping on a run that fails.
    if health.last_started_at is not None and health.last_started_at >= due:
        return False
    grace = dt.timedelta(seconds=spec.overdue_grace_seconds)
    # Beat sent it a moment ago (at restart, beat sends what it missed if its window
    # allows): give that run its grace before sending a second one.
    beat_sent = (
        row.last_run_at is not None
        and row.last_run_at >= due
        and not (dispatch_failed and health.dispatch_failed_at >= row.last_run_at)
    )
    if beat_sent and now < row.last_run_at + grace:
        return False
    if health.catch_up_for is not None and health.catch_up_for >= due:
        # Already caught up: only again once that message expired unconsumed.
        expires = row.expire_seconds
        return bool(expires) and now >= health.catch_up_enqueued_at + dt.timedelta(seconds=expires)
    return True


def beat_status(*, now: dt.datetime) -> BeatStatus:
    beat_at = Heartbeat.objects.filter(name=BEAT).values_list("beat_at", flat=True).first()
    if beat_at is None:
        return BeatStatus(last_beat_at=None, age=None, silent=False)
    age = max(now - beat_at, dt.timedelta(0))
    return BeatStatus(last_beat_at=beat_at, age=age, silent=age > BEAT_SILENT_AFTER)


def heartbeat_at(name: str) -> dt.datetime | None:
    return Heartbeat.objects.filter(name=name).values_list("beat_at", flat=True).first()


def outbox_backlog(*, now: dt.datetime) -> OutboxBacklog:
    """Mail logged but not delivered, from the outbox's own status (mailing.selectors)."""
    status = outbox_status()
    oldest = status.oldest_undelivered_at
    return OutboxBacklog(
        undelivered=status.undelivered,
        oldest_undelivered_at=oldest,
        stuck=oldest is not None and now - oldest > OUTBOX_STUCK_AFTER,
        gave_up=status.gave_up,
        last_sweep_at=status.last_sweep_at,
        sweeper_late=status.sweeper_late(now=now),
    )


def open_incidents() -> dict[tuple[str, str], Incident]:
    return {
        (incident.kind, incident.subject): incident
        for incident in Incident.objects.filter(resolved_at__isnull=True)
    }


# Readiness -------------------------------------------------------------------------------


class CheckStatus(enum.StrEnum):
    OK = "ok"
    FAIL = "fail"
    # Not a failure: nothing to judge yet (beat never seen here: a cron install, or a
    # beat that has not started; jobs with nothing due yet).
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Check:
    status: CheckStatus
    detail: str
    data: dict | None = None


@dataclass(frozen=True)
class HealthSnapshot:
    """Everything the watchdog and /health/ready/ judge, read once. The typed parts are
    None when the database could not be read."""

    now: dt.datetime
    database: Check
    broker: Check
    beat: BeatStatus | None = None
    jobs: list[JobStatus] | None = None
    outbox: OutboxBacklog | None = None

    def checks(self) -> dict[str, Check]:
        if self.beat is None or self.jobs is None or self.outbox is None:
            unknown = Check(CheckStatus.FAIL, "unknown: the database could not be read")
            return {
                "database": self.database,
                "broker": self.broker,
                "beat": unknown,
                "jobs": unknown,
                "outbox": unknown,
            }
        return {
            "database": self.database,
            "broker": self.broker,
            "beat": beat_check(self.beat),
            "jobs": jobs_check(self.jobs),
            "outbox": outbox_check(self.outbox),
        }

    @property
    def ok(self) -> bool:
        return all(check.status != CheckStatus.FAIL for check in self.checks().values())


def health_snapshot(
    *, now: dt.datetime | None = None, broker_timeout: float = 3.0
) -> HealthSnapshot:
    """Every dependency and job, as /health/ready/ and the watchdog see them."""
    now = now or timezone.now()
    database = database_check()
    broker = broker_check(timeout=broker_timeout)
    if database.status == CheckStatus.FAIL:
        return HealthSnapshot(now=now, database=database, broker=broker)
    try:
        return HealthSnapshot(
            now=now,
            database=database,
            broker=broker,
            beat=beat_status(now=now),
            jobs=jobs_status(now=now),
            outbox=outbox_backlog(now=now),
        )
    except DatabaseError:
        logger.exception("Health: the database failed mid-check")
        failed = Check(CheckStatus.FAIL, "unreachable (failed during the check)")
        return HealthSnapshot(now=now, database=failed, broker=broker)


def database_check() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        logger.warning("Health: database unreachable: %s", error)
        return Check(CheckStatus.FAIL, f"unreachable ({type(error).__name__})")
    return Check(CheckStatus.OK, "reachable")


def broker_check(*, timeout: float = 3.0) -> Check:
    """Connect to the broker within ``timeout`` seconds, however it fails (refused, or
    a server that accepts and never answers)."""
    from celery import current_app

    conf = current_app.conf
    options = {
        **(conf.broker_transport_options or {}),
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
    }
    try:
        with kombu.Connection(
            conf.broker_url, connect_timeout=timeout, transport_options=options
        ) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
    except Exception as error:  # noqa: BLE001 - kombu and the transports raise many kinds
        logger.warning("Health: broker unreachable: %s", error)
        return Check(CheckStatus.FAIL, f"unreachable ({type(error).__name__})")
    return Check(CheckStatus.OK, "reachable")


def beat_check(beat: BeatStatus) -> Check:
    if beat.never_seen:
        return Check(CheckStatus.UNKNOWN, "beat has never ticked here", {"last_tick_at": None})
    data = {
        "last_tick_at": _iso(beat.last_beat_at),
        "age_seconds": int(beat.age.total_seconds()),
    }
    if beat.silent:
        minutes = int(beat.age.total_seconds() // 60)
        return Check(CheckStatus.FAIL, f"beat has not ticked for {minutes} min", data)
    return Check(CheckStatus.OK, f"ticked {data['age_seconds']} s ago", data)


def jobs_check(jobs: list[JobStatus]) -> Check:
    data = {job.name: _job_data(job) for job in jobs}
    overdue = [job.name for job in jobs if job.failing]
    if overdue:
        return Check(CheckStatus.FAIL, f"overdue: {', '.join(overdue)}", data)
    return Check(CheckStatus.OK, "no job overdue", data)


def outbox_check(backlog: OutboxBacklog) -> Check:
    data = {
        "undelivered": backlog.undelivered,
        "oldest_undelivered_at": _iso(backlog.oldest_undelivered_at),
        "gave_up": backlog.gave_up,
        "last_sweep_at": _iso(backlog.last_sweep_at),
    }
    detail = f"{backlog.undelivered} undelivered message(s)"
    if backlog.stuck:
        detail += ", the oldest for over an hour"
    if backlog.sweeper_late:
        # Not a failure alone (no mail may be waiting); the mail it leaves behind is.
        detail += "; the sweeper is late"
    return Check(CheckStatus.FAIL if backlog.stuck else CheckStatus.OK, detail, data)


def snapshot_json(snapshot: HealthSnapshot) -> dict:
    """The health as JSON: what /health/ready/ answers. The details name operations,
    counts and times, never an address, a host or a password (an error's own text can
    carry those, so it goes to the log only)."""
    return {
        "status": "ok" if snapshot.ok else "fail",
        "checked_at": _iso(snapshot.now),
        "checks": {
            name: {"status": check.status.value, "detail": check.detail, **(check.data or {})}
            for name, check in snapshot.checks().items()
        },
    }


def _job_data(job: JobStatus) -> dict:
    # Statuses and times only: a run's message can quote an error that names a host.
    return {
        "state": job.state.value,
        "due_at": _iso(job.due_at),
        "overdue_at": _iso(job.overdue_at),
        "last_success_at": _iso(job.last_success_at),
        "last_started_at": _iso(job.last_started_at),
        "last_status": job.last_status or None,
        "catch_up_enqueued_at": _iso(job.catch_up_enqueued_at)
        if job.catch_up_for and job.due_at and job.catch_up_for >= job.due_at
        else None,
    }


def _iso(value: dt.datetime | None) -> str | None:
    return timezone.localtime(value).isoformat() if value else None
