"""The commission report's writes: the report, its lines, its email and the log of who it
was sent to, stored together; one report per month, each recipient sent it once."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from mailing.addresses import InvalidEmailAddress
from mailing.delivery import email_deliver_now
from mailing.models import EmailMessage
from reporting.models import CommissionReport, CommissionReportDelivery, CommissionReportLine
from reporting.periods import period_bounds
from reporting.selectors import commission_figures_select
from reporting.services import commission_report_send, commission_report_store
from tests.mailing.outbox import outbox_deliver_queued
from tests.reporting.helpers import NOW, SUBJECT, october_takings, three_agents

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]


@pytest.fixture
def figures(config):
    october_takings(three_agents())
    start, end = period_bounds(year=2026, month=10)
    return commission_figures_select(start=start, end=end)


def send(report, recipients, *, resend=False):
    return commission_report_send(
        report=report,
        recipients=recipients,
        trigger="beat",
        resend=resend,
        requested_at=timezone.now(),
    )


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
        report, sending = store(figures)
    email = sending.email

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
    # Each recipient is logged with the email that carries the report.
    assert sending.new_recipients == ("chief@example.com",)
    assert sending.already_had == ()
    assert list(report.deliveries.values_list("address", "email", "trigger", "resend")) == [
        ("chief@example.com", email.pk, "manual", False)
    ]
    # Nothing leaves before the commit; then the worker it woke delivers it.
    assert len(callbacks) == 1
    assert mailoutbox == []
    outbox_deliver_queued()
    [message] = mailoutbox
    assert message.subject == SUBJECT


def test_without_recipients_the_report_is_stored_and_no_email_is_queued(clock, figures):
    report, sending = store(figures, recipients=[])

    assert sending.email is None
    assert not report.deliveries.exists()
    assert report.recipients == []
    assert report.lines.count() == 2
    assert not EmailMessage.objects.exists()


def test_a_bad_recipient_stores_nothing(clock, figures):
    with pytest.raises(InvalidEmailAddress):
        store(figures, recipients=["chief@example.com", "not-an-email"])

    assert not CommissionReport.objects.exists()
    assert not CommissionReportLine.objects.exists()
    assert not EmailMessage.objects.exists()


@pytest.mark.parametrize("second_trigger", ["beat", "manual", "task", "manual-enqueue"])
def test_a_second_report_of_a_month_is_refused_whatever_the_trigger(clock, figures, second_trigger):
    first, _ = store(figures, trigger="manual")

    with pytest.raises(IntegrityError):
        store(figures, trigger=second_trigger)

    assert list(CommissionReport.objects.values_list("pk", flat=True)) == [first.pk]
    assert EmailMessage.objects.count() == 1
    assert CommissionReportDelivery.objects.count() == 1


def test_sending_a_stored_report_again_skips_whoever_had_it_and_adds_the_others(
    clock, figures, mailoutbox, django_capture_on_commit_callbacks
):
    report, first = store(figures, recipients=["chief@example.com"])

    with django_capture_on_commit_callbacks(execute=True):
        sending = send(report, ["CHIEF@example.com", "zoe@example.com", "zoe@example.com"])
    email_deliver_now(email_id=sending.email.pk)

    assert sending.new_recipients == ("zoe@example.com",)
    assert [delivery.address for delivery in sending.already_had] == ["chief@example.com"]
    assert sending.email.recipients == ["zoe@example.com"]
    assert list(
        report.deliveries.order_by("pk").values_list("address", "email", "trigger", "resend")
    ) == [
        ("chief@example.com", first.email.pk, "manual", False),
        ("zoe@example.com", sending.email.pk, "beat", False),
    ]
    # The stored figures, not today's, go out again.
    assert sending.email.subject == SUBJECT
    assert [message.to for message in mailoutbox] == [["zoe@example.com"]]


def test_sending_to_recipients_that_all_had_it_queues_nothing(clock, figures):
    report, first = store(figures, recipients=["chief@example.com"])

    sending = send(report, ["chief@example.com"])

    assert sending.email is None
    assert sending.new_recipients == ()
    assert [delivery.email_id for delivery in sending.already_had] == [first.email.pk]
    assert EmailMessage.objects.count() == 1
    assert CommissionReportDelivery.objects.count() == 1


def test_a_resend_goes_to_everyone_again_and_is_logged_as_such(clock, figures):
    report, _ = store(figures, recipients=["chief@example.com"])

    sending = send(report, ["chief@example.com", "zoe@example.com"], resend=True)

    assert sending.new_recipients == ("chief@example.com", "zoe@example.com")
    assert sending.already_had == ()
    assert sending.email.recipients == ["chief@example.com", "zoe@example.com"]
    assert list(report.deliveries.order_by("pk").values_list("address", "resend")) == [
        ("chief@example.com", False),
        ("chief@example.com", True),
        ("zoe@example.com", False),
    ]


def test_the_log_refuses_a_second_plain_delivery_to_one_address(clock, figures):
    report, first = store(figures, recipients=["chief@example.com"])

    with pytest.raises(IntegrityError), transaction.atomic():
        CommissionReportDelivery.objects.create(
            report=report,
            address="Chief@Example.com",
            email=first.email,
            trigger="manual",
            requested_at=timezone.now(),
        )
    assert report.deliveries.count() == 1


def test_a_bad_recipient_sends_nothing_and_logs_nothing(clock, figures):
    report, _ = store(figures, recipients=["chief@example.com"])

    with pytest.raises(InvalidEmailAddress):
        send(report, ["zoe@example.com", "not-an-email"])

    assert EmailMessage.objects.count() == 1
    assert report.deliveries.count() == 1
