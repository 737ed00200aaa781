import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, models, transaction
from django.utils import timezone

from auditing.chain import GENESIS_HASH, SignedCheckpoint, Violation, checkpoint_sign
from auditing.chain import Checkpoint as ChainCheckpoint
from auditing.checkpoints import DatabaseCopy, configured_sinks
from auditing.hashing import compute_entry_hash, normalize_data
from auditing.models import AuditEntry, Checkpoint, VerificationFinding, VerificationRun
from auditing.selectors import CHECKPOINT_ACKNOWLEDGED, ChainHead
from auditing.verification import VerificationResult

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class AuditEntryDraft:
    """An entry to append: what ``audit_entry_append`` takes, for ``audit_entries_append``."""

    action: str
    actor: AbstractBaseUser | None
    subject: models.Model | None = None
    data: Mapping[str, Any] | None = None


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
    [entry] = audit_entries_append(
        drafts=[AuditEntryDraft(action=action, actor=actor, subject=subject, data=data)]
    )
    return entry


def audit_entries_append(*, drafts: Sequence[AuditEntryDraft]) -> list[AuditEntry]:
    """Append entries to the chain in their order, inside the caller's transaction if
    there is one: the chain lock is taken and the head read once, and the entries are
    inserted in one statement, so a batch of work holds the lock only from here to its
    commit."""
    if not drafts:
        return []
    with transaction.atomic():
        _lock_chain_head()
        head = (
            AuditEntry.objects.order_by("-sequence")
            .values("sequence", "current_hash", "timestamp")
            .first()
        )
        sequence = head["sequence"] if head else 0
        previous_hash = head["current_hash"] if head else GENESIS_HASH
        previous_timestamp = head["timestamp"] if head else None
        entries = []
        for draft in drafts:
            now = timezone.now()
            entry = AuditEntry(
                sequence=sequence + 1,
                previous_hash=previous_hash,
                # Never earlier than the entry before: timestamps must not decrease along
                # the chain (verification reports it), and a clock stepped back is no
                # tampering.
                timestamp=max(now, previous_timestamp) if previous_timestamp else now,
                action=draft.action,
                actor=draft.actor,
                actor_name=draft.actor.get_username() if draft.actor else SYSTEM_ACTOR_NAME,
                subject_type=draft.subject._meta.label_lower if draft.subject is not None else "",
                subject_id=str(draft.subject.pk) if draft.subject is not None else "",
                data=normalize_data(dict(draft.data or {})),
                key_id=settings.AUDIT_CHAIN_KEY_ID,
            )
            entry.current_hash = compute_entry_hash(entry)
            entries.append(entry)
            sequence, previous_hash, previous_timestamp = (
                entry.sequence,
                entry.current_hash,
                entry.timestamp,
            )
        AuditEntry.objects.bulk_create(entries)
    return entries


def verification_run_start(
    *,
    started_at: dt.datetime,
    trigger: str,
    full: bool,
    range_start: dt.date | None,
    range_end: dt.date | None,
    head: ChainHead | None,
) -> VerificationRun:
    """Record a run as it starts, with the chain's head it sees (for the record: truncation
    is shown by the signed checkpoints, which the database's owner cannot rewrite)."""
    return VerificationRun.objects.create(
        started_at=started_at,
        trigger=str(trigger),
        full=full,
        range_start=range_start,
        range_end=range_end,
        head_sequence=head.sequence if head else None,
        head_hash=head.current_hash if head else "",
    )


FINDINGS_BATCH = 2000


