"""Delivering the outbox, one message at a time, whoever runs it (a worker, the sweeper
task, the cron command), any number of them at once.

A delivery:

1. claims the message in a short transaction: ``SELECT ... FOR UPDATE SKIP LOCKED``, only
   if it is due; marks it "sending" with a fresh attempt id, opens its EmailAttempt,
   commits. A message another delivery holds is skipped, never waited for.
2. talks SMTP outside any transaction (and outside every operation's lock: only workers,
   the sweeper and the cron command deliver), with the message's stored Message-ID and a
   short timeout (settings.EMAIL_TIMEOUT caps the admin's).
3. records the server's answer only if the message still carries its attempt id: sent; or
   failed with the next try 2, 4, 8, 16, 32 minutes later; or, once its attempts reach its
   limit, failed for good ("gave up": no next attempt, counted as backlog).

A message found "sending" belongs to a delivery that died between 1 and 3 (kill -9, a time
limit, a lost database). The server may have accepted it before the death: it is neither
resent at once nor forgotten. Once EMAIL_SENDING_GRACE_SECONDS have passed since the claim
(far longer than any live delivery runs), it is claimed again and resent with the same
Message-ID, so a receiver that got the first copy can drop the second. That window is the
one place delivery is at-least-once instead of exactly-once (README, "Email").
"""

import datetime as dt
import enum
import logging
import smtplib
import time
import uuid
from dataclasses import dataclass

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from mailing.models import (
    MAX_DELIVERY_ATTEMPTS,
    EmailAttempt,
    EmailMessage,
    EmailStatus,
    OutboxSweep,
)

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_DELIVERY_ATTEMPTS",
    "Delivery",
    "DeliveryOutcome",
    "SweepResult",
    "email_deliver_now",
    "outbox_sweep",
]

# A worker is asked to deliver each message as its work commits; the sweeper takes a
# queued message only after the worker has had this long (it catches what none got).
QUEUED_HANDOVER = dt.timedelta(minutes=1)
# A sweep starts no new delivery after this long, so that it ends before the next one.
SWEEP_BUDGET_SECONDS = 40
# The server's answers that concern one message only: the next message may well go.
MESSAGE_REFUSED = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError)
LOST_ATTEMPT = (
    "No answer recorded: this delivery stopped mid-way (worker killed, time limit or "
    "database lost). The server may have accepted the message; it is resent with the "
    "same Message-ID."
)


class DeliveryOutcome(enum.StrEnum):
    SENT = "sent"
    FAILED = "failed"  # the sweeper retries it at next_attempt_at
    GAVE_UP = "gave_up"  # failed with no next attempt: a person has to look
    NOT_DUE = "not_due"  # already sent, held by another delivery, or not due yet


@dataclass(frozen=True)
class Delivery:
    email_id: int
    outcome: DeliveryOutcome
    attempt: int = 0
    error: str = ""
    next_attempt_at: dt.datetime | None = None
    # The server could not be reached at all: the next message would fail the same way.
    server_unavailable: bool = False


@dataclass(frozen=True)
class SweepResult:
    deliveries: tuple[Delivery, ...]
    # Due messages still waiting when the run ended, and why it left them, if it did.
    left: int = 0
    stopped_early: str = ""

    def count(self, outcome: DeliveryOutcome) -> int:
        return sum(1 for delivery in self.deliveries if delivery.outcome == outcome)

    @property
    def sent(self) -> int:
        return self.count(DeliveryOutcome.SENT)

    @property
    def failed(self) -> int:
        return self.count(DeliveryOutcome.FAILED) + self.count(DeliveryOutcome.GAVE_UP)


def sending_grace() -> dt.timedelta:
    return dt.timedelta(seconds=settings.EMAIL_SENDING_GRACE_SECONDS)


def retry_delay(attempt_in_budget: int) -> dt.timedelta:
    """2, 4, 8, 16, 32 minutes after the 1st to 5th failed attempt of a budget."""
    return dt.timedelta(minutes=2**attempt_in_budget)


