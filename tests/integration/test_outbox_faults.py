"""The outbox against real faults, each injected into a part the test starts itself: a
celery worker killed with SIGKILL after the mail server took the message, a server that
accepts connections and never answers, a private Redis that goes away, a PostgreSQL
connection cut mid-delivery, and sweepers and a worker racing over the same messages.

Every process, server and thread the tests start is ended by them, even when they fail;
the machine's shared PostgreSQL and Redis are never stopped.
"""

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import redis
import time_machine
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

import project.celery
from mailing.delivery import DeliveryOutcome, email_deliver_now, outbox_sweep
from mailing.models import EmailAttempt, EmailMessage, EmailStatus
from mailing.services import email_queue
from mailing.wakeup import wakeups_resume
from payments.models import CashSession, SessionStatus
from tests.commands import command_run
from tests.factories import AgentFactory, CashSessionFactory
from tests.integration.parts import private_redis
from tests.smtp_server import RecordingHandler, SmtpServer

pytestmark = pytest.mark.django_db(transaction=True)

PROJECT_DIR = Path(__file__).resolve().parents[2]
APP = project.celery.app
TEMPLATE = "mailing/email/smtp_test"


# --- Parts the tests start and end ------------------------------------------------------


def database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextlib.contextmanager
def celery_worker(broker_url: str) -> Iterator[subprocess.Popen]:
    """`celery worker` on the test database and the given broker; killed at the end."""
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "celery", "-A", "project", "worker", "--pool", "solo",
         "--loglevel", "INFO", "--hostname", f"outbox-{uuid.uuid4().hex[:8]}@localhost",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=PROJECT_DIR,
        env={**os.environ, "DJANGO_ENV": "test", "DATABASE_URL": database_url(),
             "REDIS_URL": broker_url},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        log.seek(0)
        process.log = log.read()  # for failure messages
        log.close()
        os.unlink(log.name)


class HangingServer:
    """Accepts TCP connections and never writes a byte: a mail server that hangs."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.host, self.port = self.listener.getsockname()
        self.accepted: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def connections(self) -> int:
        return len(self.accepted)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                client, _ = self.listener.accept()
                self.accepted.append(client)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.listener.close()
        for client in self.accepted:
            client.close()


@pytest.fixture
def hanging_server() -> Iterator[HangingServer]:
    server = HangingServer()
    yield server
    server.stop()


class HoldingHandler(RecordingHandler):
    """Takes the first message (records it), tells the test, and answers 250 only once the
    test says so: the window between the server taking a message and the sender hearing."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd
        answer = await super().handle_DATA(server, session, envelope)
        if not self.arrived.is_set():
            self.arrived.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        return answer


class SlowHandler(RecordingHandler):
    """Takes each message a little slowly, so that concurrent deliveries interleave."""

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd
        await asyncio.sleep(0.01)
        return await super().handle_DATA(server, session, envelope)


@contextlib.contextmanager
def smtp_server_with(handler: RecordingHandler) -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.handler = handler
    server.start()
    try:
        yield server
    finally:
        if isinstance(handler, HoldingHandler):
            handler.release.set()
        server.stop()


@pytest.fixture
def broker_at(monkeypatch):
    """Point the app (and so every worker wake-up) at another broker."""
    wakeups_resume()

    def point(url: str) -> None:
        monkeypatch.setattr(APP.conf, "broker_url", url)

    yield point
    wakeups_resume()


def queue_one(*, recipient: str = "ops@example.com") -> EmailMessage:
    with transaction.atomic():
        return email_queue(
            purpose="fault_test",
            recipients=[recipient],
            template=TEMPLATE,
            context={"requested_by": "the fault test", "sent_at": timezone.now()},
        )


def message_ids(server: SmtpServer) -> list[str]:
    return [mail.message["Message-ID"] for mail in server.received]


# --- A worker killed after the server took the message -----------------------------------


