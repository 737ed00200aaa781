"""Reads of the cash domain that the scheduled operations act on: the sessions left open
past the timeout, and the closed sessions still waiting for reconciliation with their
totals. Aggregations run in the database; rows come back typed."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from payments.models import (
    CashSession,
    ReconciliationReminder,
    ReminderKind,
    SessionStatus,
    TransactionStatus,
)

ZERO = Decimal("0.00")


def completed_payments_total() -> Sum:
    """What a session's payments brought into its drawer: completed ones, never voided.
    The one definition behind every expected balance, listed or closed."""
    return Sum(
        "transactions__tax_amount", filter=Q(transactions__status=TransactionStatus.COMPLETED)
    )


def expected_balance(*, opening_balance: Decimal, collected: Decimal | None) -> Decimal:
    return opening_balance + (collected or ZERO)


# Expired sessions (close_expired_sessions) -------------------------------------------


@dataclass(frozen=True)
class ExpiredSession:
    """An open session past the timeout, as selected: its payments counted (voided ones
    too) and its expected cash (the float plus the completed payments)."""

    pk: int
    number: str
    agent_code: str
    agent_name: str
    opened_at: dt.datetime
    transaction_count: int
    expected_balance: Decimal
    expiry_notified_at: dt.datetime | None


def expired_sessions_list(*, now: dt.datetime, timeout_hours: int) -> list[ExpiredSession]:
    """Every open session past the timeout, not only the last hour's: missed runs heal.
    Oldest first."""
    cutoff = now - dt.timedelta(hours=timeout_hours)
    sessions = (
        CashSession.objects.filter(status=SessionStatus.OPEN, opened_at__lte=cutoff)
        .select_related("agent")
        .annotate(
            transaction_count=Count("transactions"),
            collected=completed_payments_total(),
        )
        .order_by("opened_at", "pk")
    )
    return [
        ExpiredSession(
            pk=session.pk,
            number=session.number,
            agent_code=session.agent.code,
            agent_name=session.agent.full_name,
            opened_at=session.opened_at,
            transaction_count=session.transaction_count,
            expected_balance=expected_balance(
                opening_balance=session.opening_balance, collected=session.collected
            ),
            expiry_notified_at=session.expiry_notified_at,
        )
        for session in sessions
    ]


# Unreconciled sessions (reconciliation_reminder) -------------------------------------


@dataclass(frozen=True)
class UnreconciledSession:
    number: str
    closed_at: dt.datetime
    auto_closed: bool
    expected_balance: Decimal | None
    discrepancy: Decimal | None  # None: nobody counted the cash, never a zero


@dataclass(frozen=True)
class AgentBacklog:
    """One agent's closed, unreconciled sessions in the window, and their totals."""

    agent_id: int
    agent_code: str
    agent_name: str
    agent_email: str
    session_count: int
    total_expected: Decimal
    total_discrepancy: Decimal | None  # None when no session of theirs was counted
    not_counted: int
    sessions: tuple[UnreconciledSession, ...]


@dataclass(frozen=True)
class ReconciliationBacklog:
    """Every closed, unreconciled session in the window: overall totals and, per agent
    (by agent code), the sessions oldest first."""

    since: dt.datetime
    session_count: int
    agent_count: int
    total_expected: Decimal
    total_discrepancy: Decimal | None
    not_counted: int
    agents: tuple[AgentBacklog, ...]

    @property
    def session_numbers(self) -> list[str]:
        return [row.number for agent in self.agents for row in agent.sessions]


def reconciliation_window_start(*, today: dt.date, days: int) -> dt.datetime:
    """Local midnight ``days`` days before today: the local date decides, never UTC's."""
    return timezone.make_aware(dt.datetime.combine(today - dt.timedelta(days=days), dt.time.min))


def _unreconciled_sessions(*, since: dt.datetime) -> QuerySet[CashSession]:
    return CashSession.objects.filter(status=SessionStatus.CLOSED, closed_at__gte=since)


def _totals() -> dict[str, Any]:
    """Sums per agent or overall; Sum skips the uncounted sessions' empty discrepancy."""
    return {
        "session_count": Count("pk"),
        "total_expected": Sum("expected_balance"),
        "total_discrepancy": Sum("discrepancy"),
        "not_counted": Count("pk", filter=Q(discrepancy__isnull=True)),
    }


def reconciliation_backlog(*, since: dt.datetime) -> ReconciliationBacklog:
    """Three queries whatever the number of agents: the overall totals, the totals per
    agent and the session rows."""
    sessions = _unreconciled_sessions(since=since)
    overall = sessions.aggregate(agent_count=Count("agent", distinct=True), **_totals())
    per_agent = (
        sessions.values("agent", "agent__code", "agent__full_name", "agent__email")
        .annotate(**_totals())
        .order_by("agent__code")
    )
    rows: dict[int, list[UnreconciledSession]] = {}
    for session in sessions.order_by("closed_at", "pk").values(
        "agent_id", "number", "closed_at", "auto_closed", "expected_balance", "discrepancy"
    ):
        rows.setdefault(session["agent_id"], []).append(
            UnreconciledSession(
                number=session["number"],
                closed_at=session["closed_at"],
                auto_closed=session["auto_closed"],
                expected_balance=session["expected_balance"],
                discrepancy=session["discrepancy"],
            )
        )
    return ReconciliationBacklog(
        since=since,
        session_count=overall["session_count"],
        agent_count=overall["agent_count"],
        total_expected=overall["total_expected"] or ZERO,
        total_discrepancy=overall["total_discrepancy"],
        not_counted=overall["not_counted"],
        agents=tuple(
            AgentBacklog(
                agent_id=totals["agent"],
                agent_code=totals["agent__code"],
                agent_name=totals["agent__full_name"],
                agent_email=totals["agent__email"],
                session_count=totals["session_count"],
                total_expected=totals["total_expected"] or ZERO,
                total_discrepancy=totals["total_discrepancy"],
                not_counted=totals["not_counted"],
                sessions=tuple(rows.get(totals["agent"], ())),
            )
            for totals in per_agent
        ),
    )


def agents_reminded_on(*, day: dt.date) -> set[int]:
    """The agents already reminded on this local day. One query for the pre-check; the
    unique constraint stays the final guard."""
    reminders = ReconciliationReminder.objects.filter(kind=ReminderKind.AGENT, day=day)
    return set(reminders.values_list("agent_id", flat=True))


def admin_summary_sent_on(*, day: dt.date) -> bool:
    return ReconciliationReminder.objects.filter(kind=ReminderKind.ADMIN_SUMMARY, day=day).exists()
