import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, transaction

from auditing.models import AuditEntry
from mailing.models import EmailMessage
from payments.models import (
    Agent,
    CashSession,
    CommissionStatus,
    Notification,
    NotificationKind,
    ReconciliationReminder,
    ReminderKind,
    SessionReminder,
    SessionStatus,
    TransactionStatus,
)
from payments.selectors import ExpiredSession, reconciliation_backlog
from payments.services import (
    ExpiredSessionOutcome,
    agent_notification_send,
    commissions_mark_paid,
    reconciliation_reminder_send,
    reconciliation_summary_send,
    session_close,
    session_expected_balance,
    session_expiry_notify,
    session_open,
    session_reconcile,
    sessions_close_expired,
    transaction_record,
    transaction_void,
)
from tests.factories import (
    AgentFactory,
    CashSessionFactory,
    CashTransactionFactory,
    CommissionFactory,
    StaffUserFactory,
)
from tests.payments.helpers import assert_audited, audited_data

LOCAL = ZoneInfo("Indian/Antananarivo")
MORNING = dt.datetime(2026, 11, 24, 8, 0, tzinfo=LOCAL)
pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(MORNING)]


@pytest.fixture(autouse=True)
def _morning(clock):
    """The clock stands still at 08:00 local time on 24 November 2026 unless a test moves it."""


@pytest.fixture
def agent():
    return AgentFactory()


@pytest.fixture
def session(agent):
    return session_open(agent=agent, opening_balance=Decimal("10000.00"), actor=agent.user)


def record(session, tax="5000.00", tendered=None, payer="NIF-0001", actor=None):
    return transaction_record(
        session=session,
        payer_reference=payer,
        tax_amount=Decimal(tax),
        amount_tendered=Decimal(tendered or tax),
        actor=actor if actor is not None else session.agent.user,
    )


def close(session, counted, notes=""):
    return session_close(
        session=session, counted_cash=Decimal(counted), actor=session.agent.user, notes=notes
    )


# session_open


def test_opening_a_session_records_the_float_and_the_time(agent):
    session = session_open(agent=agent, opening_balance=Decimal("2500.50"), actor=agent.user)

    session.refresh_from_db()
    assert session.status == SessionStatus.OPEN
    assert session.agent == agent
    assert session.opening_balance == Decimal("2500.50")
    assert isinstance(session.opening_balance, Decimal)
    assert session.opened_at == MORNING
    assert session.closed_at is None
    assert session.counted_balance is None


def test_opening_with_a_zero_float_is_allowed(agent):
    session = session_open(agent=agent, opening_balance=Decimal("0.00"), actor=agent.user)

    session.refresh_from_db()
    assert session.status == SessionStatus.OPEN
    assert session.opening_balance == Decimal("0.00")


def test_an_inactive_agent_cannot_open_a_session(refused):
    agent = AgentFactory(is_active=False)

    with refused(f"Agent {agent.code} is inactive"):
        session_open(agent=agent, opening_balance=Decimal("100.00"), actor=agent.user)


def test_a_second_open_session_for_the_same_agent_is_refused(agent, session, refused):
    with refused(f"already has an open session \\({session.number}\\)"):
        session_open(agent=agent, opening_balance=Decimal("100.00"), actor=agent.user)


def test_an_agent_can_open_a_new_session_once_the_previous_one_is_closed(agent, session):
    close(session, "10000.00")

    second = session_open(agent=agent, opening_balance=Decimal("0.00"), actor=agent.user)

    assert second.pk != session.pk
    assert CashSession.objects.filter(agent=agent, status=SessionStatus.OPEN).get() == second


def test_a_negative_opening_balance_is_refused(agent, refused):
    with refused("opening balance cannot be negative"):
        session_open(agent=agent, opening_balance=Decimal("-0.01"), actor=agent.user)


@pytest.mark.parametrize(
    "opening_balance", [100.0, 100, "100.00", Decimal("NaN"), Decimal("Infinity")]
)
def test_an_opening_balance_that_is_not_a_finite_decimal_is_refused(
    agent, refused, opening_balance
):
    with refused("opening balance must be a decimal amount"):
        session_open(agent=agent, opening_balance=opening_balance, actor=agent.user)


@pytest.mark.parametrize(("currency", "opening_balance"), [("MGA", "100.005"), ("XOF", "100.50")])
def test_an_opening_balance_finer_than_the_currency_minor_unit_is_refused(
    agent, config, refused, currency, opening_balance
):
    config.currency_code = currency
    config.save()

    with refused(f"more decimals than {currency} allows"):
        session_open(agent=agent, opening_balance=Decimal(opening_balance), actor=agent.user)


def test_an_opening_balance_too_large_to_store_is_refused(agent, refused):
    with refused("opening balance is too large"):
        session_open(agent=agent, opening_balance=Decimal("1000000000000.00"), actor=agent.user)


