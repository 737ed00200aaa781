"""Outgoing email: every message is logged in the database, goes out after commit, and
is retried on failure. A failed send never undoes the work it reports on."""

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.validators import validate_email
from django.db import DatabaseError, models, transaction
from django.db.models import Count
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy

from reporting.models import EmailAttempt, EmailMessage, EmailStatus

logger = logging.getLogger(__name__)

MAX_DELIVERY_ATTEMPTS = 6


class InvalidEmailAddress(ValueError):
    pass


def email_address_validate(address: str) -> str:
    """Return the address stripped, or raise InvalidEmailAddress with a readable message."""
    cleaned = (address or "").strip()
    if any(char in cleaned for char in "\r\n"):
        raise InvalidEmailAddress("an email address cannot contain a line break")
    try:
        validate_email(cleaned)
    except ValidationError as error:
        raise InvalidEmailAddress(f"{cleaned!r} is not a valid email address") from error
    return cleaned


def staff_email_addresses() -> list[str]:
    """Administrators who receive reports and alerts: active staff with an address."""
    addresses = (
        get_user_model()
        .objects.filter(is_active=True, is_staff=True)
        .exclude(email="")
        .order_by("email")
        .values_list("email", flat=True)
        .distinct()
    )
    return list(addresses)


def email_language() -> str:
    """The language of every email and notification: settings.LANGUAGE_CODE when it is one
    of LANGUAGES, else English, the source language, so that a text never mixes two
    languages (Django's own catalogue would translate only the month names)."""
    try:
        return translation.get_supported_language_variant(settings.LANGUAGE_CODE)
    except LookupError:
        return "en"


def email_render(
    *, subject: str | Promise, template: str, context: Mapping[str, Any]
) -> tuple[str, str, str]:
    """Subject, text and HTML bodies in the email language, whatever language the caller
    has active (an admin request may run in the browser's language)."""
    with translation.override(email_language()):
        return (
            str(subject),
            render_to_string(f"{template}.txt", context),
            render_to_string(f"{template}.html", context),
        )


def email_queue(
    *,
    purpose: str,
    recipients: Sequence[str],
    subject: str | Promise,
    template: str,
    context: Mapping[str, Any],
    about: str = "",
    subject_object: models.Model | None = None,
    attachments: Iterable[Mapping[str, str]] = (),
) -> EmailMessage:
    """Log a message and deliver it once the surrounding transaction commits.

    ``template`` names ``<template>.txt`` and ``<template>.html`` under templates/.
    ``subject`` may be lazy: it is translated with the bodies, in the email language.
    """
    subject, body_text, body_html = email_render(
        subject=subject, template=template, context=context
    )
    if any(char in subject for char in "\r\n"):
        raise ValueError("an email subject cannot contain a line break")
    addresses = [email_address_validate(address) for address in recipients]
    if not addresses:
        raise ValueError("an email needs at least one recipient")
    email = EmailMessage.objects.create(
        purpose=purpose,
        about=about,
        subject_type=subject_object._meta.label_lower if subject_object is not None else "",
        subject_id=str(subject_object.pk) if subject_object is not None else "",
        recipients=addresses,
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        attachments=[dict(attachment) for attachment in attachments],
    )
    # robust: a delivery fault must never surface as a failure of the committed work.
    transaction.on_commit(lambda: email_deliver_or_schedule_retry(email_id=email.pk), robust=True)
    return email


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


def email_deliver_or_schedule_retry(*, email_id: int) -> bool:
    """Deliver now; on failure hand the retries to the Celery task."""
    if email_send(email_id=email_id):
        return True
    from tasks.tasks import email_deliver

    try:
        email_deliver.apply_async(kwargs={"email_id": email_id}, countdown=60)
    except Exception:  # noqa: BLE001 - a down broker must not fail the operation
        logger.exception("Could not schedule a retry for email %s", email_id)
    return False


def email_outcomes(email_ids: Iterable[int]) -> dict[str, int]:
    """How the given messages fared: {"sent": n, "failed": n, "queued": n}."""
    counts = dict.fromkeys(EmailStatus.values, 0)
    rows = (
        EmailMessage.objects.filter(pk__in=list(email_ids))
        .values("status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


def smtp_test_send(*, recipient: str, requested_by: str) -> EmailMessage:
    """Send a test message now, through the configured server, and log it like any other.

    Returns the logged message: its status and last_error say how the server answered.
    """
    address = email_address_validate(recipient)
    sent_at = timezone.now()
    subject, body_text, body_html = email_render(
        subject=format_lazy(
            gettext_lazy("Cash office: test email — {when}"),
            when=f"{timezone.localtime(sent_at):%Y-%m-%d %H:%M}",
        ),
        template="reporting/email/smtp_test",
        context={"requested_by": requested_by, "sent_at": sent_at, "time_zone": settings.TIME_ZONE},
    )
    email = EmailMessage.objects.create(
        purpose="smtp_test",
        about=f"requested by {requested_by}",
        recipients=[address],
        subject=subject,
        body_text=body_text,
        body_html=body_html,
    )
    email_send(email_id=email.pk)
    email.refresh_from_db()
    return email
