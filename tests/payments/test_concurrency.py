"""Races between connections. These tests commit for real, so each thread's own database
connection sees what the others wrote."""

import datetime as dt
import time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

import payments.services
from auditing.models import AuditEntry
from auditing.verification import chain_verify
from payments.errors import PaymentsError
from payments.models import CashSession, CashTransaction, DailyCounter, SessionStatus
from payments.services import session_open, transaction_record
from tests.concurrency import run_together
from tests.factories import AgentFactory

MORNING = dt.datetime(2026, 11, 24, 8, 0, tzinfo=ZoneInfo("Indian/Antananarivo"))
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.frozen_at(MORNING, tick=True)]


@pytest.fixture(autouse=True)
def _morning(clock):
    """A ticking clock from 08:00: concurrent writers see time pass."""


@pytest.fixture
def slow_numbering(monkeypatch):
    """Hold each opener inside its transaction for a moment, so the two opens overlap."""
    real = payments.services._next_daily_number

    def slow(**kwargs):
        number = real(**kwargs)
        time.sleep(0.2)
        return number

    monkeypatch.setattr(payments.services, "_next_daily_number", slow)


def test_two_concurrent_opens_for_one_agent_leave_exactly_one_open_session(slow_numbering):
    agent = AgentFactory()

    def open_session():
        return session_open(agent=agent, opening_balance=Decimal("100.00"), actor=agent.user)

    outcomes = run_together(open_session, open_session)

    kinds = sorted(kind for kind, _ in outcomes)
    assert kinds == ["error", "ok"], outcomes
    [error] = [value for kind, value in outcomes if kind == "error"]
    assert isinstance(error, PaymentsError)
    assert "already has an open session" in str(error)
    [opened] = [value for kind, value in outcomes if kind == "ok"]
    assert list(CashSession.objects.filter(agent=agent, status=SessionStatus.OPEN)) == [opened]
    assert opened.number == "CS-20261124-0001"
    assert DailyCounter.objects.get(scope="session").value == 1
    assert list(AuditEntry.objects.values_list("action", flat=True)) == ["session.opened"]


def test_concurrent_opens_for_different_agents_get_distinct_numbers():
    agents = AgentFactory.create_batch(4)

    def opener(agent):
        return lambda: session_open(agent=agent, opening_balance=Decimal("0"), actor=None)

    outcomes = run_together(*(opener(agent) for agent in agents))

    assert [kind for kind, _ in outcomes] == ["ok"] * 4, outcomes
    assert sorted(session.number for _, session in outcomes) == [
        f"CS-20261124-{n:04d}" for n in range(1, 5)
    ]
    assert chain_verify().intact


def test_concurrent_payments_on_one_session_get_consecutive_receipts():
    agent = AgentFactory()
    session = session_open(agent=agent, opening_balance=Decimal("0"), actor=None)

    def payer(n):
        return lambda: transaction_record(
            session=session,
            payer_reference=f"NIF-{n}",
            tax_amount=Decimal("100.00"),
            amount_tendered=Decimal("100.00"),
            actor=None,
        )

    outcomes = run_together(*(payer(n) for n in range(4)))

    assert [kind for kind, _ in outcomes] == ["ok"] * 4, outcomes
    assert sorted(CashTransaction.objects.values_list("receipt_number", flat=True)) == [
        f"{session.number}-{n:04d}" for n in range(1, 5)
    ]
    assert chain_verify().intact


@pytest.mark.django_db
def test_the_database_itself_refuses_a_second_open_session_for_an_agent():
    agent = AgentFactory()
    CashSession.objects.create(
        number="CS-RAW-1", agent=agent, opened_at=timezone.now(), opening_balance=Decimal("0")
    )

    with pytest.raises(IntegrityError, match="payments_one_open_session_per_agent"):
        with transaction.atomic():
            CashSession.objects.create(
                number="CS-RAW-2",
                agent=agent,
                opened_at=timezone.now(),
                opening_balance=Decimal("0"),
            )

    assert CashSession.objects.filter(agent=agent).count() == 1


@pytest.mark.django_db
def test_the_database_allows_a_new_open_session_once_the_previous_one_is_closed():
    agent = AgentFactory()
    CashSession.objects.create(
        number="CS-RAW-1",
        agent=agent,
        status=SessionStatus.CLOSED,
        opened_at=timezone.now(),
        opening_balance=Decimal("0"),
        closed_at=timezone.now(),
        expected_balance=Decimal("0"),
    )

    CashSession.objects.create(
        number="CS-RAW-2", agent=agent, opened_at=timezone.now(), opening_balance=Decimal("0")
    )

    assert CashSession.objects.filter(agent=agent).count() == 2
