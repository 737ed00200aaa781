"""reconciliation_reminder's text output: each agent with their unreconciled sessions
(how long each has waited, whether it is older than the look-back) and totals, the new
and the older totals, then what was sent to the agents and to the administrators."""

from decimal import Decimal

from django.core.management.base import OutputWrapper
from django.core.management.color import Style
from django.utils import timezone

from payments.money import format_money
from payments.selectors import BacklogTotals
from tasks.operations.reconciliation_reminder import (
    AgentReminder,
    ReminderAction,
    Result,
    SessionOutcome,
    SummaryStatus,
)
from tasks.rendering.emails import email_outcomes_text
from tasks.results import OperationStatus

ALREADY_TODAY = "already reminded today"


def reminders_render(result: Result, *, out: OutputWrapper, style: Style) -> None:
    if result.dry_run:
        out.write(style.WARNING("Dry run: nothing will be sent or written."))
    if not result.reminders:
        out.write(
            style.SUCCESS(
                f"No unreconciled sessions closed in the last {result.days} day(s), and none older."
            )
        )
        return
    out.write(
        f"Unreconciled sessions closed since {_local(result.since)} "
        f"(last {result.days} day(s)): {_plural(result.sessions, 'session')}, "
        f"{_plural(result.agents, 'agent')}; older, still unreconciled: "
        f"{_plural(result.older.session_count, 'session')}"
    )
    for reminder in result.reminders:
        _reminder_render(reminder, currency=result.currency, out=out, style=style)
    new = BacklogTotals(
        session_count=result.sessions,
        total_expected=result.total_expected,
        total_discrepancy=result.total_discrepancy,
        not_counted=result.not_counted,
    )
    out.write(
        f"New (last {result.days} day(s)): {_plural(result.sessions, 'session')}, "
        f"{_plural(result.agents, 'agent')}; {_totals(new, result.currency)}"
    )
    if result.older.session_count:
        out.write(
            f"Older, still unreconciled: {_plural(result.older.session_count, 'session')}; "
            f"{_totals(result.older, result.currency)}"
        )
    line = _agents_line(result) + "; " + _admin_line(result)
    out.write((style.ERROR if result.status == OperationStatus.FAILED else style.SUCCESS)(line))


def _reminder_render(
    reminder: AgentReminder, *, currency: str, out: OutputWrapper, style: Style
) -> None:
    count = _plural(reminder.sessions_reminded, "session")
    if reminder.action == ReminderAction.REMINDED:
        by = f"email {reminder.email}" if reminder.email else "in-app only"
        action = f"reminded of {count}, {by}"
    elif reminder.action == ReminderAction.WOULD_REMIND:
        by = "by email" if reminder.agent_email else "in-app only (no email address)"
        action = f"would remind of {count} {by}"
    elif reminder.action == ReminderAction.FAILED:
        action = f"FAILED: {reminder.error}"
    else:
        action = ALREADY_TODAY
    style_for = {
        ReminderAction.FAILED: style.ERROR,
        ReminderAction.ALREADY_REMINDED: style.WARNING,
    }.get(reminder.action, str)
    out.write(style_for(f"{reminder.agent} {reminder.agent_name}  -> {action}"))
    for row in reminder.sessions:
        out.write(_session_line(row, agent_action=reminder.action, currency=currency))
    out.write(
        f"  Total expected: {format_money(reminder.total_expected, currency=currency)}; "
        "total discrepancy: "
        + _discrepancy(reminder.total_discrepancy, reminder.not_counted, currency)
    )


def _session_line(row: SessionOutcome, *, agent_action: ReminderAction, currency: str) -> str:
    waited = f"waiting {_plural(row.days_waiting, 'day')}" + (", older" if row.older else "")
    discrepancy = (
        "not counted"
        if row.discrepancy is None
        else format_money(row.discrepancy, currency=currency)
    )
    line = (
        f"  {row.number}  closed {_local(row.closed_at)} ({waited})  "
        f"expected {format_money(row.expected_balance, currency=currency)}  "
        f"discrepancy {discrepancy}"
    )
    # Said per session only where it differs from the agent's line.
    if row.action == ReminderAction.ALREADY_REMINDED and agent_action != row.action:
        line += f"  ({ALREADY_TODAY})"
    return line


def _agents_line(result: Result) -> str:
    already = f"{_plural(result.sessions_already_reminded, 'session')} {ALREADY_TODAY}"
    if result.dry_run:
        by_email = sum(
            1 for r in result.reminders if r.action == ReminderAction.WOULD_REMIND and r.agent_email
        )
        return (
            f"Would remind {_plural(result.agents_would_remind, 'agent')} of "
            f"{_plural(result.sessions_would_remind, 'session')} "
            f"({by_email} by email, {result.in_app_only} in-app only), {already}"
        )
    failed = (
        f", {_plural(result.agents_failed, 'agent')} FAILED "
        f"({_plural(result.sessions_failed, 'session')} not reminded)"
        if result.agents_failed
        else ""
    )
    return (
        f"Reminded {_plural(result.agents_reminded, 'agent')} of "
        f"{_plural(result.sessions_reminded, 'session')} "
        f"({_plural(result.in_app_only, 'agent')} in-app only), {already}{failed}; "
        f"emails: {email_outcomes_text(result.emails)}"
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
        SummaryStatus.QUEUED: f"admin summary queued for {who}",
        SummaryStatus.SENDING: f"admin summary being sent to {who}",
        SummaryStatus.SENT: f"admin summary sent to {who}",
        # Whether it is retried is the outbox's to say: see the emails' counts.
        SummaryStatus.FAILED: f"admin summary to {who} failed",
        SummaryStatus.ERROR: f"admin summary FAILED: {summary.error or ''}",
    }[summary.status]
    return line + (". Nothing was sent or written." if result.dry_run else "")


def _totals(totals: BacklogTotals, currency: str) -> str:
    if not totals.session_count:
        return "nothing to reconcile"
    expected = format_money(totals.total_expected, currency=currency)
    discrepancy = _discrepancy(totals.total_discrepancy, totals.not_counted, currency)
    return f"total expected {expected}; total discrepancy {discrepancy}"


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
