import datetime as dt
import json
import os
import subprocess
import threading
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

from auditing.models import AuditEntry
from auditing.verification import chain_verify
from mailing.models import EmailMessage
from payments.models import (
    CashSession,
    Notification,
    NotificationKind,
    ReconciliationReminder,
    ReminderKind,
)
from payments.services import (
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
from tasks.results import OperationStatus, Trigger
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
        for model in (Notification, ReconciliationReminder, EmailMessage, AuditEntry)
    }


def mail_to(mailoutbox, address: str):
    (mail,) = [mail for mail in mailoutbox if address in mail.to]
    return mail


def html_of(mail) -> str:
    (html, mimetype), *_ = mail.alternatives
    assert mimetype == "text/html"
    return html


def line_with(text: str, needle: str) -> str:
    (line,) = [line for line in text.splitlines() if needle in line]
    return line


def test_each_agent_gets_one_reminder_listing_only_their_own_sessions(
    network, clock, run_command, mailoutbox
):
    run_command(COMMAND)

    hery, voahangy = network["hery"], network["voahangy"]
    reminders = {r.agent.code: r for r in ReconciliationReminder.objects.filter(kind="agent")}
    assert set(reminders) == {hery.code, voahangy.code, network["tiana"].code}
    assert reminders[hery.code].session_numbers == [
        network["counted_short"].number,
        network["uncounted"].number,
    ]
    assert reminders[voahangy.code].session_numbers == [network["counted_exact"].number]
    assert all(r.day == TODAY for r in reminders.values())
    for agent in (hery, voahangy, network["tiana"]):
        (notification,) = Notification.objects.filter(agent=agent)
        assert notification.kind == NotificationKind.RECONCILIATION_REMINDER

    assert len(mailoutbox) == 2
    hery_mail = mail_to(mailoutbox, hery.email)
    assert hery_mail.subject == "Reconciliation reminder 2026-11-25: 2 cash sessions waiting"
    assert network["counted_short"].number in hery_mail.body
    assert network["uncounted"].number in hery_mail.body
    assert network["counted_exact"].number not in hery_mail.body
    assert "Total expected balance: 90,000.00 MGA" in hery_mail.body
    voahangy_mail = mail_to(mailoutbox, voahangy.email)
    assert "Total expected balance: 15,000.00 MGA" in voahangy_mail.body
    # A counted session that balanced is a real zero.
    assert "Total discrepancy: 0.00 MGA\n" in voahangy_mail.body


def test_reminder_shows_closing_times_in_the_local_time_zone(
    network, clock, run_command, mailoutbox
):
    run_command(COMMAND)

    hery_mail = mail_to(mailoutbox, network["hery"].email)
    # Closed at 17:00 and 06:30 local, 14:00 and 03:30 UTC.
    assert "closed 2026-11-24 17:00" in hery_mail.body
    assert "closed 2026-11-25 06:30 (automatically)" in hery_mail.body
    assert "2026-11-24 17:00" in html_of(hery_mail)
    assert "Indian/Antananarivo" in hery_mail.body


def test_an_uncounted_session_shows_not_counted_never_a_zero_discrepancy(
    network, clock, run_command, mailoutbox
):
    output = run_command(COMMAND).stdout

    uncounted = network["uncounted"].number
    hery_mail = mail_to(mailoutbox, network["hery"].email)
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


def test_reconciled_open_and_older_sessions_are_left_out(network, clock, run_command):
    output = run_command(COMMAND, "--json").stdout

    summary = json.loads(output)
    listed = {row["number"] for group in summary["reminders"] for row in group["sessions"]}
    assert listed == {
        network["counted_short"].number,
        network["uncounted"].number,
        network["counted_exact"].number,
        network["tiana_uncounted"].number,
    }
    assert network["reconciled"].number not in output
    assert network["still_open"].number not in output
    assert network["old"].number not in output


def test_a_longer_look_back_takes_in_older_sessions(network, clock, run_command):
    summary = json.loads(run_command(COMMAND, "--days", "3", "--json").stdout)

    assert summary["sessions"] == 5
    assert network["old"].number in {
        row["number"] for group in summary["reminders"] for row in group["sessions"]
    }


