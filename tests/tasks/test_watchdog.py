"""The watchdog: missed runs caught up once (whatever beat's two-hour window does), one
alert per incident and one recovery notice, against the real schedule rows, the real
DatabaseScheduler and the real broker (this run's Redis database)."""

import base64
import datetime as dt
import json
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

import project.celery
from mailing.models import EmailMessage, EmailStatus
from tasks.health.selectors import JobState, jobs_status
from tasks.health.services import incident_open, job_health_watch
from tasks.models import Heartbeat, Incident, IncidentKind, JobHealth
from tasks.scheduler import HeartbeatDatabaseScheduler
from tasks.watchdog import watchdog_run
from tests.factories import StaffUserFactory

TZ = ZoneInfo("Indian/Antananarivo")
OPERATIONS = {
    "tasks.close_expired_sessions": "close_expired_sessions",
    "tasks.verify_audit_trail": "verify_audit_trail",
    "tasks.reconciliation_reminder": "reconciliation_reminder",
    "tasks.generate_commission_report": "generate_commission_report",
}
# Tuesday 1 December 2026, 01:00: every job has run as scheduled so far.
BEFORE = dt.datetime(2026, 12, 1, 1, 0, tzinfo=TZ)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_at(BEFORE)]


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=TZ)


class Broker:
    """The default queue of this test run's Redis database, read as a worker would."""

    def __init__(self) -> None:
        self.client = redis.Redis.from_url(settings.CELERY_BROKER_URL)

    def purge(self) -> None:
        self.client.delete("celery")

    def sent(self) -> list[tuple[str, dict]]:
        """(operation, kwargs) of every operation task waiting in the queue, oldest first."""
        found = []
        for raw in reversed(self.client.lrange("celery", 0, -1)):
            message = json.loads(raw)
            task = message["headers"]["task"]
            if task in OPERATIONS:
                _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
                found.append((OPERATIONS[task], kwargs))
        return found

    def counts(self) -> Counter:
        return Counter(name for name, _kwargs in self.sent())


@pytest.fixture
def broker():
    queue = Broker()
    queue.purge()
    yield queue
    queue.purge()


@pytest.fixture
def admins(db):
    return [StaffUserFactory(email="ops@example.com"), StaffUserFactory(email="boss@example.com")]


@pytest.fixture
def schedules(clock):
    """The registry's rows, watched for a month, each job having run when last due before
    BEFORE (beat's own bookkeeping included), and beat alive."""
    call_command("sync_schedules", stdout=open("/dev/null", "w"))  # noqa: SIM115
    last_runs = {
        "close_expired_sessions": local(2026, 12, 1, 1, 0),
        "verify_audit_trail": local(2026, 11, 30, 2, 0),
        "reconciliation_reminder": local(2026, 11, 30, 8, 0),
        "generate_commission_report": local(2026, 11, 1, 9, 0),
    }
    job_health_watch(names=list(last_runs))
    JobHealth.objects.update(watched_since=BEFORE - dt.timedelta(days=31))
    for name, at in last_runs.items():
        succeeded(name, at)
        PeriodicTask.objects.filter(name=name).update(last_run_at=at, total_run_count=10)
    beat_ticked()
    return last_runs


def succeeded(name: str, at: dt.datetime, trigger: str = "beat") -> None:
    JobHealth.objects.filter(name=name).update(
        last_started_at=at,
        last_finished_at=at + dt.timedelta(seconds=3),
        last_status="ok",
        last_trigger=trigger,
        last_duration=dt.timedelta(seconds=3),
        last_success_at=at,
    )


def beat_ticked(at: dt.datetime | None = None) -> None:
    Heartbeat.objects.update_or_create(name="beat", defaults={"beat_at": at or timezone.now()})


def alerts(purpose: str = "incident_alert") -> list[EmailMessage]:
    return list(EmailMessage.objects.filter(purpose=purpose).order_by("pk"))


def open_incidents() -> set[tuple[str, str]]:
    return set(Incident.objects.filter(resolved_at__isnull=True).values_list("kind", "subject"))


def beat_restarts(ticks: int = 20) -> HeartbeatDatabaseScheduler:
    """`celery beat` starting now with the project's scheduler, sending to the real broker
    until it has nothing due."""
    beat = HeartbeatDatabaseScheduler(app=project.celery.app)
    try:
        for _ in range(ticks):
            if beat.tick() > 0:
                break
    finally:
        beat._finalize.cancel()
    return beat


@pytest.fixture(autouse=True)
def _beat_keeps_the_test_connection(monkeypatch):
    # Beat closes "old" connections each tick; inside the test transaction that would close
    # the test's own connection.
    monkeypatch.setattr("django_celery_beat.schedulers.close_old_connections", lambda: None)


