"""Email through a real SMTP server (aiosmtpd): the four operations queue what they log,
a worker or the sweeper delivers it with the admin's from and reply-to addresses and the
message's own Message-ID, and a server that is down costs a retry, never the work.

These tests commit for real (transaction=True): the operation only queues its mail (its
summary says "queued"), then a delivery sends it, as a worker woken on commit would.
"""

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection, transaction
from django.utils import timezone

from auditing.models import AuditEntry
from auditing.services import audit_entry_append
from mailing.delivery import DeliveryOutcome, email_deliver_now
from mailing.models import EmailAttempt, EmailMessage, EmailStatus
from mailing.services import smtp_test_send
from payments.models import CashSession, CommissionStatus, SessionStatus, TransactionStatus
from reporting.figures import LINE_AMOUNTS
from reporting.models import CommissionReport
from tests.auditing.tampering import APPEND_ONLY_TRIGGER, disable_append_only_trigger, set_column
from tests.commands import CommandRun, command_run
from tests.factories import (
    AgentFactory,
    CashSessionFactory,
    CashTransactionFactory,
    StaffUserFactory,
)
from tests.mailing.outbox import outbox_deliver_queued
from tests.smtp_server import SMTP_FROM, SMTP_FROM_ADDRESS, SMTP_REPLY_TO, ReceivedMail, SmtpServer

pytestmark = pytest.mark.django_db(transaction=True)

LOCAL = ZoneInfo("Indian/Antananarivo")
# 09:00 local on 2 November 2026: October 2026 is the latest complete month.
REPORT_DAY = dt.datetime(2026, 11, 2, 9, 0, tzinfo=LOCAL)
CSV_HEADER = [
    "Agent code",
    "Agent name",
    "Transactions",
    "Tax collected (MGA)",
    "Commission earned (MGA)",
    "Pending (MGA)",
    "Paid (MGA)",
    "Cancelled (MGA)",
]
# What the october_takings fixture adds up to, per agent.
OCTOBER_ROWS = [
    ["AG0101", "Hery Rakoto", "2", "30000.00", "600.00", "400.00", "200.00", "0.00"],
    ["AG0102", "Voahirana Rabe", "1", "3000.00", "150.00", "150.00", "0.00", "0.00"],
    ["AG0103", "Faly Andria", "0", "0.00", "0.00", "0.00", "0.00", "100.00"],
]


# --- Helpers ---------------------------------------------------------------------------


def run(command: str, *args: str) -> dict[str, Any]:
    """Run an operation with --json; return its summary (a non-zero exit fails the test)."""
    return json.loads(command_run(command, *args, "--json").stdout)


def run_failing(command: str, *args: str) -> tuple[CommandRun, dict[str, Any]]:
    result = command_run(command, *args, "--json", expect_exit=None)
    assert result.exit_code != 0, result
    return result, json.loads(result.stdout)


def text(part) -> str:
    # SMTP carries CRLF line ends; the log keeps the rendered text's LF.
    return part.get_content().replace("\r\n", "\n")


def assert_delivered_as_logged(received: ReceivedMail, logged: EmailMessage) -> None:
    """What the server received is the logged message, sent with the admin's addresses,
    as text and HTML alternatives."""
    message = received.message
    assert received.mail_from == SMTP_FROM_ADDRESS
    assert sorted(received.rcpt_tos) == sorted(logged.recipients)
    assert sorted(address.addr_spec for address in message["To"].addresses) == sorted(
        logged.recipients
    )
    assert str(message["From"]) == SMTP_FROM
    assert message["From"].addresses[0].addr_spec == SMTP_FROM_ADDRESS
    assert str(message["Reply-To"]) == SMTP_REPLY_TO
    assert message["Message-ID"] == logged.message_id
    # Django folds an encoded subject onto a continuation line; readers drop the indent.
    assert str(message["Subject"]).strip() == logged.subject
    if logged.attachments:
        assert message.get_content_type() == "multipart/mixed"
        alternative = next(message.iter_parts())
    else:
        alternative = message
    assert alternative.get_content_type() == "multipart/alternative"
    plain, html = alternative.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    assert text(plain).strip() == logged.body_text.strip()
    assert text(html).strip() == logged.body_html.strip()


