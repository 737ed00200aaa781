"""Beat's scheduler: django-celery-beat's DatabaseScheduler, plus a heartbeat and a record
of every due run it could not send.

The heartbeat is written to the database, not to Redis: it must prove that beat ticks
independently of the broker (a Redis outage is reported by its own check, and beat keeps
ticking through it), the watchdog and /health/ready/ already read the database, and beat
already talks to it every few seconds. At most one write every 30 s.

When the broker is down, celery logs "Couldn't apply scheduled task" and moves the
schedule on as if the run had been sent. The failure is recorded on the operation's job
health so that the watchdog catches the run up once the broker is back
(tasks/watchdog.py), instead of the run vanishing until the next slot.
"""

import logging
import time
from typing import Any

from django_celery_beat.schedulers import DatabaseScheduler

from tasks.health.services import heartbeat_record, job_dispatch_failed

logger = logging.getLogger(__name__)

BEAT = "beat"
HEARTBEAT_EVERY_SECONDS = 30


class HeartbeatDatabaseScheduler(DatabaseScheduler):
    _last_heartbeat: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Save a sent entry's last_run_at at once, not up to 3 minutes later: the watchdog
        # reads it to tell a run beat just sent (let it come) from one it missed.
        kwargs.setdefault("sync_every_tasks", 1)
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        delay = super().tick(*args, **kwargs)
        # After the tick: a scheduler loop that raises or hangs never proves it lives.
        self.heartbeat()
        return delay

    def heartbeat(self) -> None:
        now = time.monotonic()
        if self._last_heartbeat is not None and now - self._last_heartbeat < (
            HEARTBEAT_EVERY_SECONDS
        ):
            return
        # A failed write (database down) is logged and tried again 30 s later, not on
        # every tick.
        self._last_heartbeat = now
        heartbeat_record(name=BEAT)

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        try:
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        except Exception as error:
            job_dispatch_failed(name=entry.name, error=error)
            raise  # celery logs it ("Message Error") and beat goes on
