"""The watchdog and beat's scheduler against real faults: a private Redis killed while beat
sends a due run, two watchdogs at once, a real worker running the watchdog on its own
thread, and the cron command's exits."""

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from contextlib import nullcontext
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from celery import Celery
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

import project.celery
import tasks.watchdog
from mailing.models import EmailMessage
from tasks.health.services import job_health_watch
from tasks.models import Heartbeat, Incident, JobHealth
from tasks.scheduler import HeartbeatDatabaseScheduler
from tasks.watchdog import watchdog_run
from tests.commands import command_run
from tests.factories import StaffUserFactory
from tests.tasks.test_health_endpoints import PrivateRedis

TZ = ZoneInfo("Indian/Antananarivo")
PROJECT_DIR = Path(settings.BASE_DIR)
WATCHED = [
    "close_expired_sessions",
    "verify_audit_trail",
    "reconciliation_reminder",
    "generate_commission_report",
]


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=TZ)


def schedules_watched(since: dt.datetime) -> None:
    call_command("sync_schedules", stdout=open(os.devnull, "w"))  # noqa: SIM115
    job_health_watch(names=WATCHED)
    JobHealth.objects.update(watched_since=since, last_success_at=since)


def queued_tasks(client: redis.Redis) -> list[str]:
    return [json.loads(raw)["headers"]["task"] for raw in client.lrange("celery", 0, -1)]


