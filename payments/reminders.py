"""Daily reminders about closed sessions still waiting for reconciliation
(reconciliation_reminder): one per agent, and an optional summary for the administrators.

A reminder row per agent (and one for the summary) per local day, written in the same
transaction as the notification and its audit entry, makes a retried run send nothing twice.
"""

import datetime as dt
import logging
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import gettext, gettext_lazy, ngettext

from auditing.services import audit_entry_append
from mailing.models import EmailMessage
from mailing.selectors import email_outcomes, staff_email_addresses
from mailing.services import email_queue
from payments.models import (
    Agent,
    CashSession,
    NotificationKind,
    ReconciliationReminder,
    ReminderKind,
    SessionStatus,
    SystemConfiguration,
)
from payments.money import format_money_lazy
from payments.notifications import agent_notify

logger = logging.getLogger(__name__)

MAX_DAYS = 366
ZERO = Decimal("0.00")
ACTION_REQUIRED = gettext_lazy("Action required: reconcile these sessions in the admin.")


class InvalidDays(ValueError):
    pass


def reminder_days_validate(value: Any) -> int:
    """The look-back as a whole number of days from 1 to MAX_DAYS, or InvalidDays."""
    if isinstance(value, bool):
        raise InvalidDays(f"--days must be a whole number of days, not {value!r}.")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise InvalidDays(f"--days must be a whole number of days, not {value!r}.") from None
    if not isinstance(value, int):
        raise InvalidDays(f"--days must be a whole number of days, not {value!r}.")
    if not 1 <= value <= MAX_DAYS:
        raise InvalidDays(f"--days must be between 1 and {MAX_DAYS} (got {value}).")
    return value


def window_start(*, today: dt.date, days: int) -> dt.datetime:
    """Local midnight ``days`` days before today: the local date decides, never UTC's."""
    return timezone.make_aware(dt.datetime.combine(today - dt.timedelta(days=days), dt.time.min))


def unreconciled_sessions_select(*, since: dt.datetime) -> QuerySet[CashSession]:
    return CashSession.objects.filter(status=SessionStatus.CLOSED, closed_at__gte=since)


def _totals() -> dict[str, Any]:
    """Sums per agent or overall; Sum skips the uncounted sessions' empty discrepancy."""
    return {
        "session_count": Count("pk"),
        "total_expected": Sum("expected_balance"),
        "total_discrepancy": Sum("discrepancy"),
        "not_counted": Count("pk", filter=Q(discrepancy__isnull=True)),
    }


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _session_rows(sessions: QuerySet[CashSession]) -> dict[int, list[dict[str, Any]]]:
    rows: dict[int, list[dict[str, Any]]] = {}
    for session in sessions.order_by("closed_at", "pk").values(
        "agent_id", "number", "closed_at", "auto_closed", "expected_balance", "discrepancy"
    ):
        rows.setdefault(session["agent_id"], []).append(
            {
                "number": session["number"],
                "closed_at": timezone.localtime(session["closed_at"]).isoformat(),
                "auto_closed": session["auto_closed"],
                "expected_balance": _amount(session["expected_balance"]),
                "discrepancy": _amount(session["discrepancy"]),
            }
        )
    return rows


