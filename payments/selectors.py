"""Reads of the cash domain that the scheduled operations act on: the sessions left open
past the timeout, and the closed sessions still waiting for reconciliation with their
totals. Aggregations run in the database; rows come back typed."""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.utils import timezone

from payments.models import (
    CashSession,
    ReconciliationReminder,
    ReminderKind,
    SessionReminder,
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
# Every closed session stays in the backlog until it is reconciled, whatever its age: the
# look-back window (``since``) only says which ones are new. Each session is reminded at
# most once per local day (``SessionReminder``).


@dataclass(frozen=True)
class UnreconciledSession:
    pk: int
    number: str
    closed_at: dt.datetime
    auto_closed: bool
    expected_balance: Decimal | None
    discrepancy: Decimal | None  # None: nobody counted the cash, never a zero
    days_waiting: int  # whole local days since it was closed: 0 when closed today
    older: bool  # closed before the look-back window: the backlog, not new
    reminded_today: bool  # already reminded on the day the backlog was read for


@dataclass(frozen=True)
class BacklogTotals:
    session_count: int
    total_expected: Decimal
    total_discrepancy: Decimal | None  # None when none of the sessions was counted
    not_counted: int


@dataclass(frozen=True)
class AgentBacklog:
    """One agent's closed, unreconciled sessions (oldest first) and their totals."""

    agent_id: int
    agent_code: str
    agent_name: str
    agent_email: str
    session_count: int
    total_expected: Decimal
    total_discrepancy: Decimal | None  # None when no session of theirs was counted
    not_counted: int
    sessions: tuple[UnreconciledSession, ...]

    @property
    def due(self) -> tuple[UnreconciledSession, ...]:
        """The sessions not yet reminded that day."""
        return tuple(row for row in self.sessions if not row.reminded_today)


@dataclass(frozen=True)
class ReconciliationBacklog:
    """Every closed, unreconciled session on ``day``: the totals of those closed in the
    window (since ``since``, the new ones) and of the older ones, and per agent (by agent
    code) the sessions, oldest first."""

    since: dt.datetime
    day: dt.date
    new: BacklogTotals
    new_agent_count: int
    older: BacklogTotals
    agents: tuple[AgentBacklog, ...]

    @property
    def session_count(self) -> int:
        return self.new.session_count + self.older.session_count

    @property
    def total_expected(self) -> Decimal:
        return self.new.total_expected + self.older.total_expected

    @property
    def session_numbers(self) -> list[str]:
        return [row.number for agent in self.agents for row in agent.sessions]


def reconciliation_window_start(*, today: dt.date, days: int) -> dt.datetime:
    """Local midnight ``days`` days before today: the local date decides, never UTC's."""
    return timezone.make_aware(dt.datetime.combine(today - dt.timedelta(days=days), dt.time.min))


def _totals(*, where: Q | None = None) -> dict[str, Any]:
    """Sums per agent or overall; Sum skips the uncounted sessions' empty discrepancy."""
    uncounted = Q(discrepancy__isnull=True)
    if where is not None:
        uncounted &= where
    return {
        "session_count": Count("pk", filter=where),
        "total_expected": Sum("expected_balance", filter=where),
        "total_discrepancy": Sum("discrepancy", filter=where),
        "not_counted": Count("pk", filter=uncounted),
    }


def _backlog_totals(row: dict[str, Any], prefix: str = "") -> BacklogTotals:
    return BacklogTotals(
        session_count=row[f"{prefix}session_count"],
        total_expected=row[f"{prefix}total_expected"] or ZERO,
        total_discrepancy=row[f"{prefix}total_discrepancy"],
        not_counted=row[f"{prefix}not_counted"],
    )


def reconciliation_backlog(
    *, since: dt.datetime, day: dt.date, session_ids: Iterable[int] | None = None
) -> ReconciliationBacklog:
    """Three queries whatever the number of agents: the new and older totals, the totals
    per agent and the session rows. ``session_ids`` narrows it to those sessions (still
    closed); ``day`` is the local day reminders are counted for."""
    sessions = CashSession.objects.filter(status=SessionStatus.CLOSED)
    if session_ids is not None:
        sessions = sessions.filter(pk__in=list(session_ids))
    new, older = Q(closed_at__gte=since), Q(closed_at__lt=since)
    overall = sessions.aggregate(
        new_agent_count=Count("agent", distinct=True, filter=new),
        **{f"new_{name}": total for name, total in _totals(where=new).items()},
        **{f"older_{name}": total for name, total in _totals(where=older).items()},
    )
    per_agent = (
        sessions.values("agent", "agent__code", "agent__full_name", "agent__email")
        .annotate(**_totals())
        .order_by("agent__code")
    )
    reminded = SessionReminder.objects.filter(session=OuterRef("pk"), day=day)
    rows: dict[int, list[UnreconciledSession]] = {}
    for session in (
        sessions.annotate(reminded_today=Exists(reminded))
        .order_by("closed_at", "pk")
        .values(
            "pk",
            "agent_id",
            "number",
            "closed_at",
            "auto_closed",
            "expected_balance",
            "discrepancy",
            "reminded_today",
        )
    ):
        rows.setdefault(session["agent_id"], []).append(
            UnreconciledSession(
                pk=session["pk"],
                number=session["number"],
                closed_at=session["closed_at"],
                auto_closed=session["auto_closed"],
                expected_balance=session["expected_balance"],
                discrepancy=session["discrepancy"],
                days_waiting=(day - timezone.localdate(session["closed_at"])).days,
                older=session["closed_at"] < since,
                reminded_today=session["reminded_today"],
            )
        )
    return ReconciliationBacklog(
        since=since,
        day=day,
        new=_backlog_totals(overall, "new_"),
        new_agent_count=overall["new_agent_count"],
        older=_backlog_totals(overall, "older_"),
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


def sessions_reminded_on(*, day: dt.date, session_ids: Iterable[int]) -> set[int]:
    """Which of these sessions were already reminded on this local day."""
    reminded = SessionReminder.objects.filter(day=day, session_id__in=list(session_ids))
    return set(reminded.values_list("session_id", flat=True))


def admin_summary_sent_on(*, day: dt.date) -> bool:
    return ReconciliationReminder.objects.filter(kind=ReminderKind.ADMIN_SUMMARY, day=day).exists()
