"""The broker's faults against a real worker and a real Redis of the test's own: Redis killed
and started again while a task runs, and a broker that accepts connections and never
answers. See project/celery_recovery.py and the broker timeouts in project/settings.py."""

import datetime as dt
import json
import subprocess
import sys
import time
import uuid
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.utils import timezone
from django_celery_results.models import TaskResult

from auditing.models import AuditEntry
from auditing.services import CHAIN_LOCK_KEY
from payments.models import CashSession, SessionStatus
from payments.services import session_open
from tests.factories import AgentFactory
from tests.integration.parts import (
    PROJECT_DIR,
    celery_worker,
    database_url,
    private_redis,
    silent_server,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

CLOSE = "tasks.close_expired_sessions"


def expired_session() -> CashSession:
    agent = AgentFactory(email="")
    with time_machine.travel(timezone.now() - dt.timedelta(hours=13), tick=False):
        return session_open(agent=agent, opening_balance=Decimal("15000.00"), actor=agent.user)


def hold_the_audit_chain() -> None:
    """Take the lock every audit append waits for: a run that closes a session stops there,
    in the middle of its transaction, until ``release_the_audit_chain()``."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [CHAIN_LOCK_KEY])


def release_the_audit_chain() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [CHAIN_LOCK_KEY])


def waiting_on_the_chain(application_name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            " AND wait_event_type = 'Lock' AND query LIKE %s",
            [application_name, "%pg_advisory_xact_lock%"],
        )
        return cursor.fetchone()[0] == 1


def finished(task_id: str) -> TaskResult | None:
    return TaskResult.objects.filter(task_id=task_id, status__in=["SUCCESS", "FAILURE"]).first()


def test_a_redis_restart_with_a_task_in_flight_keeps_the_worker_and_runs_the_task_once():
    """Measured before the fix: the worker exited for good ("'NoneType' object has no
    attribute 'hostname'" in kombu's restore_unacked_once). Redis here keeps its data on
    disk, like the compose stack's: the running task's message survives the restart and
    must be neither handed out again nor left unacknowledged."""
    session = expired_session()
    name = f"broker-restart-{uuid.uuid4().hex[:6]}"
    hold_the_audit_chain()
    try:
        with (
            private_redis(persistent=True) as broker,
            celery_worker(broker_url=broker.url, database_url=database_url(name=name)) as worker,
        ):
            in_flight = worker.send(CLOSE, trigger="task")
            wait_until(lambda: waiting_on_the_chain(name), what="the run to reach the chain")

            broker.restart(down_for=1.0)
            wait_until(worker.answers, what="the worker to reconnect")  # fails if it exited
            release_the_audit_chain()
            first = wait_until(lambda: finished(in_flight), what="the in-flight run to finish")

            later = worker.send(CLOSE, trigger="task")
            second = wait_until(lambda: finished(later), what="a new task to run")
            time.sleep(1)  # time for a wrongly restored copy to reach the worker
            redis_left = broker.client()
            unacked, queued = redis_left.hlen("unacked"), redis_left.llen("celery")
            worker_alive, log = worker.alive(), worker.log()
    finally:
        release_the_audit_chain()

    assert worker_alive, log
    assert "Unrecoverable error" not in log, log
    assert (first.status, json.loads(first.result)["closed"]) == ("SUCCESS", 1), first.traceback
    assert (second.status, json.loads(second.result)["closed"]) == ("SUCCESS", 0)
    assert TaskResult.objects.filter(task_name=CLOSE).count() == 2
    assert (unacked, queued) == (0, 0)  # acknowledged over the new connection, nothing requeued
    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED
    assert AuditEntry.objects.filter(action="session.auto_closed").count() == 1


def test_enqueue_against_a_broker_that_never_answers_exits_5_within_seconds():
    with silent_server() as port:
        started = time.monotonic()
        run = subprocess.run(  # noqa: S603 - fixed argv
            [sys.executable, "manage.py", "close_expired_sessions", "--enqueue"],
            cwd=PROJECT_DIR,
            env={
                "PATH": "/usr/bin:/bin",
                "DJANGO_ENV": "test",
                "DATABASE_URL": database_url(name="enqueue-hung-broker"),
                "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        took = time.monotonic() - started

    assert run.returncode == 5, (run.stdout, run.stderr)
    assert took < 10, took
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(
        "CommandError: Could not reach the broker to enqueue tasks.close_expired_sessions: "
    ), lines
