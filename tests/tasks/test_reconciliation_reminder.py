import datetime as dt
import json
import os
import subprocess
import threading
from dataclasses import dataclass
from decimal import Decimal
from io import StringIO
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction

import payments.services
from auditing.models import AuditEntry
from auditing.verification import chain_verify
from mailing.models import EmailMessage
from mailing.selectors import email_outcomes
from payments.models import (
    CashSession,
    Notification,
    NotificationKind,
    ReconciliationReminder,
    ReminderKind,
    SessionReminder,
)
from payments.selectors import reconciliation_backlog
from payments.services import (
    reconciliation_reminder_send,
    session_close,
    session_close_automatically,
    session_open,
    session_reconcile,
    transaction_record,
)
from tasks import tasks
from tasks.inputs import InvalidInput
from tasks.operations.reconciliation_reminder import (
    Options,
    ReminderAction,
    Result,
    SummaryStatus,
    options_parse,
    reconciliation_reminder,
)
from tasks.rendering.emails import email_outcomes_text
from tasks.results import OperationStatus, Trigger
from tests.commands import command_run
from tests.factories import AgentFactory, StaffUserFactory

COMMAND = "reconciliation_reminder"
LOCAL = ZoneInfo("Indian/Antananarivo")
TODAY = dt.date(2026, 11, 25)
YESTERDAY = TODAY - dt.timedelta(days=1)
RUN_AT = dt.datetime(2026, 11, 25, 8, 0, tzinfo=LOCAL)
BASE_DIR = Path(settings.BASE_DIR)
OPERATION_MODULE = "tasks.operations.reconciliation_reminder"

# The clock stands at RUN_AT for every test that asks for it; run_command runs the command
# as cron would, delivering the emails it queued.
pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(RUN_AT)]


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=LOCAL)


def closed_session(
    agent,
    *,
    opened: dt.datetime,
    closed: dt.datetime,
    payments: tuple[str, ...] = (),
    counted: str | None = None,
    opening: str = "10000.00",
) -> CashSession:
    """A session built through the services; ``counted=None`` closes it automatically."""
    with time_machine.travel(opened, tick=False):
        session = session_open(agent=agent, opening_balance=Decimal(opening), actor=agent.user)
        for amount in payments:
            transaction_record(
                session=session,
                payer_reference="NIF-0001",
                tax_amount=Decimal(amount),
                amount_tendered=Decimal(amount),
                actor=agent.user,
            )
    with time_machine.travel(closed, tick=False):
        if counted is not None:
            return session_close(session=session, counted_cash=Decimal(counted), actor=agent.user)
        with transaction.atomic():
            locked = (
                CashSession.objects.select_for_update().select_related("agent").get(pk=session.pk)
            )
            return session_close_automatically(session=locked, notes="Expired. Cash not counted.")


@pytest.fixture
def network():
    """Three agents with unreconciled sessions closed yesterday or this morning, plus
    sessions the reminder must leave out: reconciled, still open, and closed too long ago."""
    reconciler = StaffUserFactory(email="")
    hery = AgentFactory(full_name="Hery Rakoto")
    voahangy = AgentFactory(full_name="Voahangy Rabe")
    tiana = AgentFactory(full_name="Tiana Randria", email="")
    old = closed_session(
        voahangy,
        opened=at(TODAY - dt.timedelta(days=3), 8),
        closed=at(TODAY - dt.timedelta(days=3), 17),
        counted="10000.00",
    )
    reconciled = closed_session(
        hery, opened=at(YESTERDAY, 5), closed=at(YESTERDAY, 6), counted="10000.00"
    )
    with time_machine.travel(at(YESTERDAY, 6, 30), tick=False):
        session_reconcile(session=reconciled, actor=reconciler)
    counted_short = closed_session(
        hery,
        opened=at(YESTERDAY, 7),
        closed=at(YESTERDAY, 17),
        payments=("50000.00",),
        counted="57500.00",
    )
    uncounted = closed_session(
        hery, opened=at(YESTERDAY, 18), closed=at(TODAY, 6, 30), payments=("20000.00",)
    )
    counted_exact = closed_session(
        voahangy,
        opened=at(YESTERDAY, 9),
        closed=at(YESTERDAY, 16),
        payments=("5000.00",),
        counted="15000.00",
    )
    with time_machine.travel(at(TODAY, 7), tick=False):
        still_open = session_open(
            agent=voahangy, opening_balance=Decimal("10000.00"), actor=voahangy.user
        )
    tiana_uncounted = closed_session(
        tiana, opened=at(YESTERDAY, 8), closed=at(YESTERDAY, 20, 30), opening="5000.00"
    )
    return {
        "hery": hery,
        "voahangy": voahangy,
        "tiana": tiana,
        "old": old,
        "reconciled": reconciled,
        "counted_short": counted_short,
        "uncounted": uncounted,
        "counted_exact": counted_exact,
        "still_open": still_open,
        "tiana_uncounted": tiana_uncounted,
    }


@pytest.fixture
def admins():
    return [StaffUserFactory(email="boss@example.com"), StaffUserFactory(email="ops@example.com")]


def written_rows() -> dict[str, int]:
    return {
        model._meta.label: model.objects.count()
        for model in (
            Notification,
            ReconciliationReminder,
            SessionReminder,
            EmailMessage,
            AuditEntry,
        )
    }


def mail_to(mails: list["Mail"], address: str) -> "Mail":
    (mail,) = [mail for mail in mails if address in mail.to]
    return mail


@dataclass(frozen=True)
class Mail:
    to: list[str]
    subject: str
    body: str
    alternatives: list[tuple[str, str]]


def queued_mail() -> list[Mail]:
    """Every message the runs wrote to the email log (the outbox), oldest first: exactly what
    the mail server gets, whoever delivers it and whenever (the outbox's own tests prove
    the delivery)."""
    return [
        Mail(
            to=list(email.recipients),
            subject=email.subject,
            body=email.body_text,
            alternatives=[(email.body_html, "text/html")],
        )
        for email in EmailMessage.objects.order_by("pk")
    ]


def html_of(mail) -> str:
    (html, mimetype), *_ = mail.alternatives
    assert mimetype == "text/html"
    return html


def line_with(text: str, needle: str) -> str:
    (line,) = [line for line in text.splitlines() if needle in line]
    return line


