"""The commission report's reads: a month's figures from the payments, and a stored
report's figures read back."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from reporting.figures import AgentCommissions, CommissionTotals
from reporting.models import CommissionReport
from reporting.periods import period_bounds
from reporting.selectors import (
    commission_figures_select,
    commission_report_figures,
    commission_report_get,
    commission_report_recipients_plan,
)
from reporting.services import commission_report_send, commission_report_store
from tests.reporting.helpers import NOW, local, october_takings, takings, three_agents

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]

OCTOBER = period_bounds(year=2026, month=10)


@pytest.fixture
def agents(config):
    return three_agents()


@pytest.fixture
def october(agents):
    return october_takings(agents)


def october_figures():
    start, end = OCTOBER
    return commission_figures_select(start=start, end=end)


def test_figures_count_completed_payments_and_earned_commissions_only(clock, october):
    figures = october_figures()

    assert figures.currency == "MGA"
    assert figures.totals == CommissionTotals(
        transactions=3,
        voided_transactions=1,
        # 10,000 + 20,000 + 3,000: the voided 5,000 is not tax collected.
        tax_collected=Decimal("33000.00"),
        # 200 paid + 400 + 150 pending: the cancelled 100 is not part of the total.
        commissions_total=Decimal("750.00"),
        pending_count=2,
        pending_amount=Decimal("550.00"),
        paid_count=1,
        paid_amount=Decimal("200.00"),
        cancelled_count=1,
        cancelled_amount=Decimal("100.00"),
    )
    a, b = october["A"], october["B"]
    assert figures.agents == (
        AgentCommissions(
            agent_id=a.pk,
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
            agent_id=b.pk,
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


def test_the_month_runs_from_local_midnight_to_local_midnight(clock, agents):
    a = agents["A"]
    takings(a, local(2026, 10, 31, 23, 30), "100.00")
    takings(a, local(2026, 11, 1, 0, 30), "200.00")
    takings(a, local(2026, 10, 1, 0, 0), "400.00")
    takings(a, local(2026, 9, 30, 23, 59), "800.00")
    takings(a, local(2026, 11, 1, 0, 0), "1600.00")  # the end is excluded

    figures = october_figures()

    assert figures.totals.transactions == 2
    assert figures.totals.tax_collected == Decimal("500.00")
    assert [row.tax_collected for row in figures.agents] == [Decimal("500.00")]


def test_a_month_without_payments_has_zero_figures_with_cents(clock, config):
    start, end = period_bounds(year=2026, month=6)

    figures = commission_figures_select(start=start, end=end)

    assert figures.agents == ()
    assert figures.totals.tax_collected == Decimal("0.00")
    assert str(figures.totals.commissions_total) == "0.00"


def test_a_stored_report_reads_back_the_figures_it_was_made_from(clock, october):
    figures = october_figures()
    report, _ = commission_report_store(
        year=2026,
        month=10,
        trigger="manual",
        generated_at=timezone.now(),
        figures=figures,
        recipients=[],
    )

    assert commission_report_figures(report=report) == figures


def test_the_months_report_is_the_one_not_set_aside_as_a_duplicate(clock, october):
    figures = october_figures()

    def store(month: int, trigger: str = "manual"):
        report, _ = commission_report_store(
            year=2026,
            month=month,
            trigger=trigger,
            generated_at=timezone.now() + dt.timedelta(minutes=month),
            figures=figures,
            recipients=[],
        )
        return report

    assert commission_report_get(year=2026, month=10) is None
    october_report = store(10, trigger="task")
    september = store(9, trigger="beat")
    # What 0005 does to a second report of a month stored before the constraint.
    duplicate = CommissionReport.objects.create(
        **{
            field.name: getattr(october_report, field.name)
            for field in CommissionReport._meta.concrete_fields
            if field.name not in ("id", "duplicate_of")
        },
        duplicate_of=october_report,
    )

    assert commission_report_get(year=2026, month=10) == october_report
    assert commission_report_get(year=2026, month=9) == september
    assert duplicate.pk != october_report.pk


def test_the_plan_finds_the_months_deliveries_case_insensitively_latest_first(clock, october):
    figures = october_figures()
    report, first = commission_report_store(
        year=2026,
        month=10,
        trigger="beat",
        generated_at=timezone.now(),
        figures=figures,
        recipients=["Boss@Example.com", "zoe@example.com"],
    )
    again = commission_report_send(
        report=report,
        recipients=["boss@example.com"],
        trigger="manual",
        resend=True,
        requested_at=timezone.now() + dt.timedelta(hours=1),
    )

    plan = commission_report_recipients_plan(
        year=2026, month=10, addresses=["BOSS@example.com", "new@example.com", "New@example.com"]
    )
    september = commission_report_recipients_plan(year=2026, month=9, addresses=["zoe@example.com"])

    assert plan.addresses == ("BOSS@example.com", "new@example.com")
    assert plan.new == ("new@example.com",)
    [delivery] = plan.already_had
    assert (delivery.address, delivery.email_id, delivery.resend) == (
        "boss@example.com",
        again.email.pk,
        True,
    )
    assert first.email.pk != again.email.pk
    assert plan.send_to(resend=True) == plan.addresses
    assert plan.skipped(resend=True) == ()
    assert (september.new, september.already_had) == (("zoe@example.com",), ())
