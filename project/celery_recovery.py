"""How a worker rides out a broker or a database that goes away, where Celery's own parts
fall short. Settings name these classes (CELERY_WORKER_CONSUMER, CELERY_RESULT_BACKEND);
tests/integration/ proves each against a real worker, a real Redis and a cut database.
"""

from celery import states
from celery.exceptions import BackendStoreError, Reject
from celery.utils.threads import bound_open_broker_sockets
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.consumer.consumer import COLLECT_SOCKET_TIMEOUT
from django.db import InterfaceError, OperationalError, connection
from django_celery_results.backends import DatabaseBackend as CeleryResultsDatabaseBackend


class Consumer(CeleryConsumer):
    """Celery's consumer, surviving a broker restart while a task runs.

    When the broker connection is lost, Celery 5.7.0 collects the connection (which
    detaches its transport) and then closes it (celery PR #10242). With a task in flight
    and a free slot polling for more, the close reaches the channel that holds the task's
    unacknowledged message, which tries to restore it through the transport that is gone:
    ``AttributeError: 'NoneType' object has no attribute 'hostname'`` in kombu's
    ``restore_unacked_once`` (the crash of kombu #582 and #970, on a new path; see also
    celery #10205). It is not a connection error, so the worker exits for good. No release
    fixes it yet (celery 5.7.0, kombu 5.7.0); celery 5.6.3 does not have it but lacks the
    5.7.0 reconnect fixes (a free prefork process stalling behind a running task after a
    reconnect, #10346), so we keep 5.7.0 and skip the second close.

    Here the connection is collected first, and Celery's own clean-up gets an unopened
    copy, with nothing left to close. The running task's message stays where Redis keeps
    unacknowledged messages; the task acknowledges it when it finishes, over the new
    connection. tests/integration/test_broker_restart.py fails without this class.
    """

    def on_connection_error_after_connected(self, exc):
        broken = self.connection
        if broken is not None:
            bound_open_broker_sockets(broken, COLLECT_SOCKET_TIMEOUT)
            try:
                broken.collect(socket_timeout=COLLECT_SOCKET_TIMEOUT)
            except Exception:  # noqa: BLE001, S110 - Celery ignores it too: the socket is gone
                pass
            self.connection = broken.clone()
        super().on_connection_error_after_connected(exc)


class DatabaseBackend(CeleryResultsDatabaseBackend):
    """django-celery-results' database backend, waiting out a database that went away.

    Celery stores a task's state (STARTED, RETRY, SUCCESS, FAILURE) outside the task's
    body. When that write fails, Celery acknowledges the message anyway: the run is
    dropped and its result stays STARTED for ever. With ``result_backend_always_retry``
    Celery retries the write, but only for errors the backend calls safe, and
    django-celery-results names InterfaceError only (#119, #290); a database that is
    restarting or unreachable raises OperationalError. Both are safe here: the write is
    an upsert by task id, and closing the connection makes Django open a fresh one.

    When the retries run out (``result_backend_max_retries``) the database is still away.
    A run whose RETRY could not be written is carried on by the retry already sent to the
    broker. Any other state sends the message back to the queue (Reject with requeue) so
    that a worker runs it again once the database is back, instead of dropping it; every
    operation takes up where it stopped, so a second run repeats nothing.
    """

    def exception_safe_to_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, OperationalError | InterfaceError):
            connection.close()
            return True
        return super().exception_safe_to_retry(exc)

    def store_result(self, task_id, result, state, traceback=None, request=None, **kwargs):
        try:
            return super().store_result(task_id, result, state, traceback, request, **kwargs)
        except BackendStoreError as error:
            # Only a worker's task can go back to the queue; elsewhere (the worker's main
            # process recording a lost child) the error stays visible as it is.
            if state == states.RETRY or self.app.current_worker_task is None:
                raise
            raise Reject(error, requeue=True) from error