def test_each_agent_gets_one_reminder_listing_only_their_own_sessions(network, clock, run_command):
    run_command(COMMAND)

    hery, voahangy = network["hery"], network["voahangy"]
    reminders = {r.agent.code: r for r in ReconciliationReminder.objects.filter(kind="agent")}
    assert set(reminders) == {hery.code, voahangy.code, network["tiana"].code}
    assert reminders[hery.code].session_numbers == [
        network["counted_short"].number,
        network["uncounted"].number,
    ]
    # Voahangy's session closed three days ago is older than the window: reminded too.
    assert reminders[voahangy.code].session_numbers == [
        network["old"].number,
        network["counted_exact"].number,
    ]
    assert all(r.day == TODAY for r in reminders.values())
    for agent in (hery, voahangy, network["tiana"]):
        (notification,) = Notification.objects.filter(agent=agent)
        assert notification.kind == NotificationKind.RECONCILIATION_REMINDER

    assert len(queued_mail()) == 2
    hery_mail = mail_to(queued_mail(), hery.email)
    assert hery_mail.subject == "Reconciliation reminder 2026-11-25: 2 cash sessions waiting"
    assert network["counted_short"].number in hery_mail.body
    assert network["uncounted"].number in hery_mail.body
    assert network["counted_exact"].number not in hery_mail.body
    assert "Total expected balance: 90,000.00 MGA" in hery_mail.body
    voahangy_mail = mail_to(queued_mail(), voahangy.email)
    assert "Total expected balance: 25,000.00 MGA" in voahangy_mail.body
    # A counted session that balanced is a real zero.
    assert "Total discrepancy: 0.00 MGA\n" in voahangy_mail.body


def test_reminder_shows_closing_times_in_the_local_time_zone(network, clock, run_command):
    run_command(COMMAND)

    hery_mail = mail_to(queued_mail(), network["hery"].email)
    # Closed at 17:00 and 06:30 local, 14:00 and 03:30 UTC.
    assert "closed 2026-11-24 17:00" in hery_mail.body
    assert "closed 2026-11-25 06:30 (automatically)" in hery_mail.body
    assert "2026-11-24 17:00" in html_of(hery_mail)
    assert "Indian/Antananarivo" in hery_mail.body


def test_an_uncounted_session_shows_not_counted_never_a_zero_discrepancy(
    network, clock, run_command
):
    output = run_command(COMMAND).stdout

    uncounted = network["uncounted"].number
    hery_mail = mail_to(queued_mail(), network["hery"].email)
    text = hery_mail.body
    assert "Discrepancy: not counted" in text
    assert "Discrepancy: -2,500.00 MGA" in text
    assert "Total discrepancy: -2,500.00 MGA (1 session not counted)" in text
    assert "0.00 MGA" not in text.replace("2,500.00", "").replace("0,000.00", "")
    html = html_of(hery_mail)
    assert "<em>not counted</em>" in html
    assert "-2,500.00 MGA</strong> (1 session not counted)" in html

    session_line = line_with(output, uncounted)
    assert "discrepancy not counted" in session_line
    assert "discrepancy 0" not in session_line
    assert "total discrepancy: -2,500.00 MGA (1 session not counted)" in output

    (notification,) = Notification.objects.filter(agent=network["hery"])
    assert "discrepancy not counted" in line_with(notification.message, uncounted)
    assert "Total discrepancy: -2,500.00 MGA (1 session not counted)" in notification.message


def test_an_agent_whose_sessions_were_all_uncounted_has_no_discrepancy_total(
    network, clock, run_command
):
    output = run_command(COMMAND).stdout

    tiana_block = output.split(network["tiana"].code, 1)[1]
    assert "total discrepancy: not counted (1 session not counted)" in tiana_block
    (notification,) = Notification.objects.filter(agent=network["tiana"])
    assert "Total discrepancy: not counted (1 session not counted)" in notification.message


def test_reconciled_and_open_sessions_are_left_out_and_older_ones_flagged(
    network, clock, run_command
):
    output = run_command(COMMAND, "--json").stdout

    summary = json.loads(output)
    listed = {
        row["number"]: row["older"] for group in summary["reminders"] for row in group["sessions"]
    }
    assert listed == {
        network["old"].number: True,
        network["counted_short"].number: False,
        network["uncounted"].number: False,
        network["counted_exact"].number: False,
        network["tiana_uncounted"].number: False,
    }
    assert network["reconciled"].number not in output
    assert network["still_open"].number not in output
    # The window's figures stay the window's; the older session is counted apart.
    assert (summary["sessions"], summary["total_expected"]) == (4, "110000.00")
    assert summary["older"] == {
        "session_count": 1,
        "total_expected": "10000.00",
        "total_discrepancy": "0.00",
        "not_counted": 0,
    }


def test_a_longer_look_back_makes_older_sessions_new(network, clock, run_command):
    summary = json.loads(run_command(COMMAND, "--days", "3", "--json").stdout)

    assert summary["sessions"] == 5
    assert summary["older"]["session_count"] == 0
    rows = {row["number"]: row for group in summary["reminders"] for row in group["sessions"]}
    assert rows[network["old"].number]["older"] is False
    assert rows[network["old"].number]["days_waiting"] == 3


def test_the_window_starts_at_local_midnight_not_utc_midnight(clock, run_command):
    agent = AgentFactory()
    day_before_yesterday = TODAY - dt.timedelta(days=2)
    late = closed_session(
        agent,
        opened=at(day_before_yesterday, 15),
        closed=at(day_before_yesterday, 23, 30),
        counted="10000.00",
    )
    # 02:00 local is still yesterday in UTC: a UTC window would count the 23:30 session new.
    clock.move_to(at(TODAY, 2))

    summary = json.loads(run_command(COMMAND, "--days", "1", "--dry-run", "--json").stdout)
    assert summary["since"].startswith("2026-11-24T00:00:00+03:00")
    assert (summary["sessions"], summary["older"]["session_count"]) == (0, 1)
    [row] = summary["reminders"][0]["sessions"]
    assert (row["number"], row["older"], row["days_waiting"]) == (late.number, True, 2)

    summary = json.loads(run_command(COMMAND, "--days", "2", "--json").stdout)
    assert summary["since"].startswith("2026-11-23T00:00:00+03:00")
    assert (summary["sessions"], summary["older"]["session_count"]) == (1, 0)
    assert summary["agents_reminded"] == 1