# --- Catch-up ------------------------------------------------------------------------------


def test_after_a_26_hour_outage_beat_and_the_watchdog_send_each_missed_job_once(
    clock, schedules, broker, admins
):
    clock.move_to(BEFORE + dt.timedelta(hours=26, minutes=5))  # Wednesday 03:05
    # django-celery-beat loads a crontab with a numeric hour only within 2 hours of now.
    loaded = set(HeartbeatDatabaseScheduler(app=project.celery.app, lazy=True).all_as_schedule())
    assert {"close_expired_sessions", "verify_audit_trail"} <= loaded
    assert not {"reconciliation_reminder", "generate_commission_report"} & loaded

    beat_restarts()
    first = watchdog_run()
    second = watchdog_run()

    # One message per job, by whoever could send it: beat its two, the watchdog the rest.
    assert broker.counts() == {
        "close_expired_sessions": 1,
        "verify_audit_trail": 1,
        "reconciliation_reminder": 1,
        "generate_commission_report": 1,
    }
    assert [(c.name, c.due_at) for c in first.caught_up] == [
        ("reconciliation_reminder", local(2026, 12, 1, 8, 0)),
        ("generate_commission_report", local(2026, 12, 1, 9, 0)),
    ]
    assert second.caught_up == []
    sent = dict(broker.sent())
    # The rows' own arguments, as beat sends them, with beat's trigger.
    assert sent["reconciliation_reminder"] == {"email_admins": True, "trigger": "beat"}
    assert sent["generate_commission_report"] == {"trigger": "beat"}
    caught = JobHealth.objects.get(name="generate_commission_report")
    assert caught.catch_up_for == local(2026, 12, 1, 9, 0)
    assert caught.catch_up_task_id == first.caught_up[1].task_id


def test_a_monthly_run_missed_by_three_days_is_still_caught_up_once(
    clock, schedules, broker, admins
):
    clock.move_to(local(2026, 12, 4, 15, 10))
    beat_ticked()
    for name, at in (
        ("close_expired_sessions", local(2026, 12, 4, 15, 0)),
        ("verify_audit_trail", local(2026, 12, 4, 2, 0)),
        ("reconciliation_reminder", local(2026, 12, 4, 8, 0)),
    ):
        succeeded(name, at)
        PeriodicTask.objects.filter(name=name).update(last_run_at=at)
    # Outside beat's window at 15:10: beat will not send the 09:00 job, whatever happens.
    loaded = HeartbeatDatabaseScheduler(app=project.celery.app, lazy=True).all_as_schedule()
    assert "generate_commission_report" not in loaded

    beat_restarts()
    watchdog_run()
    watchdog_run()

    assert broker.counts() == {"generate_commission_report": 1}


def test_a_catch_up_is_not_repeated_while_pending_and_is_resent_once_it_expired_unconsumed(
    clock, schedules, broker, admins
):
    clock.move_to(local(2026, 12, 2, 3, 30))
    beat_ticked()
    PeriodicTask.objects.filter(name="verify_audit_trail").update(expire_seconds=3600)

    watchdog_run()
    clock.shift(dt.timedelta(minutes=59))
    beat_ticked()
    watchdog_run()
    assert broker.counts()["verify_audit_trail"] == 1

    # The message expired and no run started: the run is still missed, so once more.
    clock.shift(dt.timedelta(minutes=2))
    beat_ticked()
    watchdog_run()
    watchdog_run()
    assert broker.counts()["verify_audit_trail"] == 2


def test_a_run_that_started_for_the_due_time_and_failed_is_alerted_not_repeated(
    clock, schedules, broker, admins
):
    JobHealth.objects.filter(name="verify_audit_trail").update(
        last_started_at=local(2026, 12, 1, 2, 0),
        last_finished_at=local(2026, 12, 1, 2, 1),
        last_status="error",
        last_message="OperationalError: server closed the connection",
    )
    clock.move_to(local(2026, 12, 1, 3, 0))
    beat_ticked()

    report = watchdog_run()

    assert broker.counts()["verify_audit_trail"] == 0
    assert report.caught_up == []
    assert open_incidents() == {("job_overdue", "verify_audit_trail")}
    [alert] = alerts()
    assert "A run for this due time started and did not succeed" in alert.body_text
    assert "OperationalError: server closed the connection" in alert.body_text