def reconciliation_reminders_send(
    *, days: int, dry_run: bool, email_admins: bool, trigger: str
) -> dict[str, Any]:
    days = reminder_days_validate(days)
    config = SystemConfiguration.load()
    currency = config.currency_code
    now = timezone.now()
    today = timezone.localdate(now)
    since = window_start(today=today, days=days)
    sessions = unreconciled_sessions_select(since=since)

    overall = sessions.aggregate(agent_count=Count("agent", distinct=True), **_totals())
    per_agent = (
        sessions.values("agent", "agent__code", "agent__full_name", "agent__email")
        .annotate(**_totals())
        .order_by("agent__code")
    )
    session_rows = _session_rows(sessions)
    reminded_today = _agents_reminded_on(day=today)

    groups: list[dict[str, Any]] = []
    email_ids: list[int] = []
    for totals in per_agent:
        group: dict[str, Any] = {
            "agent": totals["agent__code"],
            "agent_name": totals["agent__full_name"],
            "agent_email": totals["agent__email"],
            "session_count": totals["session_count"],
            "total_expected": _amount(totals["total_expected"] or ZERO),
            "total_discrepancy": _amount(totals["total_discrepancy"]),
            "not_counted": totals["not_counted"],
            "sessions": session_rows.get(totals["agent"], []),
        }
        groups.append(group)
        if totals["agent"] in reminded_today:
            group["action"] = "already_reminded"
            continue
        if dry_run:
            group["action"] = "would_remind"
            continue
        try:
            group["action"], group["email_id"] = _remind_agent(
                agent_id=totals["agent"],
                group=group,
                day=today,
                days=days,
                currency=currency,
                trigger=trigger,
            )
        except Exception as error:  # noqa: BLE001 - one agent's failure must not stop the others
            logger.exception("Reconciliation reminder to agent %s failed", group["agent"])
            group.update(action="failed", error=f"{type(error).__name__}: {error}")
        if group.get("email_id"):
            email_ids.append(group["email_id"])

    summary_data = {
        "day": today.isoformat(),
        "days": days,
        "since": timezone.localtime(since).isoformat(),
        "currency": currency,
        "sessions": overall["session_count"],
        "agents": overall["agent_count"],
        "total_expected": _amount(overall["total_expected"] or ZERO),
        "total_discrepancy": _amount(overall["total_discrepancy"]),
        "not_counted": overall["not_counted"],
    }
    admin_summary = _admin_summary(
        requested=email_admins,
        dry_run=dry_run,
        data=summary_data,
        groups=groups,
        trigger=trigger,
    )
    if admin_summary.get("email_id"):
        email_ids.append(admin_summary["email_id"])

    # After the work: each message was handed to the mail server as its transaction committed.
    statuses = dict(EmailMessage.objects.filter(pk__in=email_ids).values_list("pk", "status"))
    for group in groups:
        email_id = group.pop("email_id", None)
        group["email"] = statuses.get(email_id) if email_id else None
    summary_email_id = admin_summary.pop("email_id", None)
    if summary_email_id:
        admin_summary["status"] = statuses[summary_email_id]

    counts = {
        action: sum(1 for group in groups if group["action"] == action)
        for action in ("reminded", "would_remind", "already_reminded", "failed")
    }
    failed = counts["failed"] + (admin_summary["status"] == "error")
    summary: dict[str, Any] = {
        "operation": "reconciliation_reminder",
        "trigger": trigger,
        "status": "failed" if failed else "ok",
        "dry_run": dry_run,
        "email_admins": email_admins,
        "ran_at": timezone.localtime(now).isoformat(),
        **summary_data,
        "agents_reminded": counts["reminded"],
        "agents_would_remind": counts["would_remind"],
        "agents_skipped_already_reminded": counts["already_reminded"],
        "agents_failed": counts["failed"],
        "in_app_only": sum(
            1
            for group in groups
            if group["action"] in ("reminded", "would_remind") and not group["agent_email"]
        ),
        "reminders": groups,
        "admin_summary": admin_summary,
        "emails": asdict(email_outcomes(email_ids)),
    }
    if failed:
        summary["message"] = f"{failed} reminder(s) could not be sent; see the output."
    logger.info(
        "reconciliation_reminder (%s%s): %s session(s), reminded %s, already reminded %s, "
        "failed %s, admin summary %s",
        trigger,
        ", dry run" if dry_run else "",
        summary["sessions"],
        counts["reminded"],
        counts["already_reminded"],
        counts["failed"],
        admin_summary["status"],
    )
    return summary


def _agents_reminded_on(*, day: dt.date) -> set[int]:
    """One query for the pre-check; the unique constraint stays the final guard."""
    reminders = ReconciliationReminder.objects.filter(kind=ReminderKind.AGENT, day=day)
    return set(reminders.values_list("agent_id", flat=True))


def _admin_summary_sent(*, day: dt.date) -> bool:
    return ReconciliationReminder.objects.filter(kind=ReminderKind.ADMIN_SUMMARY, day=day).exists()


