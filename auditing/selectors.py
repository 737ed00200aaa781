"""Reads of the audit trail and of its verification runs."""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Max, Min

from auditing.models import AuditEntry, VerificationRun


@dataclass(frozen=True)
class ChainHead:
    """The newest entry of the chain."""

    sequence: int
    current_hash: str


def audit_chain_head() -> ChainHead | None:
    head = AuditEntry.objects.order_by("-sequence").values("sequence", "current_hash").first()
    return ChainHead(**head) if head else None


def audit_entry_get(*, sequence: int) -> AuditEntry | None:
    return AuditEntry.objects.filter(sequence=sequence).first()


def audit_sequences_in_period(
    *, start: dt.datetime | None, end: dt.datetime | None
) -> tuple[int, int] | None:
    """The first and last sequence of the entries written in ``start <= timestamp < end``
    (open ends allowed), or None when there are none."""
    in_period = AuditEntry.objects.all()
    if start is not None:
        in_period = in_period.filter(timestamp__gte=start)
    if end is not None:
        in_period = in_period.filter(timestamp__lt=end)
    bounds = in_period.aggregate(first=Min("sequence"), last=Max("sequence"))
    if bounds["first"] is None:
        return None
    return bounds["first"], bounds["last"]


def verification_run_highest_head(*, excluding: VerificationRun) -> VerificationRun | None:
    """The other run that saw the chain the longest (the latest of them on a tie)."""
    return (
        VerificationRun.objects.exclude(pk=excluding.pk)
        .filter(head_sequence__isnull=False)
        .order_by("-head_sequence", "-started_at")
        .first()
    )
