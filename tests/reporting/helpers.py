"""Commission data for the report's tests, made through the real payment services."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import time_machine

from payments.models import Agent, CashTransaction
from payments.services import (
    commissions_mark_paid,
    session_close,
    session_expected_balance,
    session_open,
    transaction_record,
    transaction_void,
)
from tests.factories import AgentFactory, StaffUserFactory, UserFactory

LOCAL = ZoneInfo("Indian/Antananarivo")
# The scheduled run's morning: 09:00 local on 2 November 2026, October complete.
NOW = dt.datetime(2026, 11, 2, 9, 0, tzinfo=LOCAL)
SUBJECT = "Commission report \N{EM DASH} October 2026"
CSV_HEADER = [
    "Agent code",
    "Agent name",
    "Transactions",
    "Tax collected (MGA)",
    "Commission earned (MGA)",
    "Pending (MGA)",
    "Paid (MGA)",
    "Cancelled (MGA)",
]


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=LOCAL)


def takings(agent, when: dt.datetime, *taxes: str, void=(), paid=()) -> list[CashTransaction]:
    """One session of ``agent`` at ``when``: record the payments, void and pay commissions by
    index, close the session with its cash counted."""
    with time_machine.travel(when, tick=False):
        session = session_open(agent=agent, opening_balance=Decimal("0.00"), actor=agent.user)
        payments = [
            transaction_record(
                session=session,
                payer_reference=f"NIF-{agent.code}-{index}",
                tax_amount=Decimal(tax),
                amount_tendered=Decimal(tax),
                actor=agent.user,
            )
            for index, tax in enumerate(taxes)
        ]
        for index in void:
            transaction_void(cash_transaction=payments[index], actor=agent.user, reason="Wrong")
        session_close(
            session=session, counted_cash=session_expected_balance(session=session), actor=None
        )
        commissions_mark_paid(commissions=[payments[i].commission for i in paid], actor=None)
    return payments


def three_agents() -> dict[str, Agent]:
    return {
        "A": AgentFactory(code="AG0001", full_name="Hery Rakoto"),  # default 2 %
        "B": AgentFactory(code="AG0002", full_name="Voahirana Rabe", commission_rate="5.00"),
        "C": AgentFactory(code="AG0003", full_name="Faly Andria"),
    }


def october_takings(agents: dict[str, Agent]) -> dict[str, Agent]:
    """October 2026 in Antananarivo. Counted: A's 10,000 (commission 200 paid) and 20,000 at
    23:30 on the 31st (400 pending), B's 3,000 at 00:00 on the 1st (150 pending). Voided: A's
    5,000 (100 cancelled). Outside October: B at 23:30 on 30 Sept and 00:30 on 1 Nov, C's
    September payment."""
    a, b, c = agents["A"], agents["B"], agents["C"]
    takings(a, local(2026, 10, 5, 10, 0), "10000.00", "5000.00", void=[1], paid=[0])
    takings(a, local(2026, 10, 31, 23, 30), "20000.00")
    takings(b, local(2026, 9, 30, 23, 30), "1000.00")
    takings(b, local(2026, 10, 1, 0, 0), "3000.00")
    takings(b, local(2026, 11, 1, 0, 30), "7000.00")
    takings(c, local(2026, 9, 15, 11, 0), "8000.00")
    return agents


def report_staff() -> list[str]:
    """Two administrators who receive the report, and three users who must not."""
    StaffUserFactory(username="zoe", email="zoe@example.com")
    StaffUserFactory(username="boss", email="boss@example.com")
    StaffUserFactory(username="gone", email="gone@example.com", is_active=False)
    StaffUserFactory(username="nomail", email="")
    UserFactory(username="clerk", email="clerk@example.com")
    return ["boss@example.com", "zoe@example.com"]
