"""The outbox's sweeper (one service behind the beat task and the cron command), what it
records for the health page, the deploy check that says when nothing sweeps, and the
best-effort worker wake-up."""

import datetime as dt
import json
import logging
import smtplib
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import checks
from django.core.mail.backends.locmem import EmailBackend
from django.db import OperationalError
from django.utils import timezone

import project.celery
from mailing import checks as mailing_checks
from mailing.delivery import DeliveryOutcome, outbox_sweep
from mailing.models import EmailAttempt, EmailMessage, EmailStatus, OutboxSweep
from mailing.selectors import OutboxStatus, outbox_status
from mailing.tasks import email_deliver, email_sweep
from mailing.wakeup import wakeups_resume, worker_wake
from tests.commands import command_run
from tests.smtp_server import free_port

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ZoneInfo("Indian/Antananarivo")
NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=LOCAL)


def logged(*, created: dt.datetime, status: EmailStatus = EmailStatus.QUEUED, **fields: Any):
    """A message in the outbox, created at ``created``."""
    with time_machine.travel(created, tick=False):
        return EmailMessage.objects.create(
            purpose=fields.pop("purpose", "session_expired"),
            recipients=fields.pop("recipients", ["rova@agents.example.com"]),
            subject=fields.pop("subject", f"{status} at {created:%H:%M:%S}"),
            body_text=".",
            status=status,
            **fields,
        )


def sending(*, created: dt.datetime, claimed: dt.datetime) -> EmailMessage:
    email = logged(
        created=created,
        status=EmailStatus.SENDING,
        attempt_id=uuid.uuid4(),
        claimed_at=claimed,
        attempts=1,
    )
    EmailAttempt.objects.create(email=email, attempt_id=email.attempt_id, attempted_at=claimed)
    return email


def sweep(at: dt.datetime = NOW, **kwargs: Any):
    with time_machine.travel(at, tick=False):
        return outbox_sweep(trigger=kwargs.pop("trigger", "test"), **kwargs)


