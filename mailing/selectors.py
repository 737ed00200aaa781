"""Reads about mail: who receives the administrators' mail, and how messages fared."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Count

from mailing.models import EmailMessage, EmailStatus


@dataclass(frozen=True)
class EmailOutcomes:
    """How a run's messages fared when it ended."""

    queued: int = 0
    sent: int = 0
    failed: int = 0

    def any(self) -> bool:
        return bool(self.queued or self.sent or self.failed)


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
        sent=counts.get(EmailStatus.SENT, 0),
        failed=counts.get(EmailStatus.FAILED, 0),
    )


def email_statuses(email_ids: Iterable[int]) -> dict[int, str]:
    """Each message's status, by id."""
    return dict(EmailMessage.objects.filter(pk__in=list(email_ids)).values_list("pk", "status"))
