"""Asking a worker to act now, at best. Mail never depends on it: the outbox rows are the
truth, and the sweeper (beat every minute, or cron's ``deliver_pending_email``) delivers
whatever no worker was asked for.

A broker that is down (normal on a cron-only install) costs one short try and one log
line; the next wake-ups in this process are skipped for a minute, so a run that queues
hundreds of messages neither slows down nor fills its log with tracebacks.
"""

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from celery import Task

logger = logging.getLogger(__name__)

# Seconds to connect to the broker and for each exchange with it: it answers in
# milliseconds when it is up.
BROKER_TIMEOUT_SECONDS = 1
# After a failure, skip wake-ups for this long (one log line per cron run).
QUIET_AFTER_FAILURE_SECONDS = 60

_lock = threading.Lock()
_quiet_until = 0.0


def worker_wake(task: Task, **kwargs: Any) -> bool:
    """Send ``task`` with ``kwargs`` to the broker. False if it was not sent."""
    return workers_wake(task, [kwargs]) == 1


def workers_wake(task: Task, calls: Sequence[Mapping[str, Any]]) -> int:
    """Send ``task`` once with each of ``calls`` (its keyword arguments), all through one
    connection to the broker: a batch of work queues hundreds of messages, and a
    connection per message cost more than the work. How many were sent."""
    global _quiet_until
    with _lock:
        if time.monotonic() < _quiet_until:
            return 0
    sent = 0
    try:
        with task.app.connection_for_write(
            connect_timeout=BROKER_TIMEOUT_SECONDS,
            transport_options={
                "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
                "socket_timeout": BROKER_TIMEOUT_SECONDS,
                "max_retries": 0,
            },
        ) as connection:
            for kwargs in calls:
                task.apply_async(kwargs=dict(kwargs), connection=connection, retry=False)
                sent += 1
    except Exception as error:  # noqa: BLE001 - kombu and redis raise several kinds
        with _lock:
            _quiet_until = time.monotonic() + QUIET_AFTER_FAILURE_SECONDS
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        logger.warning(
            "The broker could not be reached (%s): queued mail waits for the sweeper. "
            "No other worker wake-up is tried from this process for %s s.",
            reason,
            QUIET_AFTER_FAILURE_SECONDS,
        )
    return sent


def wakeups_resume() -> None:
    """Forget a past broker failure (for tests, and after a restart of the broker)."""
    global _quiet_until
    with _lock:
        _quiet_until = 0.0
