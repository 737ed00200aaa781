"""The Celery configuration, read the way a worker reads it: app.conf and the task objects."""

import pytest
from django.conf import settings
from django.db import InterfaceError, OperationalError

import project.celery
from mailing.tasks import email_deliver
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
    assert app.conf.result_backend == "django-db"
    assert app.conf.result_extended is True


def test_beat_reads_its_schedule_from_the_database_in_local_time():
    # django-celery-beat's DatabaseScheduler, with a heartbeat (tasks/scheduler.py).
    assert app.conf.beat_scheduler == "tasks.scheduler:HeartbeatDatabaseScheduler"
    assert app.conf.timezone == settings.TIME_ZONE


def test_email_delivery_leaves_retries_to_the_outbox_not_to_celery():
    # A failed message's retry time lives in its row (the sweeper takes it when due): no
    # countdown waits in the broker, where a long one would outlive the visibility timeout.
    assert not getattr(email_deliver, "autoretry_for", ())
    assert email_deliver.acks_late is True