def test_the_window_starts_at_local_midnight_not_utc_midnight(clock, run_command):
    agent = AgentFactory()
    day_before_yesterday = TODAY - dt.timedelta(days=2)
    late = closed_session(
        agent,
        opened=at(day_before_yesterday, 15),
        closed=at(day_before_yesterday, 23, 30),
        counted="10000.00",
    )
    # 02:00 local is still yesterday in UTC: a UTC window would take the 23:30 session in.
    early_morning = at(TODAY, 2)

    clock.move_to(early_morning)
    output = run_command(COMMAND, "--days", "1").stdout
    assert output.strip() == "No unreconciled sessions closed in the last 1 day(s)."
    assert not ReconciliationReminder.objects.exists()

    summary = json.loads(run_command(COMMAND, "--days", "2", "--json").stdout)
    assert summary["since"].startswith("2026-11-23T00:00:00+03:00")
    assert [row["number"] for row in summary["reminders"][0]["sessions"]] == [late.number]
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

    assert [row["number"] for row in summary["reminders"][0]["sessions"]] == [session.number]


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
    network, admins, clock, run_command, mailoutbox, args, message
):
    before = written_rows()

    refusal = run_command(COMMAND, *args, "--email-admins", expect_exit=2)

    assert message in refusal.stderr
    assert refusal.stderr.count("\n") == 1
    assert refusal.stdout == ""
    assert written_rows() == before
    assert mailoutbox == []


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
        (True, "--days must be a whole number of days, not True."),
        ("two", "--days must be a whole number of days, not 'two'."),
    ],
)
def test_the_operation_refuses_days_that_are_not_a_whole_number_in_range(network, days, message):
    with pytest.raises(InvalidInput) as refusal:
        options_parse(days=days, dry_run=False, email_admins=True)

    assert str(refusal.value) == message


@pytest.mark.parametrize("days", [0, 367, 1.5, True, "two"])
def test_a_bad_look_back_fails_the_task_before_anything_is_written(network, admins, days):
    before = written_rows()

    with pytest.raises(InvalidInput, match="^--days must be "):
        tasks.reconciliation_reminder(days=days, email_admins=True, trigger="beat")

    assert written_rows() == before


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"dry_run": "yes"}, "dry_run must be true or false, not 'yes'."),
        ({"email_admins": None}, "email_admins must be true or false, not None."),
    ],
)
def test_flags_that_are_not_true_or_false_are_refused(arguments, message):
    with pytest.raises(InvalidInput) as refusal:
        options_parse(**arguments)

    assert str(refusal.value) == message


def test_a_whole_number_of_days_written_as_text_is_accepted():
    assert options_parse(days=" 3 ") == Options(days=3)


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
    network, admins, clock, run_command, mailoutbox
):
    before = written_rows()

    output = run_command(COMMAND, "--dry-run", "--email-admins").stdout

    assert written_rows() == before
    assert mailoutbox == []
    assert output.startswith("Dry run: nothing will be sent or written.")
    assert f"{network['hery'].code} Hery Rakoto  -> would remind by email" in output
    assert f"{network['tiana'].code} Tiana Randria  -> would remind, in-app only" in output
    assert output.rstrip().endswith(
        "Would remind 3 agents (2 by email, 1 in-app only), 0 already reminded today; "
        "admin summary would go to 2 administrators. Nothing was sent or written."
    )


def test_the_admins_summary_has_the_totals_the_groups_and_the_action_required(
    network, admins, clock, run_command, mailoutbox
):
    run_command(COMMAND, "--email-admins")

    (summary_mail,) = [mail for mail in mailoutbox if "boss@example.com" in mail.to]
    assert summary_mail.to == ["boss@example.com", "ops@example.com"]
    assert summary_mail.subject == "Reconciliation summary 2026-11-25: 4 unreconciled sessions"
    text = summary_mail.body
    assert "Action required: reconcile these sessions in the admin." in text
    assert "Sessions: 4" in text
    assert "Agents: 3" in text
    assert "Total unreconciled amount (expected balance): 110,000.00 MGA" in text
    assert "Total discrepancy: -2,500.00 MGA (2 sessions not counted)" in text
    assert "Sessions not counted: 2" in text
    assert "Total unreconciled amount: 110,000.00 MGA" in text
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
    assert len(reminder.session_numbers) == 4


