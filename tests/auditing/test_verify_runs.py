"""The verify_audit_trail service and task: range resolution, run records, alert delivery."""

import datetime as dt
import json
import smtplib
from io import StringIO

import pytest
import time_machine
from django.core.mail.backends.base import BaseEmailBackend
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test import override_settings

from auditing.models import VerificationRun
from auditing.runs import (
    InvalidVerificationRange,
    verification_range_resolve,
    verification_run_perform,
)
from mailing.addresses import InvalidEmailAddress
from mailing.models import EmailMessage, EmailStatus
from tasks.tasks import verify_audit_trail
from tests.auditing.tampering import APPEND_ONLY_TRIGGER, disable_append_only_trigger, set_column
from tests.auditing.test_verify_command import NOW, append_daily, local
from tests.factories import StaffUserFactory

pytestmark = pytest.mark.django_db


# --- Range resolution ------------------------------------------------------------------


def test_default_range_runs_from_local_midnight_30_days_ago_until_now():
    period = verification_range_resolve(start_date=None, end_date=None, full=False, now=NOW)

    assert (period.start_date, period.end_date) == (dt.date(2026, 4, 20), dt.date(2026, 5, 20))
    assert period.start == local(2026, 4, 20, 0, 0)
    assert period.end == NOW


def test_default_range_takes_the_local_date_not_utc():
    # 01:30 local on 20 May is still 19 May in UTC.
    early = local(2026, 5, 20, 1, 30)

    period = verification_range_resolve(start_date=None, end_date=None, full=False, now=early)

    assert (period.start_date, period.end_date) == (dt.date(2026, 4, 20), dt.date(2026, 5, 20))


def test_given_dates_run_from_local_midnight_to_the_midnight_after_the_end_date():
    period = verification_range_resolve(
        start_date="2026-03-01", end_date="2026-03-10", full=False, now=NOW
    )

    assert period.start == local(2026, 3, 1, 0, 0)
    assert period.end == local(2026, 3, 11, 0, 0)
    assert period.start.astimezone(dt.UTC) == dt.datetime(2026, 2, 28, 21, 0, tzinfo=dt.UTC)


def test_end_date_alone_checks_the_30_days_before_it():
    period = verification_range_resolve(start_date=None, end_date="2026-03-31", full=False, now=NOW)

    assert (period.start_date, period.end_date) == (dt.date(2026, 3, 1), dt.date(2026, 3, 31))


def test_start_date_alone_runs_until_now():
    period = verification_range_resolve(start_date="2026-05-01", end_date=None, full=False, now=NOW)

    assert (period.start_date, period.end_date, period.end) == (
        dt.date(2026, 5, 1),
        dt.date(2026, 5, 20),
        NOW,
    )


def test_a_single_day_is_a_valid_range():
    period = verification_range_resolve(
        start_date="2026-03-10", end_date="2026-03-10", full=False, now=NOW
    )

    assert period.end - period.start == dt.timedelta(days=1)


def test_full_has_no_bounds():
    period = verification_range_resolve(start_date=None, end_date=None, full=True, now=NOW)

    assert period.full
    assert (period.start, period.end, period.start_date, period.end_date) == (None,) * 4


@pytest.mark.parametrize(
    ("start_date", "end_date", "full"),
    [
        ("2026-02-30", None, False),
        ("2026-2-3", None, False),
        (None, "2026-03-01T00:00", False),
        (None, "tomorrow", False),
        ("2026-03-05", "2026-03-04", False),
        ("2026-03-01", None, True),
    ],
)
def test_bad_ranges_are_refused(start_date, end_date, full):
    with pytest.raises(InvalidVerificationRange):
        verification_range_resolve(start_date=start_date, end_date=end_date, full=full, now=NOW)


# --- The service and the task ----------------------------------------------------------


def perform(**overrides):
    kwargs = {
        "start_date": None,
        "end_date": None,
        "full": False,
        "alert_on_tampering": False,
        "email": None,
        "trigger": "beat",
    }
    with time_machine.travel(NOW, tick=False):
        return verification_run_perform(**{**kwargs, **overrides})


def test_service_refuses_bad_input_before_storing_anything():
    with pytest.raises(InvalidVerificationRange):
        perform(start_date="2026-02-30")
    with pytest.raises(InvalidEmailAddress):
        perform(email="nobody")

    assert not VerificationRun.objects.exists()