def test_a_session_closed_just_after_local_midnight_yesterday_is_in_the_default_window(
    clock, run_command
):
    agent = AgentFactory()
    session = closed_session(
        agent,
        opened=at(YESTERDAY - dt.timedelta(days=1), 16),
        closed=at(YESTERDAY, 0, 30),
        counted="10000.00",
    )

    clock.move_to(at(TODAY, 2))
    summary = json.loads(run_command(COMMAND, "--json").stdout)

    [row] = summary["reminders"][0]["sessions"]
    assert (row["number"], row["older"]) == (session.number, False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "0"], "--days must be between 1 and 366 (got 0)."),
        (["--days=-1"], "--days must be between 1 and 366 (got -1)."),
        (["--days", "367"], "--days must be between 1 and 366 (got 367)."),
        (["--days", "abc"], "--days must be a whole number of days, not 'abc'."),
        (["--days", "1.5"], "--days must be a whole number of days, not '1.5'."),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_input_is_refused_with_exit_code_2_and_nothing_written(
    network, admins, clock, run_command, args, message
):
    before = written_rows()

    refusal = run_command(COMMAND, *args, "--email-admins", expect_exit=2)

    assert message in refusal.stderr
    assert refusal.stderr.count("\n") == 1
    assert refusal.stdout == ""
    assert written_rows() == before
    assert queued_mail() == []


def test_bad_days_from_the_command_line_give_one_line_and_exit_2():
    env = {**os.environ, "DJANGO_ENV": "test"}
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [".venv/bin/python", "manage.py", COMMAND, "--days", "0"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.strip() == "CommandError: --days must be between 1 and 366 (got 0)."
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("days", "message"),
    [
        (0, "--days must be between 1 and 366 (got 0)."),
        (-1, "--days must be between 1 and 366 (got -1)."),
        (367, "--days must be between 1 and 366 (got 367)."),
        (1.5, "--days must be a whole number of days, not 1.5."),
        (3.0, "--days must be a whole number of days, not 3.0."),
        (True, "--days must be a whole number of days, not True."),
        (None, "--days must be a whole number of days, not None."),
        ("two", "--days must be a whole number of days, not 'two'."),
        # Text is the command line's to turn into a number, never the task's.
        ("3", "--days must be a whole number of days, not '3'."),
        ("x" * 500, f"--days must be a whole number of days, not '{'x' * 38}…."),
    ],
)
def test_the_operation_refuses_days_that_are_not_a_whole_number_in_range(days, message):
    with pytest.raises(InvalidInput) as refusal:
        options_parse(days=days, dry_run=False, email_admins=True)

    assert str(refusal.value) == message


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"dry_run": "yes"}, "dry_run must be true or false, not 'yes'."),
        ({"dry_run": "no"}, "dry_run must be true or false, not 'no'."),
        ({"dry_run": 0}, "dry_run must be true or false, not 0."),
        ({"email_admins": 1}, "email_admins must be true or false, not 1."),
        ({"email_admins": None}, "email_admins must be true or false, not None."),
        ({"email_admins": "true"}, "email_admins must be true or false, not 'true'."),
        (
            {"dry_rn": True},
            "reconciliation_reminder takes no argument 'dry_rn'; "
            "it takes days, dry_run, email_admins, trigger.",
        ),
        (
            {"force": True, "days_back": 3},
            "reconciliation_reminder takes no arguments 'days_back', 'force'; "
            "it takes days, dry_run, email_admins, trigger.",
        ),
    ],
)
def test_task_arguments_that_are_not_what_they_claim_are_refused(arguments, message):
    with pytest.raises(InvalidInput) as refusal:
        options_parse(**arguments)

    assert str(refusal.value) == message


@pytest.mark.parametrize(
    "arguments",
    [
        {"days": 0},
        {"days": 367},
        {"days": 1.5},
        {"days": True},
        {"days": "3"},
        {"dry_run": "no"},
        {"dry_run": None},
        {"dry_run": 1},
        {"email_admins": 0},
        {"email_admins": "no"},
        {"dry_rn": True},
    ],
)
def test_bad_task_arguments_fail_the_task_in_one_sentence_before_anything_is_written(
    network, admins, arguments
):
    before = written_rows()
    # As Flower's API or send_task would call it: the task's own signature takes any name.
    call = {"days": 1, "email_admins": True, "trigger": "beat"} | arguments

    with pytest.raises(InvalidInput) as refusal:
        tasks.reconciliation_reminder(**call)

    assert "\n" not in str(refusal.value) and str(refusal.value).endswith(".")
    assert written_rows() == before
    assert queued_mail() == []


def test_good_task_arguments_run_as_json_gives_them(network, clock):
    summary = tasks.reconciliation_reminder(
        days=1, dry_run=True, email_admins=False, trigger="beat"
    )

    assert (summary["days"], summary["dry_run"], summary["trigger"]) == (1, True, "beat")
    assert summary["sessions_would_remind"] == 5


def test_the_operation_returns_typed_groups_with_decimal_amounts_and_aware_times(
    network, admins, clock
):
    result = reconciliation_reminder(
        options=Options(days=1, email_admins=True), trigger=Trigger.BEAT
    )

    assert isinstance(result, Result)
    assert (result.status, result.trigger, result.day, result.message) == (
        OperationStatus.OK,
        Trigger.BEAT,
        TODAY,
        None,
    )
    assert result.since == at(YESTERDAY, 0)
    assert (result.total_expected, result.total_discrepancy) == (
        Decimal("110000.00"),
        Decimal("-2500.00"),
    )
    hery = next(group for group in result.reminders if group.agent == network["hery"].code)
    assert hery.action == ReminderAction.REMINDED
    assert [row.discrepancy for row in hery.sessions] == [Decimal("-2500.00"), None]
    assert hery.sessions[1].closed_at == at(TODAY, 6, 30)
    # The test transaction never commits: the emails are still queued.
    assert hery.email == "queued"
    assert result.admin_summary.status == SummaryStatus.QUEUED
    assert result.admin_summary.recipients == ("boss@example.com", "ops@example.com")
    reminded = AuditEntry.objects.filter(action="reconciliation.reminded")
    assert {entry.data["trigger"] for entry in reminded} == {"beat"}


def test_a_dry_run_shows_what_would_be_sent_and_writes_and_sends_nothing(
    network, admins, clock, run_command
):
    before = written_rows()

    output = run_command(COMMAND, "--dry-run", "--email-admins").stdout

    assert written_rows() == before
    assert queued_mail() == []
    assert output.startswith("Dry run: nothing will be sent or written.")
    assert f"{network['hery'].code} Hery Rakoto  -> would remind of 2 sessions by email" in output
    assert (
        f"{network['tiana'].code} Tiana Randria  -> would remind of 1 session in-app only "
        "(no email address)"
    ) in output
    assert output.rstrip().endswith(
        "Would remind 3 agents of 5 sessions (2 by email, 1 in-app only), "
        "0 sessions already reminded today; "
        "admin summary would go to 2 administrators. Nothing was sent or written."
    )


