"""Faults that end a whole run, not one item: the task's time limit and a database that
went away. What finished stays committed, the rest is left for the next run, and the
run says so once: a FAILURE for Celery, one line and exit 1 for cron."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.db import OperationalError

from payments import services
from payments.models import CashSession, SessionStatus
from tasks.runner import OperationStopped
from tasks.tasks import close_expired_sessions, generate_commission_report
from tests.factories import CashSessionFactory

NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=ZoneInfo("Indian/Antananarivo"))
pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]


def expired(hours: float) -> CashSession:
    return CashSessionFactory(opened_at=NOW - dt.timedelta(hours=hours))


def fail_on_second_close(monkeypatch, error: BaseException) -> None:
    real_close = services.session_close_automatically
    calls = []

    def close(*, session, **kwargs):
        calls.append(session.number)
        if len(calls) == 2:
            raise error
        return real_close(session=session, **kwargs)

    monkeypatch.setattr(services, "session_close_automatically", close)


def test_the_time_limit_stops_the_task_as_a_failure_and_leaves_the_rest_for_the_next_run(
    clock, monkeypatch
):
    first, second, third = expired(15), expired(14), expired(13)
    fail_on_second_close(monkeypatch, SoftTimeLimitExceeded())

    with pytest.raises(OperationStopped, match="stopped by its time limit"):
        close_expired_sessions.run(trigger="beat")

    statuses = dict(CashSession.objects.values_list("pk", "status"))
    assert statuses == {
        first.pk: SessionStatus.CLOSED,
        second.pk: SessionStatus.OPEN,
        third.pk: SessionStatus.OPEN,
    }
    monkeypatch.undo()
    result = close_expired_sessions.run(trigger="beat")
    assert (result["closed"], result["failed"]) == (2, 0)


def test_a_lost_database_ends_the_cron_run_with_one_line_and_exit_1(
    clock, monkeypatch, run_command
):
    first, second, third = expired(15), expired(14), expired(13)
    fail_on_second_close(monkeypatch, OperationalError("server closed the connection\nmore"))

    run = run_command("close_expired_sessions", expect_exit=1)

    assert run.stderr == (
        "CommandError: The database could not be reached (server closed the connection); "
        "close_expired_sessions stopped. What it finished is saved; the next run takes the "
        "rest.\n"
    )
    statuses = dict(CashSession.objects.values_list("pk", "status"))
    assert statuses == {
        first.pk: SessionStatus.CLOSED,
        second.pk: SessionStatus.OPEN,
        third.pk: SessionStatus.OPEN,
    }


def test_a_task_sent_without_a_trigger_is_recorded_as_task_never_as_beat(clock):
    result = close_expired_sessions.run()

    assert result["trigger"] == "task"


def test_an_unknown_trigger_fails_the_task_with_one_sentence_and_writes_nothing(clock):
    session = expired(15)

    with pytest.raises(ValueError, match="^trigger must be one of beat, manual"):
        close_expired_sessions.run(trigger="x" * 1023)
    with pytest.raises(ValueError, match="^trigger must be one of"):
        generate_commission_report.run(trigger="beat ")

    session.refresh_from_db()
    assert session.status == SessionStatus.OPEN
