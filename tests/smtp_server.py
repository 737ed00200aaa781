"""A real SMTP server for the tests (aiosmtpd in a thread) that keeps what it received."""

import socket
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# The From and Reply-To set in the admin's SMTP configuration by the tests' fixtures.
SMTP_FROM = "Cash office <office@example.com>"
SMTP_FROM_ADDRESS = "office@example.com"
SMTP_REPLY_TO = "help@example.com"

HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on right now: the kernel picks it, we release it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the server took it: the SMTP envelope and the parsed content."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class RecordingHandler:
    received: list[ReceivedMail] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd hook
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        self.received.append(
            ReceivedMail(
                mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos), message=message
            )
        )
        return "250 Message accepted for delivery"


@dataclass(frozen=True)
class PasswordAuthenticator:
    """Accepts one username and password; records every login attempted."""

    username: str
    password: str
    logins: list[str] = field(default_factory=list)

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        self.logins.append(auth_data.login.decode())
        accepted = (auth_data.login.decode(), auth_data.password.decode()) == (
            self.username,
            self.password,
        )
        return AuthResult(success=accepted, handled=False)


class SmtpServer:
    """``start()`` listens on ``port`` (a free one by default); ``stop()`` closes it, so a
    client then gets "connection refused". ``received`` keeps every accepted message."""

    def __init__(self, *, port: int | None = None, login: tuple[str, str] | None = None) -> None:
        self.host = HOST
        self.port = port or free_port()
        self.handler = RecordingHandler()
        self.authenticator = PasswordAuthenticator(*login) if login else None
        self._controller: Controller | None = None

    @property
    def received(self) -> list[ReceivedMail]:
        return self.handler.received

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> "SmtpServer":
        options = {}
        if self.authenticator is not None:
            # Plain-text AUTH over a local socket: no certificate to manage in the tests.
            options = {
                "authenticator": self.authenticator,
                "auth_required": True,
                "auth_require_tls": False,
            }
        controller = Controller(
            self.handler,
            hostname=self.host,
            port=self.port,
            server_hostname="smtp.test",  # spares a slow reverse DNS lookup
            ready_timeout=5,
            **options,
        )
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
