"""How any door runs an operation: the options checked once, the operation's lock held
for the whole run, and one typed result back."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError

from tasks.health.services import job_run_crashed, job_run_finished, job_run_started
from tasks.inputs import InvalidInput
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


def operation_execute(
    operation: Operation[OptionsT, ResultT], *, options: OptionsT, trigger: Trigger
) -> ResultT | AlreadyRunning:
    """Run under the operation's lock. A second concurrent run returns at once."""
    if not operation.takes_lock(options):
        # A dry run writes nothing, its job health included: a preview is not a run.
        return operation.run(options=options, trigger=trigger)
    try:
        with operation_lock(operation.name):
            return _run_recording_health(operation, options=options, trigger=trigger)
    except OperationAlreadyRunning:
        logger.warning("%s is already running; %s run skipped", operation.name, trigger)
        return AlreadyRunning(operation=operation.name, trigger=trigger)


def _run_recording_health(
    operation: Operation[OptionsT, ResultT], *, options: OptionsT, trigger: Trigger
) -> ResultT:
    """The run between its start and its outcome in the operation's job health, which the
    watchdog and /health/ready/ read (tasks/health/)."""
    clock = job_run_started(name=operation.name, trigger=trigger)
    try:
        result = operation.run(options=options, trigger=trigger)
    except BaseException as error:
        job_run_crashed(clock=clock, error=error)
        raise
    job_run_finished(clock=clock, status=result.status, message=result.message or "")
    return result


def operation_task_body(operation: Operation, /, *, trigger: Any, **arguments: Any) -> Any:
    """The body of an operation's Celery task: bad arguments fail the task with one
    clear error before anything is written; the result leaves as JSON."""
    options = operation.parse(**arguments)
    try:
        result = operation_execute(operation, options=options, trigger=trigger_parse(trigger))
    except SoftTimeLimitExceeded as error:
        # A FAILURE in Flower and the results, with the reason in one sentence.
        raise OperationStopped(
            f"{operation.name} was stopped by its time limit; what it finished is saved and "
            "the next run takes the rest."
        ) from error
    return result_json(result)
