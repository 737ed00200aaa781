"""The watchdog: a dead man's switch that does not depend on beat.

Each run looks at the health (tasks/health/selectors.py), catches up every overdue
operation once, and keeps one incident per problem: one alert email to the administrators
when it opens, one recovery notice when it clears. It runs

- in every Celery worker, on a thread started when the worker is ready (every
  ``WATCHDOG_INTERVAL_SECONDS``), so that a stopped beat is noticed by the workers;
- from cron, as ``manage.py watchdog``, where there is no worker.

Any number may run at once: a PostgreSQL advisory lock lets one act while the others
only look, and the database holds a single open incident per problem besides.

Why a thread rather than a worker bootstep on the worker's timer: the timer's callbacks
run on the worker's event loop, so a slow database would stall the consumption of tasks
and the broker heartbeats; a thread stalls nothing, has its own database connection, and
is started and stopped by the worker's own signals without touching the Celery app.
"""

import datetime as dt
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from celery import current_app
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from mailing.selectors import staff_email_addresses
from tasks.health.selectors import (
    WATCHDOG,
    BeatStatus,
    HealthSnapshot,
    JobState,
    JobStatus,
    OutboxBacklog,
    health_snapshot,
    open_incidents,
    watched_specs,
)
from tasks.health.services import (
    heartbeat_record,
    incident_open,
    incident_resolve,
    job_catch_up_recorded,
    job_health_watch,
)
from tasks.locking import OperationAlreadyRunning, operation_lock
from tasks.models import IncidentKind
from tasks.results import Trigger

logger = logging.getLogger(__name__)

BEAT_SUBJECT = "beat"
OUTBOX_SUBJECT = "outbox"
# A job incident closes only once the job is fine again (or no longer scheduled): while a
# new due run is pending or running, a job that was overdue stays an open incident.
_JOB_RECOVERED = {
    JobState.OK,
    JobState.DISABLED,
    JobState.WAITING,
    JobState.MISSING,
    JobState.UNWATCHED,
}


@dataclass(frozen=True)
class CatchUp:
    """A missed run the watchdog sent, or could not send."""

    name: str
    due_at: dt.datetime
    task_id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class IncidentChange:
    kind: str
    subject: str
    email_id: int | None


@dataclass(frozen=True)
class WatchdogReport:
    snapshot: HealthSnapshot
    # False: another watchdog held the lock; this one only looked.
    acted: bool = True
    caught_up: list[CatchUp] = field(default_factory=list)
    opened: list[IncidentChange] = field(default_factory=list)
    resolved: list[IncidentChange] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.snapshot.ok and not any(catch_up.error for catch_up in self.caught_up)


def watchdog_run(*, broker_timeout: float = 3.0) -> WatchdogReport:
    """One look, and the actions it calls for, unless another watchdog is acting now."""
    try:
        with operation_lock(WATCHDOG):
            return _act(broker_timeout=broker_timeout)
    except OperationAlreadyRunning:
        return WatchdogReport(snapshot=health_snapshot(broker_timeout=broker_timeout), acted=False)


def _act(*, broker_timeout: float) -> WatchdogReport:
    heartbeat_record(name=WATCHDOG)
    job_health_watch(names=[spec.name for spec in watched_specs()])
    snapshot = health_snapshot(broker_timeout=broker_timeout)
    if snapshot.jobs is None:  # the database went away since the lock was taken
        return WatchdogReport(snapshot=snapshot)
    caught_up = [_catch_up(job) for job in snapshot.jobs if job.catch_up_wanted]
    opened, resolved = _incidents_sync(snapshot, caught_up=caught_up)
    return WatchdogReport(snapshot=snapshot, caught_up=caught_up, opened=opened, resolved=resolved)


# Catch-up --------------------------------------------------------------------------------


def _catch_up(job: JobStatus) -> CatchUp:
    """Send the schedule's task as beat would (its row's task, arguments and options, as
    an administrator may have edited them), once for its latest due time."""
    row = PeriodicTask.objects.get(name=job.name)
    try:
        args = json.loads(row.args or "[]")
        kwargs = {**json.loads(row.kwargs or "{}"), "trigger": Trigger.BEAT.value}
        headers = {**json.loads(row.headers or "{}"), "periodic_task_name": row.name}
    except ValueError as error:
        logger.error("Cannot catch up %s: its arguments are not JSON (%s)", job.name, error)
        return CatchUp(name=job.name, due_at=job.due_at, error="its arguments are not JSON")
    options: dict[str, Any] = {
        name: getattr(row, name)
        for name in ("queue", "exchange", "routing_key", "priority")
        if getattr(row, name) is not None
    }
    if row.expire_seconds:
        options["expires"] = row.expire_seconds
    try:
        sent = current_app.send_task(
            row.task, args=args, kwargs=kwargs, headers=headers, retry=False, **options
        )
    except Exception as error:  # noqa: BLE001 - kombu raises several kinds
        # Not recorded as sent: the next watchdog run tries again.
        logger.warning("Could not send the catch-up run of %s: %s", job.name, error)
        return CatchUp(name=job.name, due_at=job.due_at, error="the broker could not be reached")
    job_catch_up_recorded(name=job.name, due_at=job.due_at, task_id=sent.id)
    logger.info("Caught up %s (due %s) as task %s", job.name, job.due_at, sent.id)
    return CatchUp(name=job.name, due_at=job.due_at, task_id=sent.id)


