"""One delivery attempt of a logged message, recorded whatever the outcome."""

import logging

from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import DatabaseError, transaction
from django.utils import timezone

from mailing.models import EmailAttempt, EmailMessage, EmailStatus

logger = logging.getLogger(__name__)

MAX_DELIVERY_ATTEMPTS = 6


def _message_for(email: EmailMessage) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email.body_text,
        to=email.recipients,
        connection=get_connection(),
    )
    if email.body_html:
        message.attach_alternative(email.body_html, "text/html")
    for attachment in email.attachments:
        message.attach(attachment["filename"], attachment["content"], attachment["mimetype"])
    return message


def email_send(*, email_id: int) -> bool:
    """Try one delivery. True once the mail server has accepted the message.

    The row lock makes concurrent deliveries of one message wait, then see it sent.
    """
    with transaction.atomic():
        email = EmailMessage.objects.select_for_update().get(pk=email_id)
        if email.status == EmailStatus.SENT:
            return True
        now = timezone.now()
        try:
            _message_for(email).send()
        except DatabaseError:
            raise  # the transaction is broken: nothing can be recorded in it
        except Exception as error:  # noqa: BLE001 - every delivery fault is recorded, none lost
            email.status = EmailStatus.FAILED
            email.last_error = f"{type(error).__name__}: {error}"
            logger.warning("Email %s (%s) failed: %s", email.pk, email.purpose, email.last_error)
        else:
            email.status = EmailStatus.SENT
            email.sent_at = now
            email.last_error = ""
        email.attempts += 1
        email.last_attempt_at = now
        email.save(update_fields=["status", "sent_at", "last_error", "attempts", "last_attempt_at"])
        EmailAttempt.objects.create(
            email=email,
            attempted_at=now,
            succeeded=email.status == EmailStatus.SENT,
            error=email.last_error,
        )
        return email.status == EmailStatus.SENT
