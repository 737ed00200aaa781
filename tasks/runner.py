"""How any door runs an operation: the options checked once, the operation's lock held
for the whole run, and one typed result back."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError

from auditing.selectors import audit_entry_exists
from tasks.health.services import job_run_crashed, job_run_finished, job_run_started
from tasks.inputs import InvalidInput, text_option
from tasks.locking import OperationAlreadyRunning, operation_lock
from tasks.results import AlreadyRunning, Trigger, result_json

logger = logging.getLogger(__name__)

OptionsT = TypeVar("OptionsT")
ResultT = TypeVar("ResultT")


def _always(options: Any) -> bool:
    return True


@dataclass(frozen=True)
class Operation(Generic[OptionsT, ResultT]):
    """One of the four operations, as every door sees it.

    ``parse`` turns the task's plain arguments into options or raises InvalidInput;
    ``run(options=..., trigger=...)`` does the work and returns the typed result;
    ``takes_lock`` says whether a run with these options needs the operation's lock (a
    dry run writes nothing and takes none).
    """

    name: str
    parse: Callable[..., OptionsT]
    run: Callable[..., ResultT]
    takes_lock: Callable[[OptionsT], bool] = _always


# The faults that end a whole run, never one item: the time limit, and a database that
# went away (every later item would fail the same way, one traceback each).
RUN_STOPPING_ERRORS = (SoftTimeLimitExceeded, OperationalError, InterfaceError)


class OperationStopped(Exception):
    """A run ended before its last item. What it did is committed; the rest is left for
    the next run, which every operation picks up where this one stopped."""


def item_failure_stops_the_run(error: BaseException) -> bool:
    """For an operation's per-item ``except``: True when the error must end the run."""
    return isinstance(error, RUN_STOPPING_ERRORS)


def trigger_parse(value: Any) -> Trigger:
    try:
        return Trigger(value)
    except ValueError:
        choices = ", ".join(trigger.value for trigger in Trigger)
        raise InvalidInput(f"trigger must be one of {choices} (got {value!r:.40}).") from None


# The audit entry the admin writes when a user runs a schedule by hand (backoffice).
RUN_REQUESTED_ACTION = "schedule.run_requested"
# As long as a username (django.contrib.auth's AbstractUser).
REQUESTED_BY_MAX_LENGTH = 150


def requested_by_parse(value: Any, *, trigger: Trigger) -> str:
    """Who asked for an admin run: required with trigger "admin", refused with any other
    (a run from beat or the command line names no user, and must not pose as one)."""
    if trigger is not Trigger.ADMIN:
        if value is not None:
            raise InvalidInput(
                f"requested_by is only given with trigger {Trigger.ADMIN.value!r} "
                f"(got trigger {trigger.value!r})."
            )
        return ""
    username = text_option(value, option="requested_by", max_length=REQUESTED_BY_MAX_LENGTH)
    if not username.strip():
        raise InvalidInput("requested_by must name the user who asked for the run.")
    return username


def operation_execute(
    operation: Operation[OptionsT, ResultT],
    *,
    options: OptionsT,
    trigger: Trigger,
    requested_by: str = "",
) -> ResultT | AlreadyRunning:
    """Run under the operation's lock. A second concurrent run returns at once."""
    if not operation.takes_lock(options):
        # A dry run writes nothing, its job health included: a preview is not a run.
        return operation.run(options=options, trigger=trigger)
    try:
        with operation_lock(operation.name):
            return _run_recording_health(
                operation, options=options, trigger=trigger, requested_by=requested_by
            )
    except OperationAlreadyRunning:
        logger.warning("%s is already running; %s run skipped", operation.name, trigger)
        return AlreadyRunning(operation=operation.name, trigger=trigger)


def _run_recording_health(
    operation: Operation[OptionsT, ResultT],
    *,
    options: OptionsT,
    trigger: Trigger,
    requested_by: str,
) -> ResultT:
    """The run between its start and its outcome in the operation's job health, which the
    watchdog and /health/ready/ read (tasks/health/)."""
    clock = job_run_started(name=operation.name, trigger=trigger, requested_by=requested_by)
    try:
        result = operation.run(options=options, trigger=trigger)
    except BaseException as error:
        job_run_crashed(clock=clock, error=error)
        raise
    job_run_finished(clock=clock, status=result.status, message=result.message or "")
    return result


def operation_task_body(
    operation: Operation,
    /,
    *,
    task_id: str | None,
    trigger: Any,
    requested_by: Any = None,
    **arguments: Any,
) -> Any:
    """The body of an operation's Celery task: bad arguments fail the task with one
    clear error before anything is written; the result leaves as JSON."""
    options = operation.parse(**arguments)
    checked_trigger = trigger_parse(trigger)
    requester = requested_by_parse(requested_by, trigger=checked_trigger)
    if checked_trigger is Trigger.ADMIN and not audit_entry_exists(
        action=RUN_REQUESTED_ACTION, actor_name=requester, task_id=task_id
    ):
        # Anyone who can send a task (Flower, a schedule's stored arguments) could write
        # trigger "admin" and any name: a run is the admin's, by that user, only when the
        # admin recorded the request for this very task id.
        raise InvalidInput(
            f"trigger {Trigger.ADMIN.value!r} is for a run asked for in the admin: no "
            f"{RUN_REQUESTED_ACTION} entry by {requester!r:.40} names this task."
        )
    try:
        result = operation_execute(
            operation, options=options, trigger=checked_trigger, requested_by=requester
        )
    except SoftTimeLimitExceeded as error:
        # A FAILURE in Flower and the results, with the reason in one sentence.
        raise OperationStopped(
            f"{operation.name} was stopped by its time limit; what it finished is saved and "
            "the next run takes the rest."
        ) from error
    return result_json(result)