def test_session_numbers_count_up_within_a_local_day_and_restart_the_next(clock):
    first = session_open(agent=AgentFactory(), opening_balance=Decimal("0"), actor=None)
    second = session_open(agent=AgentFactory(), opening_balance=Decimal("0"), actor=None)
    clock.move_to(MORNING + dt.timedelta(days=1), tick=False)
    next_day = session_open(agent=AgentFactory(), opening_balance=Decimal("0"), actor=None)

    assert [first.number, second.number, next_day.number] == [
        "CS-20261124-0001",
        "CS-20261124-0002",
        "CS-20261125-0001",
    ]


@pytest.mark.parametrize(
    ("utc_time", "number"),
    [
        # 23:59 in Antananarivo (UTC+3): still the 24th there.
        (dt.datetime(2026, 11, 24, 20, 59, tzinfo=dt.UTC), "CS-20261124-0001"),
        # 01:30 on the 25th in Antananarivo, though UTC still says the 24th.
        (dt.datetime(2026, 11, 24, 22, 30, tzinfo=dt.UTC), "CS-20261125-0001"),
    ],
)
def test_session_numbers_use_the_local_date_not_the_utc_date(clock, agent, utc_time, number):
    clock.move_to(utc_time, tick=False)

    session = session_open(agent=agent, opening_balance=Decimal("0"), actor=None)

    assert session.number == number


def test_opening_appends_one_session_opened_entry(agent, audit_entries_written):
    with audit_entries_written() as entries:
        session = session_open(agent=agent, opening_balance=Decimal("2500.50"), actor=agent.user)

    [entry] = entries
    assert_audited(entry, action="session.opened", actor=agent.user, subject=session)
    assert audited_data(entry, session) == {
        "number": session.number,
        "agent": agent.code,
        "opening_balance": "2500.50",
    }


# transaction_record


def test_recording_a_payment_stores_it_and_gives_the_change(session):
    payment = record(session, tax="4500.00", tendered="5000.00", payer="  NIF-42  ")

    payment.refresh_from_db()
    assert payment.status == TransactionStatus.COMPLETED
    assert payment.session == session
    assert payment.agent == session.agent
    assert payment.recorded_by == session.agent.user
    assert payment.payer_reference == "NIF-42"
    assert payment.tax_amount == Decimal("4500.00")
    assert payment.amount_tendered == Decimal("5000.00")
    assert payment.change_given == Decimal("500.00")
    assert payment.created_at == MORNING


def test_exact_cash_gives_no_change(session):
    payment = record(session, tax="4500.00", tendered="4500.00")

    assert payment.change_given == Decimal("0.00")


def test_the_commission_uses_the_agents_own_rate(config):
    config.default_commission_rate = Decimal("2.00")
    config.save()
    agent = AgentFactory(commission_rate=Decimal("3.50"))
    session = session_open(agent=agent, opening_balance=Decimal("0"), actor=agent.user)

    payment = record(session, tax="2000.00")

    commission = payment.commission
    assert commission.status == CommissionStatus.PENDING
    assert commission.agent == agent
    assert commission.session == session
    assert commission.base_amount == Decimal("2000.00")
    assert commission.rate == Decimal("3.50")
    assert commission.amount == Decimal("70.00")


def test_the_commission_uses_the_configured_default_rate_for_an_agent_without_one(config):
    config.default_commission_rate = Decimal("1.25")
    config.save()
    agent = AgentFactory(commission_rate=None)
    session = session_open(agent=agent, opening_balance=Decimal("0"), actor=agent.user)

    payment = record(session, tax="2000.00")

    assert payment.commission.rate == Decimal("1.25")
    assert payment.commission.amount == Decimal("25.00")


def test_an_agent_rate_of_zero_is_the_agents_own_rate_not_a_missing_one(config):
    config.default_commission_rate = Decimal("2.00")
    config.save()
    agent = AgentFactory(commission_rate=Decimal("0.00"))
    session = session_open(agent=agent, opening_balance=Decimal("0"), actor=agent.user)

    payment = record(session, tax="2000.00")

    assert payment.commission.rate == Decimal("0.00")
    assert payment.commission.amount == Decimal("0.00")


def test_the_commission_is_rounded_half_up(config, session):
    config.default_commission_rate = Decimal("2.50")
    config.save()

    payment = record(session, tax="1001.00")

    assert payment.commission.amount == Decimal("25.03")


def test_receipt_numbers_follow_the_session_number_and_keep_counting_after_a_void(session):
    first = record(session, payer="NIF-1")
    second = record(session, payer="NIF-2")
    transaction_void(cash_transaction=second, actor=session.agent.user, reason="Wrong payer")
    third = record(session, payer="NIF-3")

    assert session.number == "CS-20261124-0001"
    assert [first.receipt_number, second.receipt_number, third.receipt_number] == [
        "CS-20261124-0001-0001",
        "CS-20261124-0001-0002",
        "CS-20261124-0001-0003",
    ]


@pytest.mark.parametrize("status", ["closed", "reconciled"])
def test_recording_on_a_session_that_is_not_open_is_refused(refused, status):
    session = CashSessionFactory(closed=True, status=status)

    with refused(f"Session {session.number} is {status}; payments can only be recorded"):
        record(session)


