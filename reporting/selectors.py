"""Reads behind the commission report. Every figure is a database aggregate.

Payments count in the month of CashTransaction.created_at, commissions in the month of
Commission.created_at, over [start, end).
"""

import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, DecimalField, Q, Sum, Value
from django.db.models.functions import Coalesce, Lower

from payments.models import (
    Agent,
    CashTransaction,
    Commission,
    CommissionStatus,
    SystemConfiguration,
    TransactionStatus,
)
from reporting.figures import AgentCommissions, CommissionFigures, CommissionTotals
from reporting.models import CommissionReport, CommissionReportDelivery

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


def commission_figures_select(*, start: dt.datetime, end: dt.datetime) -> CommissionFigures:
    """The figures of [start, end) in the configured currency, the totals and their parts
    read from one snapshot."""
    currency = SystemConfiguration.load().currency_code
    with _one_snapshot():
        totals = commission_totals_select(start=start, end=end)
        agents = commission_agent_rows_select(start=start, end=end)
    return CommissionFigures(currency=currency, totals=totals, agents=tuple(agents))


def commission_report_get(*, year: int, month: int) -> CommissionReport | None:
    """The month's report, whoever stored it (never a duplicate set aside by 0005)."""
    return CommissionReport.objects.filter(year=year, month=month, duplicate_of=None).first()


@dataclass(frozen=True)
class RecipientsPlan:
    """A run's recipients (each mailbox once, in order) against the month's delivery log:
    ``new`` never had the report, ``already_had`` holds the latest delivery to each of the
    others."""

    addresses: tuple[str, ...]
    new: tuple[str, ...]
    already_had: tuple[CommissionReportDelivery, ...]

    def send_to(self, *, resend: bool) -> tuple[str, ...]:
        """Those a run sends the report to: the new ones, or with ``resend`` all of them."""
        return self.addresses if resend else self.new

    def skipped(self, *, resend: bool) -> tuple[CommissionReportDelivery, ...]:
        """Those a run does not send it to because they had it."""
        return () if resend else self.already_had


def commission_report_recipients_plan(
    *, year: int, month: int, addresses: Iterable[str]
) -> RecipientsPlan:
    """Split ``addresses`` into those the month's report was never sent to and those it
    was. Addresses compare case-insensitively, as the log's constraint does; deliveries of
    a duplicate count, since they carried that month's report too."""
    unique: dict[str, str] = {}
    for address in addresses:
        unique.setdefault(address.lower(), address)
    latest: dict[str, CommissionReportDelivery] = {}
    deliveries = (
        CommissionReportDelivery.objects.filter(report__year=year, report__month=month)
        .annotate(folded=Lower("address"))
        .filter(folded__in=list(unique))
        .select_related("email")
        .order_by("-requested_at", "-pk")
    )
    for delivery in deliveries if unique else ():
        latest.setdefault(delivery.address.lower(), delivery)
    return RecipientsPlan(
        addresses=tuple(unique.values()),
        new=tuple(address for folded, address in unique.items() if folded not in latest),
        already_had=tuple(latest[folded] for folded in unique if folded in latest),
    )


def commission_report_figures(*, report: CommissionReport) -> CommissionFigures:
    """A stored report's figures, as they were emailed."""
    totals = {item.name: getattr(report, item.name) for item in fields(CommissionTotals)}
    columns = [item.name for item in fields(AgentCommissions)]
    rows = report.lines.order_by("agent_code").values(*columns)
    return CommissionFigures(
        currency=report.currency,
        totals=CommissionTotals(**totals),
        agents=tuple(AgentCommissions(**row) for row in rows),
    )


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """Read the totals and their parts from one snapshot, so that a payment voided or a
    commission paid while the report runs cannot make them disagree."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def commission_totals_select(*, start: dt.datetime, end: dt.datetime) -> CommissionTotals:
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
    return CommissionTotals(**_with_cents(totals))


def commission_agent_rows_select(*, start: dt.datetime, end: dt.datetime) -> list[AgentCommissions]:
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
        AgentCommissions(
            **_with_cents(
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
