"""reconciliation_reminder: remind each agent of their closed sessions still waiting for
reconciliation, and with ``email_admins`` send the administrators a summary.

Every closed session is reminded once per local day until it is reconciled, whatever its
age: ``days`` only says which ones are new (closed in the last ``days`` days) and which
are older (the backlog). A session already reminded today is not reminded again, so a
retried or concurrent run sends nothing twice, and a session closed after this morning's
run is reminded by the next run, the same day. The summary goes out once per local day.
One agent's failure never stops the others; the run then fails as a whole.
"""

import datetime as dt
import enum
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils import timezone

from mailing.selectors import (
    EmailOutcomes,
    email_outcomes,
    email_statuses,
    staff_email_addresses,
)
from payments.models import SystemConfiguration
from payments.selectors import (
    AgentBacklog,
    BacklogTotals,
    ReconciliationBacklog,
    UnreconciledSession,
    admin_summary_sent_on,
    reconciliation_backlog,
    reconciliation_window_start,
)
from payments.services import reconciliation_reminder_send, reconciliation_summary_send
from tasks.inputs import InvalidInput, flag_option, no_unknown_arguments, quoted
from tasks.results import OperationStatus, Trigger, omitted_when_none
from tasks.runner import Operation, item_failure_stops_the_run

logger = logging.getLogger(__name__)

NAME = "reconciliation_reminder"
MAX_DAYS = 366


@dataclass(frozen=True)
class Options:
    days: int = 1
    dry_run: bool = False
    email_admins: bool = False


def _not_whole_days(value: Any) -> InvalidInput:
    return InvalidInput(f"--days must be a whole number of days, not {quoted(value)}.")


def days_parse(value: Any) -> int:
    """The look-back as a whole number of days from 1 to MAX_DAYS. A task takes a JSON
    integer only; the command turns its text into one first (days_from_command_line)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _not_whole_days(value)
    if not 1 <= value <= MAX_DAYS:
        raise InvalidInput(f"--days must be between 1 and {MAX_DAYS} (got {quoted(value)}).")
    return value


def days_from_command_line(text: str) -> int:
    """--days as typed on the command line: a whole number, spaces around it allowed."""
    try:
        return int(text.strip())
    except ValueError:
        raise _not_whole_days(text) from None


def options_parse(
    *, days: Any = 1, dry_run: Any = False, email_admins: Any = False, **unknown: Any
) -> Options:
    no_unknown_arguments(
        unknown, operation=NAME, known=("days", "dry_run", "email_admins", "trigger")
    )
    return Options(
        days=days_parse(days),
        dry_run=flag_option(dry_run, option="dry_run"),
        email_admins=flag_option(email_admins, option="email_admins"),
    )


class ReminderAction(enum.StrEnum):
    """What this run did for an agent, or for one of their sessions."""

    REMINDED = "reminded"
    WOULD_REMIND = "would_remind"
    ALREADY_REMINDED = "already_reminded"  # today, by an earlier (or concurrent) run
    FAILED = "failed"


class SummaryStatus(enum.StrEnum):
    NOT_REQUESTED = "not_requested"
    NOTHING_TO_SEND = "nothing_to_send"
    ALREADY_SENT = "already_sent"
    NO_RECIPIENTS = "no_recipients"
    WOULD_SEND = "would_send"
    # Once queued, the summary reads as its email fared when the run ended.
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    ERROR = "error"


SUMMARY_EMAIL_STATUS = {
    "queued": SummaryStatus.QUEUED,
    "sending": SummaryStatus.SENDING,
    "sent": SummaryStatus.SENT,
    "failed": SummaryStatus.FAILED,
}


@dataclass(frozen=True)
class SessionOutcome:
    """One unreconciled session, and what this run did about it."""

    number: str
    closed_at: dt.datetime
    auto_closed: bool
    expected_balance: Decimal | None
    discrepancy: Decimal | None  # None: nobody counted the cash
    days_waiting: int  # whole local days since it was closed
    older: bool  # closed before the look-back window
    action: ReminderAction


@dataclass(frozen=True)
class AgentReminder:
    """One agent: every unreconciled session of theirs with its totals, and how many of
    them this run reminded them of (or would)."""

    agent: str
    agent_name: str
    agent_email: str
    session_count: int
    total_expected: Decimal
    total_discrepancy: Decimal | None
    not_counted: int
    sessions_reminded: int
    sessions: tuple[SessionOutcome, ...]
    action: ReminderAction
    email: str | None  # how the reminder's email fared; None without one
    error: str | None = omitted_when_none()


@dataclass(frozen=True)
class AdminSummary:
    status: SummaryStatus
    recipients: tuple[str, ...] = ()
    error: str | None = omitted_when_none()


@dataclass(frozen=True)
class Result:
    """``sessions``, ``agents`` and the totals beside them are the window's (the new
    sessions, closed in the last ``days`` days); ``older`` totals the backlog before it.
    Both are reminded."""

    trigger: Trigger
    status: OperationStatus
    dry_run: bool
    email_admins: bool
    ran_at: dt.datetime
    day: dt.date
    days: int
    since: dt.datetime
    currency: str
    sessions: int
    agents: int
    total_expected: Decimal
    total_discrepancy: Decimal | None
    not_counted: int
    older: BacklogTotals
    agents_reminded: int
    agents_would_remind: int
    agents_skipped_already_reminded: int
    agents_failed: int
    in_app_only: int
    sessions_reminded: int
    sessions_would_remind: int
    sessions_already_reminded: int
    sessions_failed: int
    reminders: tuple[AgentReminder, ...]
    admin_summary: AdminSummary
    emails: EmailOutcomes
    operation: str = NAME
    message: str | None = omitted_when_none()


@dataclass(frozen=True)
class _Outcome:
    """One agent's outcome inside the run: the numbers of the sessions reminded now."""

    action: ReminderAction
    reminded: frozenset[str] = frozenset()
    email_id: int | None = None
    error: str | None = None


