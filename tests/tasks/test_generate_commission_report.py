"""generate_commission_report, the operation and its command: which month, what is stored,
sent and printed, how one report per month reaches each recipient once whoever runs it
(redelivered, hijacked, racing or resent), and the result's JSON. Data goes
through the real services."""

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.db.models import Sum

import reporting.selectors
from mailing.delivery import outbox_sweep
from mailing.models import EmailMessage
from mailing.selectors import EmailOutcomes
from payments.models import Commission
from payments.services import commissions_mark_paid
from reporting.models import CommissionReport, CommissionReportDelivery, CommissionReportLine
from tasks.inputs import InvalidInput
from tasks.operations import generate_commission_report as operation
from tasks.results import OperationStatus, Trigger, result_json
from tasks.tasks import generate_commission_report
from tests.factories import StaffUserFactory
from tests.mailing.outbox import outbox_deliver_queued
from tests.reporting.helpers import (
    CSV_HEADER,
    NOW,
    SUBJECT,
    local,
    october_takings,
    report_staff,
    takings,
    three_agents,
)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]

PROJECT_DIR = Path(settings.BASE_DIR)
COMMAND = "generate_commission_report"
UTC = dt.UTC


@pytest.fixture
def agents(config):
    return three_agents()


@pytest.fixture
def october(agents):
    return october_takings(agents)


@pytest.fixture
def staff():
    return report_staff()


@pytest.fixture
def run_json(run_command):
    def run(*args: str) -> dict:
        return json.loads(run_command(COMMAND, "--json", *args).stdout)

    return run


def report_run(trigger: Trigger = Trigger.MANUAL, **arguments) -> operation.CommissionReportResult:
    """The operation as a door runs it: its arguments checked, then the run."""
    return operation.OPERATION.run(options=operation.OPERATION.parse(**arguments), trigger=trigger)


def nothing_written() -> bool:
    return not (
        CommissionReport.objects.exists()
        or CommissionReportLine.objects.exists()
        or EmailMessage.objects.exists()
    )


def csv_rows(message) -> list[list[str]]:
    [(filename, content, mimetype)] = message.attachments
    assert (filename, mimetype) == ("commission-report-2026-10.csv", "text/csv")
    return list(csv.reader(io.StringIO(content)))


# What is counted --------------------------------------------------------------------------


def test_totals_count_completed_payments_and_earned_commissions_only(clock, october, staff):
    summary = result_json(report_run(dry_run=True))

    assert summary["status"] == "ok"
    assert (summary["period"], summary["period_label"]) == ("2026-10", "October 2026")
    assert summary["totals"] == {
        "transactions": 3,
        "voided_transactions": 1,
        # 10,000 + 20,000 + 3,000: the voided 5,000 is not tax collected.
        "tax_collected": "33000.00",
        # 200 paid + 400 + 150 pending: the cancelled 100 is not part of the total.
        "commissions_total": "750.00",
    }
    assert summary["by_status"] == {
        "pending": {"count": 2, "amount": "550.00"},
        "paid": {"count": 1, "amount": "200.00"},
        "cancelled": {"count": 1, "amount": "100.00"},
    }
    assert summary["agents"] == [
        {
            "agent": "AG0001",
            "agent_name": "Hery Rakoto",
            "transactions": 2,
            "tax_collected": "30000.00",
            "commission_earned": "600.00",
            "pending_amount": "400.00",
            "paid_amount": "200.00",
            "cancelled_amount": "100.00",
        },
        {
            "agent": "AG0002",
            "agent_name": "Voahirana Rabe",
            "transactions": 1,
            "tax_collected": "3000.00",
            "commission_earned": "150.00",
            "pending_amount": "150.00",
            "paid_amount": "0.00",
            "cancelled_amount": "0.00",
        },
    ]


