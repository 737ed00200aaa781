"""Writes to the email log, which is the outbox: queue a message with the work it reports
on (a worker is asked for it once that work commits), mark failed messages due again, send
a test message, and change the SMTP configuration. A failed send never undoes the work."""

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from auditing.services import audit_entry_append
from mailing.addresses import email_address_validate
from mailing.delivery import Delivery, email_deliver_now
from mailing.models import (
    MAX_DELIVERY_ATTEMPTS,
    SMTP_TEST_PURPOSE,
    EmailMessage,
    EmailStatus,
    SmtpConfiguration,
)
from mailing.passwords import smtp_password_reencrypt
from mailing.rendering import email_render
from mailing.tasks import email_deliver, email_sweep
from mailing.wakeup import worker_wake, workers_wake

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
    """Log a message in the outbox, in the caller's transaction; once that commits, ask a
    worker to deliver it. Nothing is sent here: a worker or the sweeper delivers it.

    ``template`` names ``<template>.subject.txt``, ``<template>.txt`` and
    ``<template>.html``, rendered in the email language.
    """
    return email_draft_queue(
        email=email_draft(
            purpose=purpose,
            recipients=recipients,
            template=template,
            context=context,
            about=about,
            subject_object=subject_object,
            attachments=attachments,
        )
    )


def email_draft_queue(*, email: EmailMessage) -> EmailMessage:
    """``email_queue`` for a message already drafted (``email_draft``)."""
    email.save(force_insert=True)
    # robust: a wake-up that fails must never surface as a failure of the committed work.
    transaction.on_commit(lambda: worker_wake(email_deliver, email_id=email.pk), robust=True)
    return email


def email_draft(
    *,
    purpose: str,
    recipients: Sequence[str],
    template: str,
    context: Mapping[str, Any],
    about: str = "",
    subject_object: models.Model | None = None,
    attachments: Iterable[Mapping[str, str]] = (),
) -> EmailMessage:
    """The message ``email_queue`` would log, rendered but not saved: a batch of work
    queues its messages together with ``emails_queue``."""
    addresses = [email_address_validate(address) for address in recipients]
    if not addresses:
        raise ValueError("an email needs at least one recipient")
    rendered = email_render(template=template, context=context)
    return EmailMessage(
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


def emails_queue(*, emails: Sequence[EmailMessage]) -> list[EmailMessage]:
    """Log drafted messages in the outbox in one statement, in the caller's transaction;
    once that commits, ask a worker for each (as ``email_queue`` does for one)."""
    if not emails:
        return []
    queued = EmailMessage.objects.bulk_create(emails)
    ids = [email.pk for email in queued]

    # robust, as in email_queue; one connection to the broker for the batch.
    transaction.on_commit(
        lambda: workers_wake(email_deliver, [{"email_id": email_id} for email_id in ids]),
        robust=True,
    )
    return queued


@dataclass(frozen=True)
class RetrySchedule:
    """What a manual retry did to the selected messages."""

    due_now: int  # failed ones, due again now (those that gave up with a fresh budget)
    queued: int  # never tried yet: already due
    in_flight: int  # "sending": left to the delivery that holds them
    sent: int  # never sent again

    @property
    def will_retry(self) -> int:
        return self.due_now + self.queued


def email_retry_schedule(*, email_ids: Iterable[int], actor: AbstractBaseUser) -> RetrySchedule:
    """The way back for failed messages: each selected unsent one is due now (one that
    gave up gets a fresh budget of attempts), and the sweeper is woken. Nothing is sent
    here, so a slow server never holds the request, and a message already sent, or
    being sent, is never sent again by this."""
    ids = sorted(set(email_ids))
    now = timezone.now()
    with transaction.atomic():
        # Locked: a delivery finishing meanwhile cannot be overwritten, nor overwrite us.
        rows = EmailMessage.objects.filter(pk__in=ids).select_for_update().order_by("pk")
        statuses = dict(rows.values_list("pk", "status"))
        counts = Counter(statuses.values())
        failed = EmailMessage.objects.filter(pk__in=ids, status=EmailStatus.FAILED)
        gave_up = list(failed.filter(next_attempt_at__isnull=True).values_list("pk", flat=True))
        failed.filter(pk__in=gave_up).update(attempt_limit=F("attempts") + MAX_DELIVERY_ATTEMPTS)
        due_now = failed.update(next_attempt_at=now)
        if due_now:
            audit_entry_append(
                action="email.retry_requested",
                actor=actor,
                data={
                    "email_ids": [pk for pk, status in statuses.items() if status == "failed"],
                    "fresh_budget": gave_up,
                },
            )
    schedule = RetrySchedule(
        due_now=due_now,
        queued=counts[EmailStatus.QUEUED],
        in_flight=counts[EmailStatus.SENDING],
        sent=counts[EmailStatus.SENT],
    )
    if schedule.will_retry:
        transaction.on_commit(lambda: worker_wake(email_sweep, trigger="task"), robust=True)
    return schedule


def smtp_test_send(*, recipient: str, requested_by: str) -> EmailMessage:
    """Send a test message now, through the configured server (with the short timeout),
    and log it like any other. The one synchronous send: an administrator asked for it and
    reads the server's answer on the page. Call it outside a transaction.

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
        purpose=SMTP_TEST_PURPOSE,
        about=f"requested by {requested_by}",
        recipients=[address],
        subject=rendered.subject,
        body_text=rendered.body_text,
        body_html=rendered.body_html,
        attempt_limit=1,
    )
    delivery: Delivery = email_deliver_now(email_id=email.pk)
    logger.info("Test email %s to %s: %s", email.pk, address, delivery.outcome)
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


def smtp_password_rotate(*, actor: AbstractBaseUser | None = None) -> bool:
    """Encrypt the stored SMTP password again with the first of SMTP_PASSWORD_KEYS, after a
    new key was put first, so that the old key can then be dropped. False when no password
    is stored. Raises SmtpPasswordUndecryptable when no key reads it (nothing is written)."""
    with transaction.atomic():
        config = SmtpConfiguration.objects.select_for_update().filter(pk=1).first()
        if config is None or not config.password:
            return False
        config.password = smtp_password_reencrypt(config.password)
        config.save(update_fields=["password"])
        audit_entry_append(
            action="smtp_configuration.password_reencrypted", actor=actor, subject=config
        )
    return True
