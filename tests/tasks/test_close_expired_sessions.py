"""close_expired_sessions: which sessions close, what a closure leaves behind, and what the
command prints and returns (the operation in tasks/operations/, its command and its task)."""

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.mail.backends.locmem import EmailBackend
from django.core.management import call_command
from django.utils import timezone

from auditing.models import AuditEntry
from auditing.verification import chain_verify
from mailing.models import EmailAttempt, EmailMessage, EmailStatus
from payments import services
from payments.errors import PaymentsError
from payments.models import CashSession, Notification, NotificationKind, SessionStatus
from payments.services import transaction_record
from tasks import tasks
from tasks.inputs import InvalidInput
from tasks.operations.close_expired_sessions import (
    Options,
    Result,
    SessionAction,
    close_expired_sessions,
    options_parse,
)
from tasks.results import OperationStatus, Trigger
from tests.factories import (
    AgentFactory,
    CashSessionFactory,
    CashTransactionFactory,
    CommissionFactory,
)
from tests.mailing.outbox import outbox_deliver_queued

LOCAL = ZoneInfo("Indian/Antananarivo")
# 12:00 UTC. A session opened 13 h earlier opened at 02:00 local, still 23:00 UTC the day before.
NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=LOCAL)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]

PROJECT_DIR = Path(settings.BASE_DIR)
COMMAND = "close_expired_sessions"
HOUR = dt.timedelta(hours=1)
SUMMARY_SKIP = "(has transactions; use --force)"


def expired(*, hours: float = 13, **kwargs) -> CashSession:
    return CashSessionFactory(opened_at=NOW - dt.timedelta(hours=hours), **kwargs)


def line_for(output: str, session: CashSession) -> str:
    [line] = [line for line in output.splitlines() if session.number in line]
    return line


def written_state() -> dict:
    """Everything a run could write."""
    return {
        "sessions": list(CashSession.objects.order_by("pk").values()),
        "audit_entries": AuditEntry.objects.count(),
        "notifications": Notification.objects.count(),
        "emails": EmailMessage.objects.count(),
        "email_attempts": EmailAttempt.objects.count(),
    }


