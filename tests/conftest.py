from collections.abc import Callable, Iterator
from typing import Any

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.utils import translation

from mailing.models import SmtpConfiguration
from mailing.passwords import smtp_password_encrypt
from tests.commands import CommandRun, command_run
from tests.mailing.outbox import outbox_deliver_queued
from tests.smtp_server import SMTP_FROM, SMTP_REPLY_TO, SmtpServer


@pytest.fixture(autouse=True)
def _let_flush_truncate_audit_table(request):
    """Transactional tests end with Django's flush, which TRUNCATEs every table; the audit
    table's append-only trigger refuses that. Skip user triggers for that flush only:
    Django closes the connection right after, so the setting dies with it."""
    yield
    marker = request.node.get_closest_marker("django_db")
    if marker and marker.kwargs.get("transaction") and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")


@pytest.fixture(autouse=True)
def _language_reset():
    """LocaleMiddleware activates a request's language (Accept-Language: fr) in the thread
    and nothing deactivates it: the next test would read French messages and separators."""
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _cache_cleared():
    """The dashboard keeps its chart for five minutes in the process's cache: a chart one
    test drew on its data must not be another test's."""
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def checkpoint_dir(settings, tmp_path_factory):
    """Each test keeps its checkpoints in a folder of its own: the test databases are
    rolled back or flushed, and a head signed by one test is no other test's chain."""
    folder = tmp_path_factory.mktemp("checkpoints")
    settings.AUDIT_CHECKPOINT_SINKS = [f"file://{folder}"]
    return folder


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "frozen_at(when, tick=False): the `clock` fixture sets time to this aware datetime"
        " (stopped, unless tick=True)",
    )


@pytest.fixture
def clock(request) -> Iterator[time_machine.Traveller]:
    """Time stopped at the test's (or module's) ``frozen_at`` marker; ``clock.shift()`` and
    ``clock.move_to()`` move it."""
    marker = request.node.get_closest_marker("frozen_at")
    if marker is None:
        raise pytest.UsageError("the clock fixture needs @pytest.mark.frozen_at(datetime)")
    with time_machine.travel(marker.args[0], tick=marker.kwargs.get("tick", False)) as traveller:
        yield traveller


@pytest.fixture
def run_command(django_capture_on_commit_callbacks) -> Callable[..., CommandRun]:
    """``command_run`` inside a test transaction: the command's on-commit work runs too,
    as it would after a real commit, and then a worker delivers the mail it queued."""

    def run(name: str, *args: str, expect_exit: int | None = 0) -> CommandRun:
        with django_capture_on_commit_callbacks(execute=True):
            result = command_run(name, *args, expect_exit=expect_exit)
        outbox_deliver_queued()
        return result

    return run


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser(
        username="admin", email="admin@example.com", password="pw"
    )


@pytest.fixture
def config(db):
    from payments.models import SystemConfiguration

    return SystemConfiguration.load()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server listening on a free local port."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_server_down() -> Iterator[SmtpServer]:
    """A server on a free port that is not listening yet: connections are refused until
    the test calls ``start()``."""
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def project_email_backend(settings) -> None:
    """pytest-django forces the locmem backend; put the project's backend back, the one
    that sends through the admin's SMTP configuration."""
    settings.EMAIL_BACKEND = "mailing.backend.ConfiguredEmailBackend"


@pytest.fixture
def smtp_configure(db, project_email_backend) -> Callable[..., SmtpConfiguration]:
    """Save the admin's SMTP configuration pointing at ``server``, and send through it."""

    def configure(server: SmtpServer, **overrides: Any) -> SmtpConfiguration:
        config = SmtpConfiguration.load()
        fields = {
            "enabled": True,
            "host": server.host,
            "port": server.port,
            "use_tls": False,
            "use_ssl": False,
            "timeout": 5,
            "from_email": SMTP_FROM,
            "reply_to": SMTP_REPLY_TO,
        } | overrides
        # A password is given in clear, and stored as the admin stores it: encrypted.
        if "password" in fields:
            fields["password"] = smtp_password_encrypt(fields["password"])
        for name, value in fields.items():
            setattr(config, name, value)
        config.save()
        return config

    return configure


@pytest.fixture
def smtp_configuration(smtp_configure, smtp_server) -> SmtpConfiguration:
    return smtp_configure(smtp_server)
