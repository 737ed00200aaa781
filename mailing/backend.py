"""An email backend that sends through the SMTP configuration edited in the admin, or
through the environment's backend when that configuration is off."""

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend


class ConfiguredEmailBackend(BaseEmailBackend):
    def __init__(self, fail_silently: bool = False, **kwargs) -> None:
        super().__init__(fail_silently=fail_silently)
        from mailing.models import SmtpConfiguration
        from mailing.passwords import smtp_password_decrypt

        self.config = SmtpConfiguration.load()
        if self.config.in_use:
            self.backend = get_connection(
                "django.core.mail.backends.smtp.EmailBackend",
                fail_silently=fail_silently,
                host=self.config.host,
                port=self.config.port,
                username=self.config.username,
                # Raises SmtpPasswordUndecryptable (one sentence) under a wrong key: the
                # delivery records it as the message's error, where the operator looks.
                password=smtp_password_decrypt(self.config.password),
                use_tls=self.config.use_tls,
                use_ssl=self.config.use_ssl,
                # Capped: a hanging server must not hold a delivery for the admin's minutes.
                timeout=min(self.config.timeout, settings.EMAIL_TIMEOUT),
            )
        else:
            self.backend = get_connection(
                settings.EMAIL_FALLBACK_BACKEND, fail_silently=fail_silently, **kwargs
            )

    def open(self):
        return self.backend.open()

    def close(self) -> None:
        self.backend.close()

    def send_messages(self, email_messages) -> int:
        if self.config.in_use:
            for message in email_messages:
                if self.config.from_email and message.from_email == settings.DEFAULT_FROM_EMAIL:
                    message.from_email = self.config.from_email
                if self.config.reply_to and not message.reply_to:
                    message.reply_to = [self.config.reply_to]
        return self.backend.send_messages(email_messages)