def test_month_boundaries_are_local_midnights_not_utc_ones(clock, agents):
    a = agents["A"]
    [last_evening] = takings(a, local(2026, 10, 31, 23, 30), "100.00")
    [next_month] = takings(a, local(2026, 11, 1, 0, 30), "200.00")
    [first_minute] = takings(a, local(2026, 10, 1, 0, 0), "400.00")
    [month_before] = takings(a, local(2026, 9, 30, 23, 59), "800.00")
    takings(a, local(2026, 11, 1, 0, 0), "1600.00")  # the end is excluded
    # In UTC the first two both fall on 31 October, and the last one in October.
    assert last_evening.created_at.astimezone(UTC) == dt.datetime(2026, 10, 31, 20, 30, tzinfo=UTC)
    assert next_month.created_at.astimezone(UTC) == dt.datetime(2026, 10, 31, 21, 30, tzinfo=UTC)
    assert month_before.created_at.astimezone(UTC) == dt.datetime(2026, 9, 30, 20, 59, tzinfo=UTC)

    summary = result_json(report_run(year=2026, month=10, dry_run=True))

    assert summary["totals"]["transactions"] == 2
    assert summary["totals"]["tax_collected"] == "500.00"  # 100 + 400: 23:30 and 00:00 local
    assert summary["totals"]["commissions_total"] == "10.00"
    assert first_minute.created_at == local(2026, 10, 1, 0, 0)
    assert summary["period_start"] == "2026-10-01T00:00:00+03:00"
    assert summary["period_end"] == "2026-11-01T00:00:00+03:00"


def test_stored_totals_reconcile_with_their_parts(clock, october, staff):
    result = report_run()

    report = CommissionReport.objects.get(pk=result.report_id)
    lines = report.lines.aggregate(
        transactions=Sum("transactions"),
        tax_collected=Sum("tax_collected"),
        earned=Sum("commission_earned"),
        pending=Sum("pending_amount"),
        paid=Sum("paid_amount"),
        cancelled=Sum("cancelled_amount"),
    )
    assert lines == {
        "transactions": report.transactions,
        "tax_collected": report.tax_collected,
        "earned": report.commissions_total,
        "pending": report.pending_amount,
        "paid": report.paid_amount,
        "cancelled": report.cancelled_amount,
    }
    assert report.pending_amount + report.paid_amount == report.commissions_total
    for line in report.lines.all():
        assert line.pending_amount + line.paid_amount == line.commission_earned
    assert result.checks and all(check.ok for check in result.checks)


def test_a_report_that_does_not_add_up_fails_and_stores_and_sends_nothing(
    clock, october, staff, monkeypatch, mailoutbox, run_command
):
    real_rows = reporting.selectors.commission_agent_rows_select
    monkeypatch.setattr(
        reporting.selectors,
        "commission_agent_rows_select",
        lambda **kwargs: real_rows(**kwargs)[1:],  # AG0001's row goes missing
    )

    run = run_command(COMMAND, expect_exit=1)

    error = run.stderr.removeprefix("CommandError: ")
    assert error.startswith("The October 2026 report does not add up (")
    assert "agents' tax collected = tax collected" in error
    assert "nothing was stored or sent" in error
    assert (
        "Check failed: agents' tax collected = tax collected (total 33000.00, parts 3000.00)"
        in run.stdout
    )
    assert nothing_written()
    assert mailoutbox == []


def test_a_month_without_payments_gives_a_zero_report_that_still_adds_up(
    clock, staff, config, run_json
):
    summary = run_json("--month", "6")

    assert summary["status"] == "ok"
    assert summary["period"] == "2026-06"
    assert summary["totals"] == {
        "transactions": 0,
        "voided_transactions": 0,
        "tax_collected": "0.00",
        "commissions_total": "0.00",
    }
    assert summary["agents"] == []
    assert all(check["ok"] for check in summary["checks"])
    assert CommissionReport.objects.get().lines.count() == 0


# Which month ------------------------------------------------------------------------------


def test_a_run_in_january_reports_december_of_the_previous_year(agents, staff, run_json):
    takings(agents["A"], local(2026, 12, 31, 23, 0), "1000.00")
    takings(agents["A"], local(2027, 1, 2, 10, 0), "9000.00")

    with time_machine.travel(local(2027, 1, 15, 9, 0), tick=False):
        summary = run_json()

    assert (summary["period"], summary["period_label"]) == ("2026-12", "December 2026")
    assert summary["totals"]["tax_collected"] == "1000.00"
    report = CommissionReport.objects.get()
    assert (report.year, report.month) == (2026, 12)