def due_filter(*, now: dt.datetime, handover: bool) -> Q:
    """Messages a delivery may claim now. ``handover``: the sweeper leaves fresh queued
    messages to the worker that was asked for them."""
    queued = Q(status=EmailStatus.QUEUED)
    if handover:
        queued &= Q(created_at__lte=now - QUEUED_HANDOVER)
    return (
        queued
        | Q(status=EmailStatus.FAILED, next_attempt_at__lte=now)
        | Q(status=EmailStatus.SENDING, claimed_at__lte=now - sending_grace())
    )


def email_deliver_now(*, email_id: int) -> Delivery:
    """A worker's delivery of one message, if it is due (a queued one at once)."""
    candidates = EmailMessage.objects.filter(pk=email_id)
    delivery = _deliver_next(lambda now: candidates.filter(due_filter(now=now, handover=False)))
    return delivery or Delivery(email_id=email_id, outcome=DeliveryOutcome.NOT_DUE)


def outbox_sweep(
    *, limit: int | None = None, trigger: str, workers_run: bool = True
) -> SweepResult:
    """Deliver due messages, oldest first: queued ones no worker took within a minute,
    failed ones whose retry time has come, "sending" ones whose delivery died (after the
    grace period). At most ``limit`` (settings.EMAIL_SWEEP_LIMIT) and about 40 seconds of
    new deliveries per run; it stops at the first server that cannot be reached, leaving
    the rest due for the next run. Records the run for the health page.

    ``workers_run=False`` (an install with no worker at all, such as the demo): fresh
    queued messages are due at once, since no worker will take them."""
    limit = settings.EMAIL_SWEEP_LIMIT if limit is None else limit
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a whole number of at least 1 (got {limit!r:.40}).")
    started = time.monotonic()
    deliveries: list[Delivery] = []
    stopped_early = ""
    while True:
        if len(deliveries) >= limit:
            stopped_early = f"the limit of {limit} message(s) per run was reached"
            break
        if time.monotonic() - started > SWEEP_BUDGET_SECONDS:
            stopped_early = f"the run's {SWEEP_BUDGET_SECONDS} s were used"
            break
        delivery = _deliver_next(
            lambda now: EmailMessage.objects.filter(due_filter(now=now, handover=workers_run))
        )
        if delivery is None:
            break
        deliveries.append(delivery)
        if delivery.server_unavailable:
            stopped_early = f"the mail server could not be reached ({delivery.error})"
            break
    now = timezone.now()
    left = EmailMessage.objects.filter(due_filter(now=now, handover=workers_run)).count()
    result = SweepResult(
        deliveries=tuple(deliveries), left=left, stopped_early=stopped_early if left else ""
    )
    OutboxSweep.objects.update_or_create(
        pk=1,
        defaults={
            "finished_at": now,
            "trigger": trigger,
            "sent": result.sent,
            "failed": result.failed,
            "stopped_early": result.stopped_early,
        },
    )
    return result


# --- One delivery: claim, send, record --------------------------------------------------


def _deliver_next(candidates) -> Delivery | None:
    """Claim the oldest of ``candidates(now)``, send it, record the answer. None when
    there was nothing to claim."""
    claimed = _claim(candidates)
    if claimed is None or isinstance(claimed, Delivery):
        return claimed
    error = _send(claimed)
    delivery = _record(claimed, error=error)
    if isinstance(error, SoftTimeLimitExceeded):
        raise error  # recorded; the task itself must still end as stopped by its limit
    return delivery


def _claim(candidates) -> EmailMessage | Delivery | None:
    now = timezone.now()
    with transaction.atomic():
        email = (
            candidates(now).select_for_update(skip_locked=True).order_by("created_at", "pk").first()
        )
        if email is None:
            return None
        if email.status == EmailStatus.SENDING:
            lost = _lost_attempt_close(email, now=now)
            if lost is not None:
                return lost
        email.status = EmailStatus.SENDING
        email.attempt_id = uuid.uuid4()
        email.claimed_at = now
        email.next_attempt_at = None
        email.attempts += 1
        email.last_attempt_at = now
        email.save(
            update_fields=[
                "status",
                "attempt_id",
                "claimed_at",
                "next_attempt_at",
                "attempts",
                "last_attempt_at",
            ]
        )
        EmailAttempt.objects.create(email=email, attempt_id=email.attempt_id, attempted_at=now)
    return email


