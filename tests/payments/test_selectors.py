"""The reads the scheduled operations act on: sessions open past the timeout, and closed
sessions waiting for reconciliation with their totals."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from payments.models import ReconciliationReminder, ReminderKind, SessionStatus
from payments.selectors import (
    ExpiredSession,
    UnreconciledSession,
    admin_summary_sent_on,
    agents_reminded_on,
    expired_sessions_list,
    reconciliation_backlog,
    reconciliation_window_start,
)
from tests.factories import (
    AgentFactory,
    CashSessionFactory,
    CashTransactionFactory,
    CommissionFactory,
)

LOCAL = ZoneInfo("Indian/Antananarivo")
NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=LOCAL)
HOUR = dt.timedelta(hours=1)
TODAY = dt.date(2026, 11, 25)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=LOCAL)


# Expired sessions ---------------------------------------------------------------------


def test_expired_sessions_are_the_open_ones_at_or_past_the_timeout_oldest_first(clock):
    at_timeout = CashSessionFactory(opened_at=NOW - 12 * HOUR)
    older = CashSessionFactory(opened_at=NOW - 30 * HOUR)
    CashSessionFactory(opened_at=NOW - 12 * HOUR + dt.timedelta(minutes=1))
    CashSessionFactory(opened_at=NOW - 40 * HOUR, closed=True)
    CashSessionFactory(opened_at=NOW - 40 * HOUR, uncounted=True)

    rows = expired_sessions_list(now=NOW, timeout_hours=12)

    assert [row.number for row in rows] == [older.number, at_timeout.number]


def test_an_expired_session_counts_every_payment_but_expects_only_the_completed_ones(clock):
    session = CashSessionFactory(
        opened_at=NOW - 13 * HOUR,
        opening_balance=Decimal("10000.00"),
        agent=AgentFactory(code="AG-X", full_name="Hery Rabe"),
    )
    CashTransactionFactory(session=session, tax_amount=Decimal("5000.00"))
    CommissionFactory(
        cancelled=True,
        cash_transaction__session=session,
        cash_transaction__tax_amount=Decimal("3000.00"),
    )

    [row] = expired_sessions_list(now=NOW, timeout_hours=12)

    assert row == ExpiredSession(
        pk=session.pk,
        number=session.number,
        agent_code="AG-X",
        agent_name="Hery Rabe",
        opened_at=NOW - 13 * HOUR,
        transaction_count=2,
        expected_balance=Decimal("15000.00"),
        expiry_notified_at=None,
    )


def test_an_expired_session_without_payments_expects_its_float(clock):
    CashSessionFactory(opened_at=NOW - 13 * HOUR, opening_balance=Decimal("2500.00"))

    [row] = expired_sessions_list(now=NOW, timeout_hours=12)

    assert (row.transaction_count, row.expected_balance) == (0, Decimal("2500.00"))


# Sessions waiting for reconciliation ---------------------------------------------------


def test_the_window_starts_at_local_midnight_days_ago():
    start = reconciliation_window_start(today=TODAY, days=2)

    assert start == at(dt.date(2026, 11, 23), 0)
    assert start.utcoffset() == dt.timedelta(hours=3)


@pytest.fixture
def backlog_data():
    """Hery: counted 2,500 short yesterday 17:00, uncounted this morning 06:30. Tiana:
    counted exact yesterday. Left out: reconciled, still open, closed before the window."""
    hery = AgentFactory(code="AG0002")
    tiana = AgentFactory(code="AG0001")
    short = CashSessionFactory(
        agent=hery,
        closed=True,
        opened_at=at(TODAY - dt.timedelta(days=1), 9),
        closed_at=at(TODAY - dt.timedelta(days=1), 17),
        opening_balance=Decimal("60000.00"),
        counted_balance=Decimal("57500.00"),
    )
    uncounted = CashSessionFactory(
        agent=hery,
        uncounted=True,
        opened_at=at(TODAY - dt.timedelta(days=1), 18),
        closed_at=at(TODAY, 6, 30),
        opening_balance=Decimal("30000.00"),
    )
    exact = CashSessionFactory(
        agent=tiana,
        closed=True,
        opened_at=at(TODAY - dt.timedelta(days=1), 8),
        closed_at=at(TODAY - dt.timedelta(days=1), 16),
        opening_balance=Decimal("15000.00"),
    )
    CashSessionFactory(
        agent=tiana,
        closed=True,
        status=SessionStatus.RECONCILED,
        opened_at=at(TODAY - dt.timedelta(days=1), 5),
    )
    CashSessionFactory(agent=tiana, opened_at=at(TODAY, 7))
    CashSessionFactory(
        agent=hery,
        closed=True,
        opened_at=at(TODAY - dt.timedelta(days=3), 8),
        closed_at=at(TODAY - dt.timedelta(days=3), 17),
    )
    return {"hery": hery, "tiana": tiana, "short": short, "uncounted": uncounted, "exact": exact}


def test_the_backlog_totals_overall_and_per_agent_with_uncounted_never_zero(backlog_data):
    since = at(TODAY - dt.timedelta(days=1), 0)

    backlog = reconciliation_backlog(since=since)

    assert backlog.since == since
    assert (backlog.session_count, backlog.agent_count, backlog.not_counted) == (3, 2, 1)
    assert backlog.total_expected == Decimal("105000.00")
    assert backlog.total_discrepancy == Decimal("-2500.00")
    tiana, hery = backlog.agents  # by agent code
    assert (tiana.agent_code, hery.agent_code) == ("AG0001", "AG0002")
    assert (hery.agent_id, hery.agent_email) == (
        backlog_data["hery"].pk,
        backlog_data["hery"].email,
    )
    assert (hery.session_count, hery.not_counted) == (2, 1)
    assert (hery.total_expected, hery.total_discrepancy) == (
        Decimal("90000.00"),
        Decimal("-2500.00"),
    )
    assert hery.sessions == (
        UnreconciledSession(
            number=backlog_data["short"].number,
            closed_at=at(TODAY - dt.timedelta(days=1), 17),
            auto_closed=False,
            expected_balance=Decimal("60000.00"),
            discrepancy=Decimal("-2500.00"),
        ),
        UnreconciledSession(
            number=backlog_data["uncounted"].number,
            closed_at=at(TODAY, 6, 30),
            auto_closed=True,
            expected_balance=Decimal("30000.00"),
            discrepancy=None,
        ),
    )
    assert tiana.total_discrepancy == Decimal("0.00")
    assert backlog.session_numbers == [
        backlog_data["exact"].number,
        backlog_data["short"].number,
        backlog_data["uncounted"].number,
    ]


def test_an_agent_whose_sessions_were_all_uncounted_has_no_discrepancy_total(backlog_data):
    backlog = reconciliation_backlog(since=at(TODAY, 0))

    [hery] = backlog.agents
    assert (hery.session_count, hery.not_counted, hery.total_discrepancy) == (1, 1, None)
    assert backlog.total_discrepancy is None


def test_an_empty_backlog_totals_zero_expected_and_no_discrepancy():
    backlog = reconciliation_backlog(since=at(TODAY, 0))

    assert (backlog.session_count, backlog.agent_count, backlog.agents) == (0, 0, ())
    assert (backlog.total_expected, backlog.total_discrepancy) == (Decimal("0.00"), None)


def test_who_was_reminded_on_a_day():
    hery, tiana = AgentFactory(), AgentFactory()
    ReconciliationReminder.objects.create(kind=ReminderKind.AGENT, agent=hery, day=TODAY)
    ReconciliationReminder.objects.create(
        kind=ReminderKind.AGENT, agent=tiana, day=TODAY - dt.timedelta(days=1)
    )
    ReconciliationReminder.objects.create(kind=ReminderKind.ADMIN_SUMMARY, day=TODAY)

    assert agents_reminded_on(day=TODAY) == {hery.pk}
    assert admin_summary_sent_on(day=TODAY) is True
    assert admin_summary_sent_on(day=TODAY - dt.timedelta(days=1)) is False
