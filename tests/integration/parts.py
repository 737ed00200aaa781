"""Real parts for fault tests, each started and ended by the test that uses it: a private
Redis that can be killed and started again on the same port, a `celery worker` subprocess
on the test database, a TCP proxy in front of PostgreSQL that can be cut and restored, and
a server that accepts connections and never answers.

Every process is ended by its own id (its process group, for the worker's pool children),
even when the test fails; the machine's shared PostgreSQL and Redis are never touched.
"""

import contextlib
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from django.db import connection
from kombu.exceptions import OperationalError as KombuOperationalError

from tests.smtp_server import free_port

PROJECT_DIR = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
WAIT_SECONDS = 30


def wait_until(condition: Callable[[], Any], *, timeout: float = WAIT_SECONDS, what: str) -> Any:
    """Poll ``condition`` until it returns something true; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


class PrivateRedis:
    """A redis-server of our own on a free port. ``persistent`` keeps an append-only file
    (synced on every write) in a temporary folder, like the compose stack's Redis, so a
    restart keeps the queues and the unacknowledged messages."""

    def __init__(self, *, persistent: bool = False) -> None:
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self.persistent = persistent
        self.folder = tempfile.mkdtemp(prefix="redis-")
        self.process: subprocess.Popen | None = None

    def start(self) -> "PrivateRedis":
        argv = [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
                "--bind", HOST, "--save", "", "--dir", self.folder]  # fmt: skip
        argv += ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else [
            "--appendonly", "no"]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # The port was free a moment ago; make sure the server answering is ours.
        wait_until(self._answers_as_ours, timeout=10, what=f"redis-server on port {self.port}")
        return self

    def _answers_as_ours(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"redis-server on port {self.port} exited")
        try:
            info = self.client().info("server")
        except redis.RedisError:
            return False
        if info["process_id"] != self.process.pid:
            raise AssertionError(f"another server answers on port {self.port}")
        return True

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self, *, down_for: float = 1.0) -> None:
        self.kill()
        time.sleep(down_for)
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=2, socket_connect_timeout=1)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def private_redis(*, persistent: bool = False) -> Iterator[PrivateRedis]:
    server = PrivateRedis(persistent=persistent)
    try:
        yield server.start()
    finally:
        server.stop()


def client_app(broker_url: str) -> Celery:
    """A Celery client on ``broker_url`` only: sends tasks by name and pings workers,
    without touching the project's app (other tests use it on the suite's broker)."""
    return Celery(f"client-{uuid.uuid4().hex[:6]}", broker=broker_url, set_as_current=False)


def database_url(*, host: str | None = None, port: int | None = None, name: str) -> str:
    """The test database's URL, optionally through another host and port, with an
    application_name so that the test can find this worker's sessions."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    host = host or db["HOST"] or HOST
    port = port or db["PORT"] or 5432
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}?application_name={name}"


class Worker:
    """`celery -A project worker` in its own process group, logging to a file."""

    def __init__(self, *, broker_url: str, database_url: str, concurrency: int = 2) -> None:
        self.node = f"fault-{uuid.uuid4().hex[:8]}@localhost"
        self.log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            "w+", prefix="worker-", suffix=".log", delete=False
        )
        # Its own checkpoint folder: the test databases are throwaway, their heads too.
        self.checkpoint_dir = tempfile.mkdtemp(prefix="worker-checkpoints-")
        # The stack's pool: prefork with two processes (see the Procfile).
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "celery", "-A", "project", "worker", "--pool", "prefork",
             "--concurrency", str(concurrency), "--loglevel", "INFO", "--hostname", self.node,
             "--without-gossip", "--without-mingle"],
            cwd=PROJECT_DIR,
            env={**os.environ, "DJANGO_ENV": "test", "DATABASE_URL": database_url,
                 "REDIS_URL": broker_url, "WATCHDOG_INTERVAL_SECONDS": "0",
                 "AUDIT_CHECKPOINT_SINKS": f"file://{self.checkpoint_dir}"},
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the pool's children end with it
        )  # fmt: skip
        self.client = client_app(broker_url)

    def alive(self) -> bool:
        return self.process.poll() is None

    def answers(self) -> bool:
        if not self.alive() or "Unrecoverable error" in self.log():
            # Exited, or on its way out (a warm shutdown waits for the running task).
            raise AssertionError(f"the worker is stopping ({self.process.poll()}):\n{self.log()}")
        try:
            return bool(self.client.control.ping(destination=[self.node], timeout=1))
        except (redis.RedisError, KombuOperationalError, OSError):
            return False  # our own client's connection to a restarted broker: ask again

    def wait_ready(self) -> "Worker":
        wait_until(self.answers, what="the worker to answer a ping")
        return self

    def send(self, task_name: str, **kwargs: Any) -> str:
        return self.client.send_task(task_name, kwargs=kwargs).id

    def log(self) -> str:
        return Path(self.log_file.name).read_text()

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.client.close()
        self.log_file.close()
        os.unlink(self.log_file.name)
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)


@contextlib.contextmanager
def celery_worker(**kwargs: Any) -> Iterator[Worker]:
    worker = Worker(**kwargs)
    try:
        yield worker.wait_ready()
    finally:
        worker.stop()


class TcpProxy:
    """Forwards a free local port to ``upstream``. ``cut()`` closes the listener and every
    forwarded connection (clients see the server go away, new connections are refused);
    ``restore()`` listens again on the same port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.selector = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.pairs: dict[socket.socket, socket.socket] = {}
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> "TcpProxy":
        self.restore()
        self.thread.start()
        return self

    def restore(self) -> None:
        with self.lock:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, self.port))
            listener.listen(64)
            listener.setblocking(False)
            self.listener = listener
            self.selector.register(listener, selectors.EVENT_READ)

    def cut(self) -> None:
        with self.lock:
            if self.listener is not None:
                self.selector.unregister(self.listener)
                self.listener.close()
                self.listener = None
            for sock in list(self.pairs):
                self._close(sock)

    def stop(self) -> None:
        self.cut()
        self.running = False
        self.thread.join(timeout=5)
        self.selector.close()

    def _close(self, sock: socket.socket) -> None:
        for end in (sock, self.pairs.pop(sock, None)):
            if end is None:
                continue
            self.pairs.pop(end, None)
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(end)
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def _serve(self) -> None:
        while self.running:
            events = self.selector.select(timeout=0.1)
            with self.lock:
                for key, _ in events:
                    sock = key.fileobj
                    if sock is self.listener:
                        self._accept()
                    elif sock in self.pairs:
                        self._forward(sock)

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except BlockingIOError:
            return
        upstream = socket.create_connection(self.upstream, timeout=5)
        for end in (client, upstream):
            end.setblocking(True)
        self.pairs[client], self.pairs[upstream] = upstream, client
        self.selector.register(client, selectors.EVENT_READ)
        self.selector.register(upstream, selectors.EVENT_READ)

    def _forward(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
            if data:
                self.pairs[sock].sendall(data)
                return
        except OSError:
            pass
        self._close(sock)


@contextlib.contextmanager
def tcp_proxy(upstream: tuple[str, int]) -> Iterator[TcpProxy]:
    proxy = TcpProxy(upstream)
    try:
        yield proxy.start()
    finally:
        proxy.stop()


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A server on a free port that accepts every connection and never writes a byte:
    a hung broker. Yields its port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((HOST, 0))
    listener.listen(64)
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    running = True

    def accept() -> None:
        while running:
            with contextlib.suppress(TimeoutError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        running = False
        thread.join(timeout=5)
        for sock in accepted:
            sock.close()
        listener.close()