@pytest.fixture
def mail_server(monkeypatch):
    """The locmem backend, with ``refuse`` (recipients) and ``down`` switches."""
    state = type("MailServer", (), {"down": False, "refuse": set()})()
    real_send = EmailBackend.send_messages

    def send_messages(backend, messages):
        if state.down:
            raise ConnectionRefusedError(111, "Connection refused")
        for message in messages:
            if set(message.to) & state.refuse:
                raise smtplib.SMTPRecipientsRefused({message.to[0]: (550, b"no such user")})
        return real_send(backend, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", send_messages)
    return state


# --- What is due -----------------------------------------------------------------------


def test_the_sweeper_takes_exactly_what_is_due_oldest_first(mailoutbox, settings):
    settings.EMAIL_SENDING_GRACE_SECONDS = 15 * 60
    minute = dt.timedelta(minutes=1)
    due = [
        logged(created=NOW - 50 * minute, status=EmailStatus.FAILED, attempts=1,
               next_attempt_at=NOW),
        sending(created=NOW - 40 * minute, claimed=NOW - 15 * minute),
        logged(created=NOW - 30 * minute),
        logged(created=NOW - minute),  # queued a minute ago: the worker had its chance
    ]  # fmt: skip
    not_due = [
        logged(created=NOW - 59 * minute, status=EmailStatus.SENT, attempts=1, sent_at=NOW),
        logged(created=NOW - 58 * minute, status=EmailStatus.FAILED, attempts=1,
               next_attempt_at=NOW + dt.timedelta(seconds=1)),
        logged(created=NOW - 57 * minute, status=EmailStatus.FAILED, attempts=6),  # gave up
        sending(created=NOW - 56 * minute, claimed=NOW - 14 * minute),  # within the grace
        logged(created=NOW - dt.timedelta(seconds=59)),  # the worker's, for now
    ]  # fmt: skip

    result = sweep()

    assert [delivery.email_id for delivery in result.deliveries] == [email.pk for email in due]
    assert result.sent == len(due) and result.failed == 0
    assert result.left == 0 and result.stopped_early == ""
    sent_ids = [mail.extra_headers["Message-ID"] for mail in mailoutbox]
    assert sent_ids == [email.message_id for email in due]
    for email in not_due:
        before = email.status
        email.refresh_from_db()
        assert email.status == before


def test_a_sweep_records_its_run_for_the_health_page():
    logged(created=NOW - dt.timedelta(hours=1))

    sweep(trigger="beat")

    record = OutboxSweep.objects.get()
    assert (record.finished_at, record.trigger, record.sent, record.failed) == (NOW, "beat", 1, 0)
    assert outbox_status().last_sweep_at == NOW


def test_a_sweep_stops_at_its_limit_and_says_how_many_are_left(mailoutbox):
    for minutes in range(5):
        logged(created=NOW - dt.timedelta(minutes=10 + minutes))

    result = sweep(limit=2)

    assert result.sent == 2 and result.left == 3
    assert result.stopped_early == "the limit of 2 message(s) per run was reached"
    assert len(mailoutbox) == 2


def test_a_sweep_stops_at_the_first_server_it_cannot_reach_and_leaves_the_rest_due(
    mailoutbox, mail_server
):
    mail_server.down = True
    first, *rest = [logged(created=NOW - dt.timedelta(minutes=m)) for m in (30, 20, 10)]

    result = sweep()

    [delivery] = result.deliveries
    assert (delivery.email_id, delivery.outcome) == (first.pk, DeliveryOutcome.FAILED)
    assert result.left == 2
    assert result.stopped_early.startswith("the mail server could not be reached")
    for email in rest:
        email.refresh_from_db()
        assert (email.status, email.attempts) == (EmailStatus.QUEUED, 0)  # no attempt spent


def test_a_message_the_server_refuses_does_not_stop_the_others(mailoutbox, mail_server):
    mail_server.refuse = {"nobody@agents.example.com"}
    refused = logged(
        created=NOW - dt.timedelta(minutes=30), recipients=["nobody@agents.example.com"]
    )
    fine = logged(created=NOW - dt.timedelta(minutes=20))

    result = sweep()

    assert [(d.email_id, d.outcome) for d in result.deliveries] == [
        (refused.pk, DeliveryOutcome.FAILED),
        (fine.pk, DeliveryOutcome.SENT),
    ]
    assert result.deliveries[0].server_unavailable is False
    assert result.stopped_early == ""
    assert [mail.to for mail in mailoutbox] == [["rova@agents.example.com"]]


@pytest.mark.parametrize("limit", [0, -1, "3", True, 2.5])
def test_a_bad_limit_is_refused_before_anything_is_claimed(limit):
    email = logged(created=NOW - dt.timedelta(hours=1))

    with pytest.raises(ValueError, match="limit must be a whole number of at least 1"):
        sweep(limit=limit)

    email.refresh_from_db()
    assert email.status == EmailStatus.QUEUED
    assert not OutboxSweep.objects.exists()


def test_the_sweep_task_returns_its_summary(mailoutbox):
    logged(created=timezone.now() - dt.timedelta(hours=1))

    summary = email_sweep.apply(kwargs={"trigger": "beat"}).get()

    assert summary == {"sent": 1, "failed": 0, "left": 0, "stopped_early": ""}
    assert OutboxSweep.objects.get().trigger == "beat"


# --- The cron command -------------------------------------------------------------------


def manage_py(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_help_explains_what_is_delivered_and_the_exit_codes():
    result = manage_py("deliver_pending_email", "--help")

    assert result.returncode == 0, result.stderr
    for text in ("--limit", "--json", "--without-workers", "EMAIL_SENDING_GRACE_SECONDS",
                 "Message-ID", "exit codes:",
                 "  0  done", "  1  some messages failed", "  2  bad input"):  # fmt: skip
        assert text in result.stdout, text


def test_the_command_says_what_it_sent_and_exits_0(mailoutbox):
    logged(created=NOW - dt.timedelta(hours=1))
    logged(created=NOW - dt.timedelta(hours=2))

    with time_machine.travel(NOW, tick=False):
        result = command_run("deliver_pending_email")

    assert result.stdout == "Outbox: 2 sent (accepted by the mail server); 0 due message(s) left.\n"
    assert len(mailoutbox) == 2


def test_fresh_mail_waits_a_minute_for_a_worker_unless_no_worker_runs(mailoutbox):
    fresh = logged(created=NOW - dt.timedelta(seconds=10))

    with time_machine.travel(NOW, tick=False):
        command_run("deliver_pending_email")
        fresh.refresh_from_db()
        assert fresh.status == "queued"  # left for the worker that was woken for it
        without_workers = command_run("deliver_pending_email", "--without-workers")

    assert "1 sent" in without_workers.stdout
    fresh.refresh_from_db()
    assert fresh.status == "sent"
    assert len(mailoutbox) == 1


def test_the_command_lists_each_failure_and_exits_1(mailoutbox, mail_server):
    mail_server.refuse = {"nobody@agents.example.com"}
    refused = logged(created=NOW - dt.timedelta(hours=1), recipients=["nobody@agents.example.com"])
    gave_up = logged(
        created=NOW - dt.timedelta(hours=2),
        status=EmailStatus.FAILED,
        attempts=5,
        next_attempt_at=NOW,
        recipients=["nobody@agents.example.com"],
    )

    with time_machine.travel(NOW, tick=False):
        result = command_run("deliver_pending_email", expect_exit=1)

    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"  email #{gave_up.pk}: attempt 6 failed: SMTPRecipientsRefused")
    assert lines[0].endswith("; gave up")
    assert lines[1].startswith(f"  email #{refused.pk}: attempt 1 failed: SMTPRecipientsRefused")
    assert lines[1].endswith("; next attempt at 2026-03-10 15:02")
    assert lines[2] == (
        "Outbox: 0 sent (accepted by the mail server), 1 failed, will be retried, "
        "1 gave up (admin: Retry delivery now); 0 due message(s) left."
    )
    assert "CommandError: 2 message(s) failed; see the output." in result.stderr


def test_the_command_says_when_it_stopped_early(mailoutbox, mail_server):
    mail_server.down = True
    for minutes in (30, 20):
        logged(created=NOW - dt.timedelta(minutes=minutes))

    with time_machine.travel(NOW, tick=False):
        result = command_run("deliver_pending_email", expect_exit=1)

    assert result.stdout.splitlines()[-1] == (
        "Stopped early: the mail server could not be reached (ConnectionRefusedError: "
        "[Errno 111] Connection refused). The next run takes the rest."
    )


def test_the_command_prints_json(mailoutbox, mail_server):
    mail_server.refuse = {"nobody@agents.example.com"}
    refused = logged(created=NOW - dt.timedelta(hours=1), recipients=["nobody@agents.example.com"])
    sent = logged(created=NOW - dt.timedelta(minutes=30))

    with time_machine.travel(NOW, tick=False):
        result = command_run("deliver_pending_email", "--json", "--limit", "5", expect_exit=1)

    summary = json.loads(result.stdout)
    [failure] = [d for d in summary.pop("deliveries") if d["outcome"] == "failed"]
    assert summary == {"sent": 1, "failed": 1, "gave_up": 0, "left": 0, "stopped_early": ""}
    assert failure["email_id"] == refused.pk
    assert failure["attempt"] == 1
    assert failure["next_attempt_at"] == "2026-03-10T15:02:00+03:00"
    assert EmailMessage.objects.get(pk=sent.pk).status == EmailStatus.SENT


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_a_bad_limit_exits_2_and_delivers_nothing(limit, mailoutbox):
    logged(created=NOW - dt.timedelta(hours=1))

    result = command_run("deliver_pending_email", "--limit", limit, expect_exit=2)

    assert result.stderr == f"CommandError: --limit must be at least 1 (got {limit}).\n"
    assert mailoutbox == []
    assert not OutboxSweep.objects.exists()


def test_a_lost_database_gives_one_line_and_exit_1(monkeypatch):
    def database_gone(**kwargs):
        raise OperationalError("server closed the connection unexpectedly\n\tThis probably...")

    monkeypatch.setattr(
        "mailing.management.commands.deliver_pending_email.outbox_sweep", database_gone
    )

    result = command_run("deliver_pending_email", expect_exit=1)

    assert result.stdout == ""
    assert result.stderr == (
        "CommandError: The database could not be reached (server closed the connection "
        "unexpectedly); no mail was delivered. The next run delivers it.\n"
    )


# --- The outbox's status, and the deploy check ------------------------------------------


def test_the_status_counts_what_is_not_delivered_and_what_gave_up():
    hour = dt.timedelta(hours=1)
    logged(created=NOW - 5 * hour, status=EmailStatus.SENT, sent_at=NOW)
    oldest = logged(created=NOW - 4 * hour, status=EmailStatus.FAILED, attempts=6)  # gave up
    logged(created=NOW - 3 * hour, status=EmailStatus.FAILED, attempts=1, next_attempt_at=NOW)
    sending(created=NOW - 2 * hour, claimed=NOW)
    logged(created=NOW - hour)
    # The admin's test message is answered on its page: never backlog.
    logged(created=NOW - 9 * hour, status=EmailStatus.FAILED, attempts=1, purpose="smtp_test")

    assert outbox_status() == OutboxStatus(
        undelivered=4, oldest_undelivered_at=oldest.created_at, gave_up=1, last_sweep_at=None
    )


def test_an_empty_outbox_has_nothing_undelivered():
    assert outbox_status() == OutboxStatus(
        undelivered=0, oldest_undelivered_at=None, gave_up=0, last_sweep_at=None
    )


def deploy_check_messages() -> list[checks.CheckMessage]:
    return [
        message
        for message in checks.run_checks(include_deployment_checks=True)
        if message.id and message.id.startswith("mailing.")
    ]


def test_the_deploy_check_warns_when_the_sweeper_never_ran():
    logged(created=timezone.now() - dt.timedelta(hours=2))

    [warning] = deploy_check_messages()

    assert warning.id == "mailing.W001"
    assert warning.level == checks.WARNING
    assert warning.msg.startswith("The email sweeper has never run")
    assert "1 message(s) not delivered" in warning.msg
    assert "deliver_pending_email" in warning.hint


def test_the_deploy_check_is_quiet_while_the_sweeper_runs_and_warns_after_ten_minutes():
    with time_machine.travel(NOW, tick=False):
        sweep()
        assert deploy_check_messages() == []
    with time_machine.travel(NOW + dt.timedelta(minutes=10), tick=False):
        assert deploy_check_messages() == []
    with time_machine.travel(NOW + dt.timedelta(minutes=10, seconds=1), tick=False):
        [warning] = deploy_check_messages()

    assert warning.id == "mailing.W001"
    assert "has not run since 2026-03-10 15:00" in warning.msg


def test_the_deploy_check_is_not_run_by_a_plain_check():
    messages = [
        message
        for message in checks.run_checks()
        if message.id and message.id.startswith("mailing.")
    ]
    assert messages == []


def test_the_deploy_check_warns_when_it_cannot_read_the_outbox(monkeypatch):
    def database_gone():
        raise OperationalError('connection to server at "db" failed\nmore')

    monkeypatch.setattr("mailing.selectors.outbox_status", database_gone)

    [warning] = mailing_checks.sweeper_running_check(None)

    assert warning.id == "mailing.W002"
    assert warning.msg == (
        "Could not read the outbox to see whether its sweeper runs: "
        'connection to server at "db" failed'
    )


def test_a_grace_period_shorter_than_a_delivery_is_an_error(settings):
    settings.EMAIL_SENDING_GRACE_SECONDS = email_deliver.time_limit

    [error] = mailing_checks.sending_grace_check(None)

    assert error.id == "mailing.E001"
    assert error.level == checks.ERROR
    settings.EMAIL_SENDING_GRACE_SECONDS = 15 * 60
    assert mailing_checks.sending_grace_check(None) == []


# --- Waking a worker, at best -----------------------------------------------------------


@pytest.fixture
def broker_down(monkeypatch):
    """The app's broker is a port nothing listens on."""
    wakeups_resume()
    monkeypatch.setattr(project.celery.app.conf, "broker_url", f"redis://127.0.0.1:{free_port()}/0")
    yield
    wakeups_resume()


def test_a_broker_that_is_down_costs_one_quick_try_and_one_log_line(broker_down, caplog):
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="mailing.wakeup"):
        sent = [worker_wake(email_deliver, email_id=n) for n in range(200)]
    elapsed = time.monotonic() - started

    assert sent == [False] * 200
    assert elapsed < 2, elapsed
    [record] = caplog.records
    assert record.getMessage().startswith("The broker could not be reached (Error 111")
    assert "queued mail waits for the sweeper" in record.getMessage()
    assert record.exc_info is None  # one line, no traceback


def test_after_the_quiet_minute_a_wake_up_is_tried_again(broker_down, caplog, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("mailing.wakeup.time.monotonic", lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="mailing.wakeup"):
        worker_wake(email_deliver, email_id=1)
        clock[0] += 59
        worker_wake(email_deliver, email_id=2)
        clock[0] += 2
        worker_wake(email_deliver, email_id=3)

    assert len(caplog.records) == 2