def test_the_admins_summary_is_only_sent_when_asked(
    network, admins, clock, run_command, mailoutbox
):
    output = run_command(COMMAND).stdout

    assert not any("boss@example.com" in mail.to for mail in mailoutbox)
    assert not ReconciliationReminder.objects.filter(kind=ReminderKind.ADMIN_SUMMARY).exists()
    assert "no admin summary (use --email-admins)" in output


def test_without_any_admin_address_the_output_says_the_summary_was_not_sent(
    network, clock, run_command, mailoutbox
):
    output = run_command(COMMAND, "--email-admins", "--json").stdout

    summary = json.loads(output)
    assert summary["admin_summary"] == {"status": "no_recipients", "recipients": []}
    assert len(mailoutbox) == 2  # the two agents with an address only
    assert not ReconciliationReminder.objects.filter(kind=ReminderKind.ADMIN_SUMMARY).exists()
    text = run_command(COMMAND, "--email-admins").stdout
    assert "admin summary NOT sent: no administrator has an email address" in text


def test_a_second_run_the_same_day_sends_nothing_again_and_the_next_day_does(
    network, admins, clock, run_command, mailoutbox
):
    run_command(COMMAND, "--email-admins")
    assert len(mailoutbox) == 3
    assert Notification.objects.count() == 3

    clock.move_to(at(TODAY, 14))
    output = run_command(COMMAND, "--email-admins").stdout

    assert len(mailoutbox) == 3
    assert Notification.objects.count() == 3
    assert ReconciliationReminder.objects.count() == 4
    assert f"{network['hery'].code} Hery Rakoto  -> already reminded today" in output
    assert output.rstrip().endswith(
        "Reminded 0 agents (0 emails sent, 0 in-app only), 3 already reminded today; "
        "admin summary already sent today"
    )

    clock.move_to(at(TODAY + dt.timedelta(days=1), 8))
    summary = json.loads(run_command(COMMAND, "--email-admins", "--days", "2", "--json").stdout)
    assert summary["agents_reminded"] == 3
    assert summary["agents_skipped_already_reminded"] == 0
    assert summary["admin_summary"]["recipients"] == ["boss@example.com", "ops@example.com"]
    assert len(mailoutbox) == 6
    assert Notification.objects.count() == 6


def test_a_reminder_recorded_by_a_concurrent_run_stops_the_send(
    network, admins, clock, run_command, mailoutbox, monkeypatch
):
    # The other run committed after this one's check: the unique constraint has the last word.
    ReconciliationReminder.objects.create(
        kind=ReminderKind.AGENT, agent=network["hery"], day=TODAY, session_numbers=[]
    )
    ReconciliationReminder.objects.create(kind=ReminderKind.ADMIN_SUMMARY, day=TODAY)
    monkeypatch.setattr(f"{OPERATION_MODULE}.agents_reminded_on", lambda **_: set())
    monkeypatch.setattr(f"{OPERATION_MODULE}.admin_summary_sent_on", lambda **_: False)

    summary = json.loads(run_command(COMMAND, "--email-admins", "--json").stdout)

    assert summary["status"] == "ok"
    assert summary["agents_reminded"] == 2
    assert summary["agents_skipped_already_reminded"] == 1
    assert summary["admin_summary"]["status"] == "already_sent"
    assert not Notification.objects.filter(agent=network["hery"]).exists()
    assert sorted(address for mail in mailoutbox for address in mail.to) == [
        network["voahangy"].email
    ]
    assert AuditEntry.objects.filter(action="reconciliation.reminded").count() == 2