def reconciliation_reminder(*, options: Options, trigger: Trigger) -> Result:
    trigger = Trigger(trigger)
    currency = SystemConfiguration.load().currency_code
    now = timezone.now()
    today = timezone.localdate(now)
    since = reconciliation_window_start(today=today, days=options.days)
    backlog = reconciliation_backlog(since=since, day=today)

    outcomes: list[tuple[AgentBacklog, _Outcome]] = []
    for agent in backlog.agents:
        due = agent.due
        if not due:
            outcome = _Outcome(ReminderAction.ALREADY_REMINDED)
        elif options.dry_run:
            outcome = _Outcome(
                ReminderAction.WOULD_REMIND, reminded=frozenset(row.number for row in due)
            )
        else:
            outcome = _remind(
                agent=agent, due=due, since=since, day=today, currency=currency, trigger=trigger
            )
        outcomes.append((agent, outcome))
    summary, summary_email_id = _admin_summary(
        backlog=backlog, day=today, options=options, currency=currency, trigger=trigger
    )

    # After the work: each message was handed to the outbox as its transaction committed.
    email_ids = [outcome.email_id for _, outcome in outcomes if outcome.email_id]
    email_ids += [summary_email_id] if summary_email_id else []
    statuses = email_statuses(email_ids)
    if summary_email_id:
        summary = AdminSummary(
            SUMMARY_EMAIL_STATUS.get(statuses.get(summary_email_id, ""), SummaryStatus.QUEUED),
            summary.recipients,
        )
    reminders = tuple(
        _agent_reminder(agent, outcome, email=statuses.get(outcome.email_id))
        for agent, outcome in outcomes
    )
    agents = {action: sum(1 for r in reminders if r.action == action) for action in ReminderAction}
    sessions = {
        action: sum(1 for r in reminders for row in r.sessions if row.action == action)
        for action in ReminderAction
    }
    failed = agents[ReminderAction.FAILED] + (summary.status == SummaryStatus.ERROR)
    logger.info(
        "reconciliation_reminder (%s%s): %s new and %s older session(s), reminded %s "
        "session(s) to %s agent(s), %s already reminded today, %s agent(s) failed, "
        "admin summary %s",
        trigger,
        ", dry run" if options.dry_run else "",
        backlog.new.session_count,
        backlog.older.session_count,
        sessions[ReminderAction.REMINDED],
        agents[ReminderAction.REMINDED],
        sessions[ReminderAction.ALREADY_REMINDED],
        agents[ReminderAction.FAILED],
        summary.status,
    )
    return Result(
        trigger=trigger,
        status=OperationStatus.FAILED if failed else OperationStatus.OK,
        dry_run=options.dry_run,
        email_admins=options.email_admins,
        ran_at=now,
        day=today,
        days=options.days,
        since=since,
        currency=currency,
        sessions=backlog.new.session_count,
        agents=backlog.new_agent_count,
        total_expected=backlog.new.total_expected,
        total_discrepancy=backlog.new.total_discrepancy,
        not_counted=backlog.new.not_counted,
        older=backlog.older,
        agents_reminded=agents[ReminderAction.REMINDED],
        agents_would_remind=agents[ReminderAction.WOULD_REMIND],
        agents_skipped_already_reminded=agents[ReminderAction.ALREADY_REMINDED],
        agents_failed=agents[ReminderAction.FAILED],
        in_app_only=sum(
            1
            for r in reminders
            if r.action in (ReminderAction.REMINDED, ReminderAction.WOULD_REMIND)
            and (not r.agent_email or (r.action == ReminderAction.REMINDED and r.email is None))
        ),
        sessions_reminded=sessions[ReminderAction.REMINDED],
        sessions_would_remind=sessions[ReminderAction.WOULD_REMIND],
        sessions_already_reminded=sessions[ReminderAction.ALREADY_REMINDED],
        sessions_failed=sessions[ReminderAction.FAILED],
        reminders=reminders,
        admin_summary=summary,
        emails=email_outcomes(email_ids),
        message=f"{failed} reminder(s) could not be sent; see the output." if failed else None,
    )


