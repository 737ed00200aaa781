from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reporting.models import SmtpConfiguration
from tests.smtp_server import SmtpServer

SMTP_FROM = "Cash office <office@example.com>"
SMTP_FROM_ADDRESS = "office@example.com"
SMTP_REPLY_TO = "help@example.com"


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
    settings.EMAIL_BACKEND = "reporting.mail_backend.ConfiguredEmailBackend"


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
        for name, value in fields.items():
            setattr(config, name, value)
        config.save()
        return config

    return configure


@pytest.fixture
def smtp_configuration(smtp_configure, smtp_server) -> SmtpConfiguration:
    return smtp_configure(smtp_server)
