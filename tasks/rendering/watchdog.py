"""The watchdog command's text output: each check on one line, the jobs under it, then
what this run did (catch-ups, alerts opened and closed)."""

from django.core.management.base import OutputWrapper
from django.core.management.color import Style
from django.utils import timezone

from tasks.health.selectors import CheckStatus, JobState, JobStatus
from tasks.watchdog import WatchdogReport


def watchdog_render(report: WatchdogReport, *, out: OutputWrapper, style: Style) -> None:
    snapshot = report.snapshot
    out.write(f"Health at {_when(snapshot.now)}")
    for name, check in snapshot.checks().items():
        paint = {CheckStatus.OK: style.SUCCESS, CheckStatus.FAIL: style.ERROR}.get(
            check.status, style.WARNING
        )
        out.write(f"  {name:<9} {paint(check.status.value.upper()):<7} {check.detail}")
        if name == "jobs" and snapshot.jobs is not None:
            for job in snapshot.jobs:
                line = _job_line(job)
                out.write(style.ERROR(line) if job.failing else line)
    if not report.acted:
        out.write(style.WARNING("Another watchdog run is acting now; this one only looked."))
        return
    for catch_up in report.caught_up:
        if catch_up.error:
            out.write(
                style.ERROR(
                    f"Could not catch up {catch_up.name} (due {_when(catch_up.due_at)}): "
                    f"{catch_up.error}; the next watchdog run tries again."
                )
            )
        else:
            out.write(
                f"Caught up {catch_up.name} (due {_when(catch_up.due_at)}): "
                f"sent once as task {catch_up.task_id}."
            )
    for change in report.opened:
        out.write(style.ERROR(f"Alert opened: {change.kind} {change.subject}{_email(change)}"))
    for change in report.resolved:
        out.write(style.SUCCESS(f"Alert resolved: {change.kind} {change.subject}{_email(change)}"))


def _job_line(job: JobStatus) -> str:
    details = []
    if job.due_at:
        details.append(f"due {_when(job.due_at)}")
    if job.state == JobState.OVERDUE:
        details.append(f"overdue since {_when(job.overdue_at)}")
    details.append(
        f"last success {_when(job.last_success_at)}" if job.last_success_at else "no success yet"
    )
    if job.last_status and job.last_status != "ok":
        details.append(f"last run {job.last_status}")
    return f"    {job.name:<28} {job.state.value:<9} {', '.join(details)}"


def _email(change) -> str:
    return f" (email #{change.email_id})" if change.email_id else " (no administrator email)"


def _when(value) -> str:
    return f"{timezone.localtime(value):%Y-%m-%d %H:%M}" if value else "-"
