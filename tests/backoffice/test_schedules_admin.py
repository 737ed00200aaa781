"""Running a schedule by hand from the admin: a permission of its own, queued (never "run")
once the request commits, recorded as triggered from the admin by that user (the audit
entry, the run's job health), never as beat."""

import datetime as dt

import pytest
from celery import current_app
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import PeriodicTask
from kombu.exceptions import OperationalError

from auditing.models import AuditEntry
from tasks.inputs import InvalidInput
from tasks.models import JobHealth
from tests.factories import StaffUserFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.frozen_at(dt.datetime(2026, 5, 20, 7, 0, tzinfo=dt.UTC)),
]

CHANGELIST = reverse("admin:django_celery_beat_periodictask_changelist")


@pytest.fixture
def schedules(run_command) -> None:
    run_command("sync_schedules")


@pytest.fixture
def sent(monkeypatch) -> list[dict]:
    """What reached the broker: each task's name, arguments and options."""
    calls: list[dict] = []
    current_app.loader.import_default_modules()
    for name in (
        "tasks.close_expired_sessions",
        "tasks.reconciliation_reminder",
        "mailing.email_sweep",
    ):
        task = current_app.tasks[name]

        def apply_async(args=None, kwargs=None, *, _name=name, **options):
            calls.append({"task": _name, "args": args, "kwargs": kwargs, **options})

        monkeypatch.setattr(task, "apply_async", apply_async)
    return calls


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def administrator():
    user = StaffUserFactory(username="ops-admin")
    user.groups.add(Group.objects.get(name="Administrators"))
    return user


@pytest.fixture
def schedule_editor():
    """A staff user who may change schedules, and nothing more."""
    user = StaffUserFactory(username="editor")
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_celery_beat",
            codename__in=["view_periodictask", "change_periodictask"],
        )
    )
    return user


