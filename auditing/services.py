import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, models, transaction
from django.utils import timezone

from auditing.hashing import compute_entry_hash, normalize_data
from auditing.models import GENESIS_HASH, AuditEntry, VerificationRun
from auditing.selectors import ChainHead
from auditing.verification import VerificationResult, Violation

SYSTEM_ACTOR_NAME = "system"

# Arbitrary but fixed key for pg_advisory_xact_lock: "audit chain head".
CHAIN_LOCK_KEY = 0x4155444954


def _lock_chain_head() -> None:
    """Serialize appenders until the surrounding transaction ends.

    An advisory lock works on an empty table too, where there is no head row to lock.
    SQLite (demo only) serializes writers by itself.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])


def audit_entry_append(
    *,
    action: str,
    actor: AbstractBaseUser | None,
    subject: models.Model | None = None,
    data: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry to the chain, inside the caller's transaction if there is one.

    ``actor`` None means the system acted.
    """
    normalized = normalize_data(dict(data or {}))
    with transaction.atomic():
        _lock_chain_head()
        head = AuditEntry.objects.order_by("-sequence").values("sequence", "current_hash").first()
        entry = AuditEntry(
            sequence=head["sequence"] + 1 if head else 1,
            previous_hash=head["current_hash"] if head else GENESIS_HASH,
            timestamp=timezone.now(),
            action=action,
            actor=actor,
            actor_name=actor.get_username() if actor else SYSTEM_ACTOR_NAME,
            subject_type=subject._meta.label_lower if subject is not None else "",
            subject_id=str(subject.pk) if subject is not None else "",
            data=normalized,
        )
        entry.current_hash = compute_entry_hash(entry)
        entry.save(force_insert=True)
    return entry


def verification_run_start(
    *,
    started_at: dt.datetime,
    trigger: str,
    full: bool,
    range_start: dt.date | None,
    range_end: dt.date | None,
    head: ChainHead | None,
) -> VerificationRun:
    """Record a run as it starts, with the chain's head it sees: later runs compare their
    head with it to detect truncation."""
    return VerificationRun.objects.create(
        started_at=started_at,
        trigger=str(trigger),
        full=full,
        range_start=range_start,
        range_end=range_end,
        head_sequence=head.sequence if head else None,
        head_hash=head.current_hash if head else "",
    )


def verification_run_finish(
    *,
    run: VerificationRun,
    result: VerificationResult,
    violations: Sequence[Violation],
    duration_ms: int,
) -> VerificationRun:
    """Store what the run checked and found. ``violations``: the chain's, and a truncation."""
    run.finished_at = timezone.now()
    run.entries_checked = result.entries_checked
    run.first_sequence = result.first_sequence
    run.last_sequence = result.last_sequence
    run.intact = not violations
    run.violations = [violation.as_dict() for violation in violations]
    run.duration_ms = duration_ms
    run.save()
    return run