def assert_sent_once(logged: EmailMessage) -> None:
    logged.refresh_from_db()
    assert logged.status == EmailStatus.SENT
    assert logged.attempts == 1
    assert logged.last_error == ""
    assert logged.sent_at is not None
    assert list(logged.attempt_log.values_list("succeeded", "error")) == [(True, "")]


def only_mail_to(server: SmtpServer, address: str) -> ReceivedMail:
    [mail] = [mail for mail in server.received if address in mail.rcpt_tos]
    return mail


def attachment_rows(message) -> tuple[str, list[list[str]]]:
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "text/csv"
    content = attachment.get_content()
    if isinstance(content, bytes):
        content = content.decode()
    return attachment.get_filename(), list(csv.reader(io.StringIO(content)))


QUEUED_ONLY = {"queued": 1, "sending": 0, "sent": 0, "failed": 0}


def deliver_pending(*, at: dt.datetime) -> CommandRun:
    """The cron sweeper, run at ``at``."""
    with time_machine.travel(at, tick=False):
        return command_run("deliver_pending_email", expect_exit=None)


@pytest.fixture
def expired_session(config) -> CashSession:
    """An empty session of an agent with an address, open past the 12-hour timeout."""
    agent = AgentFactory(code="AG0042", email="rova@agents.example.com")
    return CashSessionFactory(
        agent=agent, number="CS-SMTP-0001", opened_at=timezone.now() - dt.timedelta(hours=30)
    )


def october_payment(session: CashSession, day: int, tax: str, **kwargs: Any):
    created_at = dt.datetime(2026, 10, day, 10, 0, tzinfo=LOCAL)
    return CashTransactionFactory(
        session=session, tax_amount=Decimal(tax), created_at=created_at, **kwargs
    )


@pytest.fixture
def october_takings(config) -> None:
    """One open session per agent. October 2026: Hery 10,000 (commission 200 paid) and
    20,000 (400 pending), Voahirana 3,000 at 5 % (150 pending), Faly 5,000 voided (100
    cancelled). Faly's 7,000 on 1 November falls outside."""
    hery, voahirana, faly = (
        CashSessionFactory(agent=AgentFactory(code=code, full_name=name))
        for code, name in (
            ("AG0101", "Hery Rakoto"),
            ("AG0102", "Voahirana Rabe"),
            ("AG0103", "Faly Andria"),
        )
    )
    with time_machine.travel(REPORT_DAY, tick=False):
        october_payment(hery, 5, "10000.00", commission__paid=True)
        october_payment(hery, 31, "20000.00")
        october_payment(voahirana, 1, "3000.00", commission__rate=Decimal("5.00"))
        october_payment(
            faly,
            12,
            "5000.00",
            status=TransactionStatus.VOIDED,
            void_reason="Wrong payer",
            voided_at=timezone.now(),
            commission__status=CommissionStatus.CANCELLED,
            commission__cancelled_at=timezone.now(),
        )
        CashTransactionFactory(
            session=faly,
            tax_amount=Decimal("7000.00"),
            created_at=dt.datetime(2026, 11, 1, 0, 30, tzinfo=LOCAL),
        )


def generate_october_report(*args: str) -> dict[str, Any]:
    with time_machine.travel(REPORT_DAY, tick=False):
        return run("generate_commission_report", "--month", "10", "--year", "2026", *args)