def run_action(client, *names: str, **headers):
    pks = PeriodicTask.objects.filter(name__in=names).values_list("pk", flat=True)
    return client.post(
        CHANGELIST,
        {"action": "run_tasks", ACTION_CHECKBOX_NAME: [str(pk) for pk in pks]},
        follow=True,
        **headers,
    )


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_an_administrator_queues_a_run_recorded_as_admin_by_them(
    schedules, sent, administrator, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = run_action(client_for(administrator), "close_expired_sessions")
        # Nothing leaves before the request commits.
        assert sent == []
    for callback in callbacks:
        callback()

    assert response.status_code == 200
    [call] = sent
    assert call["task"] == "tasks.close_expired_sessions"
    assert call["kwargs"] == {"trigger": "admin", "requested_by": "ops-admin"}
    assert call["headers"] == {"periodic_task_name": "close_expired_sessions"}
    entry = AuditEntry.objects.get(action="schedule.run_requested")
    assert entry.actor == administrator
    assert entry.data["schedule"] == "close_expired_sessions"
    assert entry.data["task_id"] == call["task_id"]
    assert entry.data["kwargs"]["trigger"] == "admin"

    # The worker runs exactly what was sent: its job health names the trigger and the user.
    result = current_app.tasks["tasks.close_expired_sessions"].apply(
        kwargs=call["kwargs"], task_id=call["task_id"]
    )
    assert result.successful(), result.result
    health = JobHealth.objects.get(name="close_expired_sessions")
    assert (health.last_trigger, health.last_requested_by) == ("admin", "ops-admin")


def test_the_sweeper_is_queued_with_the_admin_trigger_only(
    schedules, sent, administrator, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run_action(client_for(administrator), "email_sweep")
    [call] = sent
    # Its task takes no requested_by: who asked is in the audit entry.
    assert call["kwargs"] == {"trigger": "admin"}
    entry = AuditEntry.objects.get(action="schedule.run_requested")
    assert (entry.actor_name, entry.data["task_id"]) == ("ops-admin", call["task_id"])


# The request commits for real in these: the message is written once the sends were tried.
@pytest.mark.django_db(transaction=True)
def test_the_message_says_queued_once_the_broker_took_the_run(schedules, sent, administrator):
    response = run_action(client_for(administrator), "close_expired_sessions")

    assert messages_of(response) == [
        "Queued 1 run (close_expired_sessions): a worker starts it shortly; its outcome "
        "shows in job health."
    ]
    assert [call["task"] for call in sent] == ["tasks.close_expired_sessions"]


@pytest.mark.django_db(transaction=True)
def test_a_run_the_broker_refused_is_reported_not_queued(schedules, administrator, monkeypatch):
    task = current_app.tasks["tasks.close_expired_sessions"]

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(task, "apply_async", broker_down)
    response = run_action(client_for(administrator), "close_expired_sessions")

    assert messages_of(response) == [
        "Not queued, the broker did not answer: close_expired_sessions. Nothing will run; "
        "try again when the broker is back."
    ]
    # The request itself stays on record, with the task id that never reached a worker.
    entry = AuditEntry.objects.get(action="schedule.run_requested")
    assert entry.actor == administrator
    assert not JobHealth.objects.filter(name="close_expired_sessions").exists()


@pytest.mark.django_db(transaction=True)
def test_the_message_says_queued_in_french(schedules, sent, administrator):
    response = run_action(
        client_for(administrator),
        "close_expired_sessions",
        "reconciliation_reminder",
        HTTP_ACCEPT_LANGUAGE="fr",
    )
    [message] = messages_of(response)
    assert message.startswith("2 exécutions mises en file d'attente (close_expired_sessions, ")
    assert len(sent) == 2


def test_a_user_who_may_only_change_schedules_cannot_run_them(
    schedules, sent, schedule_editor, django_capture_on_commit_callbacks
):
    client = client_for(schedule_editor)
    page = client.get(CHANGELIST)
    offered = [value for value, _label in page.context["action_form"].fields["action"].choices]
    assert "run_tasks" not in offered
    assert "enable_tasks" in offered

    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(client, "close_expired_sessions")
    assert response.status_code == 200
    assert sent == []
    assert not AuditEntry.objects.filter(action="schedule.run_requested").exists()


def test_viewing_schedules_is_not_enough_to_enable_or_disable_them(schedules, sent):
    viewer = StaffUserFactory(username="viewer")
    viewer.user_permissions.set(Permission.objects.filter(codename="view_periodictask"))
    client = client_for(viewer)
    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert page.context["action_form"] is None or not [
        value for value, _label in page.context["action_form"].fields["action"].choices if value
    ]
    pk = PeriodicTask.objects.get(name="close_expired_sessions").pk
    client.post(CHANGELIST, {"action": "disable_tasks", ACTION_CHECKBOX_NAME: [str(pk)]})
    assert PeriodicTask.objects.get(pk=pk).enabled


def test_a_task_outside_the_registry_is_refused_with_nothing_sent_or_written(
    schedules, sent, administrator, django_capture_on_commit_callbacks
):
    PeriodicTask.objects.create(
        name="results cleanup",
        task="celery.backend_cleanup",
        interval=None,
        crontab=PeriodicTask.objects.get(name="close_expired_sessions").crontab,
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(client_for(administrator), "results cleanup")
    [message] = messages_of(response)
    assert message.startswith("results cleanup was not queued: 'celery.backend_cleanup' is not")
    assert sent == []
    assert not AuditEntry.objects.filter(action="schedule.run_requested").exists()


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"trigger": "admin"}, "requested_by must be text, not None."),
        ({"trigger": "admin", "requested_by": " "}, "requested_by must name the user"),
        ({"trigger": "admin", "requested_by": 7}, "requested_by must be text, not 7."),
        (
            {"trigger": "beat", "requested_by": "mallory"},
            "requested_by is only given with trigger 'admin' (got trigger 'beat').",
        ),
    ],
)
def test_a_run_names_its_requester_exactly_when_an_administrator_asked(arguments, error):
    # The arguments are refused before the audit trail is consulted.
    result = current_app.tasks["tasks.close_expired_sessions"].apply(kwargs=arguments)
    assert isinstance(result.result, InvalidInput)
    assert str(result.result).startswith(error)
    assert not JobHealth.objects.filter(last_started_at__isnull=False).exists()


def test_a_run_posing_as_an_admin_run_without_its_request_is_refused(
    schedules, sent, administrator, django_capture_on_commit_callbacks
):
    """Flower, or a schedule's stored arguments, can send trigger "admin" with any name:
    only the task id the admin recorded for that user runs as theirs."""
    with django_capture_on_commit_callbacks(execute=True):
        run_action(client_for(administrator), "close_expired_sessions")
    [call] = sent
    task = current_app.tasks["tasks.close_expired_sessions"]

    forged = [
        task.apply(kwargs={"trigger": "admin", "requested_by": "ops-admin"}),  # another id
        task.apply(kwargs={"trigger": "admin", "requested_by": "alice"}, task_id=call["task_id"]),
    ]

    for result in forged:
        assert isinstance(result.result, InvalidInput)
        assert str(result.result).startswith("trigger 'admin' is for a run asked for in the admin")
    assert not JobHealth.objects.filter(last_started_at__isnull=False).exists()
