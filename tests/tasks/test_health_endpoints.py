"""/health/ (liveness) and /health/ready/ (readiness): their JSON and status codes with
each dependency failing, what they never show, and ``check --deploy``'s warnings."""

import datetime as dt
import json
import shutil
import socket
import subprocess
import time
from zoneinfo import ZoneInfo

import pytest
import redis
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import OperationalError, connection
from django.utils import timezone

import project.celery
from mailing.models import EmailMessage
from tasks.health.services import job_health_watch
from tasks.models import Heartbeat, JobHealth
from tasks.watchdog import watchdog_run
from tests.factories import StaffUserFactory

TZ = ZoneInfo("Indian/Antananarivo")
NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=TZ)
pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(NOW)]
PASSWORD = "s3cret-broker-password"
WATCHED = [
    "close_expired_sessions",
    "verify_audit_trail",
    "reconciliation_reminder",
    "generate_commission_report",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """A redis-server of the test's own, on a free port, with a password."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> "PrivateRedis":
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                PASSWORD,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def private_broker(monkeypatch):
    """The project's Celery app pointed at a private Redis; killed by PID afterwards."""
    server = PrivateRedis().start()
    monkeypatch.setattr(project.celery.app.conf, "broker_url", server.url)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def healthy(clock, private_broker):
    """Schedules in place and watched, beat ticking, nothing due yet, no mail waiting."""
    call_command("sync_schedules", stdout=open("/dev/null", "w"))  # noqa: SIM115
    job_health_watch(names=WATCHED)
    clock.shift(dt.timedelta(minutes=10))
    Heartbeat.objects.create(name="beat", beat_at=timezone.now())
    return private_broker


def ready(client) -> tuple[int, dict]:
    response = client.get("/health/ready/")
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response.status_code, response.json()


def test_liveness_answers_without_asking_anything(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/health/")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert client.post("/health/").status_code == 405


def test_ready_is_200_with_every_check_passing(client, healthy):
    status, body = ready(client)

    assert status == 200, body
    assert body["status"] == "ok"
    assert body["checked_at"] == "2026-12-01T10:10:00+03:00"
    checks = body["checks"]
    assert set(checks) == {"database", "broker", "beat", "jobs", "outbox"}
    assert {name: check["status"] for name, check in checks.items()} == dict.fromkeys(checks, "ok")
    assert checks["beat"]["age_seconds"] == 0
    assert checks["jobs"]["verify_audit_trail"]["state"] == "waiting"
    assert checks["outbox"]["undelivered"] == 0


def test_ready_is_503_when_the_broker_is_down_and_says_which(client, healthy):
    healthy.stop()

    started = time.monotonic()
    status, body = ready(client)

    assert time.monotonic() - started < 5
    assert status == 503
    assert body["status"] == "fail"
    assert body["checks"]["broker"] == {
        "status": "fail",
        "detail": "unreachable (OperationalError)",
    }
    assert body["checks"]["database"]["status"] == "ok"


def test_ready_is_503_when_the_database_is_unreachable(client, healthy, monkeypatch):
    def refused(*args, **kwargs):
        raise OperationalError(
            'connection to server at "10.1.2.3", port 5432 failed: FATAL:  password '
            'authentication failed for user "cash_office"'
        )

    monkeypatch.setattr(connection, "cursor", refused)

    status, body = ready(client)

    assert status == 503
    checks = body["checks"]
    assert checks["database"] == {"status": "fail", "detail": "unreachable (OperationalError)"}
    assert checks["broker"]["status"] == "ok"
    for name in ("beat", "jobs", "outbox"):
        assert checks[name]["status"] == "fail"
    assert "10.1.2.3" not in json.dumps(body) and "cash_office" not in json.dumps(body)


def test_ready_is_503_when_beat_has_been_silent_for_five_minutes(client, healthy, clock):
    clock.shift(dt.timedelta(minutes=5, seconds=1))

    status, body = ready(client)

    assert status == 503
    assert body["checks"]["beat"]["status"] == "fail"
    assert body["checks"]["beat"]["detail"] == "beat has not ticked for 5 min"


def test_a_beat_never_seen_is_unknown_not_a_failure(client, healthy):
    # A cron install runs no beat: overdue jobs are the signal there.
    Heartbeat.objects.all().delete()

    status, body = ready(client)

    assert status == 200
    assert body["checks"]["beat"]["status"] == "unknown"


def test_ready_is_503_while_a_job_is_overdue(client, healthy, clock):
    clock.move_to(dt.datetime(2026, 12, 2, 3, 0, tzinfo=TZ))  # 02:00's run never succeeded
    Heartbeat.objects.filter(name="beat").update(beat_at=timezone.now())
    JobHealth.objects.filter(name="close_expired_sessions").update(
        last_success_at=dt.datetime(2026, 12, 2, 3, 0, tzinfo=TZ)
    )

    status, body = ready(client)

    assert status == 503
    jobs = body["checks"]["jobs"]
    assert jobs["status"] == "fail"
    # The reminder's 08:00 was before the watch began (10:00 yesterday): not promised.
    assert jobs["detail"] == "overdue: verify_audit_trail"
    assert jobs["reconciliation_reminder"]["state"] == "waiting"
    assert jobs["verify_audit_trail"]["state"] == "overdue"
    assert jobs["verify_audit_trail"]["due_at"] == "2026-12-02T02:00:00+03:00"
    assert jobs["verify_audit_trail"]["overdue_at"] == "2026-12-02T03:00:00+03:00"


def test_ready_is_503_with_mail_undelivered_for_an_hour_and_never_shows_an_address(
    client, healthy, clock
):
    StaffUserFactory(email="ops@example.com")
    EmailMessage.objects.create(
        purpose="test",
        recipients=["agent.rabe@example.com"],
        subject="Session closed",
        body_text="b",
        last_error="550 <agent.rabe@example.com>: mailbox unavailable",
    )
    clock.shift(dt.timedelta(hours=1, seconds=1))
    Heartbeat.objects.filter(name="beat").update(beat_at=timezone.now())
    watchdog_run()  # opens the incident and emails the administrators

    status, body = ready(client)

    assert status == 503
    assert body["checks"]["outbox"] == {
        "status": "fail",
        # The stuck message, and the alert about it, queued behind it.
        "detail": "2 undelivered message(s), the oldest for over an hour; the sweeper is late",
        "undelivered": 2,
        "oldest_undelivered_at": "2026-12-01T10:10:00+03:00",
        "gave_up": 0,
        "last_sweep_at": None,
    }
    text = json.dumps(body)
    assert "@" not in text and PASSWORD not in text


def test_check_deploy_warns_until_beat_and_the_watchdog_have_run():
    def warnings() -> set[str]:
        found = run_checks(include_deployment_checks=True)
        return {message.id for message in found if message.id.startswith("tasks.")}

    assert warnings() == {"tasks.W001", "tasks.W002"}
    Heartbeat.objects.create(name="beat", beat_at=timezone.now())
    assert warnings() == {"tasks.W002"}
    Heartbeat.objects.create(name="watchdog", beat_at=timezone.now())
    assert warnings() == set()


def test_the_admin_shows_job_health_heartbeats_and_incidents_read_only(admin_client):
    Heartbeat.objects.create(name="beat", beat_at=timezone.now())
    job_health_watch(names=WATCHED)

    for model in ("jobhealth", "heartbeat", "incident"):
        page = admin_client.get(f"/admin/tasks/{model}/")
        assert page.status_code == 200, model
        assert admin_client.get(f"/admin/tasks/{model}/add/").status_code == 403
    assert "verify_audit_trail" in admin_client.get("/admin/tasks/jobhealth/").content.decode()
