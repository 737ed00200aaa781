"""OperationCommand, the base of the operation commands: run here or enqueue, --json,
exit codes and one-line errors; and the exit-code table they share."""

import base64
import datetime as dt
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
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
from tasks.commands import OperationCommand
from tasks.inputs import InvalidInput
from tasks.results import AlreadyRunning, ExitCode, OperationStatus, Trigger
from tasks.runner import Operation
from tasks.tasks import close_expired_sessions
from tests.factories import CashSessionFactory

pytestmark = pytest.mark.django_db

PROJECT_DIR = Path(settings.BASE_DIR)
QUEUE = "celery"
# An enqueued run is a manual run too; the worker's stored kwargs show it.
ENQUEUED = "manual-enqueue"


@dataclass(frozen=True)
class FakeResult:
    status: OperationStatus = OperationStatus.OK
    message: str | None = None
    closed: int = 0


class FakeOperation:
    """Stands in for an operation and its Celery task: records runs here and enqueues."""

    name = "tests.fake_operation"

    def __init__(self, result: FakeResult | None = None) -> None:
        self.result = result or FakeResult()
        self.calls: list[dict[str, Any]] = []
        self.enqueued: list[dict[str, Any]] = []
        self.operation = Operation(name="fake", parse=self.parse, run=self.run)

    @staticmethod
    def parse(*, month: int | None = None) -> dict[str, Any]:
        if month is not None and not 1 <= month <= 12:
            raise InvalidInput(f"--month must be between 1 and 12, not {month}.")
        return {"month": month}

    def run(self, *, options: dict[str, Any], trigger: Trigger) -> FakeResult:
        self.calls.append({**options, "trigger": trigger})
        return self.result

    def apply_async(self, **options: Any) -> SimpleNamespace:
        self.enqueued.append(options)
        return SimpleNamespace(id="fake-task-id")


class MonthCommand(OperationCommand):
    """A minimal operation command with one option, checked by its operation."""

    help = "A test operation."

    def __init__(self, fake: FakeOperation, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.operation = fake.operation
        self.task = fake

    def add_operation_arguments(self, parser) -> None:
        parser.add_argument("--month", type=int)

    def task_arguments(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"month": options["month"]}

    def render(self, result: FakeResult) -> None:
        self.stdout.write(f"rendered {result.status}")


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


def test_a_run_here_passes_the_manual_trigger_and_renders_the_result():
    fake = FakeOperation()

    output = run(MonthCommand(fake), "--month", "3")

    assert fake.calls == [{"month": 3, "trigger": Trigger.MANUAL}]
    assert fake.enqueued == []
    assert output == "rendered ok\n"


def test_json_prints_the_result_as_json_instead_of_rendering_it():
    output = run(MonthCommand(FakeOperation(FakeResult(closed=2))), "--json")

    assert json.loads(output) == {"status": "ok", "message": None, "closed": 2}
    assert "rendered" not in output


@pytest.mark.parametrize(("status", "exit_code"), [("failed", 1), ("tampering", 3)])
def test_a_non_ok_status_exits_with_its_code_and_message(status, exit_code):
    fake = FakeOperation(FakeResult(status=OperationStatus(status), message=f"it went {status}"))

    error, output = run_failing(MonthCommand(fake))

    assert error.returncode == exit_code
    assert str(error) == f"it went {status}"
    assert output == f"rendered {status}\n"


def test_exit_codes_are_one_table_for_help_and_every_status():
    assert ExitCode.help_text() == (
        "exit codes:\n"
        "  0  done\n"
        "  1  the run failed, or some items failed (see the output)\n"
        "  2  bad input: nothing was run or written\n"
        "  3  tampering found (verify_audit_trail)\n"
        "  4  another run of this operation is already in progress\n"
        "  5  --enqueue could not reach the broker\n"
    )
    assert [ExitCode.for_status(status) for status in OperationStatus] == [0, 1, 3, 4]


def test_a_run_that_finds_the_lock_taken_exits_4_and_says_so_on_stderr(monkeypatch):
    fake = FakeOperation()
    monkeypatch.setattr(
        "tasks.commands.operation_execute",
        lambda operation, **kwargs: AlreadyRunning(operation="fake", trigger=Trigger.MANUAL),
    )
    err = StringIO()

    with pytest.raises(CommandError) as info:
        call_command(MonthCommand(fake), stdout=StringIO(), stderr=err)

    assert info.value.returncode == 4
    assert str(info.value) == "fake is already running; this run did nothing."
    assert err.getvalue() == "fake is already running; this run did nothing.\n"
    assert fake.calls == []


def test_a_non_ok_status_exits_with_its_code_under_json_too():
    fake = FakeOperation(FakeResult(status=OperationStatus.TAMPERING, message="chain broken"))

    error, output = run_failing(MonthCommand(fake), "--json")

    assert error.returncode == 3
    assert json.loads(output)["status"] == "tampering"


@pytest.mark.parametrize("extra", [[], ["--enqueue"]])
def test_bad_input_exits_2_with_one_line_before_anything_runs_or_is_enqueued(extra):
    fake = FakeOperation()

    error, output = run_failing(MonthCommand(fake), "--month", "13", *extra)

    assert error.returncode == 2
    assert str(error) == "--month must be between 1 and 12, not 13."
    assert fake.calls == [] and fake.enqueued == []
    assert output == ""


def test_an_option_of_the_wrong_type_exits_2():
    fake = FakeOperation()

    error, _ = run_failing(MonthCommand(fake), "--month", "march")

    assert error.returncode == 2
    assert "\n" not in str(error)
    assert fake.calls == []


def test_enqueue_sends_the_task_with_the_manual_enqueue_trigger_and_prints_its_id():
    fake = FakeOperation()

    output = run(MonthCommand(fake), "--month", "3", "--enqueue")

    assert fake.enqueued == [{"kwargs": {"month": 3, "trigger": ENQUEUED}, "retry": False}]
    assert fake.calls == []
    assert output == "Enqueued tests.fake_operation as task fake-task-id\n"


def test_enqueue_with_json_prints_the_task_id_as_json():
    output = run(MonthCommand(FakeOperation()), "--enqueue", "--json")

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


def test_the_readme_lists_the_same_exit_codes_as_the_enum():
    readme = (PROJECT_DIR / "README.md").read_text()
    rows = re.findall(r"^\| (\d) \| (.+) \|$", readme, re.MULTILINE)

    assert [int(code) for code, _ in rows] == [code.value for code in ExitCode]
    for (_, meaning), code in zip(rows, ExitCode, strict=True):
        assert meaning.startswith(code.meaning), (meaning, code.meaning)