def test_recording_on_an_expired_session_is_refused(config, agent, session, clock, refused):
    config.session_timeout_hours = 4
    config.save()

    clock.move_to(MORNING + dt.timedelta(hours=4), tick=False)
    with refused(f"Session {session.number} expired at 2026-11-24 12:00"):
        record(session)


def test_recording_just_before_the_session_expires_is_accepted(config, session, clock):
    config.session_timeout_hours = 4
    config.save()

    clock.move_to(MORNING + dt.timedelta(hours=4) - dt.timedelta(seconds=1), tick=False)
    payment = record(session)

    assert payment.status == TransactionStatus.COMPLETED


@pytest.mark.parametrize("tax", ["0.00", "-10.00"])
def test_a_zero_or_negative_tax_is_refused(session, refused, tax):
    with refused("tax amount must be greater than zero"):
        record(session, tax=tax, tendered="100.00")


def test_tendering_less_than_the_tax_is_refused(session, refused):
    with refused(r"amount tendered \(4999.99\) is less than the tax due \(5000.00\)"):
        record(session, tax="5000.00", tendered="4999.99")


@pytest.mark.parametrize("payer", ["", "   "])
def test_a_blank_payer_reference_is_refused(session, refused, payer):
    with refused("payer reference is required"):
        record(session, payer=payer)


def test_a_float_tax_amount_is_refused(session, refused):
    with refused("tax amount must be a decimal amount, not float"):
        transaction_record(
            session=session,
            payer_reference="NIF-1",
            tax_amount=5000.0,
            amount_tendered=Decimal("5000.00"),
            actor=None,
        )


@pytest.mark.parametrize(
    ("tax", "tendered", "what"),
    [("10.005", "10.01", "tax amount"), ("10.00", "10.004", "amount tendered")],
)
def test_amounts_finer_than_the_currency_minor_unit_are_refused(
    session, refused, tax, tendered, what
):
    with refused(f"The {what} has more decimals than MGA allows"):
        record(session, tax=tax, tendered=tendered)


def test_recording_appends_one_transaction_recorded_entry(session, audit_entries_written):
    with audit_entries_written() as entries:
        payment = record(session, tax="4500.00", tendered="5000.00", payer="NIF-42")

    [entry] = entries
    assert_audited(entry, action="transaction.recorded", actor=session.agent.user, subject=payment)
    assert audited_data(entry, payment, payment.commission) == {
        "receipt_number": payment.receipt_number,
        "session": session.number,
        "agent": session.agent.code,
        "payer_reference": "NIF-42",
        "tax_amount": "4500.00",
        "amount_tendered": "5000.00",
        "change_given": "500.00",
        "commission_rate": "2.00",
        "commission_amount": "90.00",
    }


# transaction_void


def test_voiding_marks_the_payment_voided_and_cancels_its_pending_commission(session):
    payment = record(session)
    supervisor = StaffUserFactory()

    transaction_void(cash_transaction=payment, actor=supervisor, reason="  Wrong payer  ")

    payment.refresh_from_db()
    assert payment.status == TransactionStatus.VOIDED
    assert payment.voided_by == supervisor
    assert payment.voided_at == MORNING
    assert payment.void_reason == "Wrong payer"
    commission = payment.commission
    commission.refresh_from_db()
    assert commission.status == CommissionStatus.CANCELLED
    assert commission.cancelled_at == MORNING


def test_a_voided_payment_no_longer_counts_in_the_expected_balance(session):
    record(session, tax="3000.00")
    mistaken = record(session, tax="5000.00")
    assert session_expected_balance(session=session) == Decimal("18000.00")

    transaction_void(cash_transaction=mistaken, actor=None, reason="Typed twice")

    assert session_expected_balance(session=session) == Decimal("13000.00")


def test_voiding_twice_is_refused(session, refused):
    payment = record(session)
    transaction_void(cash_transaction=payment, actor=None, reason="Wrong payer")

    with refused(f"Payment {payment.receipt_number} is already voided"):
        transaction_void(cash_transaction=payment, actor=None, reason="Again")


def test_voiding_on_a_closed_session_is_refused(session, refused):
    payment = record(session)
    close(session, "15000.00")

    with refused(f"belongs to session {session.number}, which is no longer open"):
        transaction_void(cash_transaction=payment, actor=None, reason="Wrong payer")


def test_voiding_a_payment_whose_commission_is_paid_is_refused(session, refused):
    payment = record(session)
    commissions_mark_paid(commissions=[payment.commission], actor=None)

    with refused(f"commission on payment {payment.receipt_number} is already paid"):
        transaction_void(cash_transaction=payment, actor=None, reason="Wrong payer")


@pytest.mark.parametrize("reason", ["", "   "])
def test_voiding_without_a_reason_is_refused(session, refused, reason):
    payment = record(session)

    with refused("Say why the payment is voided"):
        transaction_void(cash_transaction=payment, actor=None, reason=reason)


