"""Outgoing email: logged, delivered after commit, retried on failure, never injected."""

import datetime as dt
import smtplib
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.mail.backends.locmem import EmailBackend
from django.db import transaction
from django.utils import timezone

from mailing.addresses import InvalidEmailAddress, email_address_validate
from mailing.delivery import email_send
from mailing.models import EmailAttempt, EmailMessage, EmailStatus
from mailing.selectors import EmailOutcomes, email_outcomes, staff_email_addresses
from mailing.services import email_deliver_or_schedule_retry, email_queue
from mailing.tasks import email_deliver
from tests.factories import CashSessionFactory, StaffUserFactory, UserFactory

pytestmark = pytest.mark.django_db

TEMPLATE = "payments/email/session_expired"
# Any fixed instant: the subject names its local date.
EXPIRES_AT = dt.datetime(2026, 3, 10, 12, 0, tzinfo=ZoneInfo("Indian/Antananarivo"))


class Rollback(Exception):
    """Raised on purpose to roll a transaction back."""


@pytest.fixture
def session():
    return CashSessionFactory()


@pytest.fixture
def retries(monkeypatch) -> list[dict[str, Any]]:
    """Retries handed to the Celery task, captured instead of sent to the broker."""
    scheduled: list[dict[str, Any]] = []
    monkeypatch.setattr(email_deliver, "apply_async", lambda **options: scheduled.append(options))
    return scheduled


