"""One lock per operation, taken by the Celery task and the synchronous command alike."""

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)


class OperationAlreadyRunning(Exception):
    pass


def _lock_key(name: str) -> int:
    digest = hashlib.sha256(f"cash-office operation {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def operation_lock(name: str) -> Iterator[None]:
    """Hold a PostgreSQL session-level advisory lock for the whole run, across its many
    short transactions; a second run fails fast instead of waiting.

    The demo's SQLite has no such lock; it runs one process at a time.
    """
    if connection.vendor != "postgresql":
        yield
        return
    key = _lock_key(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = cursor.fetchone()[0]
    if not acquired:
        raise OperationAlreadyRunning(name)
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        except DatabaseError:
            # A broken connection releases its session locks as it closes.
            logger.warning("Could not release the %s lock; closing the connection", name)
            connection.close()