def test_a_disabled_schedule_is_never_overdue_and_says_so(clock, schedules, broker, admins):
    PeriodicTask.objects.filter(name="verify_audit_trail").update(enabled=False)
    clock.move_to(local(2026, 12, 5, 12, 0))
    beat_ticked()

    report = watchdog_run()

    states = {job.name: job.state for job in report.snapshot.jobs}
    assert states["verify_audit_trail"] == JobState.DISABLED
    assert broker.counts()["verify_audit_trail"] == 0
    assert ("job_overdue", "verify_audit_trail") not in open_incidents()


def test_nothing_is_overdue_for_due_times_from_before_the_watch_began(clock, broker, admins):
    # A fresh install: the rows and the watch are new; last night's 02:00 was never promised.
    call_command("sync_schedules", stdout=open("/dev/null", "w"))  # noqa: SIM115
    clock.shift(dt.timedelta(minutes=30))
    beat_ticked()

    report = watchdog_run()

    assert {job.state for job in report.snapshot.jobs} == {JobState.WAITING}
    assert report.ok
    assert broker.sent() == [] and alerts() == []


# --- Incidents and their emails --------------------------------------------------------------


def test_overdue_alerts_once_stays_quiet_while_overdue_and_sends_one_recovery_notice(
    clock, schedules, broker, admins
):
    clock.move_to(local(2026, 12, 1, 3, 0))  # verify_audit_trail was due at 02:00
    beat_ticked()
    succeeded("close_expired_sessions", local(2026, 12, 1, 3, 0))

    watchdog_run()
    [alert] = alerts()
    assert alert.recipients == ["boss@example.com", "ops@example.com"]
    assert alert.subject == (
        "[ALERT] verify_audit_trail is overdue: no successful run since 2026-12-01 02:00"
    )
    assert "verify_audit_trail was due at 2026-12-01 02:00 and has not succeeded since." in (
        alert.body_text
    )
    assert "Last successful run: started at 2026-11-30 02:00." in alert.body_text
    assert "The watchdog has sent it once now (task " in alert.body_text
    assert "verify_audit_trail" in alert.body_html

    for minutes in (1, 20, 50):  # still overdue: no second alert
        clock.move_to(local(2026, 12, 1, 3, minutes))
        beat_ticked()
        watchdog_run()
    assert len(alerts()) == 1
    assert open_incidents() == {("job_overdue", "verify_audit_trail")}

    succeeded("verify_audit_trail", local(2026, 12, 1, 3, 51))
    clock.move_to(local(2026, 12, 1, 3, 52))
    beat_ticked()
    watchdog_run()
    watchdog_run()

    [notice] = alerts("incident_recovery")
    assert notice.subject == "[RESOLVED] verify_audit_trail is no longer overdue"
    assert "The problem reported at 2026-12-01 03:00 is over since 2026-12-01 03:52" in (
        notice.body_text
    )
    assert "its last successful run started at 2026-12-01 03:51 (beat)" in notice.body_text
    assert open_incidents() == set()
    incident = Incident.objects.get()
    assert (incident.alert_email, incident.recovery_email) == (alert, notice)
    assert len(alerts()) == 1


def test_a_job_that_keeps_failing_stays_one_incident_across_its_next_due_times(
    clock, schedules, broker, admins
):
    clock.move_to(local(2026, 12, 1, 2, 20))  # the 02:00 hourly run is overdue
    beat_ticked()
    succeeded("verify_audit_trail", local(2026, 12, 1, 2, 0))
    watchdog_run()
    # 03:05: a new due time, within its grace: still not fine, so no recovery notice.
    clock.move_to(local(2026, 12, 1, 3, 5))
    beat_ticked()
    JobHealth.objects.filter(name="close_expired_sessions").update(
        last_started_at=local(2026, 12, 1, 3, 0),
        last_finished_at=local(2026, 12, 1, 3, 0),
        last_status="error",
    )
    watchdog_run()
    clock.move_to(local(2026, 12, 1, 3, 20))
    beat_ticked()
    watchdog_run()

    assert [email.about for email in alerts()] == ["job_overdue close_expired_sessions"]
    assert alerts("incident_recovery") == []


def test_a_silent_beat_alerts_once_and_its_return_sends_one_notice(
    clock, schedules, broker, admins
):
    beat_ticked(BEFORE)
    clock.move_to(BEFORE + dt.timedelta(minutes=4))
    watchdog_run()
    assert alerts() == []  # four minutes: a slow beat, not a stopped one

    clock.move_to(BEFORE + dt.timedelta(minutes=6))
    watchdog_run()
    clock.move_to(BEFORE + dt.timedelta(minutes=9))
    watchdog_run()
    [alert] = alerts()
    assert alert.subject == "[ALERT] The scheduler (beat) has not ticked for 6 minutes"
    assert "last recorded a tick at 2026-12-01 01:00" in alert.body_text

    beat_restarts()  # ticks, so records its heartbeat
    watchdog_run()
    [notice] = alerts("incident_recovery")
    assert notice.subject == "[RESOLVED] The scheduler (beat) is ticking again"
    assert open_incidents() == set()