# Incidents -------------------------------------------------------------------------------


def _incidents_sync(
    snapshot: HealthSnapshot, *, caught_up: list[CatchUp]
) -> tuple[list[IncidentChange], list[IncidentChange]]:
    current = open_incidents()
    recipients = staff_email_addresses()
    opened: list[IncidentChange] = []
    resolved: list[IncidentChange] = []
    catch_ups = {catch_up.name: catch_up for catch_up in caught_up}
    base = {"time_zone": settings.TIME_ZONE, "now": snapshot.now}

    def open_(kind: IncidentKind, subject: str, detail: dict, context: dict) -> None:
        if (kind, subject) in current:
            return
        incident = incident_open(
            kind=kind,
            subject=subject,
            detail=detail,
            context={**base, "kind": kind.value, "subject": subject, **context},
            recipients=recipients,
        )
        if incident is not None:
            opened.append(IncidentChange(kind, subject, incident.alert_email_id))

    def resolve(kind: IncidentKind, subject: str, context: dict) -> None:
        incident = current.get((kind, subject))
        if incident is None:
            return
        closed = incident_resolve(
            incident=incident,
            context={**base, "kind": kind.value, "subject": subject, **context},
            recipients=recipients,
        )
        if closed is not None:
            resolved.append(IncidentChange(kind, subject, closed.recovery_email_id))

    for job in snapshot.jobs:
        context = {"job": job, "catch_up": catch_ups.get(job.name), **_job_context(job)}
        if job.state == JobState.OVERDUE:
            open_(IncidentKind.JOB_OVERDUE, job.name, _job_detail(job), context)
        elif job.state in _JOB_RECOVERED:
            resolve(IncidentKind.JOB_OVERDUE, job.name, context)

    beat = snapshot.beat
    if beat.silent:
        open_(IncidentKind.BEAT_SILENT, BEAT_SUBJECT, _beat_detail(beat), _beat_context(beat))
    elif not beat.never_seen:
        resolve(IncidentKind.BEAT_SILENT, BEAT_SUBJECT, _beat_context(beat))

    outbox = snapshot.outbox
    if outbox.stuck:
        open_(
            IncidentKind.OUTBOX_BACKLOG, OUTBOX_SUBJECT, _outbox_detail(outbox), {"outbox": outbox}
        )
    else:
        resolve(IncidentKind.OUTBOX_BACKLOG, OUTBOX_SUBJECT, {"outbox": outbox})

    # An open incident whose schedule left the registry closes with it.
    watched = {job.name for job in snapshot.jobs}
    for kind, subject in list(current):
        if kind == IncidentKind.JOB_OVERDUE and subject not in watched:
            resolve(IncidentKind.JOB_OVERDUE, subject, {"job": None})
    return opened, resolved


def _job_context(job: JobStatus) -> dict[str, Any]:
    spec = next((spec for spec in watched_specs() if spec.name == job.name), None)
    grace = spec.overdue_grace_seconds if spec else None
    return {"grace_minutes": grace // 60 if grace else None}


def _job_detail(job: JobStatus) -> dict[str, Any]:
    return {
        "due_at": _iso(job.due_at),
        "overdue_at": _iso(job.overdue_at),
        "last_success_at": _iso(job.last_success_at),
        "last_started_at": _iso(job.last_started_at),
        "last_status": job.last_status,
        "last_message": job.last_message,
    }


def _beat_context(beat: BeatStatus) -> dict[str, Any]:
    minutes = int(beat.age.total_seconds() // 60) if beat.age is not None else None
    return {"beat": beat, "beat_minutes": minutes}


def _beat_detail(beat: BeatStatus) -> dict[str, Any]:
    return {"last_tick_at": _iso(beat.last_beat_at)}


def _outbox_detail(outbox: OutboxBacklog) -> dict[str, Any]:
    return {
        "undelivered": outbox.undelivered,
        "oldest_undelivered_at": _iso(outbox.oldest_undelivered_at),
    }


def _iso(value: dt.datetime | None) -> str | None:
    return timezone.localtime(value).isoformat() if value else None


# In the worker ---------------------------------------------------------------------------


class WatchdogThread(threading.Thread):
    """Runs the watchdog every ``interval`` seconds until stopped."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="watchdog", daemon=True)
        self.interval = interval
        self._stopping = threading.Event()

    def run(self) -> None:
        # The first look after one interval: a worker restarting in a loop must not
        # alert or catch up on every start.
        while not self._stopping.wait(self.interval):
            try:
                close_old_connections()
                watchdog_run()
            except Exception:
                logger.exception("The watchdog run failed; the next one is in %ss", self.interval)
            finally:
                # Hold no connection between runs (and none a forked pool child inherits).
                connection.close()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self.join(timeout)


_thread: WatchdogThread | None = None


@worker_ready.connect
def _watchdog_start(sender: Any = None, **kwargs: Any) -> None:
    global _thread
    interval = getattr(settings, "WATCHDOG_INTERVAL_SECONDS", 60)
    if not interval or _thread is not None:
        return
    _thread = WatchdogThread(interval)
    _thread.start()
    logger.info("Watchdog started in this worker: every %ss", interval)


@worker_shutdown.connect
def _watchdog_stop(sender: Any = None, **kwargs: Any) -> None:
    global _thread
    if _thread is not None:
        _thread.stop()
        _thread = None
