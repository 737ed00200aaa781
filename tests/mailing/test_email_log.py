"""Outgoing email: logged in the outbox with the work, a worker woken after commit, then
delivered once by whoever claims it, retried with backoff, never injected."""

import datetime as dt
import smtplib
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from celery.exceptions import SoftTimeLimitExceeded
from django.core.mail.backends.locmem import EmailBackend
from django.db import transaction
from django.utils import timezone

from mailing import delivery
from mailing.addresses import InvalidEmailAddress, email_address_validate
from mailing.delivery import DeliveryOutcome, email_deliver_now
from mailing.models import EmailAttempt, EmailMessage, EmailStatus
from mailing.selectors import EmailOutcomes, email_outcomes, staff_email_addresses
from mailing.services import email_queue
from mailing.tasks import email_deliver
from tests.factories import CashSessionFactory, StaffUserFactory, UserFactory

pytestmark = pytest.mark.django_db

TEMPLATE = "payments/email/session_expired"
# Any fixed instant: the subject names its local date.
EXPIRES_AT = dt.datetime(2026, 3, 10, 12, 0, tzinfo=ZoneInfo("Indian/Antananarivo"))
NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=ZoneInfo("Indian/Antananarivo"))


class Rollback(Exception):
    """Raised on purpose to roll a transaction back."""


@pytest.fixture
def session():
    return CashSessionFactory()


@pytest.fixture
def wakeups(monkeypatch) -> list[tuple[str, dict[str, Any]]]:
    """Worker wake-ups sent on commit, captured instead of sent to the broker."""
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        "mailing.services.worker_wake", lambda task, **kwargs: sent.append((task.name, kwargs))
    )
    return sent


@pytest.fixture
def mail_server(monkeypatch):
    """``mail_server.down = True`` makes every send fail as a dropped SMTP connection."""
    state = type("MailServer", (), {"down": False, "error": None})()
    real_send = EmailBackend.send_messages

    def send_messages(backend, messages):
        if state.error is not None:
            raise state.error
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


def attempts_of(email: EmailMessage) -> list[tuple[bool | None, str]]:
    return list(email.attempt_log.values_list("succeeded", "error"))


# --- Queueing: the row with the work, a wake-up after commit, nothing sent -------------


