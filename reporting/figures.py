"""A month's commission figures, as read from the payments or from a stored report, and the
checks that every total equals the sum of its parts."""

from dataclasses import dataclass
from decimal import Decimal

# The amount columns of an agent's row (CommissionReportLine), in report order.
LINE_AMOUNTS = (
    "tax_collected",
    "commission_earned",
    "pending_amount",
    "paid_amount",
    "cancelled_amount",
)


@dataclass(frozen=True)
class CommissionTotals:
    """Overall and by-status figures, named like the CommissionReport fields."""

    transactions: int
    voided_transactions: int
    tax_collected: Decimal
    commissions_total: Decimal
    pending_count: int
    pending_amount: Decimal
    paid_count: int
    paid_amount: Decimal
    cancelled_count: int
    cancelled_amount: Decimal


@dataclass(frozen=True)
class AgentCommissions:
    """One agent's figures, named like the CommissionReportLine fields."""

    agent_id: int
    agent_code: str
    agent_name: str
    transactions: int
    tax_collected: Decimal
    commission_earned: Decimal
    pending_amount: Decimal
    paid_amount: Decimal
    cancelled_amount: Decimal


@dataclass(frozen=True)
class CommissionFigures:
    currency: str
    totals: CommissionTotals
    agents: tuple[AgentCommissions, ...]


@dataclass(frozen=True)
class FiguresCheck:
    """One total against the sum of its parts; ``agents`` names the agents out of line."""

    name: str
    ok: bool
    total: Decimal
    parts: Decimal
    agents: tuple[str, ...] = ()


def commission_figures_checks(*, figures: CommissionFigures) -> tuple[FiguresCheck, ...]:
    """Every total against the sum of its parts."""
    totals, rows = figures.totals, figures.agents

    def over_agents(name: str) -> Decimal:
        return sum((Decimal(getattr(row, name)) for row in rows), start=Decimal(0))

    pairs = [
        (
            "pending + paid = total commissions",
            totals.commissions_total,
            totals.pending_amount + totals.paid_amount,
        ),
        ("agents' transactions = transactions", totals.transactions, over_agents("transactions")),
        (
            "agents' tax collected = tax collected",
            totals.tax_collected,
            over_agents("tax_collected"),
        ),
        (
            "agents' commissions earned = total commissions",
            totals.commissions_total,
            over_agents("commission_earned"),
        ),
        ("agents' pending = pending", totals.pending_amount, over_agents("pending_amount")),
        ("agents' paid = paid", totals.paid_amount, over_agents("paid_amount")),
        ("agents' cancelled = cancelled", totals.cancelled_amount, over_agents("cancelled_amount")),
    ]
    uneven = tuple(
        row.agent_code
        for row in rows
        if row.pending_amount + row.paid_amount != row.commission_earned
    )
    return (
        *(
            FiguresCheck(name=name, ok=total == parts, total=Decimal(total), parts=parts)
            for name, total, parts in pairs
        ),
        FiguresCheck(
            name="each agent's pending + paid = earned",
            ok=not uneven,
            total=over_agents("commission_earned"),
            parts=over_agents("pending_amount") + over_agents("paid_amount"),
            agents=uneven,
        ),
    )
