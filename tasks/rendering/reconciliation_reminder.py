"""reconciliation_reminder's text output: each agent with their sessions and totals, the
overall totals, then what was sent to the agents and to the administrators."""

from decimal import Decimal

from django.core.management.base import OutputWrapper
from django.core.management.color import Style
from django.utils import timezone

from payments.money import format_money
from tasks.operations.reconciliation_reminder import (
    AgentReminder,
    ReminderAction,
    Result,
    SummaryStatus,
)
from tasks.results import OperationStatus

ACTION_LABELS = {
    ReminderAction.REMINDED: "reminded",
    ReminderAction.WOULD_REMIND: "would remind",
    ReminderAction.ALREADY_REMINDED: "already reminded today",
    ReminderAction.FAILED: "FAILED",
}
EMAIL_NOTES = {
    "sent": ", email sent",
    "failed": ", email failed (will be retried)",
    "queued": ", email queued",
}


def reminders_render(result: Result, *, out: OutputWrapper, style: Style) -> None:
    if result.dry_run:
        out.write(style.WARNING("Dry run: nothing will be sent or written."))
    if not result.sessions:
        out.write(
            style.SUCCESS(f"No unreconciled sessions closed in the last {result.days} day(s).")
        )
        return
    counts = f"{_plural(result.sessions, 'session')}, {_plural(result.agents, 'agent')}"
    out.write(
        f"Unreconciled sessions closed since {_local(result.since)} "
        f"(last {result.days} day(s)): {counts}"
    )
    for reminder in result.reminders:
        _reminder_render(reminder, currency=result.currency, out=out, style=style)
    expected = format_money(result.total_expected, currency=result.currency)
    discrepancy = _discrepancy(result.total_discrepancy, result.not_counted, result.currency)
    out.write(f"Overall: {counts}; total expected {expected}; total discrepancy {discrepancy}")
    line = _agents_line(result) + "; " + _admin_line(result)
    out.write((style.ERROR if result.status == OperationStatus.FAILED else style.SUCCESS)(line))


def _reminder_render(
    reminder: AgentReminder, *, currency: str, out: OutputWrapper, style: Style
) -> None:
    action = ACTION_LABELS[reminder.action]
    if reminder.action == ReminderAction.REMINDED:
        action += (
            EMAIL_NOTES.get(reminder.email or "", ", in-app only")
            if reminder.agent_email
            else ", in-app only"
        )
    elif reminder.action == ReminderAction.WOULD_REMIND:
        action += " by email" if reminder.agent_email else ", in-app only (no email address)"
    elif reminder.action == ReminderAction.FAILED:
        action += f": {reminder.error}"
    style_for = {"failed": style.ERROR, "already_reminded": style.WARNING}.get(reminder.action, str)
    out.write(style_for(f"{reminder.agent} {reminder.agent_name}  -> {action}"))
    for row in reminder.sessions:
        discrepancy = (
            "not counted"
            if row.discrepancy is None
            else format_money(row.discrepancy, currency=currency)
        )
        out.write(
            f"  {row.number}  closed {_local(row.closed_at)}  "
            f"expected {format_money(row.expected_balance, currency=currency)}  "
            f"discrepancy {discrepancy}"
        )
    out.write(
        f"  Total expected: {format_money(reminder.total_expected, currency=currency)}; "
        "total discrepancy: "
        + _discrepancy(reminder.total_discrepancy, reminder.not_counted, currency)
    )


def _agents_line(result: Result) -> str:
    skipped = f"{result.agents_skipped_already_reminded} already reminded today"
    failed = f", {result.agents_failed} failed" if result.agents_failed else ""
    if result.dry_run:
        by_email = sum(
            1 for r in result.reminders if r.action == ReminderAction.WOULD_REMIND and r.agent_email
        )
        return (
            f"Would remind {_plural(result.agents_would_remind, 'agent')} "
            f"({by_email} by email, {result.in_app_only} in-app only), {skipped}"
        )
    reminded = [r for r in result.reminders if r.action == ReminderAction.REMINDED]
    emails = {
        status: sum(1 for r in reminded if r.email == status)
        for status in ("sent", "failed", "queued")
    }
    parts = [f"{_plural(emails['sent'], 'email')} sent"]
    if emails["failed"]:
        parts.append(f"{emails['failed']} failed, will be retried")
    if emails["queued"]:
        parts.append(f"{emails['queued']} queued")
    parts.append(f"{result.in_app_only} in-app only")
    return (
        f"Reminded {_plural(result.agents_reminded, 'agent')} ({', '.join(parts)}), "
        f"{skipped}{failed}"
    )


def _admin_line(result: Result) -> str:
    summary = result.admin_summary
    who = _plural(len(summary.recipients), "administrator")
    line = {
        SummaryStatus.NOT_REQUESTED: "no admin summary (use --email-admins)",
        SummaryStatus.NOTHING_TO_SEND: "no admin summary: nothing to reconcile",
        SummaryStatus.NO_RECIPIENTS: (
            "admin summary NOT sent: no administrator has an email address"
        ),
        SummaryStatus.ALREADY_SENT: "admin summary already sent today",
        SummaryStatus.WOULD_SEND: f"admin summary would go to {who}",
        SummaryStatus.SENT: f"admin summary sent to {who}",
        SummaryStatus.QUEUED: f"admin summary queued for {who}",
        SummaryStatus.FAILED: f"admin summary to {who} failed, will be retried",
        SummaryStatus.ERROR: f"admin summary FAILED: {summary.error or ''}",
    }[summary.status]
    return line + (". Nothing was sent or written." if result.dry_run else "")


def _discrepancy(amount: Decimal | None, not_counted: int, currency: str) -> str:
    """A total discrepancy, with how many sessions nobody counted."""
    text = "not counted" if amount is None else format_money(amount, currency=currency)
    if not not_counted:
        return text
    return f"{text} ({_plural(not_counted, 'session')} not counted)"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _local(moment) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}"
