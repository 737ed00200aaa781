"""The shape every operation's outcome shares, and how it leaves the process.

An operation returns a typed result (a frozen dataclass). It becomes JSON only at the
edge, through ``result_json``: the Celery result and the commands' ``--json``.
"""

import datetime as dt
import enum
from dataclasses import dataclass, field, fields, is_dataclass
from decimal import Decimal
from typing import Any

from django.utils import timezone


class Trigger(enum.StrEnum):
    """Who started a run. Stored with every run, report and audit entry it writes.

    Beat's schedules pass ``beat`` explicitly; the schedules' admin passes ``admin`` with
    the user who asked (``requested_by``); a task sent without a trigger (Flower's API,
    ``send_task``) is recorded as ``task``, never as a scheduled run.
    """

    BEAT = "beat"
    MANUAL = "manual"
    MANUAL_ENQUEUE = "manual-enqueue"
    TASK = "task"
    ADMIN = "admin"


class OperationStatus(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    TAMPERING = "tampering"
    ALREADY_RUNNING = "already_running"


class ExitCode(enum.IntEnum):
    """One table for the commands' exits, their --help and the README."""

    OK = 0, "done"
    FAILED = 1, "the run failed, or some items failed (see the output)"
    BAD_INPUT = 2, "bad input: nothing was run or written"
    TAMPERING = 3, "tampering found (verify_audit_trail)"
    ALREADY_RUNNING = 4, "another run of this operation is already in progress"
    BROKER_UNREACHABLE = 5, "--enqueue could not reach the broker"

    def __new__(cls, code: int, meaning: str) -> "ExitCode":
        member = int.__new__(cls, code)
        member._value_ = code
        member.meaning = meaning
        return member

    @classmethod
    def for_status(cls, status: OperationStatus) -> "ExitCode":
        return {
            OperationStatus.OK: cls.OK,
            OperationStatus.FAILED: cls.FAILED,
            OperationStatus.TAMPERING: cls.TAMPERING,
            OperationStatus.ALREADY_RUNNING: cls.ALREADY_RUNNING,
        }[status]

    @classmethod
    def help_text(cls) -> str:
        return "exit codes:\n" + "".join(f"  {code.value}  {code.meaning}\n" for code in cls)


def omitted_when_none(default: Any = None) -> Any:
    """A result field left out of the JSON while it is None (an optional key)."""
    return field(default=default, metadata={"omit_when_none": True})


def result_json(value: Any) -> Any:
    """Plain JSON types: amounts as strings, times as local ISO 8601, enums as values."""
    if is_dataclass(value) and not isinstance(value, type):
        return {
            item.name: result_json(getattr(value, item.name))
            for item in fields(value)
            if not (item.metadata.get("omit_when_none") and getattr(value, item.name) is None)
        }
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: result_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [result_json(item) for item in value]
    return value


@dataclass(frozen=True)
class AlreadyRunning:
    """Another run of the operation holds its lock: this run did nothing."""

    operation: str
    trigger: Trigger
    status: OperationStatus = OperationStatus.ALREADY_RUNNING
    message: str = ""

    def __post_init__(self) -> None:
        if not self.message:
            object.__setattr__(
                self, "message", f"{self.operation} is already running; this run did nothing."
            )
