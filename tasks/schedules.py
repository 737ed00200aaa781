"""The one registry of beat's schedules (the four operations and the outbox's sweeper),
and its sync into django-celery-beat.

The database is the single source beat reads (DatabaseScheduler); administrators edit the
rows in the admin. A sync creates missing rows and otherwise leaves them alone, unless
asked to reset them to these defaults.
"""

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

from tasks.inputs import InvalidInput, quoted
from tasks.results import Trigger

logger = logging.getLogger(__name__)

HOUR = 60 * 60


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    task: str
    description: str
    minute: str
    hour: str
    day_of_month: str = "*"
    day_of_week: str = "*"
    kwargs: dict[str, Any] = field(default_factory=dict)
    # Shorter than the period: after an outage, stale messages expire instead of piling up.
    expire_seconds: int = HOUR
    # How long a due run may be missing before the watchdog calls it overdue, alerts and
    # catches it up (tasks/watchdog.py). None: the watchdog does not track this schedule
    # by its operation's runs.
    overdue_grace_seconds: int | None = None
    # The operations' tasks record who ran them by hand (requested_by, in their job
    # health); the outbox's sweeper records only its trigger.
    records_requester: bool = True


# The guide's recommended times, read in settings.TIME_ZONE.
SCHEDULES: tuple[ScheduleSpec, ...] = (
    ScheduleSpec(
        name="close_expired_sessions",
        task="tasks.close_expired_sessions",
        description="Every hour at minute 0: close sessions left open past the timeout.",
        minute="0",
        hour="*",
        kwargs={"trigger": "beat"},
        expire_seconds=50 * 60,
        overdue_grace_seconds=15 * 60,
    ),
    ScheduleSpec(
        name="verify_audit_trail",
        task="tasks.verify_audit_trail",
        description="Daily at 02:00: verify the audit hash chain, alert admins on tampering.",
        minute="0",
        hour="2",
        kwargs={"alert_on_tampering": True, "trigger": "beat"},
        expire_seconds=12 * HOUR,
        overdue_grace_seconds=HOUR,
    ),
    # Not tracked by the watchdog: it shares verify_audit_trail's run record, which the
    # daily run keeps fresh; a missed weekly run is caught up by the next Sunday's.
    ScheduleSpec(
        name="verify_audit_trail_full",
        task="tasks.verify_audit_trail",
        description="Sundays at 03:00: verify the entire audit hash chain, alert on tampering.",
        minute="0",
        hour="3",
        day_of_week="0",
        kwargs={"full": True, "alert_on_tampering": True, "trigger": "beat"},
        expire_seconds=24 * HOUR,
    ),
    ScheduleSpec(
        name="audit_checkpoint",
        task="tasks.audit_checkpoint",
        description=(
            "Every hour at minute 30: check the entries since the last checkpoint and sign "
            "the head, alert admins on tampering."
        ),
        minute="30",
        hour="*",
        kwargs={"alert_on_tampering": True, "trigger": "beat"},
        expire_seconds=50 * 60,
        # Not tracked: the daily verification is, and it signs a checkpoint too, so a
        # missed hour weakens nothing the next daily run does not restore.
    ),
    ScheduleSpec(
        name="reconciliation_reminder",
        task="tasks.reconciliation_reminder",
        description="Daily at 08:00: remind agents, and summarise for admins, what to reconcile.",
        minute="0",
        hour="8",
        kwargs={"email_admins": True, "trigger": "beat"},
        expire_seconds=12 * HOUR,
        overdue_grace_seconds=HOUR,
    ),
    ScheduleSpec(
        name="generate_commission_report",
        task="tasks.generate_commission_report",
        description="At 09:00 on the 1st of each month: last month's commission report.",
        minute="0",
        hour="9",
        day_of_month="1",
        kwargs={"trigger": "beat"},
        expire_seconds=7 * 24 * HOUR,
        overdue_grace_seconds=HOUR,
    ),
    # Not an operation: the outbox's sweeper (mailing.tasks). Its health is the outbox's
    # (mailing.selectors.outbox_status: the last sweep, the backlog), not a run record.
    ScheduleSpec(
        name="email_sweep",
        task="mailing.email_sweep",
        description=(
            "Every minute: deliver due mail (queued mail no worker took, retries of failed "
            "mail, deliveries that died)."
        ),
        minute="*",
        hour="*",
        kwargs={"trigger": "beat"},
        expire_seconds=50,
        records_requester=False,
    ),
)


