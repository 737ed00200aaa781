"""Verification of the hash chain: every entry's HMAC, every link, and sequence gaps.

Rows are streamed in sequence order, so memory stays constant whatever the chain's size.
"""

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from django.utils import timezone

from auditing.hashing import compute_entry_hash
from auditing.models import GENESIS_HASH, AuditEntry, VerificationRun
from auditing.selectors import audit_entry_get, audit_sequences_in_period

STREAM_CHUNK_SIZE = 2000


class ViolationKind(StrEnum):
    CONTENT_MISMATCH = "content_mismatch"
    BROKEN_LINK = "broken_link"
    GAP = "gap"
    # The chain is shorter than an earlier run saw it (see chain_truncation_check).
    TRUNCATED = "truncated"


@dataclass(frozen=True)
class Violation:
    """One finding. ``detail`` is the English sentence kept with the run; a truncation
    also names the earlier run whose recorded head shows it (``seen_run``, ``seen_at``)."""

    sequence: int
    timestamp: dt.datetime | None
    kind: ViolationKind
    expected: str
    stored: str
    detail: str
    seen_run: int | None = None
    seen_at: dt.datetime | None = None

    def as_dict(self) -> dict:
        """The row stored with the run: times in local ISO 8601."""
        row = {
            "sequence": self.sequence,
            "timestamp": _local_iso(self.timestamp),
            "kind": str(self.kind),
            "expected": self.expected,
            "stored": self.stored,
            "detail": self.detail,
        }
        if self.seen_run is not None:
            row.update(seen_run=self.seen_run, seen_at=_local_iso(self.seen_at))
        return row


@dataclass
class VerificationResult:
    entries_checked: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    head_hash: str | None = None
    violations: list[Violation] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.violations


def chain_verify(
    *, start_sequence: int | None = None, end_sequence: int | None = None
) -> VerificationResult:
    """Verify entries with ``start_sequence <= sequence <= end_sequence`` (open ends allowed).

    The first entry in range is also linked against the entry just before the range,
    so a range that starts mid-chain raises no false alarm and still catches a bad link.
    """
    entries = AuditEntry.objects.order_by("sequence")
    if start_sequence is not None:
        entries = entries.filter(sequence__gte=start_sequence)
    if end_sequence is not None:
        entries = entries.filter(sequence__lte=end_sequence)

    before = None
    if start_sequence is not None and start_sequence > 1:
        before = (
            AuditEntry.objects.filter(sequence__lt=start_sequence)
            .order_by("-sequence")
            .values("sequence", "current_hash")
            .first()
        )
    if before:
        expected_previous_hash, expected_sequence = before["current_hash"], before["sequence"] + 1
    else:
        # Nothing before the range: the range must start the chain.
        expected_previous_hash, expected_sequence = GENESIS_HASH, 1

    result = VerificationResult()
    for entry in entries.iterator(chunk_size=STREAM_CHUNK_SIZE):
        if result.first_sequence is None:
            result.first_sequence = entry.sequence
        if entry.sequence != expected_sequence:
            result.violations.append(
                Violation(
                    sequence=entry.sequence,
                    timestamp=entry.timestamp,
                    kind=ViolationKind.GAP,
                    expected=str(expected_sequence),
                    stored=str(entry.sequence),
                    detail=_gap_detail(expected_sequence, entry.sequence),
                )
            )
        recomputed = compute_entry_hash(entry)
        if recomputed != entry.current_hash:
            result.violations.append(
                Violation(
                    sequence=entry.sequence,
                    timestamp=entry.timestamp,
                    kind=ViolationKind.CONTENT_MISMATCH,
                    expected=recomputed,
                    stored=entry.current_hash,
                    detail="the entry's content does not match its stored hash",
                )
            )
        if entry.previous_hash != expected_previous_hash:
            result.violations.append(
                Violation(
                    sequence=entry.sequence,
                    timestamp=entry.timestamp,
                    kind=ViolationKind.BROKEN_LINK,
                    expected=expected_previous_hash,
                    stored=entry.previous_hash,
                    detail="previous_hash does not match the preceding entry's hash",
                )
            )
        # Link to the stored hash, so one altered entry is reported once, at that entry.
        expected_previous_hash = entry.current_hash
        expected_sequence = entry.sequence + 1
        result.entries_checked += 1
        result.last_sequence = entry.sequence
        result.head_hash = entry.current_hash
    return result


def chain_verify_period(
    *, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> VerificationResult:
    """Verify the entries written in ``start <= timestamp < end``.

    The period picks the first and last sequence numbers; everything between them is
    checked by sequence, so an entry with an odd timestamp cannot hide inside the range.
    """
    sequences = audit_sequences_in_period(start=start, end=end)
    if sequences is None:
        return VerificationResult()
    first, last = sequences
    return chain_verify(start_sequence=first, end_sequence=last)


def chain_truncation_check(
    *, head_sequence: int | None, recorded: VerificationRun | None
) -> Violation | None:
    """Compare the head with the highest one an earlier run (``recorded``) saw.

    Lower now: the newest entries were removed. Same height but another hash at the
    recorded head: entries were removed and the chain appended again from there.
    """
    if recorded is None:
        return None
    seen_on = f"run #{recorded.pk} on {timezone.localtime(recorded.started_at):%Y-%m-%d %H:%M}"
    current = head_sequence or 0
    if recorded.head_sequence > current:
        first_missing = current + 1
        missing = (
            f"entry {first_missing} is"
            if first_missing == recorded.head_sequence
            else f"entries {first_missing} to {recorded.head_sequence} are"
        )
        return Violation(
            sequence=first_missing,
            timestamp=None,
            kind=ViolationKind.TRUNCATED,
            expected=str(recorded.head_sequence),
            stored=str(current),
            detail=(
                f"the chain ends at {current or 'no entry'} but {seen_on} saw it end at "
                f"{recorded.head_sequence}: {missing} missing from the end"
            ),
            seen_run=recorded.pk,
            seen_at=recorded.started_at,
        )
    entry = audit_entry_get(sequence=recorded.head_sequence)
    if entry is None or entry.current_hash == recorded.head_hash:
        # A missing entry is a gap: a run whose range covers it reports it.
        return None
    return Violation(
        sequence=recorded.head_sequence,
        timestamp=entry.timestamp,
        kind=ViolationKind.TRUNCATED,
        expected=recorded.head_hash,
        stored=entry.current_hash,
        detail=(
            f"{seen_on} recorded another hash for this entry, then the head: the chain "
            "was cut back and appended again"
        ),
        seen_run=recorded.pk,
        seen_at=recorded.started_at,
    )


def _local_iso(value: dt.datetime | None) -> str | None:
    return timezone.localtime(value).isoformat() if value else None


def _gap_detail(expected: int, found: int) -> str:
    if found < expected:
        return f"sequence {found} appears after {expected - 1}"
    if found == expected + 1:
        return f"entry {expected} is missing"
    return f"entries {expected} to {found - 1} are missing"