@pytest.fixture
def tampered_entry() -> Iterator[AuditEntry]:
    """Three entries, the second one's data rewritten by raw SQL behind the trigger's back.

    This test commits, so the disabled trigger would outlive it: switch it back on after.
    """
    entries = [
        audit_entry_append(action="test.event", actor=None, data={"n": n}) for n in (1, 2, 3)
    ]
    with transaction.atomic():
        disable_append_only_trigger()
        set_column(entries[1].sequence, "data", {"n": 2, "amount": "1.00"})
    yield entries[1]
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE auditing_auditentry ENABLE TRIGGER {APPEND_ONLY_TRIGGER}")


# --- The four operations, server up ----------------------------------------------------


def test_close_expired_sessions_emails_the_agent_through_the_configured_server(
    smtp_configuration, smtp_server, expired_session
):
    summary = run("close_expired_sessions")

    assert summary["closed"] == 1
    assert summary["emails"] == QUEUED_ONLY  # said when it printed: no SMTP in the run
    assert smtp_server.received == []
    [delivered] = outbox_deliver_queued()
    assert delivered.outcome == DeliveryOutcome.SENT
    logged = EmailMessage.objects.get()
    assert logged.recipients == ["rova@agents.example.com"]
    assert expired_session.number in logged.subject
    [received] = smtp_server.received
    assert received.rcpt_tos == ["rova@agents.example.com"]
    assert_delivered_as_logged(received, logged)
    assert expired_session.number in text(received.message.get_body(("plain",)))
    assert_sent_once(logged)


def test_commission_report_arrives_with_a_csv_matching_the_agents_figures(
    smtp_configuration, smtp_server, october_takings
):
    summary = generate_october_report("--email", "someone@example.com")

    assert summary["emails"] == QUEUED_ONLY
    outbox_deliver_queued()
    report = CommissionReport.objects.get()
    logged = EmailMessage.objects.get(purpose="commission_report")
    assert "2026" in logged.subject
    [received] = smtp_server.received
    assert received.rcpt_tos == ["someone@example.com"]
    assert_delivered_as_logged(received, logged)
    filename, rows = attachment_rows(received.message)
    assert filename == "commission-report-2026-10.csv"
    assert rows[0] == CSV_HEADER
    assert rows[1:] == OCTOBER_ROWS
    stored = [
        [line.agent_code, line.agent_name, str(line.transactions)]
        + [str(getattr(line, name)) for name in LINE_AMOUNTS]
        for line in report.lines.order_by("agent_code")
    ]
    assert rows[1:] == stored
    assert_sent_once(logged)


def test_tampering_alert_reaches_the_given_address_and_the_command_exits_3(
    smtp_configuration, smtp_server, tampered_entry
):
    error, summary = run_failing(
        "verify_audit_trail", "--alert-on-tampering", "--email", "sec@example.com"
    )

    assert error.exit_code == 3
    assert summary["status"] == "tampering"
    assert summary["emails"] == QUEUED_ONLY
    outbox_deliver_queued()
    logged = EmailMessage.objects.get(purpose="tampering_alert")
    [received] = smtp_server.received
    assert received.rcpt_tos == ["sec@example.com"]
    assert_delivered_as_logged(received, logged)
    body = text(received.message.get_body(("plain",)))
    assert f"#{tampered_entry.sequence}" in body
    assert tampered_entry.current_hash in body  # the stored hash the data no longer matches
    assert_sent_once(logged)


def test_reconciliation_reminder_emails_the_agent_and_the_admin_summary(
    smtp_configuration, smtp_server, config
):
    StaffUserFactory(username="boss", email="boss@example.com")
    agent = AgentFactory(code="AG0077", email="tiana@agents.example.com")
    session = CashSessionFactory(
        agent=agent,
        number="CS-SMTP-0077",
        closed=True,
        opened_at=timezone.now() - dt.timedelta(hours=10),
    )

    summary = run("reconciliation_reminder", "--email-admins")

    assert summary["emails"] == {"queued": 2, "sending": 0, "sent": 0, "failed": 0}
    outbox_deliver_queued()
    assert len(smtp_server.received) == 2
    for address, purpose in (
        ("tiana@agents.example.com", "reconciliation_reminder"),
        ("boss@example.com", "reconciliation_summary"),
    ):
        logged = EmailMessage.objects.get(purpose=purpose)
        assert logged.recipients == [address]
        received = only_mail_to(smtp_server, address)
        assert received.rcpt_tos == [address]
        assert_delivered_as_logged(received, logged)
        assert session.number in text(received.message.get_body(("plain",)))
        assert_sent_once(logged)