def test_the_admins_summary_has_the_totals_the_groups_and_the_action_required(
    network, admins, clock, run_command
):
    run_command(COMMAND, "--email-admins")

    (summary_mail,) = [mail for mail in queued_mail() if "boss@example.com" in mail.to]
    assert summary_mail.to == ["boss@example.com", "ops@example.com"]
    # Every unreconciled session counts in the subject and the grand total, older ones too.
    assert summary_mail.subject == "Reconciliation summary 2026-11-25: 5 unreconciled sessions"
    text = summary_mail.body
    assert "Action required: reconcile these sessions in the admin." in text
    new = text.split("Closed since 2026-11-24 00:00 (last 1 day)\n", 1)[1].split("\n\n")[0]
    assert new.splitlines() == [
        "  Sessions: 4",
        "  Agents: 3",
        "  Total unreconciled amount (expected balance): 110,000.00 MGA",
        "  Total discrepancy: -2,500.00 MGA (2 sessions not counted)",
        "  Sessions not counted: 2",
    ]
    assert "Total unreconciled amount (all 5 sessions): 120,000.00 MGA" in text
    hery_block = text.split(f"{network['hery'].code} Hery Rakoto: 2 sessions", 1)[1]
    hery_block = hery_block.split(network["voahangy"].code, 1)[0]
    assert network["counted_short"].number in hery_block
    assert f"{network['uncounted'].number}, closed 2026-11-25 06:30" in hery_block
    assert "discrepancy not counted" in line_with(hery_block, network["uncounted"].number)
    assert network["counted_exact"].number not in hery_block
    html = html_of(summary_mail)
    assert "Action required: reconcile these sessions in the admin." in html
    assert "110,000.00 MGA" in html
    assert "<em>not counted</em>" in html

    (reminder,) = ReconciliationReminder.objects.filter(kind=ReminderKind.ADMIN_SUMMARY)
    assert reminder.day == TODAY
    assert reminder.agent is None
    assert len(reminder.session_numbers) == 5


def test_the_admins_summary_is_only_sent_when_asked(network, admins, clock, run_command):
    output = run_command(COMMAND).stdout

    assert not any("boss@example.com" in mail.to for mail in queued_mail())
    assert not ReconciliationReminder.objects.filter(kind=ReminderKind.ADMIN_SUMMARY).exists()
    assert "no admin summary (use --email-admins)" in output


def test_without_any_admin_address_the_output_says_the_summary_was_not_sent(
    network, clock, run_command
):
    output = run_command(COMMAND, "--email-admins", "--json").stdout

    summary = json.loads(output)
    assert summary["admin_summary"] == {"status": "no_recipients", "recipients": []}
    assert len(queued_mail()) == 2  # the two agents with an address only
    assert not ReconciliationReminder.objects.filter(kind=ReminderKind.ADMIN_SUMMARY).exists()
    text = run_command(COMMAND, "--email-admins").stdout
    assert "admin summary NOT sent: no administrator has an email address" in text


def test_a_second_run_the_same_day_sends_nothing_again_and_the_next_day_does(
    network, admins, clock, run_command
):
    run_command(COMMAND, "--email-admins")
    assert len(queued_mail()) == 3
    assert Notification.objects.count() == 3

    clock.move_to(at(TODAY, 14))
    output = run_command(COMMAND, "--email-admins").stdout

    assert len(queued_mail()) == 3
    assert Notification.objects.count() == 3
    assert ReconciliationReminder.objects.count() == 4
    assert SessionReminder.objects.count() == 5
    assert f"{network['hery'].code} Hery Rakoto  -> already reminded today" in output
    assert output.rstrip().endswith(
        "Reminded 0 agents of 0 sessions (0 agents in-app only), "
        "5 sessions already reminded today; emails: none; admin summary already sent today"
    )

    clock.move_to(at(TODAY + dt.timedelta(days=1), 8))
    summary = json.loads(run_command(COMMAND, "--email-admins", "--days", "2", "--json").stdout)
    assert summary["agents_reminded"] == 3
    assert summary["agents_skipped_already_reminded"] == 0
    assert summary["admin_summary"]["recipients"] == ["boss@example.com", "ops@example.com"]
    assert len(queued_mail()) == 6
    assert Notification.objects.count() == 6


def test_sessions_another_run_reminded_after_this_ones_selection_are_not_reminded_again(
    network, admins, clock, run_command, monkeypatch
):
    # The other run commits between this run's selection and its writes: the selection
    # says "due", the locked re-read inside the service says "already reminded".
    real_backlog = reconciliation_backlog

    def backlog_then_another_run(**arguments):
        backlog = real_backlog(**arguments)
        other = ReconciliationReminder.objects.create(
            kind=ReminderKind.AGENT, agent=network["hery"], day=TODAY
        )
        SessionReminder.objects.create(reminder=other, session=network["uncounted"], day=TODAY)
        SessionReminder.objects.create(reminder=other, session=network["counted_short"], day=TODAY)
        ReconciliationReminder.objects.create(kind=ReminderKind.ADMIN_SUMMARY, day=TODAY)
        return backlog

    monkeypatch.setattr(f"{OPERATION_MODULE}.reconciliation_backlog", backlog_then_another_run)

    summary = json.loads(run_command(COMMAND, "--email-admins", "--json").stdout)

    assert summary["status"] == "ok"
    assert summary["agents_reminded"] == 2
    assert summary["agents_skipped_already_reminded"] == 1
    assert (summary["sessions_reminded"], summary["sessions_already_reminded"]) == (3, 2)
    assert summary["admin_summary"]["status"] == "already_sent"
    assert not Notification.objects.filter(agent=network["hery"]).exists()
    assert sorted(address for mail in queued_mail() for address in mail.to) == [
        network["voahangy"].email
    ]
    assert AuditEntry.objects.filter(action="reconciliation.reminded").count() == 2
    assert SessionReminder.objects.filter(session=network["uncounted"]).count() == 1


def test_an_agent_without_email_gets_the_in_app_notification_only(network, clock, run_command):
    output = run_command(COMMAND).stdout

    tiana = network["tiana"]
    (notification,) = Notification.objects.filter(agent=tiana)
    assert notification.title == "Reconciliation reminder 2026-11-25: 1 cash session waiting"
    assert network["tiana_uncounted"].number in notification.message
    assert "Total expected balance: 5,000.00 MGA" in notification.message
    assert not EmailMessage.objects.filter(about=tiana.code).exists()
    assert not any(tiana.user.email in mail.to for mail in queued_mail())
    assert f"{tiana.code} Tiana Randria  -> reminded of 1 session, in-app only" in output