def test_mail_undelivered_for_an_hour_alerts_once_and_its_delivery_clears_it(
    clock, schedules, broker, admins
):
    stuck = EmailMessage.objects.create(
        purpose="test", recipients=["agent@example.com"], subject="s", body_text="b"
    )
    clock.shift(dt.timedelta(minutes=59))
    beat_ticked()
    watchdog_run()
    assert alerts() == []

    clock.shift(dt.timedelta(minutes=2))
    beat_ticked()
    watchdog_run()
    watchdog_run()
    [alert] = alerts()
    assert alert.subject == "[ALERT] 1 email not delivered for over an hour"

    EmailMessage.objects.filter(pk=stuck.pk).update(status=EmailStatus.SENT)
    watchdog_run()
    [notice] = alerts("incident_recovery")
    assert notice.subject == "[RESOLVED] Email is being delivered again"


def test_the_database_holds_a_single_open_incident_per_problem(admins):
    first = incident_open(
        kind=IncidentKind.BEAT_SILENT,
        subject="beat",
        detail={},
        context={"kind": "beat_silent", "beat_minutes": 6, "time_zone": "UTC"},
        recipients=["ops@example.com"],
    )
    second = incident_open(
        kind=IncidentKind.BEAT_SILENT,
        subject="beat",
        detail={},
        context={"kind": "beat_silent", "beat_minutes": 7, "time_zone": "UTC"},
        recipients=["ops@example.com"],
    )

    assert first is not None and second is None
    assert Incident.objects.count() == 1
    # The refused incident's alert rolled back with it.
    assert EmailMessage.objects.filter(purpose="incident_alert").count() == 1


def test_an_incident_opens_without_email_when_no_administrator_has_an_address(
    clock, schedules, broker, caplog
):
    clock.move_to(local(2026, 12, 1, 3, 0))
    beat_ticked()

    watchdog_run()

    assert open_incidents() == {("job_overdue", "verify_audit_trail")}
    assert alerts() == []
    assert "no administrator has an email address" in caplog.text


def test_job_states_follow_the_due_times(clock, schedules):
    clock.move_to(local(2026, 12, 1, 2, 10))
    states = {job.name: job.state for job in jobs_status(now=timezone.now())}

    assert states == {
        "close_expired_sessions": JobState.PENDING,  # due 02:00, 15 min of grace
        "verify_audit_trail": JobState.PENDING,  # due 02:00, an hour of grace
        "reconciliation_reminder": JobState.OK,  # due yesterday 08:00, ran then
        "generate_commission_report": JobState.OK,  # due 1 November, ran then
    }
    JobHealth.objects.filter(name="verify_audit_trail").update(
        last_started_at=local(2026, 12, 1, 2, 0)
    )
    running = {job.name: job.state for job in jobs_status(now=timezone.now())}
    assert running["verify_audit_trail"] == JobState.RUNNING
    # Past the hard time limit, a run that never ended is a dead one.
    clock.move_to(local(2026, 12, 1, 2, 0) + dt.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT))
    dead = {job.name: job for job in jobs_status(now=timezone.now())}
    assert dead["verify_audit_trail"].state == JobState.PENDING
    assert not dead["verify_audit_trail"].catch_up_wanted  # a run for it started


def test_alerts_are_written_in_the_email_language(clock, schedules, broker, admins, settings):
    settings.LANGUAGE_CODE = "fr"
    clock.move_to(local(2026, 12, 1, 3, 0))
    beat_ticked(local(2026, 12, 1, 2, 50))
    succeeded("close_expired_sessions", local(2026, 12, 1, 3, 0))

    watchdog_run()

    subjects = sorted(email.subject for email in alerts())
    assert subjects == [
        "[ALERTE] Le planificateur (beat) ne donne plus signe de vie depuis 10 minutes",
        "[ALERTE] verify_audit_trail est en retard : aucune exécution réussie depuis "
        "2026-12-01 02:00",
    ]
    overdue = next(email for email in alerts() if "verify" in email.subject)
    assert "UNE TÂCHE PLANIFIÉE EST EN RETARD" in overdue.body_text
    assert "Le chien de garde l'a envoyée une fois" in overdue.body_text
    assert "Une tâche planifiée est en retard" in overdue.body_html