def _agent_reminder(agent: AgentBacklog, outcome: _Outcome, *, email: str | None) -> AgentReminder:
    def session_action(row: UnreconciledSession) -> ReminderAction:
        if row.number in outcome.reminded:
            return outcome.action
        if outcome.action == ReminderAction.FAILED and not row.reminded_today:
            return ReminderAction.FAILED
        # Reminded today before this run, or by a concurrent run meanwhile.
        return ReminderAction.ALREADY_REMINDED

    return AgentReminder(
        agent=agent.agent_code,
        agent_name=agent.agent_name,
        agent_email=agent.agent_email,
        session_count=agent.session_count,
        total_expected=agent.total_expected,
        total_discrepancy=agent.total_discrepancy,
        not_counted=agent.not_counted,
        sessions_reminded=len(outcome.reminded),
        sessions=tuple(
            SessionOutcome(
                number=row.number,
                closed_at=row.closed_at,
                auto_closed=row.auto_closed,
                expected_balance=row.expected_balance,
                discrepancy=row.discrepancy,
                days_waiting=row.days_waiting,
                older=row.older,
                action=session_action(row),
            )
            for row in agent.sessions
        ),
        action=outcome.action,
        email=email,
        error=outcome.error,
    )


def _remind(
    *,
    agent: AgentBacklog,
    due: tuple[UnreconciledSession, ...],
    since: dt.datetime,
    day: dt.date,
    currency: str,
    trigger: Trigger,
) -> _Outcome:
    try:
        sent = reconciliation_reminder_send(
            agent_id=agent.agent_id,
            session_ids=[row.pk for row in due],
            since=since,
            day=day,
            currency=currency,
            trigger=trigger.value,
        )
    except Exception as error:  # noqa: BLE001 - one agent's failure must not stop the others
        if item_failure_stops_the_run(error):
            raise
        logger.exception("Reconciliation reminder to agent %s failed", agent.agent_code)
        return _Outcome(ReminderAction.FAILED, error=f"{type(error).__name__}: {error}")
    if sent is None:
        return _Outcome(ReminderAction.ALREADY_REMINDED)
    return _Outcome(
        ReminderAction.REMINDED,
        reminded=frozenset(row.number for row in sent.reminded.sessions),
        email_id=sent.notice.email_id,
    )


def _admin_summary(
    *,
    backlog: ReconciliationBacklog,
    day: dt.date,
    options: Options,
    currency: str,
    trigger: Trigger,
) -> tuple[AdminSummary, int | None]:
    """The administrators' summary, and the id of its email when this run queued it."""
    if not options.email_admins:
        return AdminSummary(SummaryStatus.NOT_REQUESTED), None
    if not backlog.agents:
        return AdminSummary(SummaryStatus.NOTHING_TO_SEND), None
    recipients = staff_email_addresses()
    if admin_summary_sent_on(day=day):
        return AdminSummary(SummaryStatus.ALREADY_SENT, tuple(recipients)), None
    if not recipients:
        return AdminSummary(SummaryStatus.NO_RECIPIENTS), None
    if options.dry_run:
        return AdminSummary(SummaryStatus.WOULD_SEND, tuple(recipients)), None
    try:
        email = reconciliation_summary_send(
            backlog=backlog,
            day=day,
            days=options.days,
            recipients=recipients,
            currency=currency,
            trigger=trigger.value,
        )
    except Exception as error:  # noqa: BLE001 - the agents' reminders already went out
        if item_failure_stops_the_run(error):
            raise
        logger.exception("Reconciliation summary to administrators failed")
        return (
            AdminSummary(
                SummaryStatus.ERROR, tuple(recipients), f"{type(error).__name__}: {error}"
            ),
            None,
        )
    if email is None:
        return AdminSummary(SummaryStatus.ALREADY_SENT, tuple(recipients)), None
    return AdminSummary(SummaryStatus.QUEUED, tuple(recipients)), email.pk


OPERATION = Operation(
    name=NAME,
    parse=options_parse,
    run=reconciliation_reminder,
    takes_lock=lambda options: not options.dry_run,
)