def test_just_after_local_midnight_on_the_first_the_month_is_complete_while_utc_is_not(
    agents, run_json
):
    # 00:30 local on 1 November is still 31 October in UTC.
    with time_machine.travel(local(2026, 11, 1, 0, 30), tick=False):
        assert run_json("--dry-run")["period"] == "2026-10"
        assert run_json("--dry-run", "--month", "10")["period"] == "2026-10"


def test_month_alone_reports_that_month_of_the_current_year(clock, config, run_json):
    summary = run_json("--dry-run", "--month", "3")
    assert (summary["period"], summary["period_label"]) == ("2026-03", "March 2026")


def test_month_and_year_report_that_month(clock, agents, run_json):
    takings(agents["A"], local(2025, 7, 14, 9, 0), "2500.00")
    summary = run_json("--dry-run", "--month", "7", "--year", "2025")
    assert summary["period"] == "2025-07"
    assert summary["totals"]["tax_collected"] == "2500.00"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "0"], "The month must be between 1 and 12 (got 0)."),
        (["--month", "13"], "The month must be between 1 and 12 (got 13)."),
        (["--month", "5", "--year", "1999"], "The year must be between 2000 and 2026 (got 1999)."),
        (["--month", "1", "--year", "2027"], "The year must be between 2000 and 2026 (got 2027)."),
        (
            ["--month", "11"],
            "November 2026 has not ended yet; the latest complete month is October 2026.",
        ),
        (["--month", "12", "--year", "2026"], "December 2026 has not ended yet;"),
        (["--year", "2026"], "A year (2026) was given without a month: give the month too"),
        (["--email", "not-an-email"], "--email: 'not-an-email' is not a valid email address."),
        (["--email", ""], "--email: '' is not a valid email address."),
        (["--month", "ten"], "Error: argument --month: invalid int value: 'ten'"),
        (["--bogus"], "Error: unrecognized arguments: --bogus"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    clock, october, staff, args, message, mailoutbox, run_command
):
    run = run_command(COMMAND, *args, expect_exit=2)

    assert run.stderr.startswith(f"CommandError: {message}")
    assert run.stderr.count("\n") == 1
    assert run.stdout == ""
    assert nothing_written()
    assert mailoutbox == []


def test_a_bad_period_given_to_the_task_fails_with_the_same_sentence(clock, config):
    with pytest.raises(InvalidInput, match=r"^The month must be between 1 and 12 \(got 13\)\.$"):
        generate_commission_report(year=2026, month=13, trigger="beat")

    assert nothing_written()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"month": "10"}, "--month must be a whole number, not '10'."),
        ({"month": 10, "year": 2026.0}, "--year must be a whole number, not 2026.0."),
        ({"month": True}, "--month must be a whole number, not True."),
        ({"dry_run": "yes"}, "dry_run must be true or false, not 'yes'."),
        ({"email": ["a@example.com"]}, "--email must be an email address, not ['a@example.com']."),
    ],
)
def test_arguments_of_the_wrong_type_are_refused_before_anything_runs(
    clock, config, arguments, message
):
    with pytest.raises(InvalidInput) as info:
        generate_commission_report(**arguments)

    assert str(info.value) == message
    assert nothing_written()


# What is stored, sent and printed ---------------------------------------------------------


