"""A worker whose database goes away, through a TCP proxy the test cuts and restores (the
shared PostgreSQL keeps running). Before the fix, a result write that failed was "raised
outside body": the message was acknowledged and dropped, and the task's result stayed
STARTED (or was never written). project/celery_recovery.py: DatabaseBackend."""

import json
import time
import uuid

import pytest
from django.db import connection
from django_celery_results.models import TaskResult

from auditing.models import AuditEntry
from payments.models import SessionStatus
from tests.integration.parts import (
    celery_worker,
    database_url,
    private_redis,
    tcp_proxy,
    wait_until,
)
from tests.integration.test_broker_faults import (
    CLOSE,
    expired_session,
    finished,
    hold_the_audit_chain,
    release_the_audit_chain,
    waiting_on_the_chain,
)

pytestmark = pytest.mark.django_db(transaction=True)

# The first autoretry waits a random 0-30 s (tasks/tasks.py: retry_backoff=30, jitter).
RETRY_WAIT_SECONDS = 60


def postgres() -> tuple[str, int]:
    db = connection.settings_dict
    return (db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))


def test_a_task_taken_while_the_database_is_away_waits_for_it_then_runs_once():
    session = expired_session()
    name = f"db-away-{uuid.uuid4().hex[:6]}"
    with (
        tcp_proxy(postgres()) as proxy,
        private_redis() as broker,
        celery_worker(
            broker_url=broker.url, database_url=database_url(port=proxy.port, name=name)
        ) as worker,
    ):
        proxy.cut()
        task_id = worker.send(CLOSE, trigger="task")
        wait_until(lambda: f"[{task_id}] received" in worker.log(), what="the worker to take it")
        time.sleep(3)  # its STARTED state cannot be written
        proxy.restore()
        result = wait_until(lambda: finished(task_id), what="the run to finish")
        log = worker.log()

    assert result.status == "SUCCESS", (result.traceback, log)
    assert json.loads(result.result)["closed"] == 1
    assert "raised outside body" not in log, log
    assert "Failed operation _store_result" in log  # the write was retried, not dropped
    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED
    assert AuditEntry.objects.filter(action="session.auto_closed").count() == 1


def test_a_run_cut_off_from_its_database_is_retried_and_completes_once():
    session = expired_session()
    name = f"db-cut-{uuid.uuid4().hex[:6]}"
    hold_the_audit_chain()
    try:
        with (
            tcp_proxy(postgres()) as proxy,
            private_redis() as broker,
            celery_worker(
                broker_url=broker.url, database_url=database_url(port=proxy.port, name=name)
            ) as worker,
        ):
            task_id = worker.send(CLOSE, trigger="task")
            wait_until(lambda: waiting_on_the_chain(name), what="the run to reach the chain")
            proxy.cut()  # mid-transaction: the session's close is not committed
            release_the_audit_chain()
            time.sleep(4)  # the retry is sent, its RETRY state waits for the database
            proxy.restore()
            result = wait_until(
                lambda: finished(task_id), timeout=RETRY_WAIT_SECONDS, what="the retried run"
            )
            log = worker.log()
    finally:
        release_the_audit_chain()

    assert result.status == "SUCCESS", (result.traceback, log)
    assert json.loads(result.result)["closed"] == 1
    assert "Retry in" in log and "OperationalError" in log, log
    assert "raised outside body" not in log, log
    assert TaskResult.objects.count() == 1  # one task id from first run to retry
    session.refresh_from_db()
    assert session.status == SessionStatus.CLOSED
    assert AuditEntry.objects.filter(action="session.auto_closed").count() == 1
