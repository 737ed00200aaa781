"""Celery tasks for the four scheduled operations.

Each task takes plain JSON arguments and hands them to its operation (tasks/operations/),
which checks them, runs under the operation's lock and returns a typed result; the task
returns that result as JSON. The management commands run the same operations in-process,
or enqueue these tasks. Beat's schedules pass trigger="beat"; the schedules' admin passes
trigger="admin" and requested_by (the username); a task sent without one is recorded as
"task".
"""

from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.urls import reverse

from tasks.operations import audit_checkpoint as audit_checkpoint_operation
from tasks.operations import (
    close_expired_sessions as close_expired_sessions_operation,
)
from tasks.operations import (
    generate_commission_report as generate_commission_report_operation,
)
from tasks.operations import reconciliation_reminder as reconciliation_reminder_operation
from tasks.operations import verify_audit_trail as verify_audit_trail_operation
from tasks.results import OperationStatus
from tasks.runner import operation_task_body

# Transient faults only: a bug or bad data must fail loudly, not loop.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)

OPERATION_TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "autoretry_for": TRANSIENT_ERRORS,
    # 30 s, 1, 2, 4 min, then every 5 min: about half an hour of database outage is
    # ridden out before the run gives up (and every operation resumes where it stopped).
    "retry_backoff": 30,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
    "soft_time_limit": 20 * 60,
    "time_limit": 25 * 60,
}


@shared_task(name="tasks.close_expired_sessions", **OPERATION_TASK_OPTIONS)
def close_expired_sessions(
    self,
    *,
    dry_run: bool = False,
    force: bool = False,
    trigger: str = "task",
    requested_by: str | None = None,
    **unknown: Any,
) -> dict[str, Any]:
    return operation_task_body(
        close_expired_sessions_operation.OPERATION,
        task_id=self.request.id,
        trigger=trigger,
        requested_by=requested_by,
        dry_run=dry_run,
        force=force,
        **unknown,  # refused by the operation's options_parse in one sentence
    )


@shared_task(name="tasks.generate_commission_report", **OPERATION_TASK_OPTIONS)
def generate_commission_report(
    self,
    *,
    year: int | None = None,
    month: int | None = None,
    email: str | None = None,
    dry_run: bool = False,
    resend: bool = False,
    trigger: str = "task",
    requested_by: str | None = None,
    **unknown: Any,
) -> dict[str, Any]:
    return operation_task_body(
        generate_commission_report_operation.OPERATION,
        task_id=self.request.id,
        trigger=trigger,
        requested_by=requested_by,
        year=year,
        month=month,
        email=email,
        dry_run=dry_run,
        resend=resend,
        **unknown,  # refused by the operation's options_parse in one sentence
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
    trigger: str = "task",
    requested_by: str | None = None,
    **unknown: Any,
) -> dict[str, Any]:
    return _failing_on_tampering(
        operation_task_body(
            verify_audit_trail_operation.OPERATION,
            task_id=self.request.id,
            trigger=trigger,
            requested_by=requested_by,
            start_date=start_date,
            end_date=end_date,
            full=full,
            alert_on_tampering=alert_on_tampering,
            email=email,
            **unknown,  # refused by the operation's options_parse in one sentence
        )
    )


@shared_task(name="tasks.audit_checkpoint", **OPERATION_TASK_OPTIONS)
def audit_checkpoint(
    self,
    *,
    alert_on_tampering: bool = False,
    trigger: str = "task",
    requested_by: str | None = None,
    **unknown: Any,
) -> dict[str, Any]:
    return _failing_on_tampering(
        operation_task_body(
            audit_checkpoint_operation.OPERATION,
            task_id=self.request.id,
            trigger=trigger,
            requested_by=requested_by,
            alert_on_tampering=alert_on_tampering,
            **unknown,
        )
    )


class AuditTrailTampered(Exception):
    """Raised by a verification task that found tampering, so that Flower and Celery's
    results show the run red (FAILURE) instead of a green SUCCESS. The run is stored; the
    message links to it."""


def _failing_on_tampering(result: dict[str, Any]) -> dict[str, Any]:
    if result.get("status") != OperationStatus.TAMPERING:
        return result
    link = settings.SITE_URL + reverse(
        "admin:auditing_verificationrun_change", args=[result["run_id"]]
    )
    raise AuditTrailTampered(f"{result['message']} Verification run #{result['run_id']}: {link}")


@shared_task(name="tasks.reconciliation_reminder", **OPERATION_TASK_OPTIONS)
def reconciliation_reminder(
    self,
    *,
    days: int = 1,
    dry_run: bool = False,
    email_admins: bool = False,
    trigger: str = "task",
    requested_by: str | None = None,
    **unknown: Any,
) -> dict[str, Any]:
    return operation_task_body(
        reconciliation_reminder_operation.OPERATION,
        task_id=self.request.id,
        trigger=trigger,
        requested_by=requested_by,
        days=days,
        dry_run=dry_run,
        email_admins=email_admins,
        **unknown,  # refused by the operation's options_parse in one sentence
    )
