"""The verification runs' writes: a run recorded as it starts, then finished with what it found."""

import datetime as dt

import pytest
import time_machine

from auditing.models import VerificationRun
from auditing.selectors import ChainHead
from auditing.services import (
    verification_run_fail,
    verification_run_finish,
    verification_run_start,
)
from auditing.verification import VerificationResult, Violation, ViolationKind

pytestmark = pytest.mark.django_db

STARTED = dt.datetime(2026, 5, 20, 7, 0, tzinfo=dt.UTC)  # 10:00 in Indian/Antananarivo


def _start(**overrides) -> VerificationRun:
    fields = {
        "started_at": STARTED,
        "trigger": "manual",
        "full": False,
        "range_start": dt.date(2026, 4, 20),
        "range_end": dt.date(2026, 5, 20),
        "head": ChainHead(sequence=7, current_hash="h" * 64),
    } | overrides
    return verification_run_start(**fields)


def test_start_records_the_range_and_the_head_it_sees():
    run = _start()

    stored = VerificationRun.objects.get()
    assert stored == run
    assert (stored.started_at, stored.trigger, stored.full) == (STARTED, "manual", False)
    assert (stored.range_start, stored.range_end) == (dt.date(2026, 4, 20), dt.date(2026, 5, 20))
    assert (stored.head_sequence, stored.head_hash) == (7, "h" * 64)
    assert (stored.intact, stored.finished_at) == (None, None)


def test_start_on_an_empty_chain_records_no_head():
    run = _start(full=True, range_start=None, range_end=None, head=None)

    run.refresh_from_db()
    assert (run.head_sequence, run.head_hash, run.full) == (None, "", True)


def test_finish_stores_what_was_checked_and_each_violation_as_a_finding_in_order():
    run = _start()
    violations = [
        Violation(
            sequence=3,
            timestamp=dt.datetime(2026, 5, 3, 9, 0, tzinfo=dt.UTC),
            kind=ViolationKind.CONTENT_MISMATCH,
            expected="a" * 64,
            stored="b" * 64,
            detail="the entry's content does not match its stored hash",
        ),
        Violation(
            sequence=8,
            kind=ViolationKind.TRUNCATED,
            expected="9",
            stored="7",
            detail="the chain ends at 7 but the checkpoint signed at ... holds entry 9: ...",
            reference="checkpoint 9 " + "c" * 64,
        ),
        Violation(sequence=None, kind=ViolationKind.ENFORCEMENT_OFF, detail="trigger disabled"),
    ]
    result = VerificationResult(
        entries_checked=5, first_sequence=3, last_sequence=7, ranges=[(3, 7)]
    )

    with time_machine.travel(STARTED + dt.timedelta(seconds=2), tick=False):
        verification_run_finish(run=run, result=result, violations=violations, duration_ms=1500)

    run.refresh_from_db()
    assert (run.entries_checked, run.first_sequence, run.last_sequence) == (5, 3, 7)
    assert (run.intact, run.issue_count, run.duration_ms, run.ranges) == (False, 3, 1500, [[3, 7]])
    assert run.finished_at == STARTED + dt.timedelta(seconds=2)
    assert [
        (f.position, f.sequence, f.kind, f.timestamp, f.expected, f.stored, f.reference)
        for f in run.findings.all()
    ] == [
        (1, 3, "content_mismatch", dt.datetime(2026, 5, 3, 9, 0, tzinfo=dt.UTC), "a" * 64,
         "b" * 64, ""),
        (2, 8, "truncated", None, "9", "7", "checkpoint 9 " + "c" * 64),
        (3, None, "enforcement_off", None, "", "", ""),
    ]  # fmt: skip


def test_finish_without_violations_marks_the_run_intact():
    run = _start()

    verification_run_finish(
        run=run, result=VerificationResult(entries_checked=2), violations=[], duration_ms=3
    )

    run.refresh_from_db()
    assert (run.intact, run.issue_count, run.entries_checked) == (True, 0, 2)
    assert not run.findings.exists()


def test_fail_finishes_the_run_as_could_not_complete_with_the_reason():
    run = _start()

    verification_run_fail(run=run, error="RecursionError: too deep", duration_ms=9)

    run.refresh_from_db()
    assert (run.intact, run.error, run.duration_ms) == (None, "RecursionError: too deep", 9)
    assert run.finished_at is not None
    assert str(run) == f"Verification #{run.pk} (could not complete)"