def _reminder_record(
    *, kind: ReminderKind, agent: Agent | None, day: dt.date, session_numbers: list[str]
) -> ReconciliationReminder | None:
    """The row, or None when a concurrent run recorded it first: the unique constraint
    is the last word, and the savepoint keeps the caller's transaction usable."""
    try:
        with transaction.atomic():
            return ReconciliationReminder.objects.create(
                kind=kind, agent=agent, day=day, session_numbers=session_numbers
            )
    except IntegrityError:
        return None


def _remind_agent(
    *,
    agent_id: int,
    group: dict[str, Any],
    day: dt.date,
    days: int,
    currency: str,
    trigger: str,
) -> tuple[str, int | None]:
    numbers = [row["number"] for row in group["sessions"]]
    with transaction.atomic():
        agent = Agent.objects.get(pk=agent_id)
        reminder = _reminder_record(
            kind=ReminderKind.AGENT, agent=agent, day=day, session_numbers=numbers
        )
        if reminder is None:
            return "already_reminded", None
        audit_entry_append(
            action="reconciliation.reminded",
            actor=None,
            subject=reminder,
            data={
                "kind": ReminderKind.AGENT,
                "agent": agent.code,
                "day": day,
                "sessions": numbers,
                "trigger": trigger,
            },
        )
        display = _display_group(group, currency=currency)
        _, email_id = agent_notify(
            agent=agent,
            kind=NotificationKind.RECONCILIATION_REMINDER,
            title=_agent_title_lazy(day=day, count=len(numbers)),
            message=_agent_message_lazy(display),
            template="payments/email/reconciliation_reminder",
            context={"group": display, "days": days},
        )
    return "reminded", email_id


def _admin_summary(
    *,
    requested: bool,
    dry_run: bool,
    data: dict[str, Any],
    groups: list[dict[str, Any]],
    trigger: str,
) -> dict[str, Any]:
    if not requested:
        return {"status": "not_requested", "recipients": []}
    if not groups:
        return {"status": "nothing_to_send", "recipients": []}
    recipients = staff_email_addresses()
    day = dt.date.fromisoformat(data["day"])
    if _admin_summary_sent(day=day):
        return {"status": "already_sent", "recipients": recipients}
    if not recipients:
        return {"status": "no_recipients", "recipients": []}
    if dry_run:
        return {"status": "would_send", "recipients": recipients}
    numbers = [row["number"] for group in groups for row in group["sessions"]]
    currency = data["currency"]
    try:
        with transaction.atomic():
            reminder = _reminder_record(
                kind=ReminderKind.ADMIN_SUMMARY, agent=None, day=day, session_numbers=numbers
            )
            if reminder is None:
                return {"status": "already_sent", "recipients": recipients}
            audit_entry_append(
                action="reconciliation.reminded",
                actor=None,
                subject=reminder,
                data={
                    "kind": ReminderKind.ADMIN_SUMMARY,
                    "agent": None,
                    "day": day,
                    "sessions": numbers,
                    "recipients": recipients,
                    "trigger": trigger,
                },
            )
            email = email_queue(
                purpose="reconciliation_summary",
                recipients=recipients,
                subject=_summary_subject_lazy(day=day, count=data["sessions"]),
                template="reporting/email/reconciliation_summary",
                context={
                    "day": day,
                    "days": data["days"],
                    "since": dt.datetime.fromisoformat(data["since"]),
                    "stats": _display_totals(
                        session_count=data["sessions"],
                        total_expected=data["total_expected"],
                        total_discrepancy=data["total_discrepancy"],
                        not_counted=data["not_counted"],
                        currency=currency,
                    ),
                    "agents": data["agents"],
                    "groups": [_display_group(group, currency=currency) for group in groups],
                    "action_required": ACTION_REQUIRED,
                    "time_zone": timezone.get_default_timezone_name(),
                },
                about=f"reconciliation {day:%Y-%m-%d}",
                subject_object=reminder,
            )
    except Exception as error:  # noqa: BLE001 - the agents' reminders already went out
        logger.exception("Reconciliation summary to administrators failed")
        return {
            "status": "error",
            "recipients": recipients,
            "error": f"{type(error).__name__}: {error}",
        }
    return {"status": "queued", "recipients": recipients, "email_id": email.pk}