def run_by_hand_kwargs(*, task: str, kwargs: Any, requested_by: str) -> dict[str, Any]:
    """The arguments of a schedule run by hand from the admin: the row's own, recorded as
    triggered from the admin by ``requested_by``, never as beat. Only the registry's tasks
    know these arguments; any other task is refused (InvalidInput), nothing sent."""
    spec = next((spec for spec in SCHEDULES if spec.task == task), None)
    if spec is None:
        raise InvalidInput(
            f"{quoted(task)} is not one of the scheduled operations, so a run by hand could "
            "not record who asked for it."
        )
    if not isinstance(kwargs, dict):
        raise InvalidInput(
            f"The schedule's keyword arguments must be an object, not {quoted(kwargs)}."
        )
    extra: dict[str, Any] = {"trigger": Trigger.ADMIN.value}
    if spec.records_requester:
        extra["requested_by"] = requested_by
    return {**kwargs, **extra}


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    reset: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Rows from before beat passed its trigger: given trigger="beat", nothing else touched.
    trigger_added: list[str] = field(default_factory=list)


def _crontab_for(spec: ScheduleSpec) -> CrontabSchedule:
    wanted = {
        "minute": spec.minute,
        "hour": spec.hour,
        "day_of_month": spec.day_of_month,
        "month_of_year": "*",
        "day_of_week": spec.day_of_week,
        "timezone": settings.TIME_ZONE,
    }
    # filter().first(): tolerate duplicates an admin made, never add another.
    return CrontabSchedule.objects.filter(**wanted).order_by("pk").first() or (
        CrontabSchedule.objects.create(**wanted)
    )


def _defaults_for(spec: ScheduleSpec) -> dict[str, Any]:
    return {
        "task": spec.task,
        "crontab": _crontab_for(spec),
        "interval": None,
        "solar": None,
        "clocked": None,
        "kwargs": json.dumps(spec.kwargs, sort_keys=True),
        "args": "[]",
        "expire_seconds": spec.expire_seconds,
        # Every other field the admin form edits, so --reset restores it too (and an
        # absolute ``expires`` cannot clash with expire_seconds on save).
        "expires": None,
        "start_time": None,
        "queue": None,
        "exchange": None,
        "routing_key": None,
        "priority": None,
        "headers": "{}",
        "enabled": True,
        "one_off": False,
        "description": spec.description,
    }


def _trigger_missing(task: PeriodicTask) -> bool:
    try:
        kwargs = json.loads(task.kwargs or "{}")
    except ValueError:
        return False  # an administrator's broken edit: beat reports it; leave it to them
    return isinstance(kwargs, dict) and "trigger" not in kwargs


def schedules_sync(*, reset: bool = False) -> SyncResult:
    """Upsert the registry's rows by their unique names. Rows not in the registry, and
    admin edits to ours, are left alone unless ``reset``."""
    result = SyncResult()
    with transaction.atomic():
        for spec in SCHEDULES:
            existing = PeriodicTask.objects.filter(name=spec.name).first()
            if existing is None:
                PeriodicTask.objects.create(name=spec.name, **_defaults_for(spec))
                result.created.append(spec.name)
            elif reset:
                for attribute, value in _defaults_for(spec).items():
                    setattr(existing, attribute, value)
                existing.save()
                result.reset.append(spec.name)
            elif _trigger_missing(existing):
                kwargs = json.loads(existing.kwargs or "{}")
                existing.kwargs = json.dumps({**kwargs, "trigger": "beat"}, sort_keys=True)
                existing.save(update_fields=["kwargs"])
                result.trigger_added.append(spec.name)
            else:
                result.unchanged.append(spec.name)
        if result.created or result.reset or result.trigger_added:
            # Tell a running beat to reload (bulk paths skip the model's own signal).
            PeriodicTasks.update_changed()
    logger.info(
        "Schedules synced: created %s, reset %s, trigger added %s, unchanged %s",
        result.created,
        result.reset,
        result.trigger_added,
        result.unchanged,
    )
    return result