def test_a_run_stores_the_report_and_emails_it_to_active_staff_with_an_address(
    clock, october, staff, mailoutbox, run_json
):
    summary = run_json()

    assert summary["status"] == "ok"
    assert summary["recipients"] == staff
    report = CommissionReport.objects.get()
    assert summary["report_id"] == report.pk
    assert (report.year, report.month, report.trigger) == (2026, 10, "manual")
    assert report.generated_at == NOW
    assert report.currency == "MGA"
    assert report.recipients == staff
    assert (report.transactions, report.voided_transactions) == (3, 1)
    assert (report.tax_collected, report.commissions_total) == (
        Decimal("33000.00"),
        Decimal("750.00"),
    )
    assert (report.pending_count, report.pending_amount) == (2, Decimal("550.00"))
    assert (report.paid_count, report.paid_amount) == (1, Decimal("200.00"))
    assert (report.cancelled_count, report.cancelled_amount) == (1, Decimal("100.00"))
    assert list(
        report.lines.values_list("agent__code", "agent_name", "transactions", "commission_earned")
    ) == [
        ("AG0001", "Hery Rakoto", 2, Decimal("600.00")),
        ("AG0002", "Voahirana Rabe", 1, Decimal("150.00")),
    ]

    [email] = EmailMessage.objects.all()
    assert (email.purpose, email.about, email.subject_id) == (
        "commission_report",
        "2026-10",
        str(report.pk),
    )
    [message] = mailoutbox
    assert message.to == staff
    assert message.subject == SUBJECT


def test_the_email_has_text_html_and_a_csv_row_per_agent(
    clock, october, staff, mailoutbox, run_command
):
    run_command(COMMAND, "--email", "  chief@example.com ")

    [message] = mailoutbox
    assert message.subject == SUBJECT
    assert message.to == ["chief@example.com"]

    text = message.body
    assert "Period: 1 October 2026 to 31 October 2026 inclusive, local time" in text
    assert "(Indian/Antananarivo)" in text
    assert "Generated: 2026-11-02 09:00" in text
    assert "Transactions (completed payments): 3" in text
    assert "Voided payments (not counted): 1" in text
    assert "Tax collected: 33,000.00 MGA" in text
    assert "Total commissions (earned = pending + paid): 750.00 MGA" in text
    assert "Pending: 2 commissions, 550.00 MGA" in text
    assert "Paid: 1 commission, 200.00 MGA" in text
    assert "Cancelled: 1 commission, 100.00 MGA" in text
    assert "AG0001 Hery Rakoto" in text
    assert "Commission earned: 600.00 MGA (pending 400.00 MGA, paid 200.00 MGA)" in text
    assert "&" not in text and "<" not in text

    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert "<h2" in html and SUBJECT in html
    assert "<td>AG0002</td><td>Voahirana Rabe</td>" in html
    assert "<strong>750.00 MGA</strong>" in html

    assert csv_rows(message) == [
        CSV_HEADER,
        ["AG0001", "Hery Rakoto", "2", "30000.00", "600.00", "400.00", "200.00", "100.00"],
        ["AG0002", "Voahirana Rabe", "1", "3000.00", "150.00", "150.00", "0.00", "0.00"],
    ]


def test_email_option_sends_to_that_address_only(clock, october, staff, mailoutbox, run_json):
    summary = run_json("--email", "chief@example.com")

    assert summary["recipients"] == ["chief@example.com"]
    assert CommissionReport.objects.get().recipients == ["chief@example.com"]
    assert [message.to for message in mailoutbox] == [["chief@example.com"]]


def test_without_recipients_the_report_is_stored_with_a_clear_warning(
    clock, october, mailoutbox, run_command, django_capture_on_commit_callbacks
):
    StaffUserFactory(username="nomail", email="")

    output = run_command(COMMAND).stdout
    with django_capture_on_commit_callbacks(execute=True):
        result = report_run()

    assert "Nobody to send the report to: no --email was given and no active staff user" in (output)
    assert "The report was stored but not emailed." in output
    assert result.status == OperationStatus.OK
    assert result.recipients == ()
    assert result.emails == EmailOutcomes()
    # The second run reuses the month's report.
    assert result.already_generated is True
    assert result.warning == (
        "Nobody to send the report to: no --email was given and no active staff user has an "
        "email address. The report was not emailed."
    )
    report = CommissionReport.objects.get()
    assert report.recipients == []
    assert not report.deliveries.exists()
    assert not EmailMessage.objects.exists()
    assert mailoutbox == []


