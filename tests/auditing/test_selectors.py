"""Reads of the audit trail and of its verification runs."""

import datetime as dt

import pytest
import time_machine

from auditing.models import AuditEntry
from auditing.selectors import (
    ChainHead,
    audit_chain_head,
    audit_entry_get,
    audit_hashes_at,
)
from auditing.services import audit_entry_append
from auditing.verification import period_sequences

pytestmark = pytest.mark.django_db

DAY_1 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)


def _append_daily(count: int) -> list[AuditEntry]:
    entries = []
    for number in range(count):
        with time_machine.travel(DAY_1 + dt.timedelta(days=number), tick=False):
            entries.append(audit_entry_append(action="day.closed", actor=None, data={}))
    return entries


def test_chain_head_is_the_newest_entry_or_none():
    assert audit_chain_head() is None

    entries = _append_daily(3)

    assert audit_chain_head() == ChainHead(sequence=3, current_hash=entries[-1].current_hash)


def test_entry_get_finds_an_entry_by_sequence():
    entries = _append_daily(2)

    assert audit_entry_get(sequence=2) == entries[1]
    assert audit_entry_get(sequence=3) is None


@pytest.mark.parametrize(
    ("start_day", "end_day", "sequences"),
    [
        (1, 3, (1, 4)),  # days 2-3, with the entry before (1) and after (4)
        (None, 2, (1, 3)),
        (3, None, (3, 5)),
        (None, None, (1, 5)),
        (9, 12, (5, 5)),  # after the last entry: the last entry only
    ],
)
def test_a_period_is_its_sequences_from_the_entry_before_to_the_entry_after(
    start_day, end_day, sequences
):
    _append_daily(5)

    def day(offset):
        return None if offset is None else DAY_1 + dt.timedelta(days=offset)

    assert period_sequences(start=day(start_day), end=day(end_day), head_sequence=5) == sequences


def test_a_period_on_an_empty_chain_has_no_sequences():
    assert period_sequences(start=None, end=None, head_sequence=0) is None


def test_hashes_at_gives_the_stored_hash_of_each_existing_entry():
    entries = _append_daily(3)

    assert audit_hashes_at(sequences=[3, 1, 7]) == {
        1: entries[0].current_hash,
        3: entries[2].current_hash,
    }
