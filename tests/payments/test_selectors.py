"""The reads the scheduled operations act on: sessions open past the timeout, and closed
sessions waiting for reconciliation with their totals."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from payments.models import ReconciliationReminder, ReminderKind, SessionReminder, SessionStatus
from payments.selectors import (
    BacklogTotals,
    ExpiredSession,
    UnreconciledSession,
    admin_summary_sent_on,
    expired_sessions_list,
    reconciliation_backlog,
    reconciliation_window_start,
    sessions_reminded_on,
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
    """Hery: counted 2,500 short yesterday 17:00, uncounted this morning 06:30, and one
    closed three days ago, uncounted (older than a one-day window). Tiana: counted exact
    yesterday. Left out: reconciled, still open."""
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
    older = CashSessionFactory(
        agent=hery,
        uncounted=True,
        opened_at=at(TODAY - dt.timedelta(days=3), 8),
        closed_at=at(TODAY - dt.timedelta(days=3), 23, 30),
        opening_balance=Decimal("7000.00"),
    )
    return {
        "hery": hery,
        "tiana": tiana,
        "short": short,
        "uncounted": uncounted,
        "exact": exact,
        "older": older,
    }


def test_the_backlog_totals_the_window_and_the_older_sessions_apart(backlog_data):
    since = at(TODAY - dt.timedelta(days=1), 0)

    backlog = reconciliation_backlog(since=since, day=TODAY)

    assert (backlog.since, backlog.day) == (since, TODAY)
    assert backlog.new == BacklogTotals(
        session_count=3,
        total_expected=Decimal("105000.00"),
        total_discrepancy=Decimal("-2500.00"),
        not_counted=1,
    )
    assert backlog.new_agent_count == 2
    # The older session was never counted: its discrepancy total is none, never a zero.
    assert backlog.older == BacklogTotals(
        session_count=1, total_expected=Decimal("7000.00"), total_discrepancy=None, not_counted=1
    )
    assert (backlog.session_count, backlog.total_expected) == (4, Decimal("112000.00"))


def test_the_backlog_lists_every_unreconciled_session_per_agent_oldest_first(backlog_data):
    since = at(TODAY - dt.timedelta(days=1), 0)

    backlog = reconciliation_backlog(since=since, day=TODAY)

    tiana, hery = backlog.agents  # by agent code
    assert (tiana.agent_code, hery.agent_code) == ("AG0001", "AG0002")
    assert (hery.agent_id, hery.agent_email) == (
        backlog_data["hery"].pk,
        backlog_data["hery"].email,
    )
    # An agent's totals cover every session of theirs, new and older.
    assert (hery.session_count, hery.not_counted) == (3, 2)
    assert (hery.total_expected, hery.total_discrepancy) == (
        Decimal("97000.00"),
        Decimal("-2500.00"),
    )
    assert hery.sessions == (
        UnreconciledSession(
            pk=backlog_data["older"].pk,
            number=backlog_data["older"].number,
            closed_at=at(TODAY - dt.timedelta(days=3), 23, 30),
            auto_closed=True,
            expected_balance=Decimal("7000.00"),
            discrepancy=None,
            days_waiting=3,
            older=True,
            reminded_today=False,
        ),
        UnreconciledSession(
            pk=backlog_data["short"].pk,
            number=backlog_data["short"].number,
            closed_at=at(TODAY - dt.timedelta(days=1), 17),
            auto_closed=False,
            expected_balance=Decimal("60000.00"),
            discrepancy=Decimal("-2500.00"),
            days_waiting=1,
            older=False,
            reminded_today=False,
        ),
        UnreconciledSession(
            pk=backlog_data["uncounted"].pk,
            number=backlog_data["uncounted"].number,
            closed_at=at(TODAY, 6, 30),
            auto_closed=True,
            expected_balance=Decimal("30000.00"),
            discrepancy=None,
            days_waiting=0,
            older=False,
            reminded_today=False,
        ),
    )
    assert tiana.total_discrepancy == Decimal("0.00")
    assert backlog.session_numbers == [
        backlog_data["exact"].number,
        backlog_data["older"].number,
        backlog_data["short"].number,
        backlog_data["uncounted"].number,
    ]


def test_days_waiting_count_local_days_not_utc_ones():
    # 00:30 local today is 21:30 UTC yesterday: a UTC date would say it waited a day.
    just_after_midnight = CashSessionFactory(
        closed=True, opened_at=at(TODAY - dt.timedelta(days=1), 20), closed_at=at(TODAY, 0, 30)
    )
    late_three_days_ago = CashSessionFactory(
        closed=True,
        opened_at=at(TODAY - dt.timedelta(days=3), 16),
        closed_at=at(TODAY - dt.timedelta(days=3), 23, 59),
    )

    backlog = reconciliation_backlog(since=at(TODAY, 0), day=TODAY)

    waiting = {row.number: row.days_waiting for agent in backlog.agents for row in agent.sessions}
    assert waiting == {just_after_midnight.number: 0, late_three_days_ago.number: 3}


def test_a_session_reminded_that_day_is_flagged_and_no_longer_due(backlog_data):
    hery = backlog_data["hery"]
    reminder = ReconciliationReminder.objects.create(kind=ReminderKind.AGENT, agent=hery, day=TODAY)
    SessionReminder.objects.create(reminder=reminder, session=backlog_data["short"], day=TODAY)
    yesterday = ReconciliationReminder.objects.create(
        kind=ReminderKind.AGENT, agent=hery, day=TODAY - dt.timedelta(days=1)
    )
    SessionReminder.objects.create(
        reminder=yesterday, session=backlog_data["older"], day=TODAY - dt.timedelta(days=1)
    )

    backlog = reconciliation_backlog(since=at(TODAY - dt.timedelta(days=1), 0), day=TODAY)

    [hery_backlog] = [agent for agent in backlog.agents if agent.agent_id == hery.pk]
    assert [row.reminded_today for row in hery_backlog.sessions] == [False, True, False]
    assert [row.number for row in hery_backlog.due] == [
        backlog_data["older"].number,
        backlog_data["uncounted"].number,
    ]
    assert sessions_reminded_on(
        day=TODAY, session_ids=[backlog_data["short"].pk, backlog_data["older"].pk]
    ) == {backlog_data["short"].pk}


def test_the_backlog_can_be_narrowed_to_some_sessions_still_closed(backlog_data):
    backlog = reconciliation_backlog(
        since=at(TODAY - dt.timedelta(days=1), 0),
        day=TODAY,
        session_ids=[backlog_data["short"].pk, backlog_data["older"].pk],
    )

    [hery] = backlog.agents
    assert [row.number for row in hery.sessions] == [
        backlog_data["older"].number,
        backlog_data["short"].number,
    ]
    assert (hery.session_count, hery.total_expected) == (2, Decimal("67000.00"))
    assert (backlog.new.session_count, backlog.older.session_count) == (1, 1)


def test_an_agent_whose_sessions_were_all_uncounted_has_no_discrepancy_total(backlog_data):
    backlog = reconciliation_backlog(
        since=at(TODAY, 0), day=TODAY, session_ids=[backlog_data["uncounted"].pk]
    )

    [hery] = backlog.agents
    assert (hery.session_count, hery.not_counted, hery.total_discrepancy) == (1, 1, None)
    assert backlog.new.total_discrepancy is None


def test_an_empty_backlog_totals_zero_expected_and_no_discrepancy():
    backlog = reconciliation_backlog(since=at(TODAY, 0), day=TODAY)

    assert (backlog.session_count, backlog.new_agent_count, backlog.agents) == (0, 0, ())
    empty = BacklogTotals(
        session_count=0, total_expected=Decimal("0.00"), total_discrepancy=None, not_counted=0
    )
    assert (backlog.new, backlog.older) == (empty, empty)


def test_whether_the_summary_was_sent_on_a_day():
    ReconciliationReminder.objects.create(kind=ReminderKind.ADMIN_SUMMARY, day=TODAY)

    assert admin_summary_sent_on(day=TODAY) is True
    assert admin_summary_sent_on(day=TODAY - dt.timedelta(days=1)) is False
