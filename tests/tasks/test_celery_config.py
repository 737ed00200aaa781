"""The Celery configuration, read the way a worker reads it: app.conf and the task objects."""

import datetime as dt

import pytest
from celery import states
from celery.exceptions import BackendStoreError, Reject
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError
from django.utils import timezone
from django_celery_results.backends import DatabaseBackend as CeleryResultsDatabaseBackend
from django_celery_results.models import TaskResult

import project.celery
from mailing.tasks import email_deliver
from project.celery_recovery import DatabaseBackend
from tasks import tasks as task_module

app = project.celery.app

OPERATION_TASKS = [
    task_module.close_expired_sessions,
    task_module.verify_audit_trail,
    task_module.reconciliation_reminder,
    task_module.generate_commission_report,
]


def registered_tasks():
    """Every task a worker registers: ours, autodiscovered, and Celery's built-ins."""
    app.loader.import_default_modules()
    return list(app.tasks.values())


def visibility_timeout() -> int:
    return app.conf.broker_transport_options["visibility_timeout"]


def test_messages_and_results_are_json_only():
    assert app.conf.task_serializer == "json"
    assert app.conf.result_serializer == "json"
    assert app.conf.accept_content == ["json"]
    assert app.conf.result_accept_content in (None, ["json"])


def test_the_four_operations_acknowledge_only_after_running():
    for task in OPERATION_TASKS:
        assert task.acks_late is True, task.name
    assert app.conf.task_reject_on_worker_lost is True


def test_every_task_has_a_soft_limit_then_a_hard_limit_then_redelivery():
    checked = set()
    for task in registered_tasks():
        # A task's own limit wins; without one the app's applies.
        soft = task.soft_time_limit or app.conf.task_soft_time_limit
        hard = task.time_limit or app.conf.task_time_limit
        assert soft is not None and hard is not None, task.name
        assert 0 < soft < hard < visibility_timeout(), task.name
        checked.add(task.name)

    assert {task.name for task in OPERATION_TASKS} | {"tasks.email_deliver"} <= checked


def test_results_use_the_same_visibility_timeout_as_the_broker():
    assert visibility_timeout() > 0
    assert app.conf.result_backend_transport_options["visibility_timeout"] == visibility_timeout()


def test_a_worker_reserves_one_message_at_a_time():
    assert app.conf.worker_prefetch_multiplier == 1


@pytest.mark.parametrize("task", OPERATION_TASKS, ids=lambda task: task.name)
def test_operations_retry_transient_database_errors_only_with_capped_backoff(task):
    assert set(task.autoretry_for) == {OperationalError, InterfaceError}
    assert task.retry_backoff
    assert 0 < task.retry_backoff_max < visibility_timeout()
    assert task.max_retries is not None and task.max_retries > 0


def test_results_are_stored_in_the_database_with_their_arguments():
    assert isinstance(app.backend, DatabaseBackend)  # django-celery-results' "django-db"
    assert isinstance(app.backend, CeleryResultsDatabaseBackend)
    assert app.conf.result_extended is True


def test_a_result_write_is_retried_for_a_couple_of_minutes_while_the_database_is_away():
    assert app.conf.result_backend_always_retry is True
    tries = app.conf.result_backend_max_retries
    longest_wait = app.conf.result_backend_max_sleep_between_retries_ms / 1000
    # Random waits up to the longest, half of it on average: about two minutes in all,
    # well inside every task's soft time limit.
    assert 60 <= tries * longest_wait / 2 <= 5 * 60
    assert tries * longest_wait < min(task.soft_time_limit for task in OPERATION_TASKS)


@pytest.mark.parametrize(
    "error", [OperationalError("server closed the connection"), InterfaceError("closed")]
)
def test_a_lost_database_connection_is_safe_to_retry_after_closing_it(monkeypatch, error):
    closed = []
    monkeypatch.setattr("project.celery_recovery.connection.close", lambda: closed.append(1))

    assert app.backend.exception_safe_to_retry(error) is True
    assert closed == [1]