def test_scheduled_task_stores_a_beat_run_and_returns_a_json_summary():
    append_daily(3)

    with time_machine.travel(NOW, tick=False):
        summary = verify_audit_trail(trigger="beat")

    assert json.loads(json.dumps(summary)) == summary
    assert summary["status"] == "ok"
    assert summary["entries_checked"] == 3
    record = VerificationRun.objects.get()
    assert (record.trigger, record.intact, record.pk) == ("beat", True, summary["run_id"])


def test_full_run_stops_at_the_head_seen_at_the_start():
    append_daily(3)

    summary = perform(full=True)

    assert (summary["head_sequence"], summary["last_sequence"]) == (3, 3)


class RefusingBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise smtplib.SMTPServerDisconnected("the mail server is down")


# --- Committed for real: "sent" is said only after the mail server accepted ---------------


def tamper_and_commit() -> None:
    """Change entry 2 for good; the trigger is back on when the transaction commits."""
    with transaction.atomic(), connection.cursor() as cursor:
        disable_append_only_trigger()
        set_column(2, "action", "forged")
        cursor.execute(f"ALTER TABLE auditing_auditentry ENABLE TRIGGER {APPEND_ONLY_TRIGGER}")


@pytest.mark.django_db(transaction=True)
def test_alert_is_reported_sent_once_the_mail_server_accepted_it(mailoutbox):
    append_daily(3)
    StaffUserFactory(email="admin@example.com")
    tamper_and_commit()
    stdout = StringIO()

    with time_machine.travel(NOW, tick=False), pytest.raises(CommandError) as raised:
        call_command("verify_audit_trail", "--alert-on-tampering", stdout=stdout, stderr=StringIO())

    assert raised.value.returncode == 3
    assert "Alert sent to admin@example.com." in stdout.getvalue()
    assert [message.to for message in mailoutbox] == [["admin@example.com"]]
    assert EmailMessage.objects.get().status == EmailStatus.SENT


@pytest.mark.django_db(transaction=True)
def test_failed_alert_email_keeps_the_run_and_is_reported_as_not_sent(monkeypatch, mailoutbox):
    append_daily(3)
    tamper_and_commit()
    retries = []
    monkeypatch.setattr(
        "mailing.tasks.email_deliver.apply_async", lambda **kwargs: retries.append(kwargs)
    )
    stderr = StringIO()

    with (
        override_settings(EMAIL_BACKEND=f"{__name__}.RefusingBackend"),
        time_machine.travel(NOW, tick=False),
        pytest.raises(CommandError) as raised,
    ):
        call_command(
            "verify_audit_trail",
            "--email",
            "security@example.com",
            stdout=StringIO(),
            stderr=stderr,
        )

    assert raised.value.returncode == 3
    assert "Alert to security@example.com could not be sent yet" in stderr.getvalue()
    assert EmailMessage.objects.get().status == EmailStatus.FAILED
    assert [kwargs["kwargs"] for kwargs in retries] == [{"email_id": EmailMessage.objects.get().pk}]
    assert VerificationRun.objects.get().intact is False
    assert mailoutbox == []


@pytest.mark.django_db(transaction=True)
def test_failed_alert_email_summary_counts_it_failed(monkeypatch):
    append_daily(3)
    tamper_and_commit()
    monkeypatch.setattr("mailing.tasks.email_deliver.apply_async", lambda **kwargs: None)

    with override_settings(EMAIL_BACKEND=f"{__name__}.RefusingBackend"):
        summary = perform(email="security@example.com")

    assert summary["status"] == "tampering"
    assert summary["emails"] == {"queued": 0, "sent": 0, "failed": 1}
    assert summary["alert"]["recipients"] == ["security@example.com"]


def test_runs_are_listed_read_only_in_the_admin(admin_client):
    append_daily(3)
    disable_append_only_trigger()
    set_column(2, "action", "forged")
    perform(start_date="2026-05-01", end_date="2026-05-10")

    listing = admin_client.get("/admin/auditing/verificationrun/")
    record = VerificationRun.objects.get()
    detail = admin_client.get(f"/admin/auditing/verificationrun/{record.pk}/change/")

    assert listing.status_code == 200
    assert "2026-05-01 to 2026-05-10" in listing.text
    assert detail.status_code == 200
    assert admin_client.get("/admin/auditing/verificationrun/add/").status_code == 403
    assert (
        admin_client.post(f"/admin/auditing/verificationrun/{record.pk}/delete/").status_code == 403
    )