def test_voiding_appends_one_transaction_voided_entry(session, audit_entries_written):
    payment = record(session, tax="5000.00")
    supervisor = StaffUserFactory()

    with audit_entries_written() as entries:
        transaction_void(cash_transaction=payment, actor=supervisor, reason="Wrong payer")

    [entry] = entries
    assert_audited(entry, action="transaction.voided", actor=supervisor, subject=payment)
    assert audited_data(entry, payment, payment.commission) == {
        "receipt_number": payment.receipt_number,
        "session": session.number,
        "tax_amount": "5000.00",
        "reason": "Wrong payer",
        "commission_cancelled": "100.00",
    }


# session_close


def test_closing_expects_the_float_plus_completed_payments_without_the_voided(session, clock):
    record(session, tax="3000.00", tendered="5000.00")
    record(session, tax="1500.50")
    voided = record(session, tax="7000.00")
    transaction_void(cash_transaction=voided, actor=None, reason="Wrong payer")
    clock.move_to(MORNING + dt.timedelta(hours=9), tick=False)

    closed = close(session, "14500.50", notes="  All good  ")

    closed.refresh_from_db()
    assert closed.status == SessionStatus.CLOSED
    assert closed.expected_balance == Decimal("14500.50")
    assert closed.counted_balance == Decimal("14500.50")
    assert closed.discrepancy == Decimal("0.00")
    assert closed.closed_at == MORNING + dt.timedelta(hours=9)
    assert closed.closed_by == session.agent.user
    assert closed.auto_closed is False
    assert closed.closing_notes == "All good"


@pytest.mark.parametrize(("counted", "discrepancy"), [("12999.00", "-1.00"), ("13000.25", "0.25")])
def test_the_discrepancy_is_counted_minus_expected(session, counted, discrepancy):
    record(session, tax="3000.00")

    closed = close(session, counted)

    assert closed.expected_balance == Decimal("13000.00")
    assert closed.discrepancy == Decimal(discrepancy)


def test_a_zero_count_is_allowed(agent):
    session = session_open(agent=agent, opening_balance=Decimal("0.00"), actor=None)

    closed = close(session, "0.00")

    assert closed.discrepancy == Decimal("0.00")


def test_closing_twice_is_refused(session, refused):
    close(session, "10000.00")

    with refused(f"Session {session.number} is already closed"):
        close(session, "10000.00")


def test_closing_a_reconciled_session_is_refused(session, refused):
    close(session, "10000.00")
    session_reconcile(session=session, actor=StaffUserFactory())

    with refused(f"Session {session.number} is already reconciled"):
        close(session, "10000.00")


def test_a_negative_count_is_refused(session, refused):
    with refused("counted cash cannot be negative"):
        close(session, "-1.00")


@pytest.mark.parametrize("counted", [10000.0, Decimal("NaN"), Decimal("-Infinity")])
def test_a_count_that_is_not_a_finite_decimal_is_refused(session, refused, counted):
    with refused("counted cash must be a decimal amount"):
        session_close(session=session, counted_cash=counted, actor=None)


def test_a_count_finer_than_the_currency_minor_unit_is_refused(session, refused):
    with refused("counted cash has more decimals than MGA allows"):
        close(session, "10000.001")


def test_closing_appends_one_session_closed_entry(session, audit_entries_written):
    record(session, tax="3000.00")

    with audit_entries_written() as entries:
        close(session, "12990.00", notes="Short ten")

    [entry] = entries
    assert_audited(entry, action="session.closed", actor=session.agent.user, subject=session)
    assert audited_data(entry, session) == {
        "number": session.number,
        "agent": session.agent.code,
        "expected_balance": "13000.00",
        "counted_balance": "12990.00",
        "discrepancy": "-10.00",
        "notes": "Short ten",
    }


# session_reconcile


def test_reconciling_a_balanced_session(session):
    close(session, "10000.00")
    supervisor = StaffUserFactory()

    reconciled = session_reconcile(session=session, actor=supervisor)

    reconciled.refresh_from_db()
    assert reconciled.status == SessionStatus.RECONCILED
    assert reconciled.reconciled_by == supervisor
    assert reconciled.reconciled_at == MORNING
    assert reconciled.reconciliation_notes == ""


def test_reconciling_without_saying_who_is_refused(session, refused):
    close(session, "10000.00")

    with refused(f"A session is reconciled by a person: .* {session.number}"):
        session_reconcile(session=session, actor=None)


def test_reconciling_an_open_session_is_refused(session, refused):
    with refused(f"Session {session.number} is still open"):
        session_reconcile(session=session, actor=StaffUserFactory())


def test_reconciling_twice_is_refused(session, refused):
    close(session, "10000.00")
    session_reconcile(session=session, actor=StaffUserFactory())

    with refused(f"Session {session.number} is already reconciled"):
        session_reconcile(session=session, actor=StaffUserFactory())


