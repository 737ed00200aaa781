"""Reads behind the commission report. Every figure is a database aggregate.

Payments count in the month of CashTransaction.created_at, commissions in the month of
Commission.created_at, over [start, end).
"""

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, Q, Sum, Value
from django.db.models.functions import Coalesce

from payments.models import (
    Agent,
    CashTransaction,
    Commission,
    CommissionStatus,
    TransactionStatus,
)

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
COMPLETED = Q(status=TransactionStatus.COMPLETED)
VOIDED = Q(status=TransactionStatus.VOIDED)
# "Total commissions" means earned: cancelled ones get their own line, never a share of it.
EARNED = Q(status__in=[CommissionStatus.PENDING, CommissionStatus.PAID])
PENDING = Q(status=CommissionStatus.PENDING)
PAID = Q(status=CommissionStatus.PAID)
CANCELLED = Q(status=CommissionStatus.CANCELLED)

AGENT_TRANSACTION_FIGURES = {"transactions": 0, "tax_collected": ZERO}
AGENT_COMMISSION_FIGURES = {
    "commission_earned": ZERO,
    "pending_amount": ZERO,
    "paid_amount": ZERO,
    "cancelled_amount": ZERO,
}


def _money(field: str, condition: Q) -> Coalesce:
    return Coalesce(
        Sum(field, filter=condition),
        Value(ZERO),
        output_field=DecimalField(max_digits=16, decimal_places=2),
    )


def _payments(*, start: dt.datetime, end: dt.datetime):
    return CashTransaction.objects.filter(created_at__gte=start, created_at__lt=end)


def _commissions(*, start: dt.datetime, end: dt.datetime):
    return Commission.objects.filter(created_at__gte=start, created_at__lt=end)


def commission_totals_select(*, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """Overall and by-status figures, named like the CommissionReport fields."""
    totals = _payments(start=start, end=end).aggregate(
        transactions=Count("pk", filter=COMPLETED),
        voided_transactions=Count("pk", filter=VOIDED),
        tax_collected=_money("tax_amount", COMPLETED),
    )
    totals.update(
        _commissions(start=start, end=end).aggregate(
            commissions_total=_money("amount", EARNED),
            pending_count=Count("pk", filter=PENDING),
            pending_amount=_money("amount", PENDING),
            paid_count=Count("pk", filter=PAID),
            paid_amount=_money("amount", PAID),
            cancelled_count=Count("pk", filter=CANCELLED),
            cancelled_amount=_money("amount", CANCELLED),
        )
    )
    return _with_cents(totals)


def commission_agent_rows_select(*, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """One row per agent with a payment or a commission in the period, by agent code,
    named like the CommissionReportLine fields.

    Payments and commissions are grouped separately: one query joining both to the agent
    would multiply each payment by the agent's commissions.
    """
    payments = {
        row.pop("agent"): row
        for row in _payments(start=start, end=end)
        .values("agent")
        .annotate(
            transactions=Count("pk", filter=COMPLETED),
            tax_collected=_money("tax_amount", COMPLETED),
        )
        .order_by()
    }
    commissions = {
        row.pop("agent"): row
        for row in _commissions(start=start, end=end)
        .values("agent")
        .annotate(
            commission_earned=_money("amount", EARNED),
            pending_amount=_money("amount", PENDING),
            paid_amount=_money("amount", PAID),
            cancelled_amount=_money("amount", CANCELLED),
        )
        .order_by()
    }
    agents = (
        Agent.objects.filter(pk__in=payments.keys() | commissions.keys())
        .order_by("code")
        .values("pk", "code", "full_name")
    )
    return [
        _with_cents(
            {
                "agent_id": agent["pk"],
                "agent_code": agent["code"],
                "agent_name": agent["full_name"],
                **AGENT_TRANSACTION_FIGURES,
                **payments.get(agent["pk"], {}),
                **AGENT_COMMISSION_FIGURES,
                **commissions.get(agent["pk"], {}),
            }
        )
        for agent in agents
    ]


def _with_cents(figures: dict[str, Any]) -> dict[str, Any]:
    """Give every amount the columns' two decimals: SQLite's SUM drops trailing zeros
    (162.5), and a report or CSV should read 162.50 whatever the database."""
    return {
        name: value.quantize(CENT) if isinstance(value, Decimal) else value
        for name, value in figures.items()
    }