# --- Server down: the work stands, the sweeper delivers once it is back ---------------


def assert_failed_once_refused(logged: EmailMessage) -> None:
    logged.refresh_from_db()
    assert logged.status == EmailStatus.FAILED
    assert logged.attempts == 1
    assert logged.sent_at is None
    # Two minutes after the failure was recorded.
    finished = logged.attempt_log.get().finished_at
    assert logged.next_attempt_at == finished + dt.timedelta(minutes=2)
    assert "Connection refused" in logged.last_error
    assert list(logged.attempt_log.values_list("succeeded", "error")) == [
        (False, logged.last_error)
    ]


def assert_delivered_on_retry(logged: EmailMessage) -> None:
    logged.refresh_from_db()
    assert logged.status == EmailStatus.SENT
    assert logged.attempts == 2
    assert logged.last_error == ""
    assert logged.next_attempt_at is None
    assert list(logged.attempt_log.values_list("succeeded", flat=True)) == [False, True]


def test_server_down_session_still_closes_and_the_sweeper_delivers_exactly_once(
    smtp_configure, smtp_server_down, expired_session
):
    smtp_configure(smtp_server_down)

    summary = run("close_expired_sessions")
    [tried] = outbox_deliver_queued()  # the worker woken on commit: refused

    assert summary["closed"] == 1
    assert tried.outcome == DeliveryOutcome.FAILED
    expired_session.refresh_from_db()
    assert expired_session.status == SessionStatus.CLOSED
    assert AuditEntry.objects.filter(
        action="session.auto_closed", subject_id=str(expired_session.pk)
    ).exists()
    logged = EmailMessage.objects.get()
    assert_failed_once_refused(logged)

    smtp_server_down.start()
    early = deliver_pending(at=logged.next_attempt_at - dt.timedelta(seconds=5))
    assert smtp_server_down.received == []
    assert "0 sent" in early.stdout and early.exit_code == 0

    swept = deliver_pending(at=logged.next_attempt_at)

    assert swept.exit_code == 0, swept
    assert "Outbox: 1 sent" in swept.stdout
    [received] = smtp_server_down.received
    assert_delivered_as_logged(received, logged)
    assert_delivered_on_retry(logged)

    # Another sweep, or a worker handed the same message again, finds it sent.
    deliver_pending(at=logged.next_attempt_at or timezone.now())
    assert email_deliver_now(email_id=logged.pk).outcome == DeliveryOutcome.NOT_DUE
    assert len(smtp_server_down.received) == 1
    assert_delivered_on_retry(logged)


def test_server_down_report_is_still_stored_and_delivered_once_the_server_is_back(
    smtp_configure, smtp_server_down, october_takings
):
    smtp_configure(smtp_server_down)

    summary = generate_october_report("--email", "someone@example.com")
    with time_machine.travel(REPORT_DAY, tick=False):
        outbox_deliver_queued()

    assert summary["status"] == "ok"
    report = CommissionReport.objects.get()
    assert report.lines.count() == len(OCTOBER_ROWS)
    assert summary["report_id"] == report.pk
    logged = EmailMessage.objects.get()
    assert_failed_once_refused(logged)

    smtp_server_down.start()
    assert deliver_pending(at=REPORT_DAY + dt.timedelta(minutes=2)).exit_code == 0
    assert deliver_pending(at=REPORT_DAY + dt.timedelta(minutes=3)).exit_code == 0

    [received] = smtp_server_down.received
    assert received.rcpt_tos == ["someone@example.com"]
    assert_delivered_as_logged(received, logged)
    _, rows = attachment_rows(received.message)
    assert rows[1:] == OCTOBER_ROWS
    assert_delivered_on_retry(logged)


