"""OperationCommand, the base of the operation commands: run here or enqueue, --json,
exit codes and one-line errors."""

import base64
import datetime as dt
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone
from kombu.exceptions import OperationalError

from payments.models import SessionStatus
from tasks.legacy_commands import LegacyOperationCommand as OperationCommand
from tasks.tasks import close_expired_sessions
from tests.factories import CashSessionFactory

pytestmark = pytest.mark.django_db

PROJECT_DIR = Path(settings.BASE_DIR)
QUEUE = "celery"
# An enqueued run is a manual run too; the worker's stored kwargs show it.
ENQUEUED = "manual-enqueue"


class FakeTask:
    """Stands in for a Celery task: records in-process calls and enqueues."""

    name = "tests.fake_operation"

    def __init__(self, summary: dict[str, Any] | None = None) -> None:
        self.summary = summary or {"operation": "fake", "status": "ok"}
        self.calls: list[dict[str, Any]] = []
        self.enqueued: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return self.summary

    def apply_async(self, **options: Any) -> SimpleNamespace:
        self.enqueued.append(options)
        return SimpleNamespace(id="fake-task-id")


class MonthCommand(OperationCommand):
    """A minimal operation command with one validated option."""

    help = "A test operation."

    def __init__(self, task: FakeTask, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.task = task

    def add_operation_arguments(self, parser) -> None:
        parser.add_argument("--month", type=int)

    def task_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        month = options["month"]
        if month is not None and not 1 <= month <= 12:
            raise self.bad_input(f"--month must be between 1 and 12, not {month}.")
        return {"month": month}

    def render(self, summary: dict[str, Any]) -> None:
        self.stdout.write(f"rendered {summary['status']}")


def run(command, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def run_failing(command, *args: str) -> tuple[CommandError, str]:
    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command(command, *args, stdout=out, stderr=StringIO())
    return info.value, out.getvalue()


@pytest.fixture
def broker():
    """The Redis database behind CELERY_BROKER_URL; keys a test creates are deleted after."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    before = set(client.keys())
    client.delete(QUEUE)
    yield client
    for key in set(client.keys()) - before:
        client.delete(key)
    client.delete(QUEUE)
    client.close()


def queued_messages(client: redis.Redis) -> list[dict[str, Any]]:
    messages = []
    for raw in client.lrange(QUEUE, 0, -1):
        envelope = json.loads(raw)
        assert envelope["properties"]["body_encoding"] == "base64"
        args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"headers": envelope["headers"], "args": args, "kwargs": kwargs})
    return messages


def test_a_run_here_passes_the_manual_trigger_and_renders_the_summary():
    task = FakeTask()

    output = run(MonthCommand(task), "--month", "3")

    assert task.calls == [{"month": 3, "trigger": "manual"}]
    assert task.enqueued == []
    assert output == "rendered ok\n"


def test_json_prints_the_summary_instead_of_rendering_it():
    summary = {"operation": "fake", "status": "ok", "closed": 2}

    output = run(MonthCommand(FakeTask(summary)), "--json")

    assert json.loads(output) == summary
    assert "rendered" not in output


@pytest.mark.parametrize(
    ("status", "exit_code"), [("failed", 1), ("tampering", 3), ("already_running", 4)]
)
def test_a_non_ok_status_exits_with_its_code_and_message(status, exit_code):
    task = FakeTask({"operation": "fake", "status": status, "message": f"it went {status}"})

    error, output = run_failing(MonthCommand(task))

    assert error.returncode == exit_code
    assert str(error) == f"it went {status}"
    assert output == f"rendered {status}\n"


def test_a_non_ok_status_exits_with_its_code_under_json_too():
    task = FakeTask({"operation": "fake", "status": "tampering", "message": "chain broken"})

    error, output = run_failing(MonthCommand(task), "--json")

    assert error.returncode == 3
    assert json.loads(output)["status"] == "tampering"


@pytest.mark.parametrize("extra", [[], ["--enqueue"]])
def test_bad_input_exits_2_with_one_line_before_anything_runs_or_is_enqueued(extra):
    task = FakeTask()

    error, output = run_failing(MonthCommand(task), "--month", "13", *extra)

    assert error.returncode == 2
    assert str(error) == "--month must be between 1 and 12, not 13."
    assert task.calls == [] and task.enqueued == []
    assert output == ""


def test_an_option_of_the_wrong_type_exits_2():
    task = FakeTask()

    error, _ = run_failing(MonthCommand(task), "--month", "march")

    assert error.returncode == 2
    assert "\n" not in str(error)
    assert task.calls == []


def test_enqueue_sends_the_task_with_the_manual_enqueue_trigger_and_prints_its_id():
    task = FakeTask()

    output = run(MonthCommand(task), "--month", "3", "--enqueue")

    assert task.enqueued == [{"kwargs": {"month": 3, "trigger": ENQUEUED}, "retry": False}]
    assert task.calls == []
    assert output == "Enqueued tests.fake_operation as task fake-task-id\n"


def test_enqueue_with_json_prints_the_task_id_as_json():
    output = run(MonthCommand(FakeTask()), "--enqueue", "--json")

    assert json.loads(output) == {"task_id": "fake-task-id", "task": "tests.fake_operation"}


def test_enqueue_puts_the_message_in_redis_and_runs_nothing_here(broker):
    session = CashSessionFactory(opened_at=timezone.now() - dt.timedelta(hours=13))

    output = run("close_expired_sessions", "--enqueue")

    prefix = "Enqueued tasks.close_expired_sessions as task "
    assert output.startswith(prefix)
    task_id = output.removeprefix(prefix).strip()
    [message] = queued_messages(broker)
    assert message["headers"]["id"] == task_id
    assert message["headers"]["task"] == "tasks.close_expired_sessions"
    assert message["args"] == []
    assert message["kwargs"] == {"dry_run": False, "force": False, "trigger": ENQUEUED}
    session.refresh_from_db()
    assert session.status == SessionStatus.OPEN


def test_enqueue_passes_the_validated_options_to_the_task(monkeypatch):
    sent: list[dict[str, Any]] = []

    def capture(**options: Any) -> SimpleNamespace:
        sent.append(options)
        return SimpleNamespace(id="captured-id")

    monkeypatch.setattr(close_expired_sessions, "apply_async", capture)

    output = run("close_expired_sessions", "--enqueue", "--dry-run", "--force")

    assert sent == [
        {"kwargs": {"dry_run": True, "force": True, "trigger": ENQUEUED}, "retry": False}
    ]
    assert output == "Enqueued tasks.close_expired_sessions as task captured-id\n"


def test_enqueue_with_the_broker_down_exits_5_with_one_line_and_runs_nothing(monkeypatch):
    session = CashSessionFactory(opened_at=timezone.now() - dt.timedelta(hours=13))

    def broker_down(**options: Any):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(close_expired_sessions, "apply_async", broker_down)

    error, output = run_failing("close_expired_sessions", "--enqueue")

    assert error.returncode == 5
    assert str(error) == (
        "Could not reach the broker to enqueue tasks.close_expired_sessions: "
        "Error 111 connecting to 127.0.0.1:6379. Connection refused."
    )
    assert output == ""
    session.refresh_from_db()
    assert session.status == SessionStatus.OPEN


def test_enqueue_to_an_unreachable_redis_exits_5_on_the_command_line():
    # Nothing listens on port 1: a real connection failure, through a real process.
    env = {**os.environ, "DJANGO_ENV": "test", "REDIS_URL": "redis://127.0.0.1:1/0"}

    result = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "manage.py", "close_expired_sessions", "--enqueue"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 5
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(
        "CommandError: Could not reach the broker to enqueue tasks.close_expired_sessions:"
    )
