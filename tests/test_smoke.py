from decimal import Decimal

import pytest

from auditing.verification import chain_verify
from payments.services import session_close, session_open, transaction_record
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db


def test_a_session_day_leaves_an_intact_chain():
    agent = AgentFactory()
    session = session_open(agent=agent, opening_balance=Decimal("1000.00"), actor=agent.user)
    transaction_record(
        session=session,
        payer_reference="NIF-1",
        tax_amount=Decimal("5000.00"),
        amount_tendered=Decimal("6000.00"),
        actor=agent.user,
    )
    closed = session_close(session=session, counted_cash=Decimal("6000.00"), actor=agent.user)
    assert closed.expected_balance == Decimal("6000.00")
    assert closed.discrepancy == Decimal("0.00")
    result = chain_verify()
    assert result.intact, result.violations
    assert result.entries_checked == 3
