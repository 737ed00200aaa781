"""Runs of the commission report racing on real PostgreSQL connections, without the
operation's advisory lock (a run that skips it, or a second machine's cron): the month's
unique constraint and the report row's lock are the last word. Each thread has its own
connection, and these tests commit for real."""

import threading
import time

import pytest
from django.utils import timezone

import reporting.services
from mailing.models import EmailMessage
from reporting.models import CommissionReport, CommissionReportDelivery
from reporting.services import commission_report_send
from tasks.operations import generate_commission_report as operation
from tasks.results import Trigger
from tests.concurrency import run_together
from tests.reporting.helpers import NOW, october_takings, report_staff, three_agents

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.frozen_at(NOW, tick=True)]


@pytest.fixture
def october(clock, config):
    october_takings(three_agents())
    return report_staff()


@pytest.fixture
def slow_queueing(monkeypatch):
    """Hold each run inside its transaction for a moment after queueing its email, so the
    racing runs overlap there."""
    real = reporting.services.email_queue

    def slow(**kwargs):
        email = real(**kwargs)
        time.sleep(0.3)
        return email

    monkeypatch.setattr(reporting.services, "email_queue", slow)


@pytest.fixture
def blind_first_look(monkeypatch):
    """Both runs look for the month's report before either stored it."""
    real = operation.commission_report_get
    barrier = threading.Barrier(2)
    looked = threading.local()

    def lookup(**kwargs):
        if not getattr(looked, "once", False):
            looked.once = True
            barrier.wait(timeout=10)
            return None
        return real(**kwargs)

    monkeypatch.setattr(operation, "commission_report_get", lookup)


def report_run(trigger: Trigger, **arguments):
    def run():
        options = operation.OPERATION.parse(year=2026, month=10, **arguments)
        return operation.OPERATION.run(options=options, trigger=trigger)

    return run


def deliveries() -> list[tuple[str, str]]:
    return sorted(CommissionReportDelivery.objects.values_list("address", "trigger"))


def test_two_runs_racing_to_store_the_month_store_one_report_and_each_sends_its_own(
    october, slow_queueing, blind_first_look
):
    outcomes = run_together(
        report_run(Trigger.BEAT), report_run(Trigger.TASK, email="chief@example.com")
    )

    assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
    scheduled, chief = (result for _, result in outcomes)
    [report] = CommissionReport.objects.all()
    assert scheduled.report_id == chief.report_id == report.pk
    # One stored it; the other lost on the unique constraint and reused it.
    assert sorted([scheduled.already_generated, chief.already_generated]) == [False, True]
    assert scheduled.new_recipients == tuple(october)
    assert chief.new_recipients == ("chief@example.com",)
    assert deliveries() == [
        ("boss@example.com", "beat"),
        ("chief@example.com", "task"),
        ("zoe@example.com", "beat"),
    ]
    assert sorted(EmailMessage.objects.values_list("recipients", flat=True)) == [
        october,
        ["chief@example.com"],
    ]


def test_a_redelivery_running_beside_the_first_run_sends_nothing_twice(
    october, slow_queueing, blind_first_look
):
    outcomes = run_together(report_run(Trigger.BEAT), report_run(Trigger.BEAT))

    assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
    results = [result for _, result in outcomes]
    assert sorted(result.new_recipients for result in results) == [(), tuple(october)]
    assert CommissionReport.objects.count() == 1
    assert EmailMessage.objects.count() == 1
    assert deliveries() == [("boss@example.com", "beat"), ("zoe@example.com", "beat")]


def test_two_sends_of_the_stored_report_at_once_queue_one_email(october, slow_queueing):
    report_run(Trigger.MANUAL, email="chief@example.com")()
    report = CommissionReport.objects.get()

    def send():
        return commission_report_send(
            report=report,
            recipients=october,
            trigger="beat",
            resend=False,
            requested_at=timezone.now(),
        )

    outcomes = run_together(send, send)

    # The second waits on the report's row lock, then finds the first one's log.
    assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
    sendings = [sending for _, sending in outcomes]
    assert sorted(sending.new_recipients for sending in sendings) == [(), tuple(october)]
    assert EmailMessage.objects.count() == 2
    assert deliveries() == [
        ("boss@example.com", "beat"),
        ("chief@example.com", "manual"),
        ("zoe@example.com", "beat"),
    ]