def test_dry_run_prints_the_report_and_stores_and_sends_nothing(
    clock, october, staff, mailoutbox, run_command
):
    output = run_command(COMMAND, "--dry-run").stdout

    assert "Dry run: nothing will be stored or sent." in output
    assert "33,000.00 MGA" in output
    assert "Would email: boss@example.com, zoe@example.com. Nothing was stored or sent." in output
    assert nothing_written()
    assert mailoutbox == []


def test_the_printed_report_shows_overall_status_and_agent_tables(
    clock, october, staff, run_command
):
    output = run_command(COMMAND).stdout

    lines = output.splitlines()
    assert lines[0] == SUBJECT
    assert lines[1] == (
        "Period 2026-10-01 00:00 to 2026-11-01 00:00 (Indian/Antananarivo), end excluded"
    )
    assert lines[3:8] == [
        "Overall",
        "  Transactions (completed)                        3",
        "  Voided (not counted)                            1",
        "  Tax collected                       33,000.00 MGA",
        "  Total commissions (pending + paid)     750.00 MGA",
    ]
    assert "  Status     Count      Amount" in lines
    assert "  Pending        2  550.00 MGA" in lines
    assert "  Paid           1  200.00 MGA" in lines
    assert "  Cancelled      1  100.00 MGA" in lines
    by_agent = lines.index("By agent")
    assert [line.split() for line in lines[by_agent + 1 : by_agent + 4]] == [
        "Agent Name Transactions Tax collected Earned Pending Paid Cancelled".split(),
        "AG0001 Hery Rakoto 2 30,000.00 MGA 600.00 MGA 400.00 MGA 200.00 MGA 100.00 MGA".split(),
        "AG0002 Voahirana Rabe 1 3,000.00 MGA 150.00 MGA 150.00 MGA 0.00 MGA 0.00 MGA".split(),
    ]
    # Amounts line up on the right.
    assert lines[by_agent + 2].endswith(
        "30,000.00 MGA  600.00 MGA  400.00 MGA  200.00 MGA  100.00 MGA"
    )
    assert lines[by_agent + 3].endswith(
        " 3,000.00 MGA  150.00 MGA  150.00 MGA    0.00 MGA    0.00 MGA"
    )
    assert "Checks: all 8 totals reconcile with their parts." in lines
    report = CommissionReport.objects.get()
    # Still queued: the locmem server sees the message after the test's own commit.
    assert lines[-1] == (
        f"Report #{report.pk} stored; email to boss@example.com, zoe@example.com: queued (1)"
    )


def test_json_output_parses_with_amounts_as_strings(clock, october, staff, run_json):
    summary = run_json("--month", "10", "--year", "2026")

    assert summary["operation"] == "generate_commission_report"
    assert summary["trigger"] == "manual"
    assert summary["dry_run"] is False
    assert summary["already_generated"] is False
    assert summary["time_zone"] == "Indian/Antananarivo"
    assert summary["generated_at"] == "2026-11-02T09:00:00+03:00"
    assert summary["currency"] == "MGA"
    assert isinstance(summary["totals"]["tax_collected"], str)
    assert {row["agent"] for row in summary["agents"]} == {"AG0001", "AG0002"}
    assert summary["emails"] == {"queued": 1, "sending": 0, "sent": 0, "failed": 0}
    assert "warning" not in summary and "message" not in summary
    assert all(set(check) == {"check", "ok", "total", "parts"} for check in summary["checks"])


def test_help_lists_the_options_and_the_exit_codes():
    env = {**os.environ, "DJANGO_ENV": "test"}
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "manage.py", "generate_commission_report", "--help"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    for option in (
        "--month MONTH",
        "--year YEAR",
        "--email EMAIL",
        "--dry-run",
        "--resend",
        "--json",
        "--enqueue",
    ):
        assert option in result.stdout
    assert "Month to report on, 1-12. Defaults to the previous month." in " ".join(
        result.stdout.split()
    )
    assert "exit codes:" in result.stdout
    assert "2  bad input: nothing was run or written" in result.stdout
    assert "4  another run of this operation is already in progress" in result.stdout