def test_a_worker_killed_after_the_server_took_the_message_is_resent_once_after_the_grace(
    smtp_configure, settings, broker_at
):
    settings.EMAIL_SENDING_GRACE_SECONDS = 5
    handler = HoldingHandler()
    with (
        private_redis() as broker,
        smtp_server_with(handler) as server,
        celery_worker(broker.url) as worker,
    ):
        smtp_configure(server)
        broker_at(broker.url)
        email = queue_one()  # committed: the wake-up goes to our Redis, our worker takes it

        assert handler.arrived.wait(60), getattr(worker, "log", "the worker never delivered")
        os.kill(worker.pid, signal.SIGKILL)  # before it hears 250 and records "sent"
        worker.wait(timeout=10)
        handler.release.set()

        email.refresh_from_db()
        assert (email.status, email.attempts) == (EmailStatus.SENDING, 1)
        [lost] = EmailAttempt.objects.filter(email=email)
        assert (lost.succeeded, lost.finished_at) == (None, None)

        # Within the grace period the sweeper leaves it alone: the server may have it.
        assert outbox_sweep(trigger="test").deliveries == ()
        assert len(server.received) == 1

        with time_machine.travel(email.claimed_at + dt.timedelta(seconds=6), tick=True):
            result = outbox_sweep(trigger="test")

        assert [(d.email_id, d.outcome) for d in result.deliveries] == [
            (email.pk, DeliveryOutcome.SENT)
        ]
        with time_machine.travel(email.claimed_at + dt.timedelta(minutes=30), tick=True):
            assert outbox_sweep(trigger="test").deliveries == ()

    [row] = EmailMessage.objects.all()
    assert (row.pk, row.status, row.attempts, row.attempt_id) == (
        email.pk,
        EmailStatus.SENT,
        2,
        None,
    )
    first, second = row.attempt_log.order_by("attempted_at")
    assert first.succeeded is None and "stopped mid-way" in first.error
    assert first.finished_at is not None
    assert (second.succeeded, second.error) == (True, "")
    # Two copies, one Message-ID: the receiver can tell the second is the first again.
    assert message_ids(server) == [row.message_id, row.message_id]


def test_a_cron_sweep_stopped_by_sigterm_mid_send_leaves_sending_then_resends_once(
    smtp_configure, settings, monkeypatch
):
    settings.EMAIL_SENDING_GRACE_SECONDS = 5
    monkeypatch.setattr("mailing.services.worker_wake", lambda task, **kwargs: True)
    handler = HoldingHandler()
    with smtp_server_with(handler) as server:
        smtp_configure(server)
        with time_machine.travel(timezone.now() - dt.timedelta(minutes=2), tick=True):
            email = queue_one()  # no worker took it: due for the sweeper
        cron = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "manage.py", "deliver_pending_email"],
            cwd=PROJECT_DIR,
            env={**os.environ, "DJANGO_ENV": "test", "DATABASE_URL": database_url()},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert handler.arrived.wait(60)
            cron.send_signal(signal.SIGTERM)  # cron's run stopped before it heard 250
            cron.wait(timeout=10)
        finally:
            if cron.poll() is None:
                cron.kill()
                cron.wait(timeout=10)
            handler.release.set()
        assert cron.returncode != 0

        email.refresh_from_db()
        assert (email.status, email.attempts) == (EmailStatus.SENDING, 1)
        assert command_run("deliver_pending_email").stdout.startswith("Outbox: 0 sent")
        with time_machine.travel(email.claimed_at + dt.timedelta(seconds=6), tick=True):
            again = command_run("deliver_pending_email")

    assert "Outbox: 1 sent" in again.stdout
    email.refresh_from_db()
    assert (email.status, email.attempts) == (EmailStatus.SENT, 2)
    assert list(email.attempt_log.values_list("succeeded", flat=True)) == [None, True]
    assert message_ids(server) == [email.message_id, email.message_id]


# --- A server that accepts and never answers ---------------------------------------------


def expired_session() -> CashSession:
    agent = AgentFactory(email="rova@agents.example.com")
    return CashSessionFactory(agent=agent, opened_at=timezone.now() - dt.timedelta(hours=13))


def test_a_hanging_server_fails_one_delivery_in_the_short_timeout_and_never_slows_the_run(
    smtp_configure, hanging_server, settings, monkeypatch
):
    settings.EMAIL_TIMEOUT = 2
    smtp_configure(hanging_server, timeout=30)  # the admin's 30 s are capped to 2
    monkeypatch.setattr("mailing.services.worker_wake", lambda task, **kwargs: True)
    session = expired_session()

    started = time.monotonic()
    run = command_run("close_expired_sessions")
    run_seconds = time.monotonic() - started

    assert run_seconds < 1.5, run_seconds  # no SMTP in the run
    assert hanging_server.connections == 0
    assert "Emails to agents: queued (1)" in run.stdout
    assert CashSession.objects.get(pk=session.pk).status == SessionStatus.CLOSED
    email = EmailMessage.objects.get()

    outcome: dict = {}

    def deliver() -> None:
        try:
            began = time.monotonic()
            outcome["delivery"] = email_deliver_now(email_id=email.pk)
            outcome["seconds"] = time.monotonic() - began
        finally:
            connection.close()

    delivery = threading.Thread(target=deliver)
    delivery.start()
    try:
        deadline = time.monotonic() + 5
        while hanging_server.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert hanging_server.connections == 1
        # While that delivery waits on the server, the operation's lock is free.
        again = command_run("close_expired_sessions")
        assert "Open sessions older than 12 h: 0" in again.stdout
        assert delivery.is_alive()
    finally:
        delivery.join(timeout=30)

    assert outcome["delivery"].outcome == DeliveryOutcome.FAILED
    assert 1.5 < outcome["seconds"] < 6, outcome["seconds"]
    email.refresh_from_db()
    assert (email.status, email.attempts) == (EmailStatus.FAILED, 1)
    assert "timed out" in email.last_error
    finished = email.attempt_log.get().finished_at
    assert email.next_attempt_at == finished + dt.timedelta(minutes=2)