# --- Beat with its broker down ---------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.frozen_at(local(2026, 12, 1, 1, 59, 50), tick=True)
def test_a_run_beat_could_not_send_is_recorded_and_caught_up_once_the_broker_is_back(
    clock, monkeypatch
):
    monkeypatch.setattr("django_celery_beat.schedulers.close_old_connections", lambda: None)
    broker = PrivateRedis().start()
    app = Celery("beat-under-test", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_url = broker.url
    # Fail fast instead of celery's default publish retries.
    app.conf.task_publish_retry = False
    app.conf.broker_connection_timeout = 1
    app.conf.broker_connection_max_retries = 1
    client = redis.Redis.from_url(broker.url)
    try:
        schedules_watched(since=local(2026, 11, 1))
        PeriodicTask.objects.update(last_run_at=local(2026, 12, 1, 1, 0))
        PeriodicTask.objects.exclude(name="verify_audit_trail").update(enabled=False)
        beat = HeartbeatDatabaseScheduler(app=app)
        try:
            beat.tick()  # 01:59:50: nothing due yet
            assert beat.producer.connection.connected  # beat is up and connected
            assert Heartbeat.objects.get(name="beat").beat_at >= local(2026, 12, 1, 1, 59, 50)
            broker.stop()
            clock.move_to(local(2026, 12, 1, 2, 0, 1))
            for _ in range(5):
                beat.tick()
        finally:
            beat._finalize.cancel()

        health = JobHealth.objects.get(name="verify_audit_trail")
        assert health.dispatch_failed_at is not None
        assert "Couldn't apply scheduled task verify_audit_trail" in health.dispatch_error
        # Celery moved the schedule on as if the run had been sent.
        beat.sync()
        assert PeriodicTask.objects.get(name="verify_audit_trail").last_run_at >= local(
            2026, 12, 1, 2, 0
        )

        # The broker comes back; the watchdog sends the lost run at once (no grace to
        # wait: it is known lost), and only once.
        broker.start()
        app.set_current()
        try:
            first = watchdog_run()
            second = watchdog_run()
        finally:
            project.celery.app.set_current()
        assert [catch_up.name for catch_up in first.caught_up] == ["verify_audit_trail"]
        assert second.caught_up == []
        assert queued_tasks(client) == ["tasks.verify_audit_trail"]
    finally:
        broker.stop()


@pytest.mark.django_db
@pytest.mark.frozen_at(local(2026, 12, 1, 10, 0))
def test_beat_records_its_heartbeat_at_most_every_thirty_seconds(clock, monkeypatch):
    monkeypatch.setattr("django_celery_beat.schedulers.close_old_connections", lambda: None)
    beat = HeartbeatDatabaseScheduler(app=Celery("idle", set_as_current=False), lazy=True)
    writes = []
    monkeypatch.setattr(
        "tasks.scheduler.heartbeat_record", lambda *, name: writes.append(name) or True
    )
    monotonic = [1000.0]
    monkeypatch.setattr("tasks.scheduler.time.monotonic", lambda: monotonic[0])

    for _ in range(61):  # a minute of one tick a second
        beat.heartbeat()
        monotonic[0] += 1

    assert writes == ["beat", "beat", "beat"]  # at 0, 30 and 60 s


# --- Two watchdogs at once --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_watchdogs_at_once_send_one_alert(monkeypatch):
    StaffUserFactory(email="ops@example.com")
    Heartbeat.objects.create(name="beat", beat_at=timezone.now() - dt.timedelta(minutes=10))
    real_snapshot = tasks.watchdog.health_snapshot
    start = threading.Barrier(2)

    def slow_snapshot(**kwargs):
        # Whoever holds the lock keeps it while the other one tries.
        time.sleep(0.5)
        return real_snapshot(**kwargs)

    monkeypatch.setattr(tasks.watchdog, "health_snapshot", slow_snapshot)
    reports = []

    def run() -> None:
        start.wait(5)
        try:
            reports.append(watchdog_run(broker_timeout=1))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(report.acted for report in reports) == [False, True]
    assert list(Incident.objects.values_list("kind", "subject")) == [("beat_silent", "beat")]
    assert EmailMessage.objects.filter(purpose="incident_alert").count() == 1


@pytest.mark.django_db(transaction=True)
def test_without_the_lock_the_database_still_lets_one_alert_through(monkeypatch):
    """The second line of defence: the partial unique constraint on open incidents."""
    StaffUserFactory(email="ops@example.com")
    Heartbeat.objects.create(name="beat", beat_at=timezone.now() - dt.timedelta(minutes=10))
    monkeypatch.setattr(tasks.watchdog, "operation_lock", lambda name: nullcontext())
    real_open = tasks.watchdog.incident_open
    both_looked = threading.Barrier(2)

    def open_together(**kwargs):
        both_looked.wait(5)  # both saw no open incident; both try to open one
        return real_open(**kwargs)

    monkeypatch.setattr(tasks.watchdog, "incident_open", open_together)
    reports = []

    def run() -> None:
        try:
            reports.append(watchdog_run(broker_timeout=1))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(len(report.opened) for report in reports) == [0, 1]
    assert Incident.objects.count() == 1
    assert EmailMessage.objects.filter(purpose="incident_alert").count() == 1


# --- The command -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.frozen_at(local(2026, 12, 2, 3, 30))
def test_the_command_exits_0_when_healthy_and_1_with_a_job_overdue(clock):
    schedules_watched(since=local(2026, 12, 2, 3, 0))
    Heartbeat.objects.create(name="beat", beat_at=timezone.now())

    healthy = command_run("watchdog")
    assert "Health at 2026-12-02 03:30" in healthy.stdout
    assert "  jobs      OK      no job overdue" in healthy.stdout

    JobHealth.objects.update(watched_since=local(2026, 11, 1), last_success_at=local(2026, 11, 1))
    JobHealth.objects.filter(name="close_expired_sessions").update(
        last_success_at=local(2026, 12, 2, 3, 0)
    )
    sick = command_run("watchdog", "--json", expect_exit=1)

    body = json.loads(sick.stdout)
    assert body["status"] == "fail" and body["acted"] is True
    assert body["checks"]["jobs"]["detail"] == (
        "overdue: verify_audit_trail, reconciliation_reminder, generate_commission_report"
    )
    assert [row["name"] for row in body["caught_up"]] == [
        "verify_audit_trail",
        "reconciliation_reminder",
        "generate_commission_report",
    ]
    assert "CommandError: Something is overdue or down; see the output." in sick.stderr
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("celery")


@pytest.mark.django_db
@pytest.mark.frozen_at(local(2026, 12, 2, 3, 30))
def test_beat_only_checks_the_heartbeat_and_changes_nothing(clock):
    never = command_run("watchdog", "--beat-only", expect_exit=1)
    assert never.stderr == "CommandError: beat has never ticked\n"

    Heartbeat.objects.create(name="beat", beat_at=timezone.now() - dt.timedelta(seconds=40))
    fresh = command_run("watchdog", "--beat-only")
    assert fresh.stdout == "beat ticked 40 s ago\n"

    clock.shift(dt.timedelta(minutes=5))
    stale = command_run("watchdog", "--beat-only", "--json", expect_exit=1)
    assert '"status": "fail"' in stale.stdout
    assert not Heartbeat.objects.filter(name="watchdog").exists()
    assert not JobHealth.objects.exists()


def test_help_lists_the_options_and_exit_codes():
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "watchdog", "--help"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "--beat-only" in result.stdout and "--json" in result.stdout
    assert "0  healthy: every check passed" in result.stdout
    assert "1  something is overdue or down" in result.stdout


# --- In a real worker ---------------------------------------------------------------------------


def _test_database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_every_worker_runs_the_watchdog_on_its_own_thread():
    node = f"watchdog-{uuid.uuid4().hex[:8]}@localhost"
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
            "--hostname",
            node,
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ],
        cwd=PROJECT_DIR,
        env={
            **os.environ,
            "DJANGO_ENV": "test",
            "DATABASE_URL": _test_database_url(),
            "REDIS_URL": settings.CELERY_BROKER_URL,
            "WATCHDOG_INTERVAL_SECONDS": "1",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not Heartbeat.objects.filter(name="watchdog").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"no watchdog heartbeat from the worker:\n{process.stdout.read()}")
            time.sleep(0.2)
        first = Heartbeat.objects.get(name="watchdog").beat_at
        deadline = time.monotonic() + 20
        while Heartbeat.objects.get(name="watchdog").beat_at == first:
            assert time.monotonic() < deadline, "the watchdog ran only once"
            time.sleep(0.2)
        assert set(JobHealth.objects.values_list("name", flat=True)) == set(WATCHED)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    output = process.stdout.read()
    assert "Watchdog started in this worker: every 1s" in output
