"""Writes of job health: a run's start and outcome, beat's failed sends, heartbeats, the
watchdog's catch-ups and incidents.

A run's health is written around the work, never inside its transactions, and a failure
to write it is logged, never raised: the record must not fail the work it describes. Each
write is its own savepoint, so a failed one leaves a surrounding transaction usable.
"""

import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from mailing.services import email_queue
from tasks.models import Heartbeat, Incident, IncidentKind, JobHealth
from tasks.results import OperationStatus, Trigger

logger = logging.getLogger(__name__)

# A run that reached its end: tampering found is a verification that did its job (and
# alerted through its own email and exit code), not a missed run.
SUCCESSFUL_STATUSES = frozenset({OperationStatus.OK, OperationStatus.TAMPERING})
CRASHED = "error"
_MESSAGE_LIMIT = 1000


@dataclass(frozen=True)
class RunClock:
    """A started run: when, by whom, and a monotonic start for its duration."""

    name: str
    trigger: Trigger
    started_at: dt.datetime
    started: float


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def job_run_started(*, name: str, trigger: Trigger, requested_by: str = "") -> RunClock:
    clock = RunClock(
        name=name, trigger=trigger, started_at=timezone.now(), started=time.monotonic()
    )
    _write(
        name,
        last_started_at=clock.started_at,
        last_trigger=trigger.value,
        # The user behind an admin run; empty for beat, the command line and the API.
        last_requested_by=requested_by,
        # The previous outcome stays readable until this run ends; "running" is derived
        # from started > finished.
    )
    return clock


def job_run_finished(*, clock: RunClock, status: str, message: str = "") -> None:
    fields = {
        "last_finished_at": timezone.now(),
        "last_status": str(status),
        "last_message": message[:_MESSAGE_LIMIT],
        "last_duration": dt.timedelta(seconds=time.monotonic() - clock.started),
    }
    if status in SUCCESSFUL_STATUSES:
        fields["last_success_at"] = clock.started_at
    _write(clock.name, **fields)


def job_run_crashed(*, clock: RunClock, error: BaseException) -> None:
    """The run raised: its reason in one line (the traceback is in the worker's log)."""
    text = str(error).strip()
    reason = text.splitlines()[0] if text else ""
    job_run_finished(
        clock=clock,
        status=CRASHED,
        message=f"{type(error).__name__}: {reason}" if reason else type(error).__name__,
    )


def job_dispatch_failed(*, name: str, error: BaseException) -> None:
    """Beat could not send a due run (the broker is down). Its schedule still advanced, so
    without this record the run would be lost without a trace; the watchdog catches it up."""
    _write(name, dispatch_failed_at=timezone.now(), dispatch_error=str(error)[:_MESSAGE_LIMIT])


def job_catch_up_recorded(*, name: str, due_at: dt.datetime, task_id: str) -> None:
    JobHealth.objects.filter(name=name).update(
        catch_up_for=due_at, catch_up_enqueued_at=timezone.now(), catch_up_task_id=task_id
    )


def job_health_watch(*, names: list[str]) -> None:
    """Start watching these schedules now: runs due before this were never promised."""
    existing = set(JobHealth.objects.filter(name__in=names).values_list("name", flat=True))
    JobHealth.objects.bulk_create(
        [JobHealth(name=name) for name in names if name not in existing], ignore_conflicts=True
    )


def heartbeat_record(*, name: str) -> bool:
    """A sign of life; False (logged) when the database could not take it."""
    try:
        with transaction.atomic():
            Heartbeat.objects.update_or_create(
                name=name, defaults={"beat_at": timezone.now(), "host": process_name()}
            )
    except DatabaseError as error:
        logger.warning("Could not record the %s heartbeat: %s", name, error)
        return False
    return True


def _write(name: str, **fields) -> None:
    try:
        with transaction.atomic():
            updated = JobHealth.objects.filter(name=name).update(**fields)
            if not updated:
                JobHealth.objects.update_or_create(name=name, defaults=fields)
    except DatabaseError as error:
        logger.warning("Could not record %s's job health (%s): %s", name, sorted(fields), error)


# Incidents -------------------------------------------------------------------------------

ALERT_TEMPLATE = "tasks/email/incident_opened"
RECOVERY_TEMPLATE = "tasks/email/incident_resolved"


def incident_open(
    *,
    kind: IncidentKind,
    subject: str,
    detail: dict[str, Any],
    context: Mapping[str, Any],
    recipients: list[str],
) -> Incident | None:
    """Open an incident and queue its alert in the same transaction. None when one is
    already open for this kind and subject (the database holds a single open one, so two
    watchdogs at once still send one alert)."""
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                kind=kind, subject=subject, opened_at=timezone.now(), detail=detail
            )
            if recipients:
                incident.alert_email = email_queue(
                    purpose="incident_alert",
                    recipients=recipients,
                    template=ALERT_TEMPLATE,
                    context={**context, "incident": incident},
                    about=f"{kind} {subject}"[:200],
                    subject_object=incident,
                )
                incident.save(update_fields=["alert_email"])
    except IntegrityError:
        return None
    if not recipients:
        logger.warning("Incident %s opened; no administrator has an email address", incident)
    return incident


def incident_resolve(
    *, incident: Incident, context: Mapping[str, Any], recipients: list[str]
) -> Incident | None:
    """Close an open incident and queue one recovery notice with it. None when another
    watchdog closed it first."""
    with transaction.atomic():
        locked = (
            Incident.objects.select_for_update()
            .filter(pk=incident.pk, resolved_at__isnull=True)
            .first()
        )
        if locked is None:
            return None
        locked.resolved_at = timezone.now()
        if recipients:
            locked.recovery_email = email_queue(
                purpose="incident_recovery",
                recipients=recipients,
                template=RECOVERY_TEMPLATE,
                context={**context, "incident": locked},
                about=f"{locked.kind} {locked.subject}"[:200],
                subject_object=locked,
            )
        locked.save(update_fields=["resolved_at", "recovery_email"])
    return locked