def manage_py(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_ENV": "test"}
    return subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_expired_session_without_payments_is_closed_uncounted_noted_audited_and_notified(
    clock, mailoutbox, run_command
):
    session = expired(hours=13, opening_balance=Decimal("25000.00"))

    output = run_command(COMMAND).stdout

    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED
    assert session.auto_closed is True
    assert session.closed_at == NOW
    assert session.closed_by is None
    assert session.expected_balance == Decimal("25000.00")
    # Nobody counted: the count and the discrepancy stay empty, never the expected amount.
    assert session.counted_balance is None
    assert session.discrepancy is None
    notes = session.closing_notes
    assert "Closed automatically by close_expired_sessions (manual run)" in notes
    assert "at 2026-03-10 15:00" in notes
    assert "open 13.0 h, past the 12 h timeout" in notes
    assert "Cash not counted." in notes

    [entry] = AuditEntry.objects.all()
    assert entry.action == "session.auto_closed"
    assert entry.actor is None
    assert entry.actor_name == "system"
    assert (entry.subject_type, entry.subject_id) == ("payments.cashsession", str(session.pk))
    assert entry.data["expected_balance"] == "25000.00"
    assert entry.data["counted_balance"] is None
    assert entry.data["discrepancy"] is None
    assert entry.data["trigger"] == "manual"
    assert entry.data["forced"] is False
    assert chain_verify().intact

    [notification] = Notification.objects.all()
    assert notification.kind == NotificationKind.SESSION_AUTO_CLOSED
    assert (notification.agent, notification.session) == (session.agent, session)
    [mail] = mailoutbox
    assert mail.to == [session.agent.email]
    assert f"Closed 1, skipped 0 {SUMMARY_SKIP}, failed 0" in output


def test_a_second_run_finds_nothing_left_to_close(clock, run_command):
    expired(hours=13)
    run_command(COMMAND)
    audit_entries = AuditEntry.objects.count()

    output = run_command(COMMAND).stdout

    assert "Open sessions older than 12 h: 0" in output
    assert f"Closed 0, skipped 0 {SUMMARY_SKIP}, failed 0" in output
    assert AuditEntry.objects.count() == audit_entries


def test_a_session_with_payments_is_skipped_and_its_agent_notified_once_across_runs(
    clock, mailoutbox, run_command
):
    session = expired(hours=13)
    CashTransactionFactory(session=session)

    first = run_command(COMMAND).stdout
    clock.shift(HOUR)
    second = run_command(COMMAND).stdout

    session.refresh_from_db()
    assert session.status == SessionStatus.OPEN
    assert session.closed_at is None
    assert session.counted_balance is None
    assert session.expiry_notified_at == NOW
    assert line_for(first, session).endswith(f"-> skipped {SUMMARY_SKIP}, agent notified")
    assert line_for(second, session).endswith(f"-> skipped {SUMMARY_SKIP}")
    for output in (first, second):
        assert f"Closed 0, skipped 1 {SUMMARY_SKIP}, failed 0" in output

    assert Notification.objects.filter(kind=NotificationKind.SESSION_EXPIRED).count() == 1
    assert list(AuditEntry.objects.values_list("action", flat=True)) == ["session.expiry_notified"]
    [mail] = mailoutbox
    assert mail.to == [session.agent.email]
    assert mail.subject == f"Session {session.number} expired on 2026-03-10: count and close it"
    assert "count your cash and close the session" in mail.body


def test_recording_a_payment_is_accepted_before_the_timeout_and_refused_after_it(
    clock, run_command
):
    session = CashSessionFactory(opened_at=NOW - 12 * HOUR + dt.timedelta(minutes=1))
    payment = {
        "payer_reference": "NIF-LATE",
        "tax_amount": Decimal("5000.00"),
        "amount_tendered": Decimal("5000.00"),
        "actor": session.agent.user,
    }
    transaction_record(session=session, **payment)

    clock.shift(dt.timedelta(minutes=2))
    run_command(COMMAND)

    with pytest.raises(PaymentsError, match=rf"Session {session.number} expired at .*count"):
        transaction_record(session=session, **payment)
    assert session.transactions.count() == 1
    session.refresh_from_db()
    assert session.status == SessionStatus.OPEN


def test_force_closes_sessions_with_payments_expecting_only_completed_ones(clock, run_command):
    session = expired(hours=13, opening_balance=Decimal("10000.00"))
    CashTransactionFactory(session=session, tax_amount=Decimal("5000.00"))
    CashTransactionFactory(session=session, tax_amount=Decimal("7000.00"))
    CommissionFactory(
        cancelled=True,
        cash_transaction__session=session,
        cash_transaction__tax_amount=Decimal("3000.00"),
    )

    output = run_command(COMMAND, "--force").stdout

    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED
    assert session.auto_closed is True
    assert session.expected_balance == Decimal("22000.00")
    assert session.counted_balance is None
    assert session.discrepancy is None
    assert "Forced although payments were recorded." in session.closing_notes
    [entry] = AuditEntry.objects.filter(action="session.auto_closed")
    assert entry.data["forced"] is True
    assert entry.data["transactions"] == 3
    assert entry.data["expected_balance"] == "22000.00"
    assert line_for(output, session).endswith("3 transaction(s)  expected 22,000.00 MGA  -> closed")
    assert f"Closed 1, skipped 0 {SUMMARY_SKIP}, failed 0" in output
    assert not Notification.objects.filter(kind=NotificationKind.SESSION_EXPIRED).exists()


def test_dry_run_lists_what_would_be_closed_or_skipped_and_writes_nothing(
    clock, mailoutbox, django_capture_on_commit_callbacks
):
    empty = expired(hours=13)
    busy = expired(hours=14)
    CashTransactionFactory(session=busy)
    before = written_state()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        out = StringIO()
        call_command(COMMAND, "--dry-run", stdout=out)
        output = out.getvalue()

    assert written_state() == before
    assert callbacks == []
    assert mailoutbox == []
    assert output.startswith("Dry run: nothing will be written.")
    assert line_for(output, empty).endswith("-> would close")
    assert line_for(output, busy).endswith(f"-> skipped {SUMMARY_SKIP}")
    assert (
        f"Would close 1, would skip 1 {SUMMARY_SKIP}. Nothing was written." in output.splitlines()
    )


def test_dry_run_with_force_would_close_sessions_with_payments_and_writes_nothing(
    clock, mailoutbox, run_command
):
    busy = expired(hours=14)
    CashTransactionFactory(session=busy)
    before = written_state()

    output = run_command(COMMAND, "--dry-run", "--force").stdout

    assert written_state() == before
    assert mailoutbox == []
    assert line_for(output, busy).endswith("-> would close")
    assert f"Would close 1, would skip 0 {SUMMARY_SKIP}. Nothing was written." in output


def test_a_session_exactly_at_the_timeout_is_closed_and_one_a_minute_younger_is_untouched(
    clock, run_command
):
    at_timeout = CashSessionFactory(opened_at=NOW - 12 * HOUR)
    younger = CashSessionFactory(opened_at=NOW - 12 * HOUR + dt.timedelta(minutes=1))
    younger_before = CashSession.objects.values().get(pk=younger.pk)

    output = run_command(COMMAND).stdout

    at_timeout.refresh_from_db()
    assert at_timeout.status == SessionStatus.CLOSED
    assert CashSession.objects.values().get(pk=younger.pk) == younger_before
    assert younger.number not in output
    assert not AuditEntry.objects.filter(subject_id=str(younger.pk)).exists()
    assert not Notification.objects.filter(session=younger).exists()


def test_closed_sessions_are_left_alone(clock, run_command):
    done = CashSessionFactory(opened_at=NOW - 72 * HOUR, closed=True)
    uncounted = CashSessionFactory(opened_at=NOW - 48 * HOUR, uncounted=True)
    before = written_state()

    output = run_command(COMMAND).stdout

    assert written_state() == before
    assert "Open sessions older than 12 h: 0" in output
    assert done.number not in output and uncounted.number not in output


@pytest.mark.parametrize(
    ("timeout_hours", "closed_age", "open_age"),
    [
        (4, 4 * HOUR + dt.timedelta(minutes=1), 4 * HOUR - dt.timedelta(minutes=1)),
        (24, 25 * HOUR, 13 * HOUR),
    ],
)
def test_the_configured_timeout_is_honoured(
    clock, config, run_command, timeout_hours, closed_age, open_age
):
    config.session_timeout_hours = timeout_hours
    config.save()
    past = CashSessionFactory(opened_at=NOW - closed_age)
    within = CashSessionFactory(opened_at=NOW - open_age)

    output = run_command(COMMAND).stdout

    past.refresh_from_db()
    within.refresh_from_db()
    assert past.status == SessionStatus.CLOSED
    assert f"past the {timeout_hours} h timeout" in past.closing_notes
    assert within.status == SessionStatus.OPEN
    assert f"Open sessions older than {timeout_hours} h: 1" in output


def test_a_session_expired_days_ago_is_closed_too(clock, run_command):
    old = expired(hours=72)

    run_command(COMMAND)

    old.refresh_from_db()
    assert old.status == SessionStatus.CLOSED
    assert "open 72.0 h" in old.closing_notes


def test_an_agent_with_an_address_is_emailed_and_one_without_is_notified_in_app_only(
    clock, mailoutbox, run_command
):
    emailed = expired(
        hours=13, agent=AgentFactory(email="rova@agents.example.com", full_name="Rova Rakoto")
    )
    in_app = expired(hours=14, agent=AgentFactory(email=""))

    run_command(COMMAND)

    for session in (emailed, in_app):
        [notification] = Notification.objects.filter(session=session)
        assert notification.kind == NotificationKind.SESSION_AUTO_CLOSED
        assert notification.title == f"Session {session.number} closed automatically on 2026-03-10"
    [email] = EmailMessage.objects.all()
    assert email.recipients == ["rova@agents.example.com"]
    assert email.status == EmailStatus.SENT
    [mail] = mailoutbox
    assert mail.to == ["rova@agents.example.com"]
    assert mail.subject == f"Session {emailed.number} closed automatically on 2026-03-10"
    assert "Hello Rova Rakoto" in mail.body
    # Opened 02:00 local (23:00 UTC the day before), closed 15:00 local (12:00 UTC).
    assert "opened on 2026-03-10 02:00" in mail.body
    assert "closed it on 2026-03-10 15:00 (Indian/Antananarivo)" in mail.body
    assert "Counted cash: not counted" in mail.body


def test_one_failing_session_is_left_untouched_the_others_close_and_the_run_exits_1(
    clock, monkeypatch, run_command
):
    first = expired(hours=15)
    broken = expired(hours=14)
    last = expired(hours=13)
    broken_before = CashSession.objects.values().get(pk=broken.pk)
    real_close = services.session_close_automatically

    def close_all_but_broken(*, session, **kwargs):
        if session.number == broken.number:
            raise RuntimeError("simulated failure")
        return real_close(session=session, **kwargs)

    monkeypatch.setattr(services, "session_close_automatically", close_all_but_broken)

    run = run_command(COMMAND, expect_exit=1)
    output = run.stdout

    assert "CommandError: 1 session(s) could not be closed; see the output." in run.stderr
    assert CashSession.objects.values().get(pk=broken.pk) == broken_before
    for session in (first, last):
        session.refresh_from_db()
        assert session.status == SessionStatus.CLOSED
    closed_subjects = set(
        AuditEntry.objects.filter(action="session.auto_closed").values_list("subject_id", flat=True)
    )
    assert closed_subjects == {str(first.pk), str(last.pk)}
    assert not Notification.objects.filter(session=broken).exists()
    assert line_for(output, broken).endswith("-> FAILED: RuntimeError: simulated failure")
    assert f"Closed 2, skipped 0 {SUMMARY_SKIP}, failed 1" in output


def test_a_failure_after_closing_rolls_the_closure_and_its_audit_entry_back(
    clock, monkeypatch, run_command
):
    session = expired(hours=13)
    before = CashSession.objects.values().get(pk=session.pk)

    def notification_store_down(**kwargs):
        raise RuntimeError("notification store down")

    # The batch drafts its notices, then stores them together.
    monkeypatch.setattr(services, "agent_notice_draft", notification_store_down)

    run_command(COMMAND, expect_exit=1)

    assert CashSession.objects.values().get(pk=session.pk) == before
    assert AuditEntry.objects.count() == 0
    assert Notification.objects.count() == 0


def test_output_has_one_line_per_session_and_a_summary_line(clock):
    closable = expired(
        hours=13,
        opening_balance=Decimal("10000.00"),
        agent=AgentFactory(code="AG-A", full_name="Hery Rabe"),
    )
    busy = expired(
        hours=20,
        opening_balance=Decimal("5000.00"),
        agent=AgentFactory(code="AG-B", full_name="Lala Be"),
    )
    CashTransactionFactory(session=busy, tax_amount=Decimal("1500.00"))
    out = StringIO()

    call_command(COMMAND, stdout=out)

    assert out.getvalue().splitlines() == [
        "Open sessions older than 12 h: 2",
        f"  {busy.number}  AG-B Lala Be  opened 2026-03-09 19:00  1 transaction(s)  "
        f"expected 6,500.00 MGA  -> skipped {SUMMARY_SKIP}, agent notified",
        f"  {closable.number}  AG-A Hery Rabe  opened 2026-03-10 02:00  0 transaction(s)  "
        "expected 10,000.00 MGA  -> closed",
        f"Closed 1, skipped 1 {SUMMARY_SKIP}, failed 0",
        # A run only queues its mail (a worker or the sweeper sends it): the output says
        # "sent" only once the mail server accepted.
        "Emails to agents: queued (2)",
    ]


def test_opened_at_is_shown_in_the_configured_time_zone_not_utc(clock, run_command):
    # 22:30 UTC on the 9th is 01:30 on the 10th in Antananarivo (UTC+3).
    session = CashSessionFactory(opened_at=dt.datetime(2026, 3, 9, 22, 30, tzinfo=dt.UTC))

    output = run_command(COMMAND, "--dry-run").stdout
    summary = json.loads(run_command(COMMAND, "--dry-run", "--json").stdout)

    assert "opened 2026-03-10 01:30" in line_for(output, session)
    assert "22:30" not in output
    [row] = summary["sessions"]
    assert row["opened_at"] == "2026-03-10T01:30:00+03:00"


def test_json_output_parses_and_matches_what_was_done(clock):
    closable = expired(hours=13, opening_balance=Decimal("10000.00"))
    busy = expired(hours=20, opening_balance=Decimal("5000.00"))
    CashTransactionFactory(session=busy, tax_amount=Decimal("1500.00"))

    out = StringIO()
    call_command(COMMAND, "--json", stdout=out)
    summary = json.loads(out.getvalue())

    rows = {row["session"]: row for row in summary.pop("sessions")}
    assert summary == {
        "operation": "close_expired_sessions",
        "trigger": "manual",
        "status": "ok",
        "dry_run": False,
        "force": False,
        "timeout_hours": 12,
        "currency": "MGA",
        "ran_at": "2026-03-10T15:00:00+03:00",
        "closed": 1,
        "would_close": 0,
        "skipped": 1,
        "already_handled": 0,
        "failed": 0,
        "emails": {"queued": 2, "sending": 0, "sent": 0, "failed": 0},
    }
    assert rows == {
        closable.number: {
            "session": closable.number,
            "agent": closable.agent.code,
            "agent_name": closable.agent.full_name,
            "opened_at": "2026-03-10T02:00:00+03:00",
            "transactions": 0,
            "expected_balance": "10000.00",
            "action": "closed",
        },
        busy.number: {
            "session": busy.number,
            "agent": busy.agent.code,
            "agent_name": busy.agent.full_name,
            "opened_at": "2026-03-09T19:00:00+03:00",
            "transactions": 1,
            "expected_balance": "6500.00",
            "action": "skipped",
            "reason": "has transactions; use --force",
            "agent_notified": True,
        },
    }
    closable.refresh_from_db()
    busy.refresh_from_db()
    assert (closable.status, busy.status) == (SessionStatus.CLOSED, SessionStatus.OPEN)


def test_json_output_of_a_failed_run_still_parses_and_exits_1(clock, monkeypatch, run_command):
    session = expired(hours=13)

    def always_fails(**kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(services, "session_close_automatically", always_fails)

    summary = json.loads(run_command(COMMAND, "--json", expect_exit=1).stdout)

    assert summary["status"] == "failed"
    assert summary["failed"] == 1
    assert summary["sessions"][0]["session"] == session.number
    assert summary["sessions"][0]["error"] == "RuntimeError: simulated failure"


def test_help_lists_the_options_and_the_exit_code_table():
    result = manage_py(COMMAND, "--help")

    assert result.returncode == 0, result.stderr
    for option in ("--dry-run", "--force", "--enqueue", "--json"):
        assert option in result.stdout
    assert "exit codes:" in result.stdout
    for row in (
        "0  done",
        "1  the run failed, or some items failed",
        "2  bad input",
        "4  another run of this operation is already in progress",
        "5  --enqueue could not reach the broker",
    ):
        assert row in result.stdout


def test_an_unknown_option_exits_2_with_one_line_and_runs_nothing(clock, run_command):
    session = expired(hours=13)

    run = run_command(COMMAND, "--forse", expect_exit=2)

    assert run.stderr == "CommandError: Error: unrecognized arguments: --forse\n"
    assert run.stdout == ""
    session.refresh_from_db()
    assert session.status == SessionStatus.OPEN


def test_an_unknown_option_on_the_command_line_prints_one_line_and_exits_2():
    result = manage_py(COMMAND, "--forse")

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "manage.py close_expired_sessions: error: unrecognized arguments: --forse"
    ]


@pytest.mark.django_db(transaction=True)
def test_the_run_only_queues_its_email_and_a_worker_sends_it_after(mailoutbox, monkeypatch):
    session = CashSessionFactory(opened_at=timezone.now() - 13 * HOUR)
    wakeups = []
    # A batch wakes its workers through one connection to the broker.
    monkeypatch.setattr("mailing.services.workers_wake", lambda task, calls: wakeups.extend(calls))
    out = StringIO()

    call_command(COMMAND, stdout=out)

    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED
    [email] = EmailMessage.objects.all()
    assert "Emails to agents: queued (1)" in out.getvalue()
    assert mailoutbox == []  # no SMTP inside the run, nor under its lock
    assert wakeups == [{"email_id": email.pk}]  # asked once the closure committed

    outbox_deliver_queued()

    assert len(mailoutbox) == 1
    assert EmailMessage.objects.get().status == EmailStatus.SENT


@pytest.mark.django_db(transaction=True)
def test_a_mail_server_failure_keeps_the_closure_and_leaves_the_retry_to_the_sweeper(
    mailoutbox, monkeypatch
):
    import smtplib

    session = CashSessionFactory(opened_at=timezone.now() - 13 * HOUR)

    def server_gone(self, messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    monkeypatch.setattr(EmailBackend, "send_messages", server_gone)
    out = StringIO()

    call_command(COMMAND, stdout=out)
    outbox_deliver_queued()

    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED
    assert AuditEntry.objects.filter(action="session.auto_closed").count() == 1
    [email] = EmailMessage.objects.all()
    assert email.status == EmailStatus.FAILED
    assert email.next_attempt_at is not None  # the sweeper's to retry
    assert mailoutbox == []
    output = out.getvalue()
    assert f"Closed 1, skipped 0 {SUMMARY_SKIP}, failed 0" in output
    assert "Emails to agents: queued (1)" in output


def test_a_failing_expiry_notice_is_reported_and_the_other_sessions_still_close(
    clock, monkeypatch, run_command
):
    noticed = expired(hours=15)
    CashTransactionFactory(session=noticed)
    closable = expired(hours=13)
    real_notify = services.agent_notification_send

    def notify_fails_for_expiry_notices(**kwargs):
        if kwargs["kind"] == NotificationKind.SESSION_EXPIRED:
            raise RuntimeError("notification store down")
        return real_notify(**kwargs)

    monkeypatch.setattr(services, "agent_notification_send", notify_fails_for_expiry_notices)

    output = run_command(COMMAND, expect_exit=1).stdout

    closable.refresh_from_db()
    assert closable.status == SessionStatus.CLOSED
    noticed.refresh_from_db()
    assert noticed.status == SessionStatus.OPEN
    # Rolled back with the failed notice, so the next run tries again.
    assert noticed.expiry_notified_at is None
    assert not AuditEntry.objects.filter(action="session.expiry_notified").exists()
    assert "RuntimeError: notification store down" in line_for(output, noticed)
    assert f"Closed 1, skipped 0 {SUMMARY_SKIP}, failed 1" in output


# The operation's options and its typed result -------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"dry_run": "yes"}, "dry_run must be true or false, not 'yes'."),
        ({"force": 1}, "force must be true or false, not 1."),
    ],
)
def test_options_that_are_not_true_or_false_are_refused(arguments, message):
    with pytest.raises(InvalidInput) as refusal:
        options_parse(**arguments)

    assert str(refusal.value) == message