def test_an_uncounted_session_cannot_be_reconciled_without_the_counted_cash(refused):
    session = CashSessionFactory(uncounted=True)

    with refused(f"Session {session.number} was closed without a cash count"):
        session_reconcile(session=session, actor=StaffUserFactory(), notes="Counted later")


def test_an_uncounted_session_reconciled_with_its_count_gets_its_discrepancy():
    session = CashSessionFactory(uncounted=True, expected_balance=Decimal("12000.00"))

    reconciled = session_reconcile(
        session=session,
        actor=StaffUserFactory(),
        counted_cash=Decimal("11999.00"),
        notes="One short",
    )

    reconciled.refresh_from_db()
    assert reconciled.status == SessionStatus.RECONCILED
    assert reconciled.counted_balance == Decimal("11999.00")
    assert reconciled.discrepancy == Decimal("-1.00")
    assert reconciled.reconciliation_notes == "One short"


@pytest.mark.parametrize(
    "counted", [Decimal("-1.00"), 100.0, Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity")]
)
def test_a_reconciliation_count_that_is_not_a_finite_non_negative_decimal_is_refused(
    refused, counted
):
    session = CashSessionFactory(uncounted=True)

    with refused("counted cash must be a non-negative decimal amount"):
        session_reconcile(
            session=session, actor=StaffUserFactory(), counted_cash=counted, notes="Late count"
        )


def test_a_different_count_for_an_already_counted_session_is_refused(refused):
    session = CashSessionFactory(closed=True, counted_balance=Decimal("10000.00"))

    with refused("was already counted at 10000.00"):
        session_reconcile(
            session=session, actor=StaffUserFactory(), counted_cash=Decimal("9000.00")
        )


def test_repeating_the_same_count_for_a_counted_session_is_accepted():
    session = CashSessionFactory(closed=True, counted_balance=Decimal("10000.00"))

    reconciled = session_reconcile(
        session=session, actor=StaffUserFactory(), counted_cash=Decimal("10000.00")
    )

    assert reconciled.status == SessionStatus.RECONCILED


def test_a_discrepancy_beyond_the_tolerance_needs_notes(config, refused):
    config.reconciliation_tolerance = Decimal("5.00")
    config.save()
    session = CashSessionFactory(
        closed=True, expected_balance=Decimal("1000.00"), counted_balance=Decimal("994.99")
    )

    with refused(
        r"discrepancy of -5\.01 MGA, beyond the tolerance of 5\.00 MGA; explain it in the notes"
    ):
        session_reconcile(session=session, actor=StaffUserFactory(), notes="   ")


def test_a_discrepancy_beyond_the_tolerance_is_reconciled_once_explained(config):
    config.reconciliation_tolerance = Decimal("5.00")
    config.save()
    session = CashSessionFactory(
        closed=True, expected_balance=Decimal("1000.00"), counted_balance=Decimal("1200.00")
    )

    reconciled = session_reconcile(
        session=session, actor=StaffUserFactory(), notes="  Change from a bank  "
    )

    assert reconciled.status == SessionStatus.RECONCILED
    assert reconciled.reconciliation_notes == "Change from a bank"


@pytest.mark.parametrize("counted", ["995.00", "1005.00", "1000.01"])
def test_a_discrepancy_within_the_tolerance_needs_no_notes(config, counted):
    config.reconciliation_tolerance = Decimal("5.00")
    config.save()
    session = CashSessionFactory(
        closed=True, expected_balance=Decimal("1000.00"), counted_balance=Decimal(counted)
    )

    reconciled = session_reconcile(session=session, actor=StaffUserFactory())

    assert reconciled.status == SessionStatus.RECONCILED


def test_reconciling_appends_one_session_reconciled_entry(audit_entries_written):
    session = CashSessionFactory(uncounted=True, expected_balance=Decimal("12000.00"))
    supervisor = StaffUserFactory()

    with audit_entries_written() as entries:
        session_reconcile(
            session=session, actor=supervisor, counted_cash=Decimal("12000.00"), notes=""
        )

    [entry] = entries
    assert_audited(entry, action="session.reconciled", actor=supervisor, subject=session)
    assert audited_data(entry, session) == {
        "number": session.number,
        "expected_balance": "12000.00",
        "counted_balance": "12000.00",
        "counted_at_reconciliation": True,
        "discrepancy": "0.00",
        "notes": "",
    }


# commissions_mark_paid


def test_marking_pending_commissions_paid():
    commissions = CommissionFactory.create_batch(2)
    treasurer = StaffUserFactory()

    paid = commissions_mark_paid(commissions=commissions, actor=treasurer)

    assert paid == 2
    for commission in commissions:
        commission.refresh_from_db()
        assert commission.status == CommissionStatus.PAID
        assert commission.paid_by == treasurer
        assert commission.paid_at == MORNING


def test_already_paid_commissions_are_left_alone_and_not_counted(clock):
    already_paid = CommissionFactory(paid=True, paid_at=MORNING - dt.timedelta(days=3))
    pending = CommissionFactory()

    paid = commissions_mark_paid(commissions=[already_paid, pending], actor=None)

    assert paid == 1
    already_paid.refresh_from_db()
    assert already_paid.paid_at == MORNING - dt.timedelta(days=3)
    pending.refresh_from_db()
    assert pending.status == CommissionStatus.PAID


def test_paying_the_same_batch_again_pays_nothing_more():
    commissions = CommissionFactory.create_batch(2)
    commissions_mark_paid(commissions=commissions, actor=None)

    assert commissions_mark_paid(commissions=commissions, actor=None) == 0


def test_a_cancelled_commission_refuses_the_whole_batch(refused):
    pending = CommissionFactory()
    cancelled = CommissionFactory(cancelled=True)

    with refused(
        f"Cancelled commissions cannot be paid: {cancelled.cash_transaction.receipt_number}"
    ):
        commissions_mark_paid(commissions=[pending, cancelled], actor=None)


def test_an_empty_batch_pays_nothing():
    assert commissions_mark_paid(commissions=[], actor=None) == 0


def test_marking_paid_appends_one_commission_paid_entry_per_newly_paid_commission(
    audit_entries_written,
):
    already_paid = CommissionFactory(paid=True)
    first, second = CommissionFactory.create_batch(2)
    treasurer = StaffUserFactory()

    with audit_entries_written() as entries:
        commissions_mark_paid(commissions=[second, already_paid, first], actor=treasurer)

    assert len(entries) == 2
    for entry, commission in zip(entries, [first, second], strict=True):
        assert_audited(entry, action="commission.paid", actor=treasurer, subject=commission)
        assert audited_data(entry, commission) == {
            "receipt_number": commission.cash_transaction.receipt_number,
            "agent": commission.agent.code,
            "amount": "100.00",
        }


# Agents' notifications -----------------------------------------------------------------

HOUR = dt.timedelta(hours=1)


def expired_session(*, hours: float = 13, **fields) -> CashSession:
    return CashSessionFactory(opened_at=MORNING - dt.timedelta(hours=hours), **fields)


def test_a_notification_takes_every_text_from_its_templates_in_the_email_language(settings, config):
    settings.LANGUAGE_CODE = "fr"
    session = expired_session(hours=13)

    with transaction.atomic():
        notice = agent_notification_send(
            agent=session.agent,
            kind=NotificationKind.SESSION_EXPIRED,
            session=session,
            template="payments/email/session_expired",
            context={
                "opened_at": session.opened_at,
                "expires_at": session.opened_at + 12 * HOUR,
                "timeout_hours": 12,
                "transaction_count": 1,
                "expected": Decimal("12500.00"),
                "currency": "MGA",
            },
        )

    title = f"Session {session.number} expirée le 2026-11-24 : comptez les espèces et clôturez-la"
    assert notice.notification.title == title
    assert notice.notification.message == (
        f"La session {session.number} a dépassé la limite de 12 h avec 1 paiement enregistré. "
        "Comptez les espèces et clôturez-la."
    )
    # The email repeats it, as logged in the outbox: what the mail server will get.
    [mail] = EmailMessage.objects.all()
    assert mail.pk == notice.email_id
    assert mail.recipients == [session.agent.email]
    assert mail.subject == title
    assert "Espèces attendues en caisse : 12\N{NO-BREAK SPACE}500,00 MGA" in mail.body_text
    assert "12\N{NO-BREAK SPACE}500,00 MGA" in mail.body_html


def test_an_agent_with_an_unusable_stored_address_is_notified_in_app_only(config):
    session = expired_session(hours=13)
    Agent.objects.filter(pk=session.agent.pk).update(email="not an address")
    session.agent.refresh_from_db()

    notice = agent_notification_send(
        agent=session.agent,
        kind=NotificationKind.SESSION_EXPIRED,
        session=session,
        template="payments/email/session_expired",
        context={
            "opened_at": session.opened_at,
            "expires_at": session.opened_at + 12 * HOUR,
            "timeout_hours": 12,
            "transaction_count": 1,
            "expected": Decimal("10000.00"),
            "currency": "MGA",
        },
    )

    assert notice.email_id is None
    assert Notification.objects.get() == notice.notification
    assert not EmailMessage.objects.exists()


# Expired sessions ----------------------------------------------------------------------


def close_expired(*, session, transaction_count, **arguments):
    """The batch service on one session, selected with ``transaction_count`` payments."""
    selected = ExpiredSession(
        pk=session.pk,
        number=session.number,
        agent_code=session.agent.code,
        agent_name=session.agent.full_name,
        opened_at=session.opened_at,
        transaction_count=transaction_count,
        expected_balance=session.opening_balance,
        expiry_notified_at=session.expiry_notified_at,
    )
    return sessions_close_expired(sessions=[selected], **arguments)[session.pk]


def test_closing_an_expired_session_leaves_it_uncounted_noted_audited_and_notified(
    config, audit_entries_written
):
    session = expired_session(hours=13, opening_balance=Decimal("25000.00"))

    with audit_entries_written() as entries:
        closure = close_expired(
            session=session,
            run_at=MORNING,
            trigger="beat",
            force=False,
            transaction_count=0,
            config=config,
        )

    assert closure.outcome == ExpiredSessionOutcome.CLOSED
    session.refresh_from_db()
    assert (session.status, session.auto_closed, session.closed_by) == (
        SessionStatus.CLOSED,
        True,
        None,
    )
    assert (session.counted_balance, session.discrepancy) == (None, None)
    assert session.closing_notes == (
        "Closed automatically by close_expired_sessions (beat run) at 2026-11-24 08:00 EAT: "
        "open 13.0 h, past the 12 h timeout. Cash not counted."
    )
    [entry] = entries
    assert_audited(entry, action="session.auto_closed", actor=None, subject=session)
    assert entry.data["notes"] == session.closing_notes
    assert (entry.data["trigger"], entry.data["forced"], entry.data["transactions"]) == (
        "beat",
        False,
        0,
    )
    [notification] = Notification.objects.all()
    assert notification.kind == NotificationKind.SESSION_AUTO_CLOSED
    assert notification.title == f"Session {session.number} closed automatically on 2026-11-24"
    assert closure.email_id == EmailMessage.objects.get().pk


@pytest.mark.parametrize(
    ("open_for", "in_the_notes", "in_the_message"),
    [
        # 12.25 h: the notes round half to even; the message cuts.
        (dt.timedelta(hours=12, minutes=15), "open 12.2 h", "open 12.2 h"),
        # 12.99 h: the notes round up; the message cuts to 12.9, as it always did.
        (dt.timedelta(hours=12, minutes=59, seconds=24), "open 13.0 h", "open 12.9 h"),
    ],
)
def test_the_hours_open_read_in_the_notes_and_the_message_as_they_always_did(
    config, open_for, in_the_notes, in_the_message
):
    session = CashSessionFactory(opened_at=MORNING - open_for)

    close_expired(
        session=session,
        run_at=MORNING,
        trigger="manual",
        force=False,
        transaction_count=0,
        config=config,
    )

    session.refresh_from_db()
    assert in_the_notes in session.closing_notes
    assert in_the_message in Notification.objects.get().message


def test_forcing_a_session_with_payments_closed_says_so(config):
    session = expired_session(hours=13)
    CashTransactionFactory(session=session)

    closure = close_expired(
        session=session,
        run_at=MORNING,
        trigger="manual",
        force=True,
        transaction_count=1,
        config=config,
    )

    assert closure.outcome == ExpiredSessionOutcome.CLOSED
    session.refresh_from_db()
    assert "Forced although payments were recorded. Cash not counted." in session.closing_notes
    assert AuditEntry.objects.get(action="session.auto_closed").data["forced"] is True
    assert "Forced although payments were recorded." in Notification.objects.get().message


def test_a_session_closed_meanwhile_or_with_new_payments_is_left_alone(config):
    closed = expired_session(hours=13, closed=True)
    paid = expired_session(hours=13)
    CashTransactionFactory(session=paid)
    audit_entries = AuditEntry.objects.count()

    outcomes = [
        close_expired(
            session=session,
            run_at=MORNING,
            trigger="beat",
            force=False,
            transaction_count=0,
            config=config,
        ).outcome
        for session in (closed, paid)
    ]

    assert outcomes == [
        ExpiredSessionOutcome.ALREADY_HANDLED,
        ExpiredSessionOutcome.HAS_PAYMENTS,
    ]
    paid.refresh_from_db()
    assert paid.status == SessionStatus.OPEN
    assert AuditEntry.objects.count() == audit_entries
    assert not Notification.objects.exists()


def test_an_expiry_notice_goes_out_once(config, audit_entries_written):
    session = expired_session(hours=13)
    CashTransactionFactory(session=session)
    arguments = {
        "session_id": session.pk,
        "transaction_count": 1,
        "expected_balance": Decimal("15000.00"),
        "config": config,
    }

    with audit_entries_written() as entries:
        first = session_expiry_notify(**arguments)
        second = session_expiry_notify(**arguments)

    assert first is not None and second is None
    session.refresh_from_db()
    assert session.expiry_notified_at == MORNING
    [entry] = entries
    assert_audited(entry, action="session.expiry_notified", actor=None, subject=session)
    assert entry.data == {"number": session.number, "agent": session.agent.code, "transactions": 1}
    assert first.notification.title == (
        f"Session {session.number} expired on 2026-11-24: count and close it"
    )


# Reconciliation reminders ---------------------------------------------------------------


def _remind(agent, sessions, *, day=dt.date(2026, 11, 24)):
    return reconciliation_reminder_send(
        agent_id=agent.pk,
        session_ids=[session.pk for session in sessions],
        since=MORNING - 24 * HOUR,
        day=day,
        currency="MGA",
        trigger="beat",
    )


def test_an_agents_reconciliation_reminder_is_recorded_audited_and_sent_once_a_day(
    config, audit_entries_written
):
    session = CashSessionFactory(uncounted=True, opened_at=MORNING - 12 * HOUR)
    day = dt.date(2026, 11, 24)

    with audit_entries_written() as entries:
        first = _remind(session.agent, [session], day=day)
        second = _remind(session.agent, [session], day=day)

    assert first is not None and second is None
    reminder = ReconciliationReminder.objects.get()
    assert (reminder.kind, reminder.agent, reminder.day) == (ReminderKind.AGENT, session.agent, day)
    assert reminder.session_numbers == [session.number]
    assert list(reminder.sessions.all()) == [session]
    assert list(SessionReminder.objects.values_list("session", "day", "reminder")) == [
        (session.pk, day, reminder.pk)
    ]
    assert [row.number for row in first.reminded.sessions] == [session.number]
    [entry] = entries
    assert_audited(entry, action="reconciliation.reminded", actor=None, subject=reminder)
    assert entry.data == {
        "kind": "agent",
        "agent": session.agent.code,
        "day": "2026-11-24",
        "sessions": [session.number],
        "trigger": "beat",
    }
    assert first.notice.notification.title == (
        "Reconciliation reminder 2026-11-24: 1 cash session waiting"
    )
    assert first.notice.notification.message.endswith(
        "Total discrepancy: not counted (1 session not counted)\n"
        "Bring the cash to your administrator so these sessions can be reconciled."
    )


def test_a_reminder_lists_only_the_sessions_not_yet_reminded_that_day(config):
    agent = AgentFactory()
    morning = CashSessionFactory(agent=agent, closed=True, opened_at=MORNING - 20 * HOUR)
    afternoon = CashSessionFactory(agent=agent, closed=True, opened_at=MORNING - 10 * HOUR)
    _remind(agent, [morning])

    again = _remind(agent, [morning, afternoon])

    assert [row.number for row in again.reminded.sessions] == [afternoon.number]
    assert again.reminded.session_count == 1
    assert afternoon.number in again.notice.notification.message
    assert morning.number not in again.notice.notification.message
    assert ReconciliationReminder.objects.count() == 2
    # The next day both are due again.
    next_day = _remind(agent, [morning, afternoon], day=dt.date(2026, 11, 25))
    assert [row.number for row in next_day.reminded.sessions] == [morning.number, afternoon.number]


def test_a_reminder_leaves_out_sessions_reconciled_or_another_agents(config):
    agent = AgentFactory()
    reconciled = CashSessionFactory(agent=agent, closed=True, opened_at=MORNING - 20 * HOUR)
    session_reconcile(session=reconciled, actor=StaffUserFactory())
    someone_elses = CashSessionFactory(closed=True, opened_at=MORNING - 20 * HOUR)

    assert _remind(agent, [reconciled, someone_elses]) is None
    assert not ReconciliationReminder.objects.exists()


def test_the_database_refuses_a_second_reminder_of_a_session_the_same_day(config):
    session = CashSessionFactory(closed=True, opened_at=MORNING - 20 * HOUR)
    reminder = ReconciliationReminder.objects.create(
        kind=ReminderKind.AGENT, agent=session.agent, day=MORNING.date()
    )
    SessionReminder.objects.create(reminder=reminder, session=session, day=MORNING.date())
    other = ReconciliationReminder.objects.create(
        kind=ReminderKind.AGENT, agent=session.agent, day=MORNING.date()
    )

    with pytest.raises(IntegrityError, match="payments_one_reminder_per_session_a_day"):
        with transaction.atomic():
            SessionReminder.objects.create(reminder=other, session=session, day=MORNING.date())
    # Another day is another reminder.
    SessionReminder.objects.create(
        reminder=other, session=session, day=MORNING.date() + dt.timedelta(days=1)
    )


def test_the_administrators_summary_is_recorded_audited_and_sent_once_a_day(
    config, audit_entries_written
):
    session = CashSessionFactory(closed=True, opened_at=MORNING - 12 * HOUR)
    day = dt.date(2026, 11, 24)
    backlog = reconciliation_backlog(since=MORNING - 24 * HOUR, day=day)
    arguments = {
        "backlog": backlog,
        "day": day,
        "days": 1,
        "recipients": ["boss@example.com"],
        "currency": "MGA",
        "trigger": "beat",
    }

    with audit_entries_written() as entries:
        email = reconciliation_summary_send(**arguments)
        again = reconciliation_summary_send(**arguments)

    assert again is None
    assert email.subject == "Reconciliation summary 2026-11-24: 1 unreconciled session"
    assert email.recipients == ["boss@example.com"]
    reminder = ReconciliationReminder.objects.get()
    assert (reminder.kind, reminder.agent, reminder.session_numbers) == (
        ReminderKind.ADMIN_SUMMARY,
        None,
        [session.number],
    )
    [entry] = entries
    assert_audited(entry, action="reconciliation.reminded", actor=None, subject=reminder)
    assert entry.data["recipients"] == ["boss@example.com"]