def test_enqueue_sends_the_resolved_period_to_the_broker(clock, config, monkeypatch, run_command):
    sent = {}

    class Result:
        id = "task-1"

    def apply_async(*, kwargs, retry):
        sent.update(kwargs)
        return Result()

    monkeypatch.setattr(generate_commission_report, "apply_async", apply_async)

    output = run_command(COMMAND, "--enqueue", "--email", "chief@example.com", "--resend").stdout

    assert sent["year"] == 2026 and sent["month"] == 10
    assert (sent["email"], sent["dry_run"], sent["resend"]) == ("chief@example.com", False, True)
    assert sent["trigger"] == "manual-enqueue"
    assert "task-1" in output
    assert nothing_written()


# One report per month, each recipient sent it once -----------------------------------------


def task_run(**kwargs) -> dict:
    """The task as a worker runs it from a message (Flower, beat, a redelivery): the same
    kwargs, eagerly, raising what the worker would record as a FAILURE."""
    return generate_commission_report.apply(kwargs=kwargs).get()


@pytest.fixture
def run_task(django_capture_on_commit_callbacks):
    """``task_run`` committed, then its mail delivered by the worker it woke."""

    def run(**kwargs) -> dict:
        with django_capture_on_commit_callbacks(execute=True):
            summary = task_run(**kwargs)
        outbox_deliver_queued()
        return summary

    return run


def deliveries() -> list[tuple[str, str, bool]]:
    return list(
        CommissionReportDelivery.objects.order_by("pk").values_list("address", "trigger", "resend")
    )


def earlier(address: str, email: EmailMessage, trigger: str) -> dict:
    return {
        "address": address,
        "email_id": email.pk,
        "email_status": email.status,
        "requested_at": "2026-11-02T09:00:00+03:00",
        "trigger": trigger,
    }


def test_a_redelivered_enqueued_run_stores_one_report_and_sends_one_email_per_recipient(
    clock, october, staff, mailoutbox, run_task
):
    # What --enqueue sends; a redelivery (worker lost, acks_late) runs the same message.
    message = {
        "year": 2026,
        "month": 10,
        "email": None,
        "dry_run": False,
        "resend": False,
        "trigger": "manual-enqueue",
    }
    first = run_task(**message)
    clock.shift(dt.timedelta(minutes=5))
    again = run_task(**message)

    [report] = CommissionReport.objects.all()
    [email] = EmailMessage.objects.all()
    assert first["already_generated"] is False
    assert first["new_recipients"] == staff
    assert again["status"] == "ok"
    assert again["already_generated"] is True
    assert again["report_id"] == first["report_id"] == report.pk
    assert again["generated_at"] == first["generated_at"]
    assert (again["totals"], again["agents"]) == (first["totals"], first["agents"])
    assert again["new_recipients"] == []
    assert again["already_had"] == [
        earlier("boss@example.com", email, "manual-enqueue"),
        earlier("zoe@example.com", email, "manual-enqueue"),
    ]
    assert again["emails"] == {"queued": 0, "sending": 0, "sent": 0, "failed": 0}
    assert email.status == "sent"
    assert deliveries() == [
        ("boss@example.com", "manual-enqueue", False),
        ("zoe@example.com", "manual-enqueue", False),
    ]
    assert [message.to for message in mailoutbox] == [staff]