def test_queue_logs_the_message_and_only_wakes_a_worker_after_commit(
    session, mailoutbox, wakeups, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            email = queue(session)
            assert wakeups == []

    assert wakeups == [("tasks.email_deliver", {"email_id": email.pk})]
    assert mailoutbox == []  # the worker sends it, not the committing code
    stored = EmailMessage.objects.get(pk=email.pk)
    assert stored.status == EmailStatus.QUEUED
    assert stored.attempts == 0
    assert stored.purpose == "session_expired"
    assert stored.about == session.number
    assert (stored.subject_type, stored.subject_id) == ("payments.cashsession", str(session.pk))
    assert stored.recipients == ["rova@agents.example.com"]
    assert "has passed the 12-hour limit" in stored.body_text
    assert stored.body_html.startswith("<!DOCTYPE html>")
    # The subject comes from the template's .subject.txt, like the bodies.
    assert stored.subject == f"Session {session.number} expired on 2026-03-10: count and close it"
    assert stored.message_id.startswith("<") and stored.message_id.endswith("@localhost>")


def test_the_worker_delivers_the_logged_message_with_its_message_id(session, mailoutbox):
    email = queue(session)

    assert email_deliver(email_id=email.pk) == {"email_id": email.pk, "status": "sent"}

    [mail] = mailoutbox
    assert mail.to == ["rova@agents.example.com"]
    assert mail.subject == email.subject
    assert mail.body == email.body_text
    assert mail.alternatives[0][1] == "text/html"
    assert mail.extra_headers["Message-ID"] == email.message_id
    assert mail.message()["Message-ID"] == email.message_id


def test_each_message_gets_its_own_message_id_in_the_senders_domain(session, settings):
    settings.DEFAULT_FROM_EMAIL = "Cash office <office@cash.example.mg>"
    first, second = queue(session), queue(session)

    assert first.message_id != second.message_id
    assert first.message_id.endswith("@cash.example.mg>")


def test_nothing_is_logged_or_woken_when_the_transaction_rolls_back(
    session, mailoutbox, wakeups, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(Rollback):
            with transaction.atomic():
                queue(session)
                raise Rollback

    assert callbacks == []
    assert wakeups == []
    assert mailoutbox == []
    assert EmailMessage.objects.count() == 0


def test_a_broker_that_cannot_be_reached_never_fails_the_committed_work(
    session, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(task, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr("mailing.services.worker_wake", broker_down)

    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            session.closing_notes = "work the email reports on"
            session.save(update_fields=["closing_notes"])
            email = queue(session)

    session.refresh_from_db()
    assert session.closing_notes == "work the email reports on"
    assert EmailMessage.objects.get(pk=email.pk).status == EmailStatus.QUEUED


# --- One delivery: claim, send, record -------------------------------------------------


def test_a_delivery_records_the_message_sent_with_one_finished_attempt(session, mailoutbox):
    email = queue(session)

    with time_machine.travel(NOW, tick=False):
        result = email_deliver_now(email_id=email.pk)

    assert (result.outcome, result.attempt, result.error) == (DeliveryOutcome.SENT, 1, "")
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT
    assert email.sent_at == email.last_attempt_at == NOW
    assert (email.attempts, email.last_error, email.next_attempt_at) == (1, "", None)
    assert (email.attempt_id, email.claimed_at) == (None, None)  # the claim is released
    [attempt] = EmailAttempt.objects.filter(email=email)
    assert (attempt.succeeded, attempt.error) == (True, "")
    assert attempt.attempted_at == attempt.finished_at == NOW
    assert isinstance(attempt.attempt_id, uuid.UUID)
    assert len(mailoutbox) == 1


def test_a_failing_mail_server_marks_the_message_failed_with_its_next_attempt(
    session, mailoutbox, mail_server
):
    mail_server.down = True
    email = queue(session)

    with time_machine.travel(NOW, tick=False):
        result = email_deliver_now(email_id=email.pk)

    assert result.outcome == DeliveryOutcome.FAILED
    assert result.next_attempt_at == NOW + dt.timedelta(minutes=2)
    assert result.server_unavailable is True
    email.refresh_from_db()
    assert email.status == EmailStatus.FAILED
    assert email.last_error == "SMTPServerDisconnected: Connection unexpectedly closed"
    assert (email.attempts, email.sent_at) == (1, None)
    assert email.next_attempt_at == NOW + dt.timedelta(minutes=2)
    assert email.gave_up is False
    assert attempts_of(email) == [(False, email.last_error)]
    assert mailoutbox == []


def test_retries_back_off_2_4_8_16_32_minutes_then_give_up_after_six_attempts(
    session, mailoutbox, mail_server
):
    mail_server.down = True
    email = queue(session)
    waits = []

    with time_machine.travel(NOW, tick=False) as clock:
        for _ in range(6):
            result = email_deliver_now(email_id=email.pk)
            email.refresh_from_db()
            if email.next_attempt_at is None:
                break
            waits.append(email.next_attempt_at - timezone.now())
            # Not due a second before its time: the worker leaves it alone.
            clock.move_to(email.next_attempt_at - dt.timedelta(seconds=1))
            assert email_deliver_now(email_id=email.pk).outcome == DeliveryOutcome.NOT_DUE
            clock.move_to(email.next_attempt_at)

    assert waits == [dt.timedelta(minutes=m) for m in (2, 4, 8, 16, 32)]
    assert result.outcome == DeliveryOutcome.GAVE_UP
    assert (email.status, email.attempts, email.next_attempt_at) == (EmailStatus.FAILED, 6, None)
    assert email.gave_up is True
    assert [succeeded for succeeded, _ in attempts_of(email)] == [False] * 6
    assert email_deliver_now(email_id=email.pk).outcome == DeliveryOutcome.NOT_DUE
    assert email.attempt_log.count() == 6
    assert mailoutbox == []


def test_a_retry_after_the_server_recovers_delivers_exactly_once(session, mailoutbox, mail_server):
    mail_server.down = True
    email = queue(session)
    with time_machine.travel(NOW, tick=False) as clock:
        assert email_deliver_now(email_id=email.pk).outcome == DeliveryOutcome.FAILED
        mail_server.down = False
        clock.shift(dt.timedelta(minutes=2))

        assert email_deliver_now(email_id=email.pk).outcome == DeliveryOutcome.SENT
        assert email_deliver_now(email_id=email.pk).outcome == DeliveryOutcome.NOT_DUE

    assert len(mailoutbox) == 1
    email.refresh_from_db()
    assert (email.status, email.last_error, email.attempts) == (EmailStatus.SENT, "", 2)
    assert [succeeded for succeeded, _ in attempts_of(email)] == [False, True]


def test_the_delivery_task_never_retries_through_celery(session, mail_server):
    # The outbox row carries the retry time; a Celery retry would be a second copy of it.
    mail_server.down = True
    email = queue(session)

    result = email_deliver.apply(kwargs={"email_id": email.pk})

    assert result.get() == {"email_id": email.pk, "status": "failed"}
    assert result.state == "SUCCESS"  # not RETRY: the sweeper retries at next_attempt_at


def test_a_message_sent_meanwhile_is_not_sent_again(session, mailoutbox):
    email = queue(session)
    EmailMessage.objects.filter(pk=email.pk).update(
        status=EmailStatus.SENT, sent_at=timezone.now(), attempts=1
    )

    assert email_deliver_now(email_id=email.pk).outcome == DeliveryOutcome.NOT_DUE

    assert mailoutbox == []
    assert EmailAttempt.objects.count() == 0


def test_a_message_another_delivery_holds_is_skipped_not_waited_for(session, mailoutbox):
    email = queue(session)
    EmailMessage.objects.filter(pk=email.pk).update(
        status=EmailStatus.SENDING, attempt_id=uuid.uuid4(), claimed_at=timezone.now()
    )

    assert email_deliver_now(email_id=email.pk).outcome == DeliveryOutcome.NOT_DUE

    assert mailoutbox == []
    assert EmailMessage.objects.get(pk=email.pk).status == EmailStatus.SENDING


def test_an_answer_arriving_after_the_claim_was_taken_over_only_fills_its_attempt(
    session, mailoutbox, monkeypatch
):
    email = queue(session)
    other = uuid.uuid4()
    real_send = delivery._send

    def slow_send(claimed):
        # While this delivery talks to the server, another one takes the message over.
        EmailMessage.objects.filter(pk=claimed.pk).update(attempt_id=other)
        return real_send(claimed)

    monkeypatch.setattr(delivery, "_send", slow_send)

    result = email_deliver_now(email_id=email.pk)

    assert result.outcome == DeliveryOutcome.SENT
    email.refresh_from_db()
    assert (email.status, email.attempt_id, email.sent_at) == (EmailStatus.SENDING, other, None)
    assert attempts_of(email) == [(True, "")]


def test_a_bad_stored_setting_is_recorded_as_a_failed_attempt_not_left_queued(session, mail_server):
    # smtplib raises ValueError for a zero timeout saved outside the admin's form.
    mail_server.error = ValueError("Non-blocking socket (timeout=0) is not supported")
    email = queue(session)

    result = email_deliver_now(email_id=email.pk)

    assert result.outcome == DeliveryOutcome.FAILED
    assert result.server_unavailable is False
    email.refresh_from_db()
    assert (email.status, email.attempts) == (EmailStatus.FAILED, 1)
    assert "timeout=0" in email.last_error
    assert EmailAttempt.objects.filter(email=email, succeeded=False).count() == 1


def test_a_misconfigured_backend_is_recorded_as_a_failed_attempt(session, settings):
    # Any delivery fault, not only SMTP ones, must land in the log instead of escaping.
    settings.EMAIL_BACKEND = "no.such.backend.EmailBackend"
    email = queue(session)

    assert email_deliver_now(email_id=email.pk).outcome == DeliveryOutcome.FAILED

    email.refresh_from_db()
    assert email.status == EmailStatus.FAILED
    assert email.attempts == 1
    assert "no.such.backend" in email.last_error or "No module named" in email.last_error


def test_a_time_limit_during_the_send_is_recorded_then_still_stops_the_task(session, mail_server):
    mail_server.error = SoftTimeLimitExceeded()
    email = queue(session)

    with pytest.raises(SoftTimeLimitExceeded):
        email_deliver_now(email_id=email.pk)

    email.refresh_from_db()
    assert (email.status, email.attempts) == (EmailStatus.FAILED, 1)
    assert email.next_attempt_at is not None
    assert attempts_of(email) == [(False, "SoftTimeLimitExceeded: SoftTimeLimitExceeded()")]


# --- A delivery that died mid-way: "sending" left behind --------------------------------


def died_sending(email: EmailMessage, *, at: dt.datetime, attempts: int = 1) -> uuid.UUID:
    """What a delivery killed between the server's answer and its record leaves."""
    attempt_id = uuid.uuid4()
    EmailMessage.objects.filter(pk=email.pk).update(
        status=EmailStatus.SENDING,
        attempt_id=attempt_id,
        claimed_at=at,
        attempts=attempts,
        last_attempt_at=at,
    )
    EmailAttempt.objects.create(email=email, attempt_id=attempt_id, attempted_at=at)
    return attempt_id


def test_a_message_left_sending_is_resent_with_its_message_id_only_after_the_grace_period(
    session, mailoutbox, settings
):
    settings.EMAIL_SENDING_GRACE_SECONDS = 15 * 60
    email = queue(session)
    died_sending(email, at=NOW)

    with time_machine.travel(NOW + dt.timedelta(minutes=14, seconds=59), tick=False):
        assert email_deliver_now(email_id=email.pk).outcome == DeliveryOutcome.NOT_DUE
    assert mailoutbox == []

    with time_machine.travel(NOW + dt.timedelta(minutes=15), tick=False):
        result = email_deliver_now(email_id=email.pk)

    assert result.outcome == DeliveryOutcome.SENT
    [mail] = mailoutbox
    assert mail.extra_headers["Message-ID"] == email.message_id
    email.refresh_from_db()
    assert (email.status, email.attempts) == (EmailStatus.SENT, 2)
    lost, resent = email.attempt_log.order_by("attempted_at")
    assert lost.succeeded is None
    assert lost.finished_at == NOW + dt.timedelta(minutes=15)
    assert "stopped mid-way" in lost.error and "same Message-ID" in lost.error
    assert (resent.succeeded, resent.error) == (True, "")


def test_a_message_left_sending_with_no_attempt_left_gives_up_instead_of_resending(
    session, mailoutbox
):
    email = queue(session)
    died_sending(email, at=NOW, attempts=6)

    with time_machine.travel(NOW + dt.timedelta(hours=1), tick=False):
        result = email_deliver_now(email_id=email.pk)

    assert result.outcome == DeliveryOutcome.GAVE_UP
    assert mailoutbox == []
    email.refresh_from_db()
    assert email.gave_up is True
    assert (email.status, email.attempts, email.attempt_id) == (EmailStatus.FAILED, 6, None)
    assert "stopped mid-way" in email.last_error


@pytest.mark.parametrize("injected", ["\nBcc: victim@example.com", "\r\nBcc: victim@example.com"])
def test_a_line_break_reaching_the_subject_through_the_data_is_folded_into_one_line(
    session, injected, mailoutbox
):
    session.number += injected  # never saved: only the rendered subject sees it

    email = queue(session)
    email_deliver_now(email_id=email.pk)

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
        changes = {"status": status}
        if status == EmailStatus.SENDING:
            changes |= {"attempt_id": uuid.uuid4(), "claimed_at": timezone.now()}
        EmailMessage.objects.filter(pk=email.pk).update(**changes)
        return email.pk

    ids = [
        logged(EmailStatus.SENT),
        logged(EmailStatus.SENT),
        logged(EmailStatus.FAILED),
        logged(EmailStatus.QUEUED),
        logged(EmailStatus.SENDING),
    ]
    logged(EmailStatus.SENT)  # not asked about

    assert email_outcomes(ids) == EmailOutcomes(sent=2, failed=1, queued=1, sending=1)
    assert email_outcomes([]) == EmailOutcomes()
    assert EmailOutcomes(sending=1).any()
