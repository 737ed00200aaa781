"""Writes the back office makes: a schedule run by hand."""

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django_celery_beat.models import PeriodicTask

from auditing.services import audit_entry_append
from tasks.inputs import InvalidInput
from tasks.runner import RUN_REQUESTED_ACTION
from tasks.schedules import run_by_hand_kwargs

logger = logging.getLogger(__name__)


@dataclass
class RunRequested:
    schedule: str
    task: str
    task_id: str
    # None until the request commits and the send is tried; then whether the broker took it.
    sent: bool | None = None


def schedule_run_request(*, schedule: PeriodicTask, actor: AbstractBaseUser) -> RunRequested:
    """Queue one run of a schedule now, recorded as asked from the admin by ``actor``: the
    audit entry ``schedule.run_requested`` (with the Celery task id, which the run's result
    carries) commits first, and the task is sent on commit, so nothing runs for a request
    that rolled back. ``sent`` on the result says, once the send was tried, whether the
    broker took it: a caller that reports to a person registers its own on_commit after
    this one (callbacks run in order). Raises InvalidInput, with nothing written or sent,
    for a schedule whose task the worker does not know or that cannot record who asked."""
    current_app.loader.import_default_modules()
    task = current_app.tasks.get(schedule.task)
    if task is None:
        raise InvalidInput(f"{schedule.name}: the task {schedule.task!r:.60} is not registered.")
    try:
        args = json.loads(schedule.args or "[]")
        stored_kwargs = json.loads(schedule.kwargs or "{}")
    except ValueError as error:
        raise InvalidInput(f"{schedule.name}: its arguments are not valid JSON.") from error
    if not isinstance(args, list):
        raise InvalidInput(f"{schedule.name}: its positional arguments must be a list.")
    kwargs = run_by_hand_kwargs(
        task=schedule.task, kwargs=stored_kwargs, requested_by=actor.get_username()
    )
    task_id = str(uuid.uuid4())
    options: dict[str, Any] = {
        "task_id": task_id,
        # As beat's own admin action does: the result records which schedule it ran.
        "headers": {"periodic_task_name": schedule.name},
        "retry": False,
    }
    if schedule.queue:
        options["queue"] = schedule.queue
    with transaction.atomic():
        audit_entry_append(
            action=RUN_REQUESTED_ACTION,
            actor=actor,
            subject=schedule,
            data={
                "schedule": schedule.name,
                "task": schedule.task,
                "task_id": task_id,
                "kwargs": kwargs,
            },
        )

        requested = RunRequested(schedule=schedule.name, task=schedule.task, task_id=task_id)

        def send() -> None:
            try:
                task.apply_async(args=args, kwargs=kwargs, **options)
                requested.sent = True
            except Exception:  # kombu raises several kinds; the request is already committed
                requested.sent = False
                logger.exception(
                    "Could not send %s (schedule %s, task id %s, asked by %s) to the broker",
                    schedule.task,
                    schedule.name,
                    task_id,
                    actor.get_username(),
                )

        transaction.on_commit(send)
    return requested