def test_each_reminder_appends_an_audit_entry_naming_the_agent_and_sessions(
    network, admins, clock, run_command
):
    run_command(COMMAND, "--email-admins")

    entries = list(AuditEntry.objects.filter(action="reconciliation.reminded").order_by("sequence"))
    assert len(entries) == 4
    reminders = {str(r.pk): r for r in ReconciliationReminder.objects.all()}
    for entry in entries:
        reminder = reminders[entry.subject_id]
        assert entry.subject_type == "payments.reconciliationreminder"
        assert entry.actor is None
        assert entry.actor_name == "system"
        assert entry.data["kind"] == reminder.kind
        assert entry.data["sessions"] == reminder.session_numbers
        assert entry.data["agent"] == (reminder.agent.code if reminder.agent else None)
        if reminder.kind == ReminderKind.AGENT:
            # The sessions the entry names are the ones the database keys the reminder by.
            assert sorted(entry.data["sessions"]) == sorted(
                reminder.sessions.values_list("number", flat=True)
            )
    hery_entry = next(e for e in entries if e.data["agent"] == network["hery"].code)
    assert hery_entry.data["sessions"] == [
        network["counted_short"].number,
        network["uncounted"].number,
    ]
    assert chain_verify().intact


def test_json_output_carries_counts_and_amounts_as_strings(network, admins, clock, run_command):
    summary = json.loads(run_command(COMMAND, "--email-admins", "--json").stdout)

    assert summary["operation"] == "reconciliation_reminder"
    assert summary["trigger"] == "manual"
    assert summary["status"] == "ok"
    assert summary["day"] == "2026-11-25"
    assert (summary["sessions"], summary["agents"], summary["not_counted"]) == (4, 3, 2)
    assert summary["total_expected"] == "110000.00"
    assert summary["total_discrepancy"] == "-2500.00"
    assert summary["older"] == {
        "session_count": 1,
        "total_expected": "10000.00",
        "total_discrepancy": "0.00",
        "not_counted": 0,
    }
    assert (summary["agents_reminded"], summary["agents_skipped_already_reminded"]) == (3, 0)
    assert (summary["sessions_reminded"], summary["sessions_already_reminded"]) == (5, 0)
    assert summary["in_app_only"] == 1
    hery = next(g for g in summary["reminders"] if g["agent"] == network["hery"].code)
    assert (hery["action"], hery["sessions_reminded"]) == ("reminded", 2)
    assert hery["total_expected"] == "90000.00"
    assert hery["total_discrepancy"] == "-2500.00"
    assert hery["not_counted"] == 1
    assert hery["sessions"][1] == {
        "number": network["uncounted"].number,
        "closed_at": "2026-11-25T06:30:00+03:00",
        "auto_closed": True,
        "expected_balance": "30000.00",
        "discrepancy": None,
        "days_waiting": 0,
        "older": False,
        "action": "reminded",
    }
    assert hery["sessions"][0]["discrepancy"] == "-2500.00"
    assert summary["admin_summary"]["recipients"] == ["boss@example.com", "ops@example.com"]
    assert sum(summary["emails"].values()) == 3


def test_without_sessions_the_command_says_so_and_sends_nothing(clock, run_command, admins):
    output = run_command(COMMAND, "--days", "3", "--email-admins").stdout

    assert output.strip() == (
        "No unreconciled sessions closed in the last 3 day(s), and none older."
    )
    assert queued_mail() == []
    assert not ReconciliationReminder.objects.exists()


def test_help_lists_the_options_and_the_exit_codes():
    env = {**os.environ, "DJANGO_ENV": "test"}
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [".venv/bin/python", "manage.py", COMMAND, "--help"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )

    for option in ("--days DAYS", "--dry-run", "--email-admins", "--json", "--enqueue"):
        assert option in result.stdout
    assert "exit codes:" in result.stdout
    assert "2  bad input: nothing was run or written" in result.stdout
    assert "4  another run of this operation is already in progress" in result.stdout


@pytest.mark.django_db(transaction=True)
def test_the_command_prints_each_agent_its_sessions_totals_and_what_was_sent(network, admins):
    # Transactional: each reminder commits as it would under cron. Whether its email has
    # left yet is the outbox's business: the output must say what the email log says.
    out = StringIO()
    with time_machine.travel(RUN_AT, tick=False):
        call_command(COMMAND, "--email-admins", stdout=out, stderr=StringIO())

    hery, voahangy, tiana = network["hery"], network["voahangy"], network["tiana"]
    short, uncounted = network["counted_short"].number, network["uncounted"].number
    emails = {tuple(mail.recipients): mail.status for mail in EmailMessage.objects.all()}
    summary_status = emails[("boss@example.com", "ops@example.com")]
    summary_words = {"queued": "queued for", "sending": "being sent to", "sent": "sent to"}
    emails_written = EmailMessage.objects.values_list("pk", flat=True)
    lines = out.getvalue().splitlines()
    assert lines == [
        "Unreconciled sessions closed since 2026-11-24 00:00 (last 1 day(s)): 4 sessions, "
        "3 agents; older, still unreconciled: 1 session",
        f"{hery.code} Hery Rakoto  -> reminded of 2 sessions, email {emails[(hery.email,)]}",
        f"  {short}  closed 2026-11-24 17:00 (waiting 1 day)  expected 60,000.00 MGA  "
        "discrepancy -2,500.00 MGA",
        f"  {uncounted}  closed 2026-11-25 06:30 (waiting 0 days)  expected 30,000.00 MGA  "
        "discrepancy not counted",
        "  Total expected: 90,000.00 MGA; total discrepancy: -2,500.00 MGA (1 session not counted)",
        f"{voahangy.code} Voahangy Rabe  -> reminded of 2 sessions, "
        f"email {emails[(voahangy.email,)]}",
        f"  {network['old'].number}  closed 2026-11-22 17:00 (waiting 3 days, older)  "
        "expected 10,000.00 MGA  discrepancy 0.00 MGA",
        f"  {network['counted_exact'].number}  closed 2026-11-24 16:00 (waiting 1 day)  "
        "expected 15,000.00 MGA  discrepancy 0.00 MGA",
        "  Total expected: 25,000.00 MGA; total discrepancy: 0.00 MGA",
        f"{tiana.code} Tiana Randria  -> reminded of 1 session, in-app only",
        f"  {network['tiana_uncounted'].number}  closed 2026-11-24 20:30 (waiting 1 day)  "
        "expected 5,000.00 MGA  discrepancy not counted",
        "  Total expected: 5,000.00 MGA; total discrepancy: not counted (1 session not counted)",
        "New (last 1 day(s)): 4 sessions, 3 agents; total expected 110,000.00 MGA; "
        "total discrepancy -2,500.00 MGA (2 sessions not counted)",
        "Older, still unreconciled: 1 session; total expected 10,000.00 MGA; "
        "total discrepancy 0.00 MGA",
        "Reminded 3 agents of 5 sessions (1 agent in-app only), "
        "0 sessions already reminded today; "
        f"emails: {email_outcomes_text(email_outcomes(emails_written))}; "
        f"admin summary {summary_words[summary_status]} 2 administrators",
    ]
    assert "will be retried" not in out.getvalue()


