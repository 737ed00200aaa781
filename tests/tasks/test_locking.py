"""The per-operation PostgreSQL advisory lock, and concurrent runs of close_expired_sessions
on real, separate connections."""

import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from auditing.models import AuditEntry
from auditing.verification import chain_verify
from mailing.delivery import email_deliver_now
from mailing.models import EmailMessage
from payments.models import CashSession, Notification, NotificationKind, SessionStatus
from tasks.locking import OperationAlreadyRunning, operation_lock
from tasks.operations.close_expired_sessions import Options
from tasks.operations.close_expired_sessions import close_expired_sessions as close_run
from tasks.results import OperationStatus, Trigger
from tasks.tasks import close_expired_sessions
from tests.factories import CashSessionFactory, CashTransactionFactory

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 30
OPERATION = "close_expired_sessions"


@contextmanager
def lock_held_elsewhere(name: str) -> Iterator[None]:
    """Hold ``operation_lock(name)`` in another thread, on its own connection, for the block."""
    acquired = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with operation_lock(name):
                acquired.set()
                release.wait(timeout=TIMEOUT)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            acquired.set()
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert acquired.wait(timeout=TIMEOUT)
    assert not errors, errors
    try:
        yield
    finally:
        release.set()
        thread.join(timeout=TIMEOUT)
    assert not thread.is_alive(), "the lock holder hung"
    assert not errors, errors


def try_lock_in_another_thread(name: str) -> bool:
    """Whether another connection can take the lock right now (it releases it at once)."""
    outcome: list[bool] = []

    def attempt() -> None:
        try:
            with operation_lock(name):
                outcome.append(True)
        except OperationAlreadyRunning:
            outcome.append(False)
        finally:
            connection.close()

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join(timeout=TIMEOUT)
    assert len(outcome) == 1
    return outcome[0]


def run_concurrently(count: int, work: Callable[[], Any]) -> list[Any]:
    """Run ``work`` in ``count`` threads with their own connections, released together."""
    barrier = threading.Barrier(count)
    results: list[Any] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            connection.ensure_connection()
            barrier.wait(timeout=TIMEOUT)
            results.append(work())
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT * 2)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    assert not errors, errors
    return results


def expired_sessions(count: int, *, with_payments: int = 0) -> list[CashSession]:
    opened = timezone.now() - dt.timedelta(hours=13)
    sessions = [
        CashSessionFactory(opened_at=opened - dt.timedelta(minutes=index)) for index in range(count)
    ]
    for session in sessions[:with_payments]:
        CashTransactionFactory(session=session)
    return sessions


def test_a_held_lock_refuses_another_connection_until_released():
    with lock_held_elsewhere(OPERATION):
        with pytest.raises(OperationAlreadyRunning):
            with operation_lock(OPERATION):
                pytest.fail("took a lock another connection holds")

    with operation_lock(OPERATION):
        pass


def test_different_operations_do_not_block_each_other():
    with lock_held_elsewhere(OPERATION):
        with operation_lock("verify_audit_trail"):
            pass


def test_the_lock_is_released_when_the_run_raises():
    with pytest.raises(RuntimeError):
        with operation_lock(OPERATION):
            assert try_lock_in_another_thread(OPERATION) is False
            raise RuntimeError("the run failed")

    assert try_lock_in_another_thread(OPERATION) is True


def test_a_run_while_another_is_in_progress_exits_4_and_closes_nothing(mailoutbox):
    [session] = expired_sessions(1)
    out, err = StringIO(), StringIO()

    with lock_held_elsewhere(OPERATION):
        with pytest.raises(CommandError) as info:
            call_command(OPERATION, stdout=out, stderr=err)

    assert info.value.returncode == 4
    assert "already running" in str(info.value)
    assert "already running" in err.getvalue()
    session.refresh_from_db()
    assert session.status == SessionStatus.OPEN
    assert AuditEntry.objects.count() == 0
    assert Notification.objects.count() == 0
    assert mailoutbox == []

    output = StringIO()
    call_command(OPERATION, stdout=output, stderr=StringIO())
    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED
    assert "Closed 1, skipped 0" in output.getvalue()


def test_a_dry_run_is_not_blocked_by_a_run_in_progress():
    [session] = expired_sessions(1)
    out = StringIO()

    with lock_held_elsewhere(OPERATION):
        call_command(OPERATION, "--dry-run", stdout=out, stderr=StringIO())

    assert "-> would close" in out.getvalue()
    session.refresh_from_db()
    assert session.status == SessionStatus.OPEN


def test_two_racing_run_bodies_close_each_session_once_and_notify_each_agent_once(mailoutbox):
    sessions = expired_sessions(8, with_payments=2)
    busy, closable = sessions[:2], sessions[2:]

    results = run_concurrently(2, lambda: close_run(options=Options(), trigger=Trigger.BEAT))

    assert sum(result.closed for result in results) == len(closable)
    for result in results:
        assert result.status == OperationStatus.OK
        assert result.failed == 0
        assert result.closed + result.already_handled == len(closable)
        assert result.skipped == len(busy)
    assert all(
        status == SessionStatus.CLOSED
        for status in CashSession.objects.filter(pk__in=[s.pk for s in closable]).values_list(
            "status", flat=True
        )
    )
    closures = Counter(
        AuditEntry.objects.filter(action="session.auto_closed").values_list("subject_id", flat=True)
    )
    assert closures == Counter({str(session.pk): 1 for session in closable})
    notices = Counter(
        AuditEntry.objects.filter(action="session.expiry_notified").values_list(
            "subject_id", flat=True
        )
    )
    assert notices == Counter({str(session.pk): 1 for session in busy})
    assert Counter(Notification.objects.values_list("session_id", "kind")) == Counter(
        {(s.pk, NotificationKind.SESSION_AUTO_CLOSED): 1 for s in closable}
        | {(s.pk, NotificationKind.SESSION_EXPIRED): 1 for s in busy}
    )
    assert EmailMessage.objects.count() == len(sessions)
    # Mail leaves through the outbox after the runs: each agent's message once.
    for email_id in EmailMessage.objects.values_list("pk", flat=True):
        email_deliver_now(email_id=email_id)
    assert sorted(mail.to[0] for mail in mailoutbox) == sorted(s.agent.email for s in sessions)
    assert chain_verify().intact


def test_two_racing_tasks_close_each_session_once():
    sessions = expired_sessions(6)

    summaries = run_concurrently(2, lambda: close_expired_sessions(trigger="beat"))

    statuses = sorted(summary["status"] for summary in summaries)
    assert statuses in (["already_running", "ok"], ["ok", "ok"])
    assert sum(summary.get("closed", 0) for summary in summaries) == len(sessions)
    closures = Counter(
        AuditEntry.objects.filter(action="session.auto_closed").values_list("subject_id", flat=True)
    )
    assert closures == Counter({str(session.pk): 1 for session in sessions})
    assert Notification.objects.count() == len(sessions)