def verification_run_finish(
    *,
    run: VerificationRun,
    result: VerificationResult,
    violations: Sequence[Violation],
    duration_ms: int,
    last_good_checkpoint: Checkpoint | None = None,
) -> VerificationRun:
    """Store what the run checked and found. ``violations``: the chain's, the checkpoints'
    and the enforcement's, in the order they are reported."""
    with transaction.atomic():
        run.finished_at = timezone.now()
        run.entries_checked = result.entries_checked
        run.first_sequence = result.first_sequence
        run.last_sequence = result.last_sequence
        run.ranges = [list(sequences) for sequences in result.ranges]
        run.intact = not violations
        run.issue_count = len(violations)
        run.last_good_checkpoint = last_good_checkpoint
        run.duration_ms = duration_ms
        run.save()
        for offset in range(0, len(violations), FINDINGS_BATCH):
            VerificationFinding.objects.bulk_create(
                VerificationFinding(
                    run=run,
                    position=position,
                    kind=violation.kind,
                    sequence=violation.sequence,
                    timestamp=violation.timestamp,
                    expected=violation.expected,
                    stored=violation.stored,
                    detail=violation.detail,
                    reference=violation.reference[:300],
                    table=violation.table,
                    row=violation.row,
                    field=violation.field,
                )
                for position, violation in enumerate(
                    violations[offset : offset + FINDINGS_BATCH], start=offset + 1
                )
            )
    return run


def verification_run_fail(*, run: VerificationRun, error: str, duration_ms: int) -> VerificationRun:
    """The run could not complete: it says so, and why, instead of staying unfinished."""
    run.finished_at = timezone.now()
    run.intact = None
    run.error = error
    run.duration_ms = duration_ms
    run.save(update_fields=["finished_at", "intact", "error", "duration_ms"])
    return run


def verification_run_checkpoint_attach(*, run: VerificationRun, checkpoint: Checkpoint) -> None:
    run.checkpoint = checkpoint
    run.save(update_fields=["checkpoint"])


@dataclass(frozen=True)
class CheckpointWritten:
    """Where a new checkpoint went: ``row`` is the database's copy; ``failures`` the sinks
    that could not keep it, each with its reason."""

    signed: SignedCheckpoint
    row: Checkpoint
    written_to: tuple[str, ...]
    failures: tuple[tuple[str, str], ...]


def checkpoint_sign_and_store(*, head: ChainHead, signed_at: dt.datetime) -> CheckpointWritten:
    """Sign the head a verification found intact, and keep it in every sink."""
    signed = checkpoint_sign(
        ChainCheckpoint(
            sequence=head.sequence,
            head_hash=head.current_hash,
            entry_count=head.sequence,
            signed_at=signed_at,
        ),
        signing_key=settings.AUDIT_SIGNING_KEY,
    )
    row = DatabaseCopy().write(signed)
    written_to, failures = [], []
    for sink in configured_sinks():
        try:
            sink.write(signed)
        except Exception as error:  # noqa: BLE001 - every sink's failure is reported, none stops the others
            logger.error(
                "Checkpoint #%s not written to %s: %s", head.sequence, sink.location, error
            )
            failures.append((sink.location, str(error) or type(error).__name__))
        else:
            written_to.append(sink.location)
    return CheckpointWritten(
        signed=signed, row=row, written_to=tuple(written_to), failures=tuple(failures)
    )


REASON_MAX_LENGTH = 1000


class InvalidAcknowledgement(ValueError):
    pass


def checkpoint_finding_acknowledge(
    *, finding: VerificationFinding, reason: str, actor: AbstractBaseUser
) -> AuditEntry:
    """An administrator looked into a checkpoint finding and says why it may rest.

    The acknowledgement is an audit entry: HMAC-chained like any other, so it cannot be
    forged without the key, and verification only honours one whose hash holds.
    """
    reason = (reason or "").strip()
    if not finding.reference:
        raise InvalidAcknowledgement("Only a checkpoint finding can be acknowledged.")
    if not reason:
        raise InvalidAcknowledgement("Say why this finding may be acknowledged.")
    if len(reason) > REASON_MAX_LENGTH:
        raise InvalidAcknowledgement(f"Keep the reason under {REASON_MAX_LENGTH} characters.")
    return audit_entry_append(
        action=CHECKPOINT_ACKNOWLEDGED,
        actor=actor,
        subject=finding.run,
        data={
            "reference": finding.reference,
            "kind": finding.kind,
            "sequence": finding.sequence,
            "reason": reason,
        },
    )