def test_the_admins_retry_returns_at_once_with_a_hanging_server_and_the_sweep_stops_early(
    admin_client, smtp_configure, hanging_server, settings, monkeypatch
):
    settings.EMAIL_TIMEOUT = 1
    smtp_configure(hanging_server, timeout=30)
    wakeups = []
    monkeypatch.setattr(
        "mailing.services.worker_wake", lambda task, **kwargs: wakeups.append(task.name)
    )
    failed = [
        EmailMessage.objects.create(
            purpose="session_expired",
            recipients=[f"agent{n}@agents.example.com"],
            subject=f"Message {n}",
            body_text=".",
            status=EmailStatus.FAILED,
            attempts=6,
            last_error="Connection refused",
        )
        for n in range(60)
    ]

    started = time.monotonic()
    response = admin_client.post(
        reverse("admin:mailing_emailmessage_changelist"),
        {"action": "retry_delivery", "_selected_action": [email.pk for email in failed]},
        follow=True,
    )
    request_seconds = time.monotonic() - started

    assert request_seconds < 2, request_seconds
    assert hanging_server.connections == 0
    assert "60 message(s) will be retried by the sweeper within a minute." in [
        str(message) for message in response.context["messages"]
    ]
    assert wakeups == ["mailing.email_sweep"]
    assert EmailMessage.objects.filter(next_attempt_at__lte=timezone.now()).count() == 60
    assert not EmailAttempt.objects.exists()

    started = time.monotonic()
    sweep = command_run("deliver_pending_email", expect_exit=1)
    sweep_seconds = time.monotonic() - started

    assert sweep_seconds < 4, sweep_seconds  # one timeout, then it stops
    assert "59 due message(s) left" in sweep.stdout
    assert "Stopped early: the mail server could not be reached" in sweep.stdout
    assert EmailAttempt.objects.count() == 1


# --- The broker goes away ----------------------------------------------------------------


def test_with_the_broker_gone_a_run_commits_logs_once_and_cron_delivers_each_message_once(
    smtp_configure, smtp_server, broker_at, caplog
):
    smtp_configure(smtp_server)
    sessions = [expired_session() for _ in range(3)]
    with private_redis() as broker:
        broker_at(broker.url)
        queue_one()  # the broker is up: the wake-up lands in it
        client = redis.Redis.from_url(broker.url)
        assert client.llen("celery") == 1
        client.close()
        broker.kill()
        EmailMessage.objects.all().delete()

        started = time.monotonic()
        with caplog.at_level(logging.WARNING):
            run = command_run("close_expired_sessions")
        run_seconds = time.monotonic() - started

    assert run_seconds < 3, run_seconds
    assert "Emails to agents: queued (3)" in run.stdout
    for session in sessions:
        session.refresh_from_db()
        assert session.status == SessionStatus.CLOSED
    warnings = [r for r in caplog.records if r.name == "mailing.wakeup"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "queued mail waits for the sweeper" in warnings[0].getMessage()
    assert warnings[0].exc_info is None
    assert set(EmailMessage.objects.values_list("status", flat=True)) == {EmailStatus.QUEUED}
    assert smtp_server.received == []

    # Cron's sweeper, a couple of minutes later, with no broker and no worker.
    later = timezone.now() + dt.timedelta(minutes=2)
    with time_machine.travel(later, tick=True):
        first = command_run("deliver_pending_email")
        second = command_run("deliver_pending_email")

    assert "Outbox: 3 sent" in first.stdout
    assert "Outbox: 0 sent" in second.stdout
    rows = list(EmailMessage.objects.order_by("pk"))
    assert [(row.status, row.attempts) for row in rows] == [(EmailStatus.SENT, 1)] * 3
    assert sorted(message_ids(smtp_server)) == sorted(row.message_id for row in rows)
    assert (
        sorted(mail.rcpt_tos[0] for mail in smtp_server.received) == ["rova@agents.example.com"] * 3
    )


# --- The database connection cut mid-delivery --------------------------------------------


class CuttingHandler(RecordingHandler):
    """Takes the first message, then cuts the deliverer's PostgreSQL connection (found by
    its application_name) before answering 250."""

    def __init__(self, *, application_name: str) -> None:
        super().__init__()
        self.application_name = application_name
        self.cut = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd
        answer = await super().handle_DATA(server, session, envelope)
        if not self.cut:
            self.cut = await asyncio.get_running_loop().run_in_executor(None, self._terminate)
        return answer

    def _terminate(self) -> int:
        db = connection.settings_dict
        admin = psycopg2.connect(
            dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"] or None,
            host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432,
        )  # fmt: skip
        try:
            admin.autocommit = True
            with admin.cursor() as cursor:
                cursor.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = %s",
                    [self.application_name],
                )
                return cursor.fetchone()[0]
        finally:
            admin.close()