def test_the_admin_lists_reminders_and_notifications_read_only(
    network, clock, run_command, client, admin_user
):
    run_command(COMMAND)
    client.force_login(admin_user)
    reminder = ReconciliationReminder.objects.get(agent=network["hery"])

    reminders_page = client.get("/admin/payments/reconciliationreminder/")
    notifications_page = client.get("/admin/payments/notification/")
    detail = client.get(f"/admin/payments/reconciliationreminder/{reminder.pk}/change/")

    assert reminders_page.status_code == 200
    assert network["hery"].code in reminders_page.text
    assert notifications_page.status_code == 200
    assert "Reconciliation reminder 2026-11-25" in notifications_page.text
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.text
    assert client.get("/admin/payments/reconciliationreminder/add/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_remind_each_session_once_that_day(network, admins, monkeypatch):
    # Both runs read the backlog before either writes (the barrier), so both see every
    # session due: the row locks and the (session, day) constraint must stop the second.
    # The operation is called directly, past the run lock that would otherwise refuse
    # the second run, to prove the data layer holds on its own.
    barrier = threading.Barrier(2)
    real_backlog = reconciliation_backlog

    def backlog_then_wait(**arguments):
        backlog = real_backlog(**arguments)
        barrier.wait(timeout=10)
        return backlog

    monkeypatch.setattr(f"{OPERATION_MODULE}.reconciliation_backlog", backlog_then_wait)
    summaries: list[Result] = []
    errors: list[Exception] = []

    def one_run() -> None:
        try:
            summaries.append(
                reconciliation_reminder(
                    options=Options(days=1, email_admins=True), trigger=Trigger.BEAT
                )
            )
        except Exception as error:  # noqa: BLE001 - handed back to the test
            errors.append(error)
        finally:
            connection.close()

    with time_machine.travel(RUN_AT, tick=True):
        threads = [threading.Thread(target=one_run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert errors == []
    assert [s.status for s in summaries] == [OperationStatus.OK, OperationStatus.OK]
    assert all(s.sessions_would_remind == 0 for s in summaries)
    assert sum(s.sessions_reminded for s in summaries) == 5
    assert sum(s.sessions_already_reminded for s in summaries) == 5
    assert sorted(s.admin_summary.status for s in summaries)[0] == SummaryStatus.ALREADY_SENT
    # Row by row: each unreconciled session once today, one reminder per agent.
    reminded = list(SessionReminder.objects.values_list("session__number", "day"))
    assert sorted(reminded) == sorted(
        (network[name].number, TODAY)
        for name in ("old", "counted_short", "uncounted", "counted_exact", "tiana_uncounted")
    )
    assert ReconciliationReminder.objects.filter(kind=ReminderKind.AGENT).count() == 3
    assert ReconciliationReminder.objects.filter(kind=ReminderKind.ADMIN_SUMMARY).count() == 1
    assert Notification.objects.count() == 3
    assert EmailMessage.objects.count() == 3
    assert AuditEntry.objects.filter(action="reconciliation.reminded").count() == 4
    assert chain_verify().intact


def test_enqueue_sends_the_look_back_to_the_task_as_a_whole_number(monkeypatch, run_command):
    sent: list[dict] = []

    def capture(**options):
        sent.append(options)
        return SimpleNamespace(id="captured-id")

    monkeypatch.setattr(tasks.reconciliation_reminder, "apply_async", capture)

    run = run_command(COMMAND, "--days", " 3 ", "--email-admins", "--enqueue")

    assert sent == [
        {
            "kwargs": {
                "days": 3,
                "dry_run": False,
                "email_admins": True,
                "trigger": Trigger.MANUAL_ENQUEUE.value,
            },
            "retry": False,
        }
    ]
    assert run.stdout == "Enqueued tasks.reconciliation_reminder as task captured-id\n"


# Every unreconciled session, once a day per session ------------------------------------


def reminded_on() -> dict[str, list[dt.date]]:
    """Each reminded session's number and the days it was reminded on, from the database."""
    days: dict[str, list[dt.date]] = {}
    for number, day in SessionReminder.objects.order_by("day").values_list(
        "session__number", "day"
    ):
        days.setdefault(number, []).append(day)
    return days


def test_a_session_closed_after_todays_reminder_is_reminded_by_the_next_run_that_day(
    network, clock, run_command
):
    hery = network["hery"]
    run_command(COMMAND)
    assert len(queued_mail()) == 2
    late = closed_session(hery, opened=at(TODAY, 9), closed=at(TODAY, 10), counted="10000.00")

    clock.move_to(at(TODAY, 14))
    output = run_command(COMMAND).stdout

    # Only the new session, in a second reminder to Hery; nobody else hears anything.
    assert [mail.to for mail in queued_mail()[2:]] == [[hery.email]]
    later_mail = queued_mail()[2]
    assert late.number in later_mail.body
    assert network["counted_short"].number not in later_mail.body
    assert later_mail.subject == "Reconciliation reminder 2026-11-25: 1 cash session waiting"
    [_, later] = Notification.objects.filter(agent=hery).order_by("pk")
    assert late.number in later.message and network["uncounted"].number not in later.message
    assert f"{hery.code} Hery Rakoto  -> reminded of 1 session, email" in output
    assert "(already reminded today)" in line_with(output, network["uncounted"].number)
    assert "(already reminded today)" not in line_with(output, late.number)
    assert reminded_on()[late.number] == [TODAY]
    assert all(days == [TODAY] for days in reminded_on().values())

    # A run that finds every session already reminded today sends nothing.
    clock.move_to(at(TODAY, 16))
    summary = json.loads(run_command(COMMAND, "--json").stdout)
    assert (summary["sessions_reminded"], summary["sessions_already_reminded"]) == (0, 6)
    assert summary["agents_skipped_already_reminded"] == 3
    assert len(queued_mail()) == 3
    assert Notification.objects.count() == 4


def test_days_3_with_six_sessions_over_several_days_reminds_each_session_once_a_day(
    clock, run_command
):
    rova, faly = AgentFactory(full_name="Rova Rabe"), AgentFactory(full_name="Faly Andria")
    six = [
        closed_session(
            agent,
            opened=at(TODAY - dt.timedelta(days=back), 7),
            closed=at(TODAY - dt.timedelta(days=back), 7, 30),
            counted="10000.00",
        )
        for back, agent in [(3, rova), (3, faly), (2, rova), (2, faly), (1, rova), (0, faly)]
    ]
    numbers = sorted(session.number for session in six)

    # The daily default run first (one day back), then an operator's --days 3 the same day.
    run_command(COMMAND)
    first = set(reminded_on())
    summary = json.loads(run_command(COMMAND, "--days", "3", "--json").stdout)

    assert sorted(first) == numbers  # older ones included: none waits for --days 3
    assert (summary["sessions"], summary["older"]["session_count"]) == (6, 0)
    assert (summary["sessions_reminded"], summary["sessions_already_reminded"]) == (0, 6)
    assert len(queued_mail()) == 2  # one per agent, from the first run

    clock.move_to(at(TODAY + dt.timedelta(days=1), 8))
    summary = json.loads(run_command(COMMAND, "--days", "3", "--json").stdout)
    run_command(COMMAND, "--days", "3")

    assert summary["sessions_reminded"] == 6
    # Row by row: every session reminded exactly once on each day, never twice.
    assert reminded_on() == {number: [TODAY, TODAY + dt.timedelta(days=1)] for number in numbers}
    assert len(queued_mail()) == 4


def test_a_session_older_than_the_window_is_reminded_daily_until_reconciled_then_never(
    clock, run_command
):
    agent = AgentFactory(full_name="Hery Rakoto")
    forgotten = closed_session(
        agent,
        opened=at(TODAY - dt.timedelta(days=10), 8),
        closed=at(TODAY - dt.timedelta(days=10), 17),
        counted="9000.00",
    )

    for offset in range(3):
        clock.move_to(at(TODAY + dt.timedelta(days=offset), 8))
        output = run_command(COMMAND).stdout
        waited = 10 + offset
        assert f"(waiting {waited} days, older)" in line_with(output, forgotten.number)
        assert f"{agent.code} Hery Rakoto  -> reminded of 1 session" in output
        mail = queued_mail()[-1]
        assert f"(waiting for {waited} days)" in line_with(mail.body, forgotten.number)
        assert f"<td>{waited} days</td>" in html_of(mail)
        notification = Notification.objects.filter(agent=agent).latest("pk")
        assert f"(waiting for {waited} days)" in line_with(notification.message, forgotten.number)

    clock.move_to(at(TODAY + dt.timedelta(days=2), 15))
    session_reconcile(session=forgotten, actor=StaffUserFactory(), notes="Cash was 1,000 short.")
    clock.move_to(at(TODAY + dt.timedelta(days=3), 8))
    output = run_command(COMMAND).stdout
    clock.move_to(at(TODAY + dt.timedelta(days=4), 8))
    run_command(COMMAND)

    assert output.strip() == "No unreconciled sessions closed in the last 1 day(s), and none older."
    assert reminded_on() == {forgotten.number: [TODAY + dt.timedelta(days=n) for n in range(3)]}
    assert len(queued_mail()) == 3
    assert Notification.objects.filter(agent=agent).count() == 3


def test_the_admins_summary_totals_the_older_sessions_on_a_line_of_their_own(
    network, admins, clock, run_command
):
    # Besides Voahangy's counted older session, Tiana's uncounted one closed five days ago.
    tiana_older = closed_session(
        network["tiana"],
        opened=at(TODAY - dt.timedelta(days=5), 8),
        closed=at(TODAY - dt.timedelta(days=5), 18),
        opening="2500.00",
    )

    output = run_command(COMMAND, "--email-admins").stdout

    [summary_mail] = [mail for mail in queued_mail() if "boss@example.com" in mail.to]
    text = summary_mail.body
    older = text.split("Older, still unreconciled (closed before 2026-11-24 00:00)\n", 1)[1]
    assert older.split("\n\n")[0].splitlines() == [
        "  Sessions: 2",
        "  Total unreconciled amount (expected balance): 12,500.00 MGA",
        "  Total discrepancy: 0.00 MGA (1 session not counted)",
    ]
    # The window's totals are unchanged by the older sessions.
    assert "  Total unreconciled amount (expected balance): 110,000.00 MGA" in text
    assert "Total unreconciled amount (all 6 sessions): 122,500.00 MGA" in text
    assert (
        f"- {tiana_older.number}, closed 2026-11-20 18:00 (automatically; older, waiting for "
        "5 days): expected 2,500.00 MGA, discrepancy not counted"
    ) in text
    html = html_of(summary_mail)
    assert "<h3>Older, still unreconciled (closed before 2026-11-24 00:00)</h3>" in html
    assert '<td align="right"><strong>12,500.00 MGA</strong></td>' in html
    assert "5 days <strong>(older)</strong>" in html
    assert (
        "Older, still unreconciled: 2 sessions; total expected 12,500.00 MGA; "
        "total discrepancy 0.00 MGA (1 session not counted)"
    ) in output


def test_an_older_backlog_never_counted_says_not_counted_not_zero(admins, clock, run_command):
    agent = AgentFactory()
    closed_session(
        agent,
        opened=at(TODAY - dt.timedelta(days=4), 8),
        closed=at(TODAY - dt.timedelta(days=4), 20),
    )

    output = run_command(COMMAND, "--email-admins").stdout

    [summary_mail] = [mail for mail in queued_mail() if "boss@example.com" in mail.to]
    older = summary_mail.body.split("Older, still unreconciled", 1)[1].split("\n\n")[0]
    assert "  Total discrepancy: not counted (1 session not counted)" in older
    new = summary_mail.body.split("Closed since", 1)[1].split("\n\n")[0]
    assert "  Sessions: 0" in new
    assert "New (last 1 day(s)): 0 sessions, 0 agents; nothing to reconcile" in output
    assert (
        "Older, still unreconciled: 1 session; total expected 10,000.00 MGA; "
        "total discrepancy not counted (1 session not counted)"
    ) in output


def test_reminders_and_the_summary_say_in_french_how_long_each_session_waited(
    network, admins, clock, run_command, settings
):
    settings.LANGUAGE_CODE = "fr"

    run_command(COMMAND, "--email-admins")

    hery_mail = mail_to(queued_mail(), network["hery"].email)
    assert (
        f"- {network['counted_short'].number}, clôturée le 2026-11-24 17:00 "
        "(en attente depuis 1 jour)"
    ) in hery_mail.body
    assert "(automatiquement) (clôturée aujourd'hui)" in hery_mail.body
    assert "Un rappel vous sera envoyé chaque jour jusqu'à leur rapprochement." in hery_mail.body
    assert '<th align="left">En attente depuis</th>' in html_of(hery_mail)
    voahangy_mail = mail_to(queued_mail(), network["voahangy"].email)
    assert "(en attente depuis 3 jours)" in line_with(voahangy_mail.body, network["old"].number)
    [in_app] = Notification.objects.filter(agent=network["voahangy"])
    assert (
        f"- {network['old'].number}, clôturée le 2026-11-22 17:00 (en attente depuis 3 jours) : "
        "attendu 10\N{NO-BREAK SPACE}000,00 MGA, écart 0,00 MGA"
    ) in in_app.message

    [summary_mail] = [mail for mail in queued_mail() if "boss@example.com" in mail.to]
    text = summary_mail.body
    assert "Clôturées depuis le 2026-11-24 00:00 (sur 1 jour)" in text
    older = text.split(
        "Plus anciennes, toujours non rapprochées (clôturées avant le 2026-11-24 00:00)\n", 1
    )[1]
    assert older.split("\n\n")[0].splitlines() == [
        "  Sessions : 1",
        "  Montant total non rapproché (solde attendu) : 10\N{NO-BREAK SPACE}000,00 MGA",
        "  Écart total : 0,00 MGA",
    ]
    assert "(ancienne, en attente depuis 3 jours)" in line_with(text, network["old"].number)
    assert "Montant total non rapproché (les 5 sessions) : 120\N{NO-BREAK SPACE}000,00 MGA" in text
    assert "3 jours <strong>(ancienne)</strong>" in html_of(summary_mail)
    for english in ("waiting", "older", "Older", "closed today", "every day"):
        assert english not in text + html_of(summary_mail) + hery_mail.body + in_app.message


@pytest.mark.django_db(transaction=True)
def test_a_run_cut_off_from_the_database_midway_leaves_the_rest_to_the_next_run(
    network, monkeypatch
):
    # A real cut: once the first agent's reminder has committed, another connection
    # terminates the run's own PostgreSQL backend, found by the application_name it set.
    real_send = reconciliation_reminder_send
    sent: list[int] = []

    def send_then_lose_the_database(**arguments):
        if not sent:
            with connection.cursor() as cursor:
                cursor.execute("SET application_name = 'remind-fault-test'")
        result = real_send(**arguments)
        sent.append(arguments["agent_id"])
        if len(sent) == 1:
            cutter = threading.Thread(target=terminate_backends, args=("remind-fault-test",))
            cutter.start()
            cutter.join(timeout=10)
        return result

    monkeypatch.setattr(
        f"{OPERATION_MODULE}.reconciliation_reminder_send", send_then_lose_the_database
    )

    with time_machine.travel(RUN_AT, tick=False):
        cut = command_run(COMMAND, expect_exit=1)
    connection.close()  # the test's own handle on the dead backend

    assert cut.stdout == ""
    assert cut.stderr.count("\n") == 1
    assert "The database could not be reached" in cut.stderr
    # What committed before the cut stays, with its audit entry; nothing else was written.
    first = network["hery"]
    assert sent == [first.pk]
    assert set(reminded_on()) == {network["counted_short"].number, network["uncounted"].number}
    assert list(Notification.objects.values_list("agent", flat=True)) == [first.pk]
    assert AuditEntry.objects.filter(action="reconciliation.reminded").count() == 1

    monkeypatch.undo()
    with time_machine.travel(at(TODAY, 8, 5), tick=False):
        again = json.loads(command_run(COMMAND, "--json").stdout)

    # The next run takes the rest, and reminds nothing twice.
    assert (again["sessions_reminded"], again["sessions_already_reminded"]) == (3, 2)
    assert reminded_on() == {
        network[name].number: [TODAY]
        for name in ("old", "counted_short", "uncounted", "counted_exact", "tiana_uncounted")
    }
    assert Notification.objects.count() == 3
    assert AuditEntry.objects.filter(action="reconciliation.reminded").count() == 3
    assert chain_verify().intact


def terminate_backends(application_name: str) -> None:
    """From this thread's own connection: end every backend with that application_name."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                [application_name],
            )
            assert cursor.fetchall() == [(True,)]
    finally:
        connection.close()


def test_one_agents_failed_reminder_fails_the_run_loudly_and_the_next_run_reminds_them(
    network, clock, run_command, monkeypatch
):
    hery = network["hery"]
    real_notify = payments.services.agent_notification_send

    def fail_for_hery(**arguments):
        # Inside the reminder's transaction, after its rows and audit entry were written.
        if arguments["agent"].pk == hery.pk:
            raise RuntimeError("template exploded")
        return real_notify(**arguments)

    monkeypatch.setattr(payments.services, "agent_notification_send", fail_for_hery)

    run = run_command(COMMAND, expect_exit=1)

    assert f"{hery.code} Hery Rakoto  -> FAILED: RuntimeError: template exploded" in run.stdout
    assert (
        run.stdout.rstrip()
        .splitlines()[-1]
        .startswith(
            "Reminded 2 agents of 3 sessions (1 agent in-app only), "
            "0 sessions already reminded today, 1 agent FAILED (2 sessions not reminded); "
        )
    )
    assert "1 reminder(s) could not be sent; see the output." in run.stderr
    # The others went out; Hery's reminder rolled back whole: no rows, no audit entry.
    assert network["counted_short"].number not in reminded_on()
    assert not ReconciliationReminder.objects.filter(agent=hery).exists()
    assert not Notification.objects.filter(agent=hery).exists()
    audited = AuditEntry.objects.filter(action="reconciliation.reminded")
    assert hery.code not in [entry.data["agent"] for entry in audited]
    assert len(queued_mail()) == 1

    monkeypatch.undo()
    clock.move_to(at(TODAY, 9))
    summary = json.loads(run_command(COMMAND, "--json").stdout)

    assert (summary["sessions_reminded"], summary["sessions_already_reminded"]) == (2, 3)
    assert all(days == [TODAY] for days in reminded_on().values())
    assert len(reminded_on()) == 5