@pytest.fixture
def mail_server(monkeypatch):
    """``mail_server.down = True`` makes every send fail as a dropped SMTP connection."""
    state = type("MailServer", (), {"down": False})()
    real_send = EmailBackend.send_messages

    def send_messages(backend, messages):
        if state.down:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return real_send(backend, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", send_messages)
    return state


def queue(session, **overrides: Any) -> EmailMessage:
    arguments = {
        "purpose": "session_expired",
        "recipients": ["rova@agents.example.com"],
        "template": TEMPLATE,
        "context": {
            "agent": session.agent,
            "session": session,
            "opened_at": session.opened_at,
            "expires_at": EXPIRES_AT,
            "timeout_hours": 12,
            "transaction_count": 2,
            "expected": "20,000.00 MGA",
            "currency": "MGA",
            "time_zone": "Indian/Antananarivo",
        },
        "about": session.number,
        "subject_object": session,
    } | overrides
    return email_queue(**arguments)


def test_queue_logs_the_message_and_sends_it_only_after_commit(
    session, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            email = queue(session)
            assert mailoutbox == []

    stored = EmailMessage.objects.get(pk=email.pk)
    assert stored.purpose == "session_expired"
    assert stored.about == session.number
    assert (stored.subject_type, stored.subject_id) == ("payments.cashsession", str(session.pk))
    assert stored.recipients == ["rova@agents.example.com"]
    assert "has passed the 12-hour limit" in stored.body_text
    assert stored.body_html.startswith("<!DOCTYPE html>")
    assert stored.status == EmailStatus.SENT
    [mail] = mailoutbox
    assert mail.to == ["rova@agents.example.com"]
    # The subject comes from the template's .subject.txt, like the bodies.
    assert mail.subject == f"Session {session.number} expired on 2026-03-10: count and close it"
    assert stored.subject == mail.subject
    assert mail.body == stored.body_text
    assert mail.alternatives[0][1] == "text/html"


def test_a_queued_message_waits_as_queued_until_the_transaction_commits(session, mailoutbox):
    email = queue(session)

    email.refresh_from_db()
    assert email.status == EmailStatus.QUEUED
    assert email.attempts == 0
    assert mailoutbox == []


def test_nothing_is_logged_or_sent_when_the_transaction_rolls_back(
    session, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(Rollback):
            with transaction.atomic():
                queue(session)
                raise Rollback

    assert callbacks == []
    assert mailoutbox == []
    assert EmailMessage.objects.count() == 0


def test_send_records_the_message_sent_with_one_successful_attempt(session, mailoutbox):
    email = queue(session)

    assert email_send(email_id=email.pk) is True

    email.refresh_from_db()
    assert email.status == EmailStatus.SENT
    assert email.sent_at is not None
    assert email.last_attempt_at == email.sent_at
    assert email.attempts == 1
    assert email.last_error == ""
    [attempt] = EmailAttempt.objects.filter(email=email)
    assert attempt.succeeded is True
    assert attempt.error == ""
    assert len(mailoutbox) == 1


def test_a_failing_mail_server_marks_the_message_failed_and_the_work_still_commits(
    session, mailoutbox, mail_server, retries, django_capture_on_commit_callbacks
):
    mail_server.down = True

    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            session.closing_notes = "work the email reports on"
            session.save(update_fields=["closing_notes"])
            email = queue(session)

    session.refresh_from_db()
    assert session.closing_notes == "work the email reports on"
    email.refresh_from_db()
    assert email.status == EmailStatus.FAILED
    assert email.last_error == "SMTPServerDisconnected: Connection unexpectedly closed"
    assert email.attempts == 1
    assert email.sent_at is None
    [attempt] = EmailAttempt.objects.filter(email=email)
    assert attempt.succeeded is False
    assert "SMTPServerDisconnected" in attempt.error
    assert retries == [{"kwargs": {"email_id": email.pk}, "countdown": 60}]
    assert mailoutbox == []


def test_a_retry_after_the_server_recovers_delivers_exactly_once(
    session, mailoutbox, mail_server, retries
):
    mail_server.down = True
    email = queue(session)
    assert email_deliver_or_schedule_retry(email_id=email.pk) is False

    mail_server.down = False
    assert email_send(email_id=email.pk) is True
    assert email_send(email_id=email.pk) is True

    assert len(mailoutbox) == 1
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT
    assert email.last_error == ""
    assert email.attempts == 2
    assert list(EmailAttempt.objects.filter(email=email).values_list("succeeded", flat=True)) == [
        False,
        True,
    ]
    assert len(retries) == 1


def test_a_delivered_message_schedules_no_retry(session, mailoutbox, retries):
    email = queue(session)

    assert email_deliver_or_schedule_retry(email_id=email.pk) is True

    assert retries == []
    assert len(mailoutbox) == 1


def test_a_broker_outage_while_scheduling_a_retry_does_not_raise(session, mail_server, monkeypatch):
    mail_server.down = True
    email = queue(session)

    def broker_down(**options):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(email_deliver, "apply_async", broker_down)

    assert email_deliver_or_schedule_retry(email_id=email.pk) is False
    email.refresh_from_db()
    assert email.status == EmailStatus.FAILED


def test_the_delivery_task_called_directly_sends_or_reports_failure_without_retrying(
    session, mailoutbox, mail_server
):
    email = queue(session)
    mail_server.down = True
    assert email_deliver(email_id=email.pk) == {"email_id": email.pk, "status": "failed"}

    mail_server.down = False
    assert email_deliver(email_id=email.pk) == {"email_id": email.pk, "status": "sent"}
    assert email_deliver(email_id=email.pk) == {"email_id": email.pk, "status": "sent"}
    assert len(mailoutbox) == 1


@pytest.mark.parametrize("injected", ["\nBcc: victim@example.com", "\r\nBcc: victim@example.com"])
def test_a_line_break_reaching_the_subject_through_the_data_is_folded_into_one_line(
    session, injected, mailoutbox, django_capture_on_commit_callbacks
):
    session.number += injected  # never saved: only the rendered subject sees it

    with django_capture_on_commit_callbacks(execute=True):
        email = queue(session)

    stored = EmailMessage.objects.get(pk=email.pk)
    assert "\n" not in stored.subject and "\r" not in stored.subject
    assert "Bcc: victim@example.com expired on" in stored.subject
    [mail] = mailoutbox
    assert mail.recipients() == ["rova@agents.example.com"]


@pytest.mark.parametrize(
    "address",
    ["rova@agents.example.com\nBcc: victim@example.com", "rova@example.com\r\nX-Spam: yes"],
)
def test_a_line_break_in_an_address_is_refused_and_nothing_is_logged(session, address):
    with pytest.raises(InvalidEmailAddress, match="line break"):
        queue(session, recipients=["ok@example.com", address])

    assert EmailMessage.objects.count() == 0


def test_a_message_without_recipients_is_refused(session):
    with pytest.raises(ValueError, match="at least one recipient"):
        queue(session, recipients=[])

    assert EmailMessage.objects.count() == 0


def test_a_valid_address_comes_back_stripped_of_surrounding_whitespace():
    assert email_address_validate("  admin@example.com ") == "admin@example.com"
    assert email_address_validate("admin@example.com\r\n") == "admin@example.com"


@pytest.mark.parametrize(
    "address",
    ["", "   ", "admin", "admin@", "@example.com", "ad min@example.com", "a@b@example.com"],
)
def test_a_malformed_address_is_refused_with_a_readable_message(address):
    with pytest.raises(InvalidEmailAddress, match="is not a valid email address"):
        email_address_validate(address)


def test_staff_addresses_are_those_of_active_staff_who_have_one():
    StaffUserFactory(username="zoe", email="zoe@example.com")
    StaffUserFactory(username="ando", email="ando@example.com")
    StaffUserFactory(username="gone", email="gone@example.com", is_active=False)
    StaffUserFactory(username="silent", email="")
    UserFactory(username="agent", email="agent@example.com")

    assert staff_email_addresses() == ["ando@example.com", "zoe@example.com"]


def test_outcomes_count_the_given_messages_by_status(session):
    def logged(status: EmailStatus) -> int:
        email = queue(session)
        EmailMessage.objects.filter(pk=email.pk).update(status=status)
        return email.pk

    ids = [
        logged(EmailStatus.SENT),
        logged(EmailStatus.SENT),
        logged(EmailStatus.FAILED),
        logged(EmailStatus.QUEUED),
    ]
    logged(EmailStatus.SENT)  # not asked about

    assert email_outcomes(ids) == EmailOutcomes(sent=2, failed=1, queued=1)
    assert email_outcomes([]) == EmailOutcomes()


def test_a_concurrent_delivery_finds_the_message_sent_and_sends_nothing(session, mailoutbox):
    email = queue(session)
    EmailMessage.objects.filter(pk=email.pk).update(
        status=EmailStatus.SENT, sent_at=timezone.now(), attempts=1
    )

    assert email_send(email_id=email.pk) is True

    assert mailoutbox == []
    assert EmailAttempt.objects.count() == 0


def test_a_bad_stored_setting_is_recorded_as_a_failed_attempt_not_left_queued(
    session, monkeypatch, retries
):
    # smtplib raises ValueError for a zero timeout saved outside the admin's form.
    def refuse(backend, messages):
        raise ValueError("Non-blocking socket (timeout=0) is not supported")

    monkeypatch.setattr(EmailBackend, "send_messages", refuse)
    email = queue(session)

    assert email_send(email_id=email.pk) is False

    email.refresh_from_db()
    assert email.status == EmailStatus.FAILED
    assert email.attempts == 1
    assert "timeout=0" in email.last_error
    assert EmailAttempt.objects.filter(email=email, succeeded=False).count() == 1


def test_a_misconfigured_backend_is_recorded_as_a_failed_attempt(session, settings, retries):
    # Any delivery fault, not only SMTP ones, must land in the log instead of escaping.
    settings.EMAIL_BACKEND = "no.such.backend.EmailBackend"
    email = queue(session)

    assert email_send(email_id=email.pk) is False

    email.refresh_from_db()
    assert email.status == EmailStatus.FAILED
    assert email.attempts == 1
    assert "no.such.backend" in email.last_error or "No module named" in email.last_error