def _lost_attempt_close(email: EmailMessage, *, now: dt.datetime) -> Delivery | None:
    """Close the attempt of a delivery that died while "sending". None: resend it; a
    Delivery: its attempts are used up, so it is given up instead of resent."""
    EmailAttempt.objects.filter(attempt_id=email.attempt_id, finished_at__isnull=True).update(
        finished_at=now, error=LOST_ATTEMPT
    )
    logger.warning(
        "Email %s (%s): attempt %s left no answer since %s; %s",
        email.pk,
        email.purpose,
        email.attempts,
        email.claimed_at,
        "giving up" if email.attempts >= email.attempt_limit else "resending it",
    )
    if email.attempts < email.attempt_limit:
        return None
    email.status = EmailStatus.FAILED
    email.attempt_id = email.claimed_at = email.next_attempt_at = None
    email.last_error = LOST_ATTEMPT
    email.save(
        update_fields=["status", "attempt_id", "claimed_at", "next_attempt_at", "last_error"]
    )
    return Delivery(
        email_id=email.pk,
        outcome=DeliveryOutcome.GAVE_UP,
        attempt=email.attempts,
        error=LOST_ATTEMPT,
    )


def _message_for(email: EmailMessage) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email.body_text,
        to=email.recipients,
        connection=get_connection(),
        # The same on every attempt: what lets a receiver drop a resent copy.
        headers={"Message-ID": email.message_id},
    )
    if email.body_html:
        message.attach_alternative(email.body_html, "text/html")
    for attachment in email.attachments:
        message.attach(attachment["filename"], attachment["content"], attachment["mimetype"])
    return message


def _send(email: EmailMessage) -> Exception | None:
    """The SMTP conversation: None once the server accepted, else what went wrong."""
    try:
        _message_for(email).send()
    except Exception as error:  # noqa: BLE001 - every delivery fault is recorded, none lost
        return error
    return None


def _record(email: EmailMessage, *, error: Exception | None) -> Delivery:
    now = timezone.now()
    attempt_id = email.attempt_id
    if error is None:
        outcome, text, next_at = DeliveryOutcome.SENT, "", None
        changes = {"status": EmailStatus.SENT, "sent_at": now}
    else:
        text = f"{type(error).__name__}: {error}"
        if email.attempts >= email.attempt_limit:
            outcome, next_at = DeliveryOutcome.GAVE_UP, None
        else:
            outcome = DeliveryOutcome.FAILED
            in_budget = email.attempts - (email.attempt_limit - MAX_DELIVERY_ATTEMPTS)
            next_at = now + retry_delay(max(in_budget, 1))
        changes = {"status": EmailStatus.FAILED}
    with transaction.atomic():
        EmailAttempt.objects.filter(attempt_id=attempt_id).update(
            finished_at=now, succeeded=error is None, error=text
        )
        # Only the delivery that still holds the claim writes the message's state.
        held = EmailMessage.objects.filter(pk=email.pk, attempt_id=attempt_id).update(
            attempt_id=None,
            claimed_at=None,
            last_error=text,
            next_attempt_at=next_at,
            **changes,
        )
    if not held:
        logger.warning(
            "Email %s: attempt %s ended (%s) after another delivery took the message over; "
            "its answer is kept in the attempt log only.",
            email.pk,
            email.attempts,
            outcome,
        )
    elif outcome == DeliveryOutcome.FAILED:
        logger.warning(
            "Email %s (%s) failed, attempt %s of %s: %s; next attempt at %s",
            email.pk,
            email.purpose,
            email.attempts,
            email.attempt_limit,
            text,
            next_at,
        )
    elif outcome == DeliveryOutcome.GAVE_UP:
        logger.error(
            "Email %s (%s) gave up after %s attempt(s): %s",
            email.pk,
            email.purpose,
            email.attempts,
            text,
        )
    return Delivery(
        email_id=email.pk,
        outcome=outcome,
        attempt=email.attempts,
        error=text,
        next_attempt_at=next_at,
        server_unavailable=isinstance(error, OSError) and not isinstance(error, MESSAGE_REFUSED),
    )
