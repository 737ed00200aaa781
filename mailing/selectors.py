"""Reads about mail: who receives the administrators' mail, how messages fared, and how
the outbox stands."""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Count, Min, Q

from mailing.models import SMTP_TEST_PURPOSE, EmailMessage, EmailStatus, OutboxSweep

# The sweeper runs every minute: this long without a run means nothing delivers the outbox.
SWEEPER_LATE_AFTER = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class EmailOutcomes:
    """How a run's messages fared when it ended."""

    queued: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0

    def any(self) -> bool:
        return bool(self.queued or self.sending or self.sent or self.failed)


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


def email_outcomes(email_ids: Iterable[int]) -> EmailOutcomes:
    ids = list(email_ids)
    if not ids:
        return EmailOutcomes()
    rows = (
        EmailMessage.objects.filter(pk__in=ids).values("status").annotate(n=Count("pk")).order_by()
    )
    counts = {row["status"]: row["n"] for row in rows}
    return EmailOutcomes(
        queued=counts.get(EmailStatus.QUEUED, 0),
        sending=counts.get(EmailStatus.SENDING, 0),
        sent=counts.get(EmailStatus.SENT, 0),
        failed=counts.get(EmailStatus.FAILED, 0),
    )


def email_statuses(email_ids: Iterable[int]) -> dict[int, str]:
    """Each message's status, by id."""
    return dict(EmailMessage.objects.filter(pk__in=list(email_ids)).values_list("pk", "status"))


@dataclass(frozen=True)
class OutboxStatus:
    """The outbox at a glance, for the health page.

    ``undelivered``: every message not sent yet (queued, sending, failed, gave up);
    ``gave_up``: failed with no next attempt, waiting for a person ("Retry delivery now");
    ``last_sweep_at``: when the sweeper last finished a run, None if it never did.
    """

    undelivered: int
    oldest_undelivered_at: dt.datetime | None
    gave_up: int
    last_sweep_at: dt.datetime | None

    def sweeper_late(self, *, now: dt.datetime) -> bool:
        """True when no sweep finished within SWEEPER_LATE_AFTER: nothing is delivering
        queued mail or retrying failed mail."""
        return self.last_sweep_at is None or now - self.last_sweep_at > SWEEPER_LATE_AFTER


def outbox_status() -> OutboxStatus:
    figures = (
        EmailMessage.objects.exclude(status=EmailStatus.SENT)
        .exclude(purpose=SMTP_TEST_PURPOSE)
        .aggregate(
            undelivered=Count("pk"),
            oldest=Min("created_at"),
            gave_up=Count("pk", filter=Q(status=EmailStatus.FAILED, next_attempt_at__isnull=True)),
        )
    )
    sweep = OutboxSweep.objects.filter(pk=1).values_list("finished_at", flat=True).first()
    return OutboxStatus(
        undelivered=figures["undelivered"],
        oldest_undelivered_at=figures["oldest"],
        gave_up=figures["gave_up"],
        last_sweep_at=sweep,
    )