def test_a_bad_argument_to_the_task_fails_it_before_anything_is_written(clock):
    session = expired(hours=13)

    with pytest.raises(InvalidInput, match="dry_run must be true or false"):
        tasks.close_expired_sessions(dry_run="no", trigger="beat")

    session.refresh_from_db()
    assert session.status == SessionStatus.OPEN
    assert AuditEntry.objects.count() == 0


def test_the_operation_returns_typed_rows_with_decimal_amounts_and_aware_times(clock):
    closable = expired(hours=13, opening_balance=Decimal("10000.00"))
    busy = expired(hours=20, opening_balance=Decimal("5000.00"))
    CashTransactionFactory(session=busy, tax_amount=Decimal("1500.00"))

    result = close_expired_sessions(options=Options(), trigger=Trigger.BEAT)

    assert isinstance(result, Result)
    assert (result.status, result.trigger, result.ran_at) == (OperationStatus.OK, Trigger.BEAT, NOW)
    assert (result.closed, result.skipped, result.failed, result.message) == (1, 1, 0, None)
    busy_row, closable_row = result.sessions
    assert (busy_row.session, busy_row.action, busy_row.agent_notified) == (
        busy.number,
        SessionAction.SKIPPED,
        True,
    )
    assert busy_row.expected_balance == Decimal("6500.00")
    assert (closable_row.session, closable_row.action) == (closable.number, SessionAction.CLOSED)
    assert closable_row.opened_at == NOW - 13 * HOUR
    assert closable_row.reason is None and closable_row.error is None
    [entry] = AuditEntry.objects.filter(action="session.auto_closed")
    assert entry.data["trigger"] == "beat"