def test_a_sweep_while_the_server_is_still_down_records_a_second_failure_and_exits_1(
    smtp_configure, smtp_server_down, expired_session
):
    smtp_configure(smtp_server_down)
    run("close_expired_sessions")
    outbox_deliver_queued()
    logged = EmailMessage.objects.get()
    logged.refresh_from_db()

    swept = deliver_pending(at=logged.next_attempt_at)

    assert swept.exit_code == 1
    assert f"email #{logged.pk}: attempt 2 failed: ConnectionRefusedError" in swept.stdout
    logged.refresh_from_db()
    assert logged.status == EmailStatus.FAILED
    assert logged.attempts == 2
    finished = logged.attempt_log.order_by("attempted_at").last().finished_at
    assert logged.next_attempt_at == finished + dt.timedelta(minutes=4)
    assert list(logged.attempt_log.values_list("succeeded", flat=True)) == [False, False]
    assert smtp_server_down.received == []


# --- SMTP AUTH -------------------------------------------------------------------------

LOGIN = ("mailer", "s3cret-Pa55")
# aiosmtpd warns that AUTH without TLS is unsafe: on a loopback test server it is what we want.
auth_without_tls = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def auth_server():
    server = SmtpServer(login=LOGIN).start()
    yield server
    server.stop()


@auth_without_tls
def test_smtp_auth_with_the_configured_username_and_password_is_accepted(
    smtp_configure, auth_server
):
    smtp_configure(auth_server, username=LOGIN[0], password=LOGIN[1])

    logged = smtp_test_send(recipient="ops@example.com", requested_by="admin")

    assert logged.status == EmailStatus.SENT
    assert set(auth_server.authenticator.logins) == {"mailer"}
    [received] = auth_server.received
    assert received.rcpt_tos == ["ops@example.com"]
    assert_delivered_as_logged(received, logged)


@auth_without_tls
def test_wrong_smtp_password_fails_with_the_auth_error_and_never_logs_the_password(
    smtp_configure, auth_server
):
    smtp_configure(auth_server, username=LOGIN[0], password="wrong-Pa55word")

    logged = smtp_test_send(recipient="ops@example.com", requested_by="admin")

    assert logged.status == EmailStatus.FAILED
    assert logged.attempts == 1
    assert logged.last_error.startswith("SMTPAuthenticationError")
    assert "535" in logged.last_error
    attempt = EmailAttempt.objects.get(email=logged)
    for recorded in (logged.last_error, attempt.error):
        assert "wrong-Pa55word" not in recorded
        assert LOGIN[1] not in recorded
    assert set(auth_server.authenticator.logins) == {"mailer"}
    assert auth_server.received == []


@auth_without_tls
def test_a_server_that_requires_auth_refuses_a_configuration_without_credentials(
    smtp_configure, auth_server
):
    smtp_configure(auth_server)

    logged = smtp_test_send(recipient="ops@example.com", requested_by="admin")

    assert logged.status == EmailStatus.FAILED
    assert "530" in logged.last_error
    assert auth_server.received == []


# --- Configuration off -----------------------------------------------------------------


def test_a_disabled_configuration_sends_through_the_environment_backend_instead(
    smtp_configure, smtp_server, settings, mailoutbox
):
    settings.EMAIL_FALLBACK_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    smtp_configure(smtp_server, enabled=False)

    logged = smtp_test_send(recipient="ops@example.com", requested_by="admin")

    assert logged.status == EmailStatus.SENT
    assert smtp_server.received == []
    [mail] = mailoutbox
    assert mail.to == ["ops@example.com"]
    assert mail.from_email == settings.DEFAULT_FROM_EMAIL
    assert mail.reply_to == []