def test_a_redelivered_beat_run_whose_email_is_still_queued_leaves_it_to_the_outbox(
    clock, october, staff, mailoutbox, django_capture_on_commit_callbacks, run_command
):
    # The worker died after the commit, before it woke anyone: the email stays queued.
    with django_capture_on_commit_callbacks(execute=False):
        first = task_run(trigger="beat")
    clock.shift(dt.timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=False):
        again = task_run(trigger="beat")

    [email] = EmailMessage.objects.all()
    assert email.status == "queued"
    assert email.recipients == staff
    assert again["already_generated"] is True
    assert again["report_id"] == first["report_id"]
    assert again["new_recipients"] == []
    assert [row["email_status"] for row in again["already_had"]] == ["queued", "queued"]
    assert "warning" not in again
    assert mailoutbox == []

    # Not "already generated" forever: the sweeper (beat, every minute) delivers it.
    sweep = outbox_sweep(trigger="beat")
    output = run_command(COMMAND).stdout

    assert sweep.sent == 1
    assert [message.to for message in mailoutbox] == [staff]
    email.refresh_from_db()
    assert email.status == "sent"
    # Said as it is: which run queued it, and how it fared.
    assert f"Report #{first['report_id']} was already generated at 2026-11-02 09:00" in output
    assert (
        "Already had it, not sent again: "
        f"boss@example.com (email #{email.pk}, sent), zoe@example.com (email #{email.pk}, sent)"
    ) in output
    assert output.splitlines()[-1] == "Nobody new to send it to."
    assert CommissionReport.objects.count() == 1
    assert len(deliveries()) == 2


def test_a_later_run_says_when_the_email_that_carried_it_has_failed(
    clock, october, staff, mailoutbox, run_json, run_command
):
    run_json("--email", "boss@example.com")
    email = EmailMessage.objects.get()
    EmailMessage.objects.filter(pk=email.pk).update(status="failed")

    output = run_command(COMMAND, "--email", "boss@example.com").stdout

    assert (
        f"The email that carried it to boss@example.com (#{email.pk}) is failed so far: the "
        "email log (admin \N{RIGHTWARDS ARROW} Mailing \N{RIGHTWARDS ARROW} Email messages) shows "
        "whether it will be retried; --resend sends the report again."
    ) in output
    assert EmailMessage.objects.count() == 1


def test_a_hijacking_email_argument_cannot_keep_the_report_from_the_administrators(
    clock, october, staff, mailoutbox, run_task
):
    # Sent through Flower's API: a task with another address, ahead of beat.
    hijack = run_task(year=2026, month=10, email="evil@attacker.example")
    scheduled = run_task(trigger="beat")
    redelivered = run_task(trigger="beat")

    [report] = CommissionReport.objects.all()
    assert (report.trigger, hijack["trigger"]) == ("task", "task")
    assert hijack["new_recipients"] == ["evil@attacker.example"]
    assert scheduled["report_id"] == report.pk
    assert scheduled["already_generated"] is True
    assert scheduled["recipients"] == scheduled["new_recipients"] == staff
    assert scheduled["already_had"] == []
    assert redelivered["new_recipients"] == []
    assert [row["address"] for row in redelivered["already_had"]] == staff
    assert deliveries() == [
        ("evil@attacker.example", "task", False),
        ("boss@example.com", "beat", False),
        ("zoe@example.com", "beat", False),
    ]
    assert [message.to for message in mailoutbox] == [["evil@attacker.example"], staff]
    assert EmailMessage.objects.count() == 2


def test_a_later_run_reuses_the_stored_figures_and_sends_only_to_new_recipients(
    clock, october, staff, mailoutbox, run_json, run_command
):
    first = run_json()
    # Since then a pending commission was paid: the month's report stays as it was sent.
    pending = Commission.objects.filter(status="pending").order_by("pk").first()
    commissions_mark_paid(commissions=[pending], actor=None)
    clock.shift(dt.timedelta(days=1))

    again = run_json()
    output = run_command(COMMAND, "--email", "chief@example.com").stdout

    assert again["already_generated"] is True
    assert again["report_id"] == first["report_id"]
    assert again["by_status"] == first["by_status"]
    assert again["generated_at"] == "2026-11-02T09:00:00+03:00"
    assert again["new_recipients"] == []
    report = CommissionReport.objects.get()
    assert output.splitlines()[-1] == "Email to chief@example.com: queued (1)"
    assert f"Report #{report.pk} was already generated at 2026-11-02 09:00" in output
    assert "  Pending        2  550.00 MGA" in output.splitlines()
    assert [message.to for message in mailoutbox] == [staff, ["chief@example.com"]]
    assert deliveries() == [
        ("boss@example.com", "manual", False),
        ("zoe@example.com", "manual", False),
        ("chief@example.com", "manual", False),
    ]


