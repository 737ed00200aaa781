"""reconciliation_reminder: remind each agent of their closed sessions still waiting for
reconciliation, and with ``email_admins`` send the administrators a summary.

An agent, and the summary, are reminded at most once per local day: a retried run sends
nothing twice. One agent's failure never stops the others; the run then fails as a whole.
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
    ReconciliationBacklog,
    UnreconciledSession,
    admin_summary_sent_on,
    agents_reminded_on,
    reconciliation_backlog,
    reconciliation_window_start,
)
from payments.services import reconciliation_reminder_send, reconciliation_summary_send
from tasks.inputs import InvalidInput
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


def days_parse(value: Any) -> int:
    """The look-back as a whole number of days from 1 to MAX_DAYS (a whole number written
    as text counts too)."""
    if isinstance(value, bool):
        raise InvalidInput(f"--days must be a whole number of days, not {value!r}.")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise InvalidInput(f"--days must be a whole number of days, not {value!r}.") from None
    if not isinstance(value, int):
        raise InvalidInput(f"--days must be a whole number of days, not {value!r}.")
    if not 1 <= value <= MAX_DAYS:
        raise InvalidInput(f"--days must be between 1 and {MAX_DAYS} (got {value}).")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be true or false, not {value!r:.40}.")
    return value


def options_parse(*, days: Any = 1, dry_run: Any = False, email_admins: Any = False) -> Options:
    return Options(
        days=days_parse(days),
        dry_run=_flag("dry_run", dry_run),
        email_admins=_flag("email_admins", email_admins),
    )


class ReminderAction(enum.StrEnum):
    REMINDED = "reminded"
    WOULD_REMIND = "would_remind"
    ALREADY_REMINDED = "already_reminded"
    FAILED = "failed"


class SummaryStatus(enum.StrEnum):
    NOT_REQUESTED = "not_requested"
    NOTHING_TO_SEND = "nothing_to_send"
    ALREADY_SENT = "already_sent"
    NO_RECIPIENTS = "no_recipients"
    WOULD_SEND = "would_send"
    # Once queued, the summary reads as its email fared: queued, sent or failed.
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    ERROR = "error"


@dataclass(frozen=True)
class AgentReminder:
    agent: str
    agent_name: str
    agent_email: str
    session_count: int
    total_expected: Decimal
    total_discrepancy: Decimal | None
    not_counted: int
    sessions: tuple[UnreconciledSession, ...]
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
    agents_reminded: int
    agents_would_remind: int
    agents_skipped_already_reminded: int
    agents_failed: int
    in_app_only: int
    reminders: tuple[AgentReminder, ...]
    admin_summary: AdminSummary
    emails: EmailOutcomes
    operation: str = NAME
    message: str | None = omitted_when_none()


def reconciliation_reminder(*, options: Options, trigger: Trigger) -> Result:
    trigger = Trigger(trigger)
    currency = SystemConfiguration.load().currency_code
    now = timezone.now()
    today = timezone.localdate(now)
    backlog = reconciliation_backlog(
        since=reconciliation_window_start(today=today, days=options.days)
    )
    reminded_today = agents_reminded_on(day=today)

    outcomes: list[tuple[AgentBacklog, ReminderAction, int | None, str | None]] = []
    for agent in backlog.agents:
        if agent.agent_id in reminded_today:
            outcome = (ReminderAction.ALREADY_REMINDED, None, None)
        elif options.dry_run:
            outcome = (ReminderAction.WOULD_REMIND, None, None)
        else:
            outcome = _remind(
                agent=agent, day=today, options=options, currency=currency, trigger=trigger
            )
        outcomes.append((agent, *outcome))
    summary, summary_email_id = _admin_summary(
        backlog=backlog, day=today, options=options, currency=currency, trigger=trigger
    )

    # After the work: each message was handed to the mail server as its transaction committed.
    email_ids = [email_id for *_, email_id, _ in outcomes if email_id]
    email_ids += [summary_email_id] if summary_email_id else []
    statuses = email_statuses(email_ids)
    if summary_email_id:
        summary = AdminSummary(SummaryStatus(statuses[summary_email_id]), summary.recipients)
    reminders = tuple(
        AgentReminder(
            agent=agent.agent_code,
            agent_name=agent.agent_name,
            agent_email=agent.agent_email,
            session_count=agent.session_count,
            total_expected=agent.total_expected,
            total_discrepancy=agent.total_discrepancy,
            not_counted=agent.not_counted,
            sessions=agent.sessions,
            action=action,
            email=statuses.get(email_id) if email_id else None,
            error=error,
        )
        for agent, action, email_id, error in outcomes
    )
    counts = {action: sum(1 for r in reminders if r.action == action) for action in ReminderAction}
    failed = counts[ReminderAction.FAILED] + (summary.status == SummaryStatus.ERROR)
    logger.info(
        "reconciliation_reminder (%s%s): %s session(s), reminded %s, already reminded %s, "
        "failed %s, admin summary %s",
        trigger,
        ", dry run" if options.dry_run else "",
        backlog.session_count,
        counts[ReminderAction.REMINDED],
        counts[ReminderAction.ALREADY_REMINDED],
        counts[ReminderAction.FAILED],
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
        since=backlog.since,
        currency=currency,
        sessions=backlog.session_count,
        agents=backlog.agent_count,
        total_expected=backlog.total_expected,
        total_discrepancy=backlog.total_discrepancy,
        not_counted=backlog.not_counted,
        agents_reminded=counts[ReminderAction.REMINDED],
        agents_would_remind=counts[ReminderAction.WOULD_REMIND],
        agents_skipped_already_reminded=counts[ReminderAction.ALREADY_REMINDED],
        agents_failed=counts[ReminderAction.FAILED],
        in_app_only=sum(
            1
            for r in reminders
            if r.action in (ReminderAction.REMINDED, ReminderAction.WOULD_REMIND)
            and not r.agent_email
        ),
        reminders=reminders,
        admin_summary=summary,
        emails=email_outcomes(email_ids),
        message=f"{failed} reminder(s) could not be sent; see the output." if failed else None,
    )


def _remind(
    *, agent: AgentBacklog, day: dt.date, options: Options, currency: str, trigger: Trigger
) -> tuple[ReminderAction, int | None, str | None]:
    """(action, email id, error) for one agent."""
    try:
        notice = reconciliation_reminder_send(
            backlog=agent, day=day, days=options.days, currency=currency, trigger=trigger.value
        )
    except Exception as error:  # noqa: BLE001 - one agent's failure must not stop the others
        if item_failure_stops_the_run(error):
            raise
        logger.exception("Reconciliation reminder to agent %s failed", agent.agent_code)
        return ReminderAction.FAILED, None, f"{type(error).__name__}: {error}"
    if notice is None:
        return ReminderAction.ALREADY_REMINDED, None, None
    return ReminderAction.REMINDED, notice.email_id, None


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
