"""The commission report's write: the report, its lines and its email stored together."""

import pytest
from django.db import IntegrityError
from django.utils import timezone

from mailing.addresses import InvalidEmailAddress
from mailing.models import EmailMessage
from reporting.models import CommissionReport, CommissionReportLine
from reporting.periods import period_bounds
from reporting.selectors import commission_figures_select
from reporting.services import commission_report_store
from tests.reporting.helpers import NOW, SUBJECT, october_takings, three_agents

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]


@pytest.fixture
def figures(config):
    october_takings(three_agents())
    start, end = period_bounds(year=2026, month=10)
    return commission_figures_select(start=start, end=end)


def store(figures, *, trigger="manual", recipients=("chief@example.com",)):
    return commission_report_store(
        year=2026,
        month=10,
        trigger=trigger,
        generated_at=timezone.now(),
        figures=figures,
        recipients=list(recipients),
    )


def test_the_report_its_lines_and_its_email_are_stored_together(
    clock, figures, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        report, email = store(figures)

    assert (report.year, report.month, report.trigger, report.currency) == (
        2026,
        10,
        "manual",
        "MGA",
    )
    assert report.generated_at == NOW
    assert report.recipients == ["chief@example.com"]
    assert report.commissions_total == figures.totals.commissions_total
    assert list(report.lines.values_list("agent_id", "agent_code", "commission_earned")) == [
        (row.agent_id, row.agent_code, row.commission_earned) for row in figures.agents
    ]
    assert (email.purpose, email.about, email.subject_type, email.subject_id) == (
        "commission_report",
        "2026-10",
        "reporting.commissionreport",
        str(report.pk),
    )
    # The subject comes from its template, in the email language.
    assert email.subject == SUBJECT
    assert email.recipients == ["chief@example.com"]
    assert [attachment["filename"] for attachment in email.attachments] == [
        "commission-report-2026-10.csv"
    ]
    # Delivery waits for the commit.
    assert len(callbacks) == 1
    [message] = mailoutbox
    assert message.subject == SUBJECT


def test_without_recipients_the_report_is_stored_and_no_email_is_queued(clock, figures):
    report, email = store(figures, recipients=[])

    assert email is None
    assert report.recipients == []
    assert report.lines.count() == 2
    assert not EmailMessage.objects.exists()


def test_a_bad_recipient_stores_nothing(clock, figures):
    with pytest.raises(InvalidEmailAddress):
        store(figures, recipients=["chief@example.com", "not-an-email"])

    assert not CommissionReport.objects.exists()
    assert not CommissionReportLine.objects.exists()
    assert not EmailMessage.objects.exists()


def test_a_second_scheduled_report_of_a_month_is_refused_and_leaves_the_first(clock, figures):
    first, _ = store(figures, trigger="beat")

    with pytest.raises(IntegrityError):
        store(figures, trigger="beat")

    assert list(CommissionReport.objects.values_list("pk", flat=True)) == [first.pk]
    assert EmailMessage.objects.count() == 1
    # Manual runs may report the same month again.
    store(figures, trigger="manual")
    assert CommissionReport.objects.count() == 2
