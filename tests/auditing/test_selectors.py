"""Reads of the audit trail and of its verification runs."""

import datetime as dt

import pytest
import time_machine

from auditing.models import AuditEntry, VerificationRun
from auditing.selectors import (
    ChainHead,
    audit_chain_head,
    audit_entry_get,
    audit_sequences_in_period,
    verification_run_highest_head,
)
from auditing.services import audit_entry_append

pytestmark = pytest.mark.django_db

DAY_1 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)


def _append_daily(count: int) -> list[AuditEntry]:
    entries = []
    for number in range(count):
        with time_machine.travel(DAY_1 + dt.timedelta(days=number), tick=False):
            entries.append(audit_entry_append(action="day.closed", actor=None, data={}))
    return entries


def _run(started_at: dt.datetime, head_sequence: int | None) -> VerificationRun:
    return VerificationRun.objects.create(
        started_at=started_at, trigger="beat", head_sequence=head_sequence
    )


def test_chain_head_is_the_newest_entry_or_none():
    assert audit_chain_head() is None

    entries = _append_daily(3)

    assert audit_chain_head() == ChainHead(sequence=3, current_hash=entries[-1].current_hash)


def test_entry_get_finds_an_entry_by_sequence():
    entries = _append_daily(2)

    assert audit_entry_get(sequence=2) == entries[1]
    assert audit_entry_get(sequence=3) is None


@pytest.mark.parametrize(
    ("start_day", "end_day", "bounds"),
    [(1, 3, (2, 3)), (None, 2, (1, 2)), (3, None, (4, 5)), (None, None, (1, 5)), (9, 12, None)],
)
def test_sequences_in_period_are_the_first_and_last_written_in_it(start_day, end_day, bounds):
    _append_daily(5)

    def day(offset):
        return None if offset is None else DAY_1 + dt.timedelta(days=offset)

    assert audit_sequences_in_period(start=day(start_day), end=day(end_day)) == bounds


def test_highest_head_is_the_longest_chain_another_run_saw_latest_first():
    current = _run(DAY_1 + dt.timedelta(days=9), head_sequence=2)
    _run(DAY_1, head_sequence=5)
    latest_of_the_highest = _run(DAY_1 + dt.timedelta(days=1), head_sequence=5)
    _run(DAY_1 + dt.timedelta(days=2), head_sequence=3)
    _run(DAY_1 + dt.timedelta(days=3), head_sequence=None)  # saw an empty chain

    assert verification_run_highest_head(excluding=current) == latest_of_the_highest


def test_highest_head_leaves_out_the_run_itself():
    current = _run(DAY_1, head_sequence=4)

    assert verification_run_highest_head(excluding=current) is None