def _display_totals(
    *,
    session_count: int,
    total_expected: str,
    total_discrepancy: str | None,
    not_counted: int,
    currency: str,
) -> dict[str, Any]:
    """Formatted totals for people. A discrepancy of None reads "not counted", never a zero:
    the templates and the in-app message say it in the email language."""
    return {
        "session_count": session_count,
        "total_expected": _money(total_expected, currency=currency),
        "total_discrepancy": _discrepancy(total_discrepancy, currency=currency),
        "not_counted": not_counted,
        "not_counted_note": _not_counted_note_lazy(not_counted),
    }


def not_counted_note(count: int) -> str:
    """'(2 sessions not counted)' in the active language; empty when all were counted."""
    if not count:
        return ""
    return ngettext(
        "(%(count)s session not counted)", "(%(count)s sessions not counted)", count
    ) % {"count": count}


def _discrepancy(amount: str | None, *, currency: str) -> str | None:
    return None if amount is None else format_money_lazy(Decimal(amount), currency=currency)


def _display_group(group: dict[str, Any], *, currency: str) -> dict[str, Any]:
    return {
        "agent": group["agent"],
        "agent_name": group["agent_name"],
        **_display_totals(
            session_count=group["session_count"],
            total_expected=group["total_expected"],
            total_discrepancy=group["total_discrepancy"],
            not_counted=group["not_counted"],
            currency=currency,
        ),
        "sessions": [
            {
                "number": row["number"],
                "closed_at": dt.datetime.fromisoformat(row["closed_at"]),
                "auto_closed": row["auto_closed"],
                "expected": _money(row["expected_balance"], currency=currency),
                "discrepancy": _discrepancy(row["discrepancy"], currency=currency),
            }
            for row in group["sessions"]
        ],
    }


def _money(amount: str | None, *, currency: str) -> str:
    return format_money_lazy(None if amount is None else Decimal(amount), currency=currency)


# Texts built in Python, evaluated lazily: agent_notify and email_queue turn them into
# strings in the email language.
def _agent_title(*, day: dt.date, count: int) -> str:
    return ngettext(
        "Reconciliation reminder %(day)s: %(count)s cash session waiting",
        "Reconciliation reminder %(day)s: %(count)s cash sessions waiting",
        count,
    ) % {"day": day.isoformat(), "count": count}


def _summary_subject(*, day: dt.date, count: int) -> str:
    return ngettext(
        "Reconciliation summary %(day)s: %(count)s unreconciled session",
        "Reconciliation summary %(day)s: %(count)s unreconciled sessions",
        count,
    ) % {"day": day.isoformat(), "count": count}


def _agent_message(display: dict[str, Any]) -> str:
    def discrepancy(amount: str | None) -> str:
        return gettext("not counted") if amount is None else amount

    lines = [gettext("These closed sessions are waiting for reconciliation:")]
    lines += [
        gettext(
            "- %(number)s, closed %(closed_at)s: expected %(expected)s, discrepancy %(discrepancy)s"
        )
        % {
            "number": row["number"],
            "closed_at": f"{timezone.localtime(row['closed_at']):%Y-%m-%d %H:%M}",
            "expected": row["expected"],
            "discrepancy": discrepancy(row["discrepancy"]),
        }
        for row in display["sessions"]
    ]
    lines.append(
        gettext("Total expected balance: %(amount)s") % {"amount": display["total_expected"]}
    )
    lines.append(
        (
            gettext("Total discrepancy: %(amount)s")
            % {"amount": discrepancy(display["total_discrepancy"])}
            + f" {display['not_counted_note']}"
        ).rstrip()
    )
    lines.append(
        gettext("Bring the cash to your administrator so these sessions can be reconciled.")
    )
    return "\n".join(lines)


_agent_title_lazy = lazy(_agent_title, str)
_summary_subject_lazy = lazy(_summary_subject, str)
_agent_message_lazy = lazy(_agent_message, str)
_not_counted_note_lazy = lazy(not_counted_note, str)
