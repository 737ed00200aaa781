"""Celery tasks for the four scheduled operations.

Each task takes plain JSON arguments, calls one service and returns a small summary.
The management commands call these same tasks in-process, or enqueue them.
"""

import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from tasks.locking import OperationAlreadyRunning, operation_lock
from tasks.summaries import already_running_summary

logger = logging.getLogger(__name__)

# Transient faults only: a bug or bad data must fail loudly, not loop.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)

OPERATION_TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 30,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 3,
    "soft_time_limit": 20 * 60,
    "time_limit": 25 * 60,
}


def run_operation(
    *, operation: str, trigger: str, body: Callable[[], dict[str, Any]], locked: bool = True
) -> dict[str, Any]:
    """Run ``body`` under the operation's lock. A second concurrent run returns at once."""
    if not locked:
        return body()
    try:
        with operation_lock(operation):
            return body()
    except OperationAlreadyRunning:
        logger.warning("%s is already running; %s run skipped", operation, trigger)
        return already_running_summary(operation=operation, trigger=trigger)


@shared_task(name="tasks.close_expired_sessions", **OPERATION_TASK_OPTIONS)
def close_expired_sessions(
    self, *, dry_run: bool = False, force: bool = False, trigger: str = "beat"
) -> dict[str, Any]:
    from payments.expiry import expired_sessions_close

    return run_operation(
        operation="close_expired_sessions",
        trigger=trigger,
        locked=not dry_run,
        body=lambda: expired_sessions_close(dry_run=dry_run, force=force, trigger=trigger),
    )


@shared_task(name="tasks.generate_commission_report", **OPERATION_TASK_OPTIONS)
def generate_commission_report(
    self,
    *,
    year: int | None = None,
    month: int | None = None,
    email: str | None = None,
    dry_run: bool = False,
    trigger: str = "beat",
) -> dict[str, Any]:
    from reporting.services import commission_report_generate

    return run_operation(
        operation="generate_commission_report",
        trigger=trigger,
        locked=not dry_run,
        body=lambda: commission_report_generate(
            year=year, month=month, email=email, dry_run=dry_run, trigger=trigger
        ),
    )


@shared_task(name="tasks.verify_audit_trail", **OPERATION_TASK_OPTIONS)
def verify_audit_trail(
    self,
    *,
    start_date: str | None = None,
    end_date: str | None = None,
    full: bool = False,
    alert_on_tampering: bool = False,
    email: str | None = None,
    trigger: str = "beat",
) -> dict[str, Any]:
    from auditing.runs import verification_run_perform

    return run_operation(
        operation="verify_audit_trail",
        trigger=trigger,
        body=lambda: verification_run_perform(
            start_date=start_date,
            end_date=end_date,
            full=full,
            alert_on_tampering=alert_on_tampering,
            email=email,
            trigger=trigger,
        ),
    )


@shared_task(name="tasks.reconciliation_reminder", **OPERATION_TASK_OPTIONS)
def reconciliation_reminder(
    self,
    *,
    days: int = 1,
    dry_run: bool = False,
    email_admins: bool = False,
    trigger: str = "beat",
) -> dict[str, Any]:
    from payments.reminders import reconciliation_reminders_send

    return run_operation(
        operation="reconciliation_reminder",
        trigger=trigger,
        locked=not dry_run,
        body=lambda: reconciliation_reminders_send(
            days=days, dry_run=dry_run, email_admins=email_admins, trigger=trigger
        ),
    )