def test_a_bad_write_is_not_retried():
    assert app.backend.exception_safe_to_retry(IntegrityError("duplicate key")) is False
    assert app.backend.exception_safe_to_retry(ValueError("bug")) is False


def failing_backend(monkeypatch, *, in_a_worker_task: bool) -> DatabaseBackend:
    """The app's backend whose every write finds the database gone, without waiting."""
    backend = app.backend
    monkeypatch.setattr(backend, "max_retries", 3)
    monkeypatch.setattr(backend, "_sleep", lambda seconds: None)
    monkeypatch.setattr("project.celery_recovery.connection.close", lambda: None)

    def store(*args, **kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(backend, "_store_result", store)
    monkeypatch.setattr(type(app), "current_worker_task", object() if in_a_worker_task else None)
    return backend


@pytest.mark.parametrize("state", [states.STARTED, states.SUCCESS, states.FAILURE])
def test_a_task_whose_state_cannot_be_written_goes_back_to_the_queue(monkeypatch, state):
    backend = failing_backend(monkeypatch, in_a_worker_task=True)

    with pytest.raises(Reject) as rejected:
        backend.store_result("a-task-id", {"closed": 1}, state)

    assert rejected.value.requeue is True


def test_a_retry_whose_state_cannot_be_written_is_left_to_the_retry_already_sent(monkeypatch):
    backend = failing_backend(monkeypatch, in_a_worker_task=True)

    with pytest.raises(BackendStoreError):
        backend.store_result("a-task-id", None, states.RETRY)


def test_outside_a_task_a_write_that_cannot_be_made_stays_an_error(monkeypatch):
    # The worker's main process recording a lost child: nothing to send back.
    backend = failing_backend(monkeypatch, in_a_worker_task=False)

    with pytest.raises(BackendStoreError):
        backend.store_result("a-task-id", None, states.FAILURE)


def test_broker_calls_fail_within_seconds_when_the_broker_hangs():
    options = app.conf.broker_transport_options
    assert 0 < options["socket_connect_timeout"] <= 10
    assert 0 < options["socket_timeout"] <= 10
    assert 0 < app.conf.broker_connection_timeout <= 10


def test_the_worker_survives_a_broker_restart_with_a_task_in_flight():
    # tests/integration/test_broker_faults.py proves it against a real Redis.
    assert app.conf.worker_consumer == "project.celery_recovery:Consumer"
    assert app.conf.worker_cancel_long_running_tasks_on_connection_loss is False


def test_beat_reads_its_schedule_from_the_database_in_local_time():
    # django-celery-beat's DatabaseScheduler, with a heartbeat (tasks/scheduler.py).
    assert app.conf.beat_scheduler == "tasks.scheduler:HeartbeatDatabaseScheduler"
    assert app.conf.timezone == settings.TIME_ZONE


def test_email_delivery_leaves_retries_to_the_outbox_not_to_celery():
    # A failed message's retry time lives in its row (the sweeper takes it when due): no
    # countdown waits in the broker, where a long one would outlive the visibility timeout.
    assert not getattr(email_deliver, "autoretry_for", ())
    assert email_deliver.acks_late is True


@pytest.mark.django_db
def test_task_results_are_kept_30_days_and_cleaned_up_after():
    """Beat's daily ``celery.backend_cleanup`` deletes results older than result_expires."""
    now = timezone.now()
    kept = TaskResult.objects.create(task_id="kept", status=states.SUCCESS)
    gone = TaskResult.objects.create(task_id="gone", status=states.FAILURE)
    TaskResult.objects.filter(pk=kept.pk).update(date_done=now - dt.timedelta(days=29))
    TaskResult.objects.filter(pk=gone.pk).update(date_done=now - dt.timedelta(days=31))

    app.backend.cleanup()

    assert app.conf.result_expires == dt.timedelta(days=30)
    assert list(TaskResult.objects.values_list("task_id", flat=True)) == ["kept"]