def test_a_database_cut_after_the_server_took_the_message_exits_1_and_resends_once_later(
    smtp_configure, settings
):
    settings.EMAIL_SENDING_GRACE_SECONDS = 60
    name = f"outbox-fault-{uuid.uuid4().hex[:8]}"
    with smtp_server_with(CuttingHandler(application_name=name)) as server:
        smtp_configure(server)
        email = queue_one()
        with (
            time_machine.travel(timezone.now() + dt.timedelta(minutes=2), tick=True),
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT set_config('application_name', %s, false)", [name])
            cut = command_run("deliver_pending_email", expect_exit=1)
        connection.close()  # the next query reconnects

        assert server.handler.cut == 1
        assert cut.stderr.startswith("CommandError: The database could not be reached (")
        assert cut.stderr.endswith("no mail was delivered. The next run delivers it.\n")
        assert len(cut.stderr.splitlines()) == 1
        email.refresh_from_db()
        assert (email.status, email.attempts) == (EmailStatus.SENDING, 1)

        with time_machine.travel(email.claimed_at + dt.timedelta(seconds=61), tick=True):
            again = command_run("deliver_pending_email")

    assert "Outbox: 1 sent" in again.stdout
    email.refresh_from_db()
    assert (email.status, email.attempts) == (EmailStatus.SENT, 2)
    assert message_ids(server) == [email.message_id, email.message_id]


# --- Sweepers and a worker racing over the same messages ---------------------------------


def test_two_sweepers_and_a_worker_racing_over_50_messages_send_each_exactly_once(
    smtp_configure, monkeypatch
):
    monkeypatch.setattr("mailing.services.worker_wake", lambda task, **kwargs: True)
    with smtp_server_with(SlowHandler()) as server:
        smtp_configure(server)
        with time_machine.travel(timezone.now() - dt.timedelta(minutes=5), tick=True):
            emails = [queue_one(recipient=f"agent{n}@agents.example.com") for n in range(50)]
        start = threading.Barrier(3)
        delivered: dict[str, list] = {}
        errors: list[BaseException] = []

        def run(name: str, work) -> None:
            try:
                start.wait(timeout=10)
                delivered[name] = work()
            except BaseException as error:  # noqa: BLE001 - reported by the test below
                errors.append(error)
            finally:
                connection.close()

        def sweeper() -> list:
            return list(outbox_sweep(limit=100, trigger="test").deliveries)

        def worker() -> list:
            return [email_deliver_now(email_id=email.pk) for email in reversed(emails)]

        threads = [
            threading.Thread(target=run, args=("sweeper 1", sweeper)),
            threading.Thread(target=run, args=("sweeper 2", sweeper)),
            threading.Thread(target=run, args=("worker", worker)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert errors == []
    sent_by = {
        name: [d.email_id for d in deliveries if d.outcome == DeliveryOutcome.SENT]
        for name, deliveries in delivered.items()
    }
    all_sent = [email_id for ids in sent_by.values() for email_id in ids]
    assert sorted(all_sent) == sorted(email.pk for email in emails)  # each once, by someone
    assert sum(1 for ids in sent_by.values() if ids) >= 2, sent_by  # they did race
    received = Counter(message_ids(server))
    assert sorted(received) == sorted(email.message_id for email in EmailMessage.objects.all())
    assert set(received.values()) == {1}
    assert len(server.received) == 50
    assert set(EmailMessage.objects.values_list("status", "attempts")) == {(EmailStatus.SENT, 1)}
    assert EmailAttempt.objects.filter(succeeded=True).count() == 50
    assert EmailAttempt.objects.count() == 50
