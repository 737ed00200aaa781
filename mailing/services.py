"""Writes to the email log: queue a message with the work it reports on, deliver it after
commit, and change the SMTP configuration. A failed send never undoes the work."""

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone

from auditing.services import audit_entry_append
from mailing.addresses import email_address_validate
from mailing.delivery import email_send
from mailing.models import EmailMessage, SmtpConfiguration
from mailing.rendering import email_render
from mailing.tasks import email_deliver

logger = logging.getLogger(__name__)

SMTP_TEST_TEMPLATE = "mailing/email/smtp_test"


def email_queue(
    *,
    purpose: str,
    recipients: Sequence[str],
    template: str,
    context: Mapping[str, Any],
    about: str = "",
    subject_object: models.Model | None = None,
    attachments: Iterable[Mapping[str, str]] = (),
) -> EmailMessage:
    """Log a message and deliver it once the surrounding transaction commits.

    ``template`` names ``<template>.subject.txt``, ``<template>.txt`` and
    ``<template>.html``, rendered in the email language.
    """
    addresses = [email_address_validate(address) for address in recipients]
    if not addresses:
        raise ValueError("an email needs at least one recipient")
    rendered = email_render(template=template, context=context)
    email = EmailMessage.objects.create(
        purpose=purpose,
        about=about,
        subject_type=subject_object._meta.label_lower if subject_object is not None else "",
        subject_id=str(subject_object.pk) if subject_object is not None else "",
        recipients=addresses,
        subject=rendered.subject,
        body_text=rendered.body_text,
        body_html=rendered.body_html,
        attachments=[dict(attachment) for attachment in attachments],
    )
    # robust: a delivery fault must never surface as a failure of the committed work.
    transaction.on_commit(lambda: email_deliver_or_schedule_retry(email_id=email.pk), robust=True)
    return email


def email_deliver_or_schedule_retry(*, email_id: int) -> bool:
    """Deliver now; on failure hand the retries to the Celery task."""
    if email_send(email_id=email_id):
        return True
    try:
        email_deliver.apply_async(kwargs={"email_id": email_id}, countdown=60)
    except Exception:  # noqa: BLE001 - a down broker must not fail the operation
        logger.exception("Could not schedule a retry for email %s", email_id)
    return False


def email_retry_now(*, email_ids: Iterable[int]) -> tuple[int, int]:
    """One more delivery of each message not yet sent: (sent, failed). The way back for a
    message whose automatic retries ran out, or never ran (cron without a worker)."""
    sent = failed = 0
    pending = EmailMessage.objects.filter(pk__in=list(email_ids)).exclude(status="sent")
    for email_id in pending.values_list("pk", flat=True):
        if email_send(email_id=email_id):
            sent += 1
        else:
            failed += 1
    return sent, failed


def smtp_test_send(*, recipient: str, requested_by: str) -> EmailMessage:
    """Send a test message now, through the configured server, and log it like any other.

    Returns the logged message: its status and last_error say how the server answered.
    """
    address = email_address_validate(recipient)
    rendered = email_render(
        template=SMTP_TEST_TEMPLATE,
        context={
            "requested_by": requested_by,
            "sent_at": timezone.now(),
            "time_zone": settings.TIME_ZONE,
        },
    )
    email = EmailMessage.objects.create(
        purpose="smtp_test",
        about=f"requested by {requested_by}",
        recipients=[address],
        subject=rendered.subject,
        body_text=rendered.body_text,
        body_html=rendered.body_html,
    )
    email_send(email_id=email.pk)
    email.refresh_from_db()
    return email


def smtp_configuration_save(
    *, config: SmtpConfiguration, changed_fields: Iterable[str], actor: AbstractBaseUser
) -> SmtpConfiguration:
    """Save an administrator's edit and audit which fields changed, never their values:
    the password must not leak into the trail."""
    changed = sorted(set(changed_fields))
    with transaction.atomic():
        config.save()
        if changed:
            audit_entry_append(
                action="smtp_configuration.changed",
                actor=actor,
                subject=config,
                data={"changed_fields": changed},
            )
    return config
