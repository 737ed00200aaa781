"""The commission report's checks: every total against the sum of its parts."""

from dataclasses import replace
from decimal import Decimal

from reporting.figures import (
    AgentCommissions,
    CommissionFigures,
    CommissionTotals,
    commission_figures_checks,
)

ROWS = (
    AgentCommissions(
        agent_id=1,
        agent_code="AG0001",
        agent_name="Hery Rakoto",
        transactions=2,
        tax_collected=Decimal("30000.00"),
        commission_earned=Decimal("600.00"),
        pending_amount=Decimal("400.00"),
        paid_amount=Decimal("200.00"),
        cancelled_amount=Decimal("100.00"),
    ),
    AgentCommissions(
        agent_id=2,
        agent_code="AG0002",
        agent_name="Voahirana Rabe",
        transactions=1,
        tax_collected=Decimal("3000.00"),
        commission_earned=Decimal("150.00"),
        pending_amount=Decimal("150.00"),
        paid_amount=Decimal("0.00"),
        cancelled_amount=Decimal("0.00"),
    ),
)
TOTALS = CommissionTotals(
    transactions=3,
    voided_transactions=1,
    tax_collected=Decimal("33000.00"),
    commissions_total=Decimal("750.00"),
    pending_count=2,
    pending_amount=Decimal("550.00"),
    paid_count=1,
    paid_amount=Decimal("200.00"),
    cancelled_count=1,
    cancelled_amount=Decimal("100.00"),
)
FIGURES = CommissionFigures(currency="MGA", totals=TOTALS, agents=ROWS)


def test_figures_that_add_up_pass_all_eight_checks():
    checks = commission_figures_checks(figures=FIGURES)

    assert [check.name for check in checks] == [
        "pending + paid = total commissions",
        "agents' transactions = transactions",
        "agents' tax collected = tax collected",
        "agents' commissions earned = total commissions",
        "agents' pending = pending",
        "agents' paid = paid",
        "agents' cancelled = cancelled",
        "each agent's pending + paid = earned",
    ]
    assert all(check.ok and not check.agents for check in checks)
    assert [(str(check.total), str(check.parts)) for check in checks[:3]] == [
        ("750.00", "750.00"),
        ("3", "3"),
        ("33000.00", "33000.00"),
    ]


def test_a_missing_agent_row_fails_the_checks_it_takes_part_in():
    checks = commission_figures_checks(figures=replace(FIGURES, agents=ROWS[1:]))

    failed = {check.name: (str(check.total), str(check.parts)) for check in checks if not check.ok}
    assert failed == {
        "agents' transactions = transactions": ("3", "1"),
        "agents' tax collected = tax collected": ("33000.00", "3000.00"),
        "agents' commissions earned = total commissions": ("750.00", "150.00"),
        "agents' pending = pending": ("550.00", "150.00"),
        "agents' paid = paid": ("200.00", "0.00"),
        "agents' cancelled = cancelled": ("100.00", "0.00"),
    }


def test_an_agent_whose_pending_and_paid_do_not_make_earned_is_named():
    uneven = replace(ROWS[0], paid_amount=Decimal("100.00"))

    *_, per_agent = commission_figures_checks(figures=replace(FIGURES, agents=(uneven, ROWS[1])))

    assert per_agent.name == "each agent's pending + paid = earned"
    assert not per_agent.ok
    assert per_agent.agents == ("AG0001",)
    assert (per_agent.total, per_agent.parts) == (Decimal("750.00"), Decimal("650.00"))


def test_no_agents_and_zero_totals_add_up():
    zero = Decimal("0.00")
    totals = CommissionTotals(
        transactions=0,
        voided_transactions=0,
        tax_collected=zero,
        commissions_total=zero,
        pending_count=0,
        pending_amount=zero,
        paid_count=0,
        paid_amount=zero,
        cancelled_count=0,
        cancelled_amount=zero,
    )

    checks = commission_figures_checks(
        figures=CommissionFigures(currency="MGA", totals=totals, agents=())
    )

    assert all(check.ok for check in checks)
