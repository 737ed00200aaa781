"""Every run that writes leaves its start and outcome in its operation's job health, by
both doors (the Celery task and the command); a dry run, and a run that found the lock
taken, leave nothing; a failure to record never fails the run."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.db import OperationalError, connections

from auditing.services import audit_entry_append
from payments import services
from payments.models import CashSession, SessionStatus
from tasks import tasks
from tasks.locking import _lock_key
from tasks.models import JobHealth
from tasks.tasks import AuditTrailTampered
from tests.auditing.tampering import (
    disable_append_only_trigger,
    enable_append_only_trigger,
    set_column,
)
from tests.factories import CashSessionFactory

LOCAL = ZoneInfo("Indian/Antananarivo")
NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=LOCAL)
pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]


def health(name: str = "close_expired_sessions") -> JobHealth:
    return JobHealth.objects.get(name=name)


def expired() -> CashSession:
    return CashSessionFactory(opened_at=NOW - dt.timedelta(hours=13))


def test_a_beat_run_records_its_start_success_trigger_and_duration(clock):
    tasks.close_expired_sessions.run(trigger="beat")

    row = health()
    assert row.last_started_at == NOW
    assert row.last_finished_at == NOW  # the clock is stopped
    assert (row.last_status, row.last_trigger, row.last_message) == ("ok", "beat", "")
    assert row.last_success_at == NOW
    assert row.last_duration is not None and row.last_duration >= dt.timedelta(0)


def test_a_cron_run_records_itself_as_manual(clock, run_command):
    run_command("close_expired_sessions")

    row = health()
    assert (row.last_status, row.last_trigger, row.last_success_at) == ("ok", "manual", NOW)


def test_a_dry_run_is_a_preview_and_records_nothing(clock, run_command):
    expired()
    run_command("close_expired_sessions", "--dry-run")
    tasks.reconciliation_reminder.run(dry_run=True, trigger="beat")
    tasks.generate_commission_report.run(dry_run=True, trigger="beat")

    assert not JobHealth.objects.exists()


def test_a_run_that_found_the_lock_taken_records_nothing(clock):
    tasks.close_expired_sessions.run(trigger="beat")
    before = JobHealth.objects.values().get(name="close_expired_sessions")
    other = connections.create_connection("default")
    try:
        # Another process's run holds the lock for its whole run.
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [_lock_key("close_expired_sessions")])
        clock.shift(dt.timedelta(hours=1))

        result = tasks.close_expired_sessions.run(trigger="beat")
    finally:
        other.close()

    assert result["status"] == "already_running"
    assert JobHealth.objects.values().get(name="close_expired_sessions") == before


def test_some_items_failing_is_a_failed_run_not_a_success(clock, monkeypatch):
    tasks.close_expired_sessions.run(trigger="beat")
    expired()
    clock.shift(dt.timedelta(hours=1))
    monkeypatch.setattr(
        services,
        "session_close_automatically",
        lambda **kwargs: (_ for _ in ()).throw(RuntimeError("simulated failure")),
    )

    tasks.close_expired_sessions.run(trigger="beat")

    row = health()
    assert row.last_started_at == NOW + dt.timedelta(hours=1)
    assert row.last_status == "failed"
    assert row.last_message == "1 session(s) could not be closed; see the output."
    assert row.last_success_at == NOW  # the earlier run's


def test_a_run_that_crashes_records_the_error_in_one_line(clock, monkeypatch, run_command):
    expired()
    monkeypatch.setattr(
        services,
        "session_close_automatically",
        lambda **kwargs: (_ for _ in ()).throw(
            OperationalError("server closed the connection\nunexpectedly")
        ),
    )

    run_command("close_expired_sessions", expect_exit=1)

    row = health()
    assert row.last_status == "error"
    assert row.last_message == "OperationalError: server closed the connection"
    assert row.last_success_at is None
    assert CashSession.objects.get().status == SessionStatus.OPEN


def test_tampering_found_is_a_verification_that_did_its_job(clock):
    for number in range(3):
        audit_entry_append(action="test.event", actor=None, data={"n": number})
    disable_append_only_trigger()
    set_column(2, "data", {"n": 99})
    enable_append_only_trigger()
    clock.shift(dt.timedelta(minutes=1))

    # The task fails (red in Flower), yet the verification did its job: found tampering.
    with pytest.raises(AuditTrailTampered):
        tasks.verify_audit_trail.run(trigger="beat")

    row = health("verify_audit_trail")
    assert row.last_status == "tampering"
    assert row.last_message == "Tampering detected: 1 issue in the audit trail."
    assert row.last_success_at == NOW + dt.timedelta(minutes=1)


def test_a_job_health_that_cannot_be_written_never_fails_the_run(clock, monkeypatch, caplog):
    session = expired()
    # A real database error on every job-health write: the table is not there.
    monkeypatch.setattr(JobHealth._meta, "db_table", "tasks_jobhealth_gone")

    result = tasks.close_expired_sessions.run(trigger="beat")

    assert (result["status"], result["closed"]) == ("ok", 1)
    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED
    assert "Could not record close_expired_sessions's job health" in caplog.text
    monkeypatch.undo()
    assert not JobHealth.objects.exists()