def test_resend_sends_the_report_again_to_its_recipients_and_logs_it(
    clock, october, staff, mailoutbox, run_json, run_command, run_task
):
    first = run_json("--email", "boss@example.com")
    clock.shift(dt.timedelta(hours=2))

    output = run_command(COMMAND, "--resend").stdout
    by_task = run_task(resend=True, email="zoe@example.com")

    assert output.splitlines()[-1] == (
        "Email again (--resend) to boss@example.com, zoe@example.com: queued (1)"
    )
    assert by_task["resend"] is True
    assert by_task["report_id"] == first["report_id"]
    assert by_task["new_recipients"] == ["zoe@example.com"]
    assert by_task["already_had"] == []
    assert deliveries() == [
        ("boss@example.com", "manual", False),
        ("boss@example.com", "manual", True),
        ("zoe@example.com", "manual", False),
        ("zoe@example.com", "task", True),
    ]
    assert [message.to for message in mailoutbox] == [
        ["boss@example.com"],
        staff,
        ["zoe@example.com"],
    ]
    assert CommissionReport.objects.count() == 1


def test_a_run_that_loses_the_race_to_store_the_month_reuses_the_winners_report(
    clock, october, staff, monkeypatch, mailoutbox, run_task
):
    first = run_task(trigger="beat")
    real_lookup = operation.commission_report_get
    lookups = []

    def not_yet_there(**kwargs):
        # The racing run looked before the winner committed, then finds it after the clash.
        lookups.append(kwargs)
        return None if len(lookups) == 1 else real_lookup(**kwargs)

    monkeypatch.setattr(operation, "commission_report_get", not_yet_there)
    again = run_task(trigger="manual-enqueue", year=2026, month=10)

    assert len(lookups) == 2
    assert again["already_generated"] is True
    assert again["report_id"] == first["report_id"]
    assert again["new_recipients"] == []
    assert CommissionReport.objects.count() == 1
    assert EmailMessage.objects.count() == 1
    assert len(mailoutbox) == 1


def test_a_dry_run_of_a_reported_month_says_who_would_get_it_and_writes_nothing(
    clock, october, staff, mailoutbox, run_json, run_command
):
    run_json("--email", "boss@example.com")
    before = (EmailMessage.objects.count(), len(deliveries()))

    output = run_command(COMMAND, "--dry-run").stdout
    resend = run_command(COMMAND, "--dry-run", "--resend").stdout

    assert "Already had it, not sent again: boss@example.com (email #" in output
    assert output.splitlines()[-1] == "Would email: zoe@example.com. Nothing was stored or sent."
    assert resend.splitlines()[-1] == (
        "Would email again (--resend): boss@example.com, zoe@example.com. "
        "Nothing was stored or sent."
    )
    assert (EmailMessage.objects.count(), len(deliveries())) == before
    assert len(mailoutbox) == 1


def test_a_scheduled_dry_run_stores_and_sends_nothing(clock, october, staff, mailoutbox):
    summary = generate_commission_report(dry_run=True)
    assert (summary["status"], summary["dry_run"], summary["report_id"]) == ("ok", True, None)
    assert summary["new_recipients"] == staff
    assert nothing_written()


# Really committed -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_summary_says_queued_until_the_mail_server_has_accepted_the_report(
    agents, staff, mailoutbox, clock, run_json
):
    takings(agents["A"], local(2026, 10, 5, 10, 0), "10000.00", "5000.00", void=[1], paid=[0])

    summary = run_json()  # then the worker woken on commit delivers it
    [message] = mailoutbox
    email = EmailMessage.objects.get()
    again = run_json()

    # Committed for real, but nobody had accepted it when the run printed.
    assert summary["emails"] == {"queued": 1, "sending": 0, "sent": 0, "failed": 0}
    assert summary["totals"]["tax_collected"] == "10000.00"
    assert all(check["ok"] for check in summary["checks"])
    assert message.subject == SUBJECT
    assert email.status == "sent"
    assert [row["email_status"] for row in again["already_had"]] == ["sent", "sent"]
    assert again["new_recipients"] == []
