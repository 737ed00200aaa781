"""A real worker killed with SIGKILL after the month's report committed, before the task
finished: the broker hands the message to the next worker process (acks_late, reject on
worker lost) and the same kwargs run again. The rerun finds the month's report and its
delivery log, and the administrators get the report once, from a real SMTP server's
point of view.

The test starts everything it breaks: a private Redis, a celery worker (prefork, one
child) on the test database, an aiosmtpd server, and two PostgreSQL sessions of its own
whose table locks stop the child at the right moments. It ends all of them, even when
it fails; the machine's shared PostgreSQL and Redis are never stopped.
"""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
from django.db import connection
from django.utils import timezone
from django_celery_results.models import TaskResult

import project.celery
from mailing.models import EmailMessage
from reporting.models import CommissionReport, CommissionReportDelivery
from reporting.periods import previous_month
from tasks.tasks import generate_commission_report
from tests.integration.parts import private_redis
from tests.reporting.helpers import local, report_staff, takings, three_agents
from tests.smtp_server import SmtpServer

pytestmark = pytest.mark.django_db(transaction=True)

PROJECT_DIR = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 30
APPLICATION_NAME = f"report-redelivery-{uuid.uuid4().hex[:8]}"


def database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for(what: str, condition: Callable[[], object], *, log: Callable[[], str]) -> object:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen within {WAIT_SECONDS}s\n{log()}")


class Worker:
    """`celery worker --pool prefork --concurrency 1`; its log kept in a file."""

    def __init__(self, *, broker_url: str, email_url: str) -> None:
        self.log_file = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "celery", "-A", "project", "worker", "--pool", "prefork",
             "--concurrency", "1", "--loglevel", "INFO",
             "--hostname", f"report-{uuid.uuid4().hex[:8]}@localhost",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=PROJECT_DIR,
            env={**os.environ, "DJANGO_ENV": "test", "DATABASE_URL": database_url(),
                 "REDIS_URL": broker_url, "EMAIL_URL": email_url},
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def children(self) -> list[int]:
        """The pool's processes: those whose parent is the worker."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError):
                # Field 4 of /proc/<pid>/stat, after the command name in parentheses.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.process.pid:
                    pids.append(int(entry.name))
        return pids

    def log(self) -> str:
        self.log_file.flush()
        return Path(self.log_file.name).read_text()

    def stop(self) -> None:
        for pid in self.children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.log_file.close()
        os.unlink(self.log_file.name)


class Session:
    """A PostgreSQL session of the test's own, outside Django, in one transaction."""

    def __init__(self) -> None:
        db = connection.settings_dict
        self.connection = psycopg2.connect(
            dbname=db["NAME"],
            user=db["USER"],
            password=db["PASSWORD"] or None,
            host=db["HOST"] or "127.0.0.1",
            port=db["PORT"] or 5432,
            application_name=APPLICATION_NAME,
        )

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def close(self) -> None:
        self.connection.rollback()
        self.connection.close()


def lock_waiters(session: Session, table: str) -> list[int]:
    """Backends of others waiting for a lock on ``table``."""
    session.connection.rollback()  # a fresh snapshot for each look
    rows = session.execute(
        "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.relation = %s::regclass AND NOT l.granted AND a.application_name <> %s",
        (table, APPLICATION_NAME),
    )
    return [pid for (pid,) in rows]


@pytest.fixture
def parts() -> Iterator[dict]:
    """Redis, SMTP, the worker and two sessions; all ended afterwards."""
    started: dict = {}
    with contextlib.ExitStack() as stack, private_redis() as broker:
        smtp = SmtpServer().start()
        stack.callback(smtp.stop)
        worker = Worker(broker_url=broker.url, email_url=f"smtp://{smtp.host}:{smtp.port}")
        stack.callback(worker.stop)
        for name in ("config_lock", "result_lock", "observer"):
            session = Session()
            stack.callback(session.close)
            started[name] = session
        started.update(broker_url=broker.url, smtp=smtp, worker=worker)
        yield started


def test_a_report_run_killed_after_its_commit_is_redelivered_and_sends_nothing_twice(parts):
    year, month = previous_month(timezone.localdate())
    agents = three_agents()
    takings(agents["A"], local(year, month, 5, 10, 0), "10000.00", "5000.00", paid=[0])
    staff = report_staff()
    worker, smtp = parts["worker"], parts["smtp"]
    config_lock, result_lock, observer = (
        parts["config_lock"],
        parts["result_lock"],
        parts["observer"],
    )

    # 1. Hold the run before it reads the configuration: it has started, stored nothing.
    config_lock.execute("LOCK TABLE payments_systemconfiguration IN ACCESS EXCLUSIVE MODE")
    task_id = str(uuid.uuid4())
    with project.celery.app.connection_for_write(parts["broker_url"]) as broker:
        generate_commission_report.apply_async(
            kwargs={"year": year, "month": month, "trigger": "manual-enqueue"},
            task_id=task_id,
            connection=broker,
        )
    wait_for(
        "the run to reach the configuration",
        lambda: lock_waiters(observer, "payments_systemconfiguration"),
        log=worker.log,
    )
    # 2. Let it go, but not past writing its result: it commits the report, then waits.
    result_lock.execute("LOCK TABLE django_celery_results_taskresult IN ACCESS EXCLUSIVE MODE")
    config_lock.connection.commit()
    [blocked_backend] = wait_for(
        "the run to commit and wait to write its result",
        lambda: lock_waiters(observer, "django_celery_results_taskresult"),
        log=worker.log,
    )
    assert CommissionReport.objects.count() == 1
    assert CommissionReportDelivery.objects.count() == 2

    # 3. The worker's process dies there; its session with it.
    [child] = worker.children()
    os.kill(child, signal.SIGKILL)
    observer.execute("SELECT pg_terminate_backend(%s)", (blocked_backend,))
    result_lock.connection.rollback()

    # 4. The message comes back; the same kwargs run again, to the end.
    stored = wait_for(
        "the redelivered run to succeed",
        lambda: TaskResult.objects.filter(task_id=task_id, status="SUCCESS").first(),
        log=worker.log,
    )
    wait_for("the mail server to get the report", lambda: smtp.received, log=worker.log)
    wait_for(
        "the outbox to settle",
        lambda: not EmailMessage.objects.exclude(status="sent").exists(),
        log=worker.log,
    )

    assert "WorkerLostError" in worker.log() or "signal 9" in worker.log()
    summary = stored.result
    assert '"already_generated": true' in summary
    assert '"new_recipients": []' in summary
    [report] = CommissionReport.objects.all()
    assert sorted(CommissionReportDelivery.objects.values_list("address", flat=True)) == staff
    [email] = EmailMessage.objects.all()
    assert (email.status, email.recipients, email.subject_id) == ("sent", staff, str(report.pk))
    [received] = smtp.received
    assert sorted(received.rcpt_tos) == staff
