"""A real Celery worker process, talking to the real Redis broker and the test database."""

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_celery_results.models import TaskResult

from payments.models import CashSession, SessionStatus
from payments.services import session_open
from project.celery import app
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db(transaction=True)

PROJECT_DIR = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 60


def _test_database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker_process():
    """Start `celery worker` as a subprocess on the test database; stop it afterwards."""
    app.control.purge()  # stale messages from earlier runs must not reach this worker
    node = f"test-{uuid.uuid4().hex[:8]}@localhost"
    env = {
        **os.environ,
        "DJANGO_ENV": "test",
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": settings.CELERY_BROKER_URL,
    }
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "project",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--hostname",
            node,
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + WAIT_SECONDS
    while not app.control.ping(destination=[node], timeout=1):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"worker did not start:\n{process.stdout.read()}")
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def _wait_for_result(task_id: str) -> TaskResult:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        result = TaskResult.objects.filter(task_id=task_id).first()
        if result and result.status in {"SUCCESS", "FAILURE"}:
            return result
        time.sleep(0.2)
    pytest.fail(f"task {task_id} produced no result within {WAIT_SECONDS}s")


def test_enqueued_close_runs_on_a_real_worker_and_stores_its_summary(worker_process):
    agent = AgentFactory(email="")
    with time_machine.travel(timezone.now() - dt.timedelta(hours=13), tick=False):
        expired = session_open(agent=agent, opening_balance=Decimal("15000.00"), actor=agent.user)
    fresh = session_open(agent=AgentFactory(email=""), opening_balance=Decimal("0"), actor=None)

    out = StringIO()
    call_command("close_expired_sessions", "--enqueue", stdout=out)
    task_id = re.search(r"as task (\S+)", out.getvalue()).group(1)

    stored = _wait_for_result(task_id)
    assert stored.status == "SUCCESS", stored.traceback
    assert stored.task_name == "tasks.close_expired_sessions"
    assert "manual-enqueue" in stored.task_kwargs  # a manual run is recognisable as such
    summary = json.loads(stored.result)
    assert summary["status"] == "ok"
    assert summary["closed"] == 1
    assert [row["session"] for row in summary["sessions"]] == [expired.number]

    expired.refresh_from_db()
    assert expired.status == SessionStatus.CLOSED
    assert expired.auto_closed is True
    assert expired.counted_balance is None
    assert expired.expected_balance == Decimal("15000.00")
    assert CashSession.objects.get(pk=fresh.pk).status == SessionStatus.OPEN