def test_an_agent_without_email_gets_the_in_app_notification_only(
    network, clock, run_command, mailoutbox
):
    output = run_command(COMMAND).stdout

    tiana = network["tiana"]
    (notification,) = Notification.objects.filter(agent=tiana)
    assert notification.title == "Reconciliation reminder 2026-11-25: 1 cash session waiting"
    assert network["tiana_uncounted"].number in notification.message
    assert "Total expected balance: 5,000.00 MGA" in notification.message
    assert not EmailMessage.objects.filter(about=tiana.code).exists()
    assert not any(tiana.user.email in mail.to for mail in mailoutbox)
    assert f"{tiana.code} Tiana Randria  -> reminded, in-app only" in output


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
    assert (summary["agents_reminded"], summary["agents_skipped_already_reminded"]) == (3, 0)
    assert summary["in_app_only"] == 1
    hery = next(g for g in summary["reminders"] if g["agent"] == network["hery"].code)
    assert hery["total_expected"] == "90000.00"
    assert hery["total_discrepancy"] == "-2500.00"
    assert hery["not_counted"] == 1
    assert [row["discrepancy"] for row in hery["sessions"]] == ["-2500.00", None]
    assert hery["sessions"][1]["closed_at"] == "2026-11-25T06:30:00+03:00"
    assert summary["admin_summary"]["recipients"] == ["boss@example.com", "ops@example.com"]
    assert sum(summary["emails"].values()) == 3


def test_without_sessions_the_command_says_so_and_sends_nothing(
    clock, run_command, mailoutbox, admins
):
    output = run_command(COMMAND, "--days", "3", "--email-admins").stdout

    assert output.strip() == "No unreconciled sessions closed in the last 3 day(s)."
    assert mailoutbox == []
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
    # Transactional: each reminder commits as it would under cron, so its email goes out
    # before the run reports, and the output may say "sent".
    out = StringIO()
    with time_machine.travel(RUN_AT, tick=False):
        call_command(COMMAND, "--email-admins", stdout=out, stderr=StringIO())

    hery, voahangy, tiana = network["hery"], network["voahangy"], network["tiana"]
    short, uncounted = network["counted_short"].number, network["uncounted"].number
    lines = out.getvalue().splitlines()
    assert lines == [
        "Unreconciled sessions closed since 2026-11-24 00:00 (last 1 day(s)): 4 sessions, 3 agents",
        f"{hery.code} Hery Rakoto  -> reminded, email sent",
        f"  {short}  closed 2026-11-24 17:00  expected 60,000.00 MGA  discrepancy -2,500.00 MGA",
        f"  {uncounted}  closed 2026-11-25 06:30  expected 30,000.00 MGA  discrepancy not counted",
        "  Total expected: 90,000.00 MGA; total discrepancy: -2,500.00 MGA (1 session not counted)",
        f"{voahangy.code} Voahangy Rabe  -> reminded, email sent",
        f"  {network['counted_exact'].number}  closed 2026-11-24 16:00  "
        "expected 15,000.00 MGA  discrepancy 0.00 MGA",
        "  Total expected: 15,000.00 MGA; total discrepancy: 0.00 MGA",
        f"{tiana.code} Tiana Randria  -> reminded, in-app only",
        f"  {network['tiana_uncounted'].number}  closed 2026-11-24 20:30  "
        "expected 5,000.00 MGA  discrepancy not counted",
        "  Total expected: 5,000.00 MGA; total discrepancy: not counted (1 session not counted)",
        "Overall: 4 sessions, 3 agents; total expected 110,000.00 MGA; total discrepancy "
        "-2,500.00 MGA (2 sessions not counted)",
        "Reminded 3 agents (2 emails sent, 1 in-app only), 0 already reminded today; "
        "admin summary sent to 2 administrators",
    ]


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
def test_two_runs_racing_past_the_check_still_remind_each_agent_once(network, admins, monkeypatch):
    # Both runs see "not reminded yet"; the unique constraint must stop the second one.
    monkeypatch.setattr(f"{OPERATION_MODULE}.agents_reminded_on", lambda **_: set())
    monkeypatch.setattr(f"{OPERATION_MODULE}.admin_summary_sent_on", lambda **_: False)
    barrier = threading.Barrier(2)
    summaries: list[Result] = []
    errors: list[Exception] = []

    def one_run() -> None:
        try:
            barrier.wait(timeout=10)
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
    assert sum(s.agents_reminded for s in summaries) == 3
    assert sum(s.agents_skipped_already_reminded for s in summaries) == 3
    assert sorted(s.admin_summary.status for s in summaries)[0] == SummaryStatus.ALREADY_SENT
    assert Notification.objects.count() == 3
    assert ReconciliationReminder.objects.count() == 4
    assert EmailMessage.objects.count() == 3
    assert AuditEntry.objects.filter(action="reconciliation.reminded").count() == 4


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
